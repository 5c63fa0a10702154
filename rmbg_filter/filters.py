"""Box means in torch, on any device: the building block of the temporal, refinement and colour steps.

A box mean of radius r averages the (2r+1)x(2r+1) window around each pixel,
clipped to the image (each output is the mean of the pixels that exist), from
running sums along each axis: its cost does not grow with r.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["box_mean"]


def box_mean(values: torch.Tensor, radius: int) -> torch.Tensor:
    """The box mean of radius ``radius`` over the last two dims of ``values`` (N,C,H,W) float; same shape out."""
    height, width = values.shape[-2:]
    sums = _window_sums(_window_sums(values, radius, -1), radius, -2)
    counts = _counts(height, radius, values)[:, None] * _counts(width, radius, values)[None, :]
    return sums / counts


def _window_sums(values: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """The sum over the window of radius ``radius`` along ``dim`` (-1 or -2), zeros beyond the edges."""
    size = values.shape[dim]
    padding = (radius + 1, radius) if dim == -1 else (0, 0, radius + 1, radius)
    running = F.pad(values, padding).cumsum(dim)  # running[i] = values[:i - radius].sum(), padded
    return running.narrow(dim, 2 * radius + 1, size) - running.narrow(dim, 0, size)


def _counts(size: int, radius: int, like: torch.Tensor) -> torch.Tensor:
    """How many of the window's 2*radius+1 positions lie inside an axis of ``size``, for each position."""
    positions = torch.arange(size, device=like.device)
    return ((positions + radius).clamp(max=size - 1) - (positions - radius).clamp(min=0) + 1).to(like.dtype)
