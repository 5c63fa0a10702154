"""One stream of an engine: its frames grouped into batches, run, finished and, with a temporal window, held.

``BackgroundRemover.stream_tagged`` makes a ``FrameStream`` for every stream it
runs: ``batches`` runs in the stream's reading thread, ``finished`` in its
inference thread. Reuse (``Reuse``) picks the frames that get a network run of
their own; a temporal window (``Window``) holds each frame until the frames
around it have been run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any, Protocol, TypeVar

import torch

from .finishing import finish
from .options import QualityOptions
from .temporal import Neighbour, Reuse, Window, motion_cells, stabilise
from .transfers import DeviceTransfers, Download, Upload
from .transforms import as_frame_batch

__all__ = ["Engine", "FrameStream"]

T = TypeVar("T")

#: a frame in a temporal window: its tag, its pixels (1,H,W,C) uint8 and view (1,3,h,w) float32 on the device,
#: and what its neighbours' stabilisation takes of it
_Held = tuple[T, torch.Tensor, torch.Tensor, Neighbour]


class Engine(Protocol):
    """What a stream asks of its engine (a BackgroundRemover; see there)."""

    @property
    def batch_size(self) -> int:
        """The most frames the network runs at a time (running out of memory may lower it mid-stream)."""

    def check_frames(self, height: int, width: int, quality: QualityOptions, frames: int | None = None) -> None:
        """OptionError when frames of ``width`` x ``height`` cannot be worked on in the memory available."""

    def views(self, pixels: torch.Tensor) -> torch.Tensor:
        """Frames (N,H,W,C) uint8 on the device as the network sees them: (N,3,h,w) float32 in [0,1]."""

    def mattes(self, views: torch.Tensor) -> torch.Tensor:
        """The network's outputs (N,1,h,w) float32 in [0,1] for views (N,3,h,w) float32 in [0,1]."""


class FrameStream:
    """The batches, network runs and temporal window of one stream of ``engine`` with ``quality``'s options,
    its frames moved to the device and its alphas back by ``transfers``."""

    def __init__(self, engine: Engine, transfers: DeviceTransfers, quality: QualityOptions) -> None:
        self.engine = engine
        self.transfers = transfers
        self.quality = quality

    def batches(self, items: Iterable[tuple[T, Any]]) -> Iterator[tuple[list[T], torch.Tensor]]:
        """Group checked frames into batches (N,H,W,C) of one shape, N <= batch_size, beside their tags
        (each new shape checked against the memory available for ``quality``'s work).

        When ``items`` raises (or a frame is refused), the frames before it are
        still yielded, then the error is raised.
        """
        tags: list[T] = []
        pending: list[torch.Tensor] = []
        try:
            for index, (tag, frame) in enumerate(items):
                tensor, batched = as_frame_batch(frame, name=f"frame {index}")
                if batched:
                    raise ValueError(f"frame {index} must be one frame (H,W[,C]), got a batch {tuple(tensor.shape)}")
                self.engine.check_frames(tensor.shape[1], tensor.shape[2], self.quality)
                if pending and pending[0].shape != tensor.shape:
                    yield tags, torch.cat(pending)
                    tags, pending = [], []
                tags.append(tag)
                pending.append(tensor)
                if len(pending) >= self.engine.batch_size:  # now, not when the next frame comes (a live source's
                    # latency); >=: running out of memory may have lowered the batch size while frames were pending
                    yield tags, torch.cat(pending)
                    tags, pending = [], []
        except Exception:
            if pending:
                yield tags, torch.cat(pending)
            raise
        if pending:
            yield tags, torch.cat(pending)

    def finished(self, uploads: Generator[tuple[list[T], Upload], None, None]
                 ) -> Iterator[tuple[list[T], Download, float]]:
        """Alphas on their way back, with their tags and the seconds the network and finishing took.

        The seconds are all of the work on the CPU; on CUDA the launch, and the wait for the
        download adds the rest (a consumer slower than the GPU hides it). ``uploads`` is closed
        here, in the thread that runs it (closing it from another could find it running).
        """
        quality = self.quality
        window: Window[_Held[T]] = Window(quality.temporal_radius)
        reuse = Reuse(quality.reuse_threshold)
        with contextlib.closing(uploads):
            try:
                for tags, upload in uploads:
                    started = time.perf_counter()
                    with torch.inference_mode():
                        pixels = self.transfers.arrived(upload)
                        views = self.engine.views(pixels)
                        mattes = self._reusing(views, reuse)
                        if not quality.temporal_radius:
                            alphas = finish(pixels, views, mattes, quality)
                            yield tags, self.transfers.download(alphas), time.perf_counter() - started
                            continue
                        motions, size = motion_cells(views), (pixels.shape[1], pixels.shape[2])
                        network = time.perf_counter() - started
                    for index, tag in enumerate(tags):
                        frame = slice(index, index + 1)
                        entry = (tag, pixels[frame], views[frame], Neighbour(size, motions[frame], mattes[frame]))
                        for around in window.push(entry):
                            yield self._finish_window(around, network)
            except Exception:  # the frames read before the failure still get their alphas, then it is raised
                yield from self._drained(window)
                raise
            yield from self._drained(window)

    def _drained(self, window: Window[_Held[T]]) -> Iterator[tuple[list[T], Download, float]]:
        """The alphas of the frames ``window`` still holds at the end of a stream."""
        for around in window.drain():
            yield self._finish_window(around, 0.0)

    def _finish_window(self, around: list[_Held[T] | None], network: float) -> tuple[list[T], Download, float]:
        """The alpha of the middle frame of a temporal window, on its way back, and the seconds it took:
        ``network`` (its batch's network run) plus its own finishing, never the waits between."""
        started = time.perf_counter()
        middle = around[len(around) // 2]
        assert middle is not None  # Window yields windows around frames it holds
        tag, pixels, views, _ = middle
        with torch.inference_mode():
            matte = stabilise([None if item is None else item[3] for item in around])
            alphas = finish(pixels, views, matte, self.quality)
        return [tag], self.transfers.download(alphas), network + time.perf_counter() - started

    def _reusing(self, views: torch.Tensor, reuse: Reuse) -> torch.Tensor:
        """The network outputs (N,1,h,w) of views (N,3,h,w) of consecutive frames: a network run for each
        frame that ``reuse`` says needs one (all of them, with reuse off), the last run's output for the rest."""
        runs = [reuse.runs(views[index:index + 1]) for index in range(views.shape[0])]
        if all(runs):
            reuse.matte = (mattes := self.engine.mattes(views))[-1:]
            return mattes
        fresh = iter(self.engine.mattes(views[torch.tensor(runs)]) if any(runs) else ())
        chosen = []
        for run in runs:
            if run:
                reuse.matte = next(fresh)[None]
            chosen.append(reuse.matte)
        return torch.cat(chosen)
