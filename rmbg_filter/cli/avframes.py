"""Writing numpy samples into PyAV frame planes, which pad each row to their line size."""

from __future__ import annotations

import numpy as np

__all__ = ["fill_plane"]


def fill_plane(plane: object, samples: np.ndarray) -> None:
    """Copy (rows, columns) samples into a PyAV ``VideoPlane``.

    ``samples`` is uint8, or little-endian uint16 for formats of more than 8
    bits; each row is padded to the plane's ``line_size`` bytes.
    """
    rows = samples.shape[0]
    data = samples.astype(samples.dtype.newbyteorder("<"), copy=False).view(np.uint8).reshape(rows, -1)
    padded = np.zeros((rows, plane.line_size), np.uint8)
    padded[:, : data.shape[1]] = data
    plane.update(padded)
