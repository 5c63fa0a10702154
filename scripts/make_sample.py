"""Make a sample picture for the demo: a lit sphere in front of a striped wall.

Usage: python scripts/make_sample.py OUT.png [WIDTHxHEIGHT]
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image


def sample_frame(width: int, height: int, phase: float = 0.0) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a shaded sphere whose place depends on ``phase``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    wall = 0.55 + 0.25 * np.sin(x / 9.0 + phase)[..., None] * np.array([1.0, 0.8, 0.5])
    cx = width * (0.5 + 0.2 * np.sin(phase))
    cy, radius = height * 0.55, min(width, height) * 0.3
    dx, dy = (x - cx) / radius, (y - cy) / radius
    inside = dx**2 + dy**2 < 1
    shade = np.clip(np.sqrt(np.clip(1 - dx**2 - dy**2, 0, 1)) * 0.9 + 0.1 - 0.3 * dx, 0, 1)
    sphere = shade[..., None] * np.array([0.9, 0.3, 0.2])
    image = np.where(inside[..., None], sphere, wall)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


if __name__ == "__main__":
    size = sys.argv[2] if len(sys.argv) > 2 else "640x480"
    width, height = (int(v) for v in size.split("x"))
    Image.fromarray(sample_frame(width, height)).save(sys.argv[1])
