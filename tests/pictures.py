"""Deterministic test pictures."""

from __future__ import annotations

import numpy as np


def picture(height: int, width: int) -> np.ndarray:
    """A deterministic (H,W,3) uint8 picture: gradients and a bright disc."""
    y, x = np.mgrid[0:height, 0:width]
    disc = ((y - height / 2) ** 2 + (x - width / 2) ** 2) < (min(height, width) / 3) ** 2
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.where(disc, 230, 40)], axis=2)
    return rgb.astype(np.uint8)
