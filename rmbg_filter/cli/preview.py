"""``--preview``: a contact sheet to look at before a long run.

One row per sampled frame: the original, its alpha, and the cut-out over a
checkerboard, each tile at most PREVIEW_WIDTH pixels wide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..compositing import composite, parse_output

__all__ = ["PREVIEW_WIDTH", "checkerboard", "contact_sheet", "save_sheet"]

PREVIEW_WIDTH = 480


def checkerboard(height: int, width: int, square: int = 16) -> np.ndarray:
    """(height, width, 3) uint8 light and dark grey squares."""
    y, x = np.mgrid[0:height, 0:width]
    light = ((y // square + x // square) % 2 == 0)[..., None]
    return np.where(light, np.uint8(204), np.uint8(153)).repeat(3, axis=2)


def contact_sheet(frames: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Rows of [original | alpha | cut-out on a checkerboard] for (N,H,W,3) frames and (N,H,W) alphas.

    Returns (rows, columns, 3) uint8, each tile scaled to at most PREVIEW_WIDTH wide.
    """
    height, width = frames.shape[1:3]
    scale = min(1.0, PREVIEW_WIDTH / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    board = checkerboard(height, width)
    over_board = parse_output("image:checkerboard")
    rows = []
    for frame, alpha in zip(frames, alphas, strict=True):
        tiles = [frame, np.repeat(alpha[..., None], 3, axis=2), composite(frame, alpha, over_board, board)]
        rows.append(np.concatenate([np.asarray(Image.fromarray(t).resize(size, Image.Resampling.BILINEAR))
                                    for t in tiles], axis=1))
    return np.concatenate(rows, axis=0)


def save_sheet(sheet: np.ndarray, destination: Path) -> None:
    """Write the sheet as a PNG to an already checked (temporary) path."""
    Image.fromarray(sheet).save(destination, format="PNG")
