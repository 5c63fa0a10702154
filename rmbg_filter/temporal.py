"""Temporal stabilisation: the alpha of frame n from frames n-R..n+R and their network outputs.

Each neighbour k of frame n enters a weighted mean of the network outputs
(model size, before normalisation) with a weight per pixel that falls from 1 to
0 as the local difference of the two frames rises from STILL to MOVING levels:
still regions average over the window (the noise of single runs cancels), moving
edges follow frame n. The local difference is taken on the frames' motion cells
(``motion_cells``: the model-size colours averaged over MOTION_CELL^2 pixels): the
box mean (radius MOTION_RADIUS cells) of the signed difference, so sensor noise
averages out before it is judged, its largest channel, spread to the cells around
(a 3x3 maximum) so that a moving edge's surroundings follow frame n too; the
weights are then resized to the model size. A scene cut (a mean colour change
above CUT_LEVELS between two consecutive frames) or a change of frame size ends
the window on that side: no frame across it is used.

Measured on IS-Net small (scripts/quality.py): luma differences alone let the
moving shot's subject ghost into its neighbours' places (MAE 0.24 -> 0.66 levels,
dtSSD 5.5 -> 10.2); colours and the 3x3 spread keep them at 0.24 and 5.5.

``Window`` holds the frames of a stream until their window is complete, so
streaming adapters answer R frames behind and drain the last R at the end.
Reuse (``needs_network``) decides which frames get a network run of their own.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
import torch.nn.functional as F

from .filters import box_mean
from .options import REUSE_SPAN

__all__ = ["CUT_LEVELS", "Neighbour", "Reuse", "Window", "motion_cells", "needs_network", "psnr", "stabilise"]

#: mean absolute colour change (levels of 255) between consecutive frames that marks a scene cut
CUT_LEVELS = 20.0
#: local colour difference (levels of 255) up to which a neighbour counts fully, and from which not at all
STILL_LEVELS, MOVING_LEVELS = 2.0, 6.0
#: side (model-size pixels) of a motion cell, and radius (cells) of the box mean over the cells' differences
MOTION_CELL, MOTION_RADIUS = 4, 1

T = TypeVar("T")


@dataclass(frozen=True)
class Neighbour:
    """One frame of a window: its size (H,W), motion cells (1,3,h',w') float32 in [0,1] (``motion_cells``)
    and network output (1,1,h,w) float32 in [0,1] at the model size."""

    size: tuple[int, int]
    motion: torch.Tensor
    matte: torch.Tensor


def motion_cells(views: torch.Tensor) -> torch.Tensor:
    """Views (N,3,h,w) float32 in [0,1] -> their colours averaged over MOTION_CELL^2 cells: (N,3,h',w')."""
    height, width = views.shape[-2:]
    return F.adaptive_avg_pool2d(views, (max(1, height // MOTION_CELL), max(1, width // MOTION_CELL)))


def stabilise(window: Sequence[Neighbour | None]) -> torch.Tensor:
    """The stabilised network output (1,1,h,w) float32 of the middle frame of ``window`` (2R+1 entries,
    None where the stream has no frame)."""
    radius = len(window) // 2
    centre = window[radius]
    if centre is None:
        raise ValueError("stabilise: the window's middle frame is missing")
    total = centre.matte.clone()
    weights = torch.ones_like(centre.matte)
    for step in (-1, 1):
        previous = centre
        for offset in range(1, radius + 1):
            neighbour = window[radius + step * offset]
            if neighbour is None or neighbour.size != centre.size or _is_cut(previous, neighbour):
                break
            difference = box_mean(neighbour.motion - centre.motion, MOTION_RADIUS).abs_().amax(1, keepdim=True)
            difference = _spread(difference * 255.0)
            weight = ((MOVING_LEVELS - difference) / (MOVING_LEVELS - STILL_LEVELS)).clamp_(0.0, 1.0)
            weight = F.interpolate(weight, size=centre.matte.shape[-2:], mode="bilinear", align_corners=False)
            total.addcmul_(weight, neighbour.matte)
            weights += weight
            previous = neighbour
    return total / weights


def _spread(values: torch.Tensor) -> torch.Tensor:
    """The maximum of each 3x3 neighbourhood of ``values`` (N,1,h,w), edges replicated (a grey dilation)."""
    padded = F.pad(values, (1, 1, 1, 1), mode="replicate")
    rows = torch.maximum(torch.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def _is_cut(first: Neighbour, second: Neighbour) -> bool:
    """Whether a scene cut lies between two consecutive frames (mean |colour change| above CUT_LEVELS)."""
    return float((first.motion - second.motion).abs().mean()) * 255.0 > CUT_LEVELS


def psnr(view: torch.Tensor, previous: torch.Tensor) -> float:
    """PSNR in dB of two views (1,3,h,w) float in [0,1]; inf when they are equal."""
    mse = float(((view - previous) ** 2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def needs_network(index: int, similarity: float, threshold: float) -> bool:
    """Whether frame ``index`` of a stream gets a network run of its own, or reuses the last run's output.

    ``similarity``: its PSNR (dB) to the frame before (ignored for frame 0). With ``threshold`` 0
    every frame runs; else a frame runs when it is at most ``threshold`` dB like the one before,
    and every REUSE_SPAN-th frame runs whatever it looks like, so the output reused for frame n is
    that of a frame no more than REUSE_SPAN-1 before it: random access can find it.
    """
    return threshold == 0.0 or index % REUSE_SPAN == 0 or similarity <= threshold


class Reuse:
    """The reuse decisions of one stream, frame after frame (see ``needs_network``)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.index = 0
        self.previous: torch.Tensor | None = None
        #: the output of the last network run, (1,1,h,w) float32; set by the caller after each run
        self.matte: torch.Tensor | None = None

    def runs(self, view: torch.Tensor) -> bool:
        """Whether the next frame, of view (1,3,h,w) float32 in [0,1], gets a network run."""
        similarity = 0.0 if self.previous is None or not self.threshold else psnr(view, self.previous)
        self.previous = view
        self.index += 1
        return needs_network(self.index - 1, similarity, self.threshold)


class Window(Generic[T]):
    """The frames of a stream, held until the window around each is complete.

    ``push`` takes the next frame's item and yields the windows (lists of 2R+1
    items, None beyond the stream's start) that it completes, oldest first;
    ``drain`` yields the last R, with None beyond the end. At most 2R+1 items are held.
    """

    def __init__(self, radius: int) -> None:
        self.radius = radius
        self._items: deque[T] = deque()
        self._first = 0  # stream index of _items[0]
        self._next = 0  # stream index of the next frame whose window is yielded

    def push(self, item: T) -> Iterator[list[T | None]]:
        self._items.append(item)
        while self._next + self.radius < self._first + len(self._items):
            yield self._around(self._next)

    def drain(self) -> Iterator[list[T | None]]:
        while self._next < self._first + len(self._items):
            yield self._around(self._next)

    def _around(self, index: int) -> list[T | None]:
        end = self._first + len(self._items)
        window = [self._items[i - self._first] if self._first <= i < end else None
                  for i in range(index - self.radius, index + self.radius + 1)]
        self._next += 1
        while self._first < self._next - self.radius:
            self._items.popleft()
            self._first += 1
        return window
