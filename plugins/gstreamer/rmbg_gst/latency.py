"""Latency: the time one batch takes, what the element reports from it, and when to report it again.

A mixin of ``RmbgFilter``: it works on the element's state that ``RmbgFilter.__init__`` sets
(``_settings``, ``_remover``, ``_quality``, ``_in_info``, ``_batch_seconds``, ``_live``, ``_reported``).
"""

from __future__ import annotations

import time
from dataclasses import replace

from gi.repository import Gst

from .core import IMPORT_ERROR

if IMPORT_ERROR is None:
    import numpy as np

#: the latency reported is the longest batch measured times this
_LATENCY_MARGIN = 1.25


class LatencyMixin:
    """Times the engine's batches and turns the longest into the latency the element reports, in ns."""

    def _time_one_batch(self) -> float:
        """Seconds the engine takes for one full batch with the per-frame quality options (the window's own
        work is small): a warm-up (first-call costs, a compile) and a timed run."""
        height, width = self._remover.model_size
        frames = np.zeros((self._remover.batch_size, height, width, 3), np.uint8)
        per_frame = replace(self._quality, temporal_radius=0, reuse_threshold=0.0)
        self._remover(frames, per_frame)
        start = time.perf_counter()
        self._remover(frames, per_frame)
        return time.perf_counter() - start

    def _upstream_live(self) -> bool:
        """Whether upstream is live, by a latency query of our own."""
        query = Gst.Query.new_latency()
        return bool(self.sinkpad.peer_query(query) and query.parse_latency()[0])

    def _latency(self) -> int:
        """The latency this element adds, in ns: waiting for a full batch and for the R frames after a frame
        that its temporal window needs, then running the batch (the longest measured, at the start and since),
        with a margin. When the network is slower than the frames come, on a live source with QoS the frames
        it waits for come at its pace (those between re-use the last alpha): each wait is a batch's time."""
        frame = 0
        if self._in_info is not None and self._in_info.fps_n > 0:
            frame = Gst.SECOND * self._in_info.fps_d // self._in_info.fps_n
        batch = int(self._batch_seconds * Gst.SECOND)
        if self._live and self._settings["qos"]:
            frame = max(frame, batch)
        waited = self._settings["batch_size"] - 1 + self._settings["temporal_radius"]
        return waited * frame + int(batch * _LATENCY_MARGIN)

    def _measured(self, seconds: float) -> None:
        """Take the seconds a frame's work took (its batch's network run and finishing, then its output
        picture); re-post the latency when it grew past the reported.

        Only that work counts: waits in the queues (behind a sink that syncs to the
        clock, say) would feed back into the latency they are caused by.
        """
        if seconds <= self._batch_seconds:
            return
        self._batch_seconds = seconds
        if self._live and self._latency() > self._reported:
            self._reported = self._latency()  # the pipeline asks every element again and sets a latency covering ours
            self.post_message(Gst.Message.new_latency(self))


__all__ = ["LatencyMixin"]
