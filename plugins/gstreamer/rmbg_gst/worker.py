"""The worker thread: the element's thread boundary between upstream's streaming thread and downstream.

Buffers and serialized events go into a bounded inbox (``QUEUE_DEPTH`` slots); the worker runs the
frames through the core's tagged stream and pushes results and events downstream, in order, from
its own thread. A mixin of ``RmbgFilter``: it works on the element's state that
``RmbgFilter.__init__`` sets (the pads, ``_remover``, ``_quality``, ``_mode``, ``_background``,
``_pushed_info``, the inbox, slots and worker, ``_flushing``, ``_flow``, and the QoS counts) and on its
``_error``, ``_post_qos``, ``_count_to_run`` and ``_measured``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from gi.repository import Gst, GstVideo

from .core import IMPORT_ERROR
from .frames import Frame, output_buffer

if IMPORT_ERROR is None:
    import numpy as np

    from rmbg_filter.compositing import composite, read_rgb

#: frames to run and events the inbox holds before upstream waits
QUEUE_DEPTH = 4
_POLL_SECONDS = 0.1
_STOP = object()


class WorkerMixin:
    """Starts, feeds and stops the worker thread that runs the frames and pushes everything downstream."""

    def _start_worker(self) -> None:
        self._inbox = queue.Queue()
        self._slots = threading.Semaphore(QUEUE_DEPTH)
        self._flushing = False
        self._flow = Gst.FlowReturn.OK
        self._earliest = Gst.CLOCK_TIME_NONE
        self._to_run = 0
        self._worker = threading.Thread(target=self._work, args=(self._inbox, self._slots), name="rmbg-gst",
                                        daemon=True)
        self._worker.start()

    def _stop_worker(self) -> None:
        """Unblock and end the worker; what was queued is dropped."""
        self._flushing = True
        if self._worker is None:
            return
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
        self._inbox.put(_STOP)  # the inbox has no bound: this never waits
        self._worker.join()
        self._worker = None

    def _enqueue(self, item: Any, *, counted: bool = True) -> Gst.FlowReturn:
        """Queue ``item`` for the worker; give up with the worker's flow when it stopped or we flush.

        A ``counted`` item (an event, a frame to run) waits for one of QUEUE_DEPTH slots, so
        upstream waits for the network; a late frame does not, so that a live source is not
        held back by frames that only get the last alpha.
        """
        while True:
            if self._flushing:
                return Gst.FlowReturn.FLUSHING
            if self._flow != Gst.FlowReturn.OK:
                return self._flow
            if not counted or self._slots.acquire(timeout=_POLL_SECONDS):
                self._inbox.put(item)
                return Gst.FlowReturn.OK

    def _work(self, inbox: queue.Queue[Any], slots: threading.Semaphore) -> None:
        """Run ``inbox``'s frames through the engine; push results and events downstream, in order.

        ``inbox`` and its ``slots`` are this worker's own: after a flush a new worker gets new ones. The
        engine's tagged stream carries, beside each frame it runs, what came before it: events,
        and (under QoS) late frames that get the last alpha instead of a network run.
        """
        waiting: list[Any] = []  # events and skipped frames since the last frame sent to the engine
        stopped = threading.Event()

        def tagged() -> Iterator[tuple[tuple[list[Any], Frame], np.ndarray]]:
            nonlocal waiting
            shape = None
            while True:
                item = inbox.get()
                if item is _STOP:
                    stopped.set()
                    return
                if isinstance(item, Gst.Event):
                    slots.release()
                    waiting.append(item)
                    if item.type == Gst.EventType.EOS:
                        return
                    continue
                if item.gap:  # no picture: it follows the frames before it, with an alpha of 0
                    waiting.append(item)
                    continue
                if not item.late:
                    slots.release()
                    self._count_to_run(-1)
                elif item.pixels.shape == shape:
                    waiting.append(item)
                    continue
                shape = item.pixels.shape
                yield (waiting, item), item.pixels
                waiting = []

        try:
            counts = [0, 0]  # frames the network ran, frames given the last alpha
            last_alpha: np.ndarray | None = None  # of the last frame the network ran: late frames reuse it

            def push_before(items: list[Any]) -> bool:
                """Push queued events, and late frames with the last alpha; False when downstream refused."""
                for item in items:
                    if isinstance(item, Gst.Event):
                        self._push_event(item)
                        continue
                    if item.gap:
                        if not self._push_frame(item, np.zeros(item.pixels.shape[:2], np.uint8)):
                            return False
                        continue
                    counts[1] += 1
                    self._post_qos(item, *counts)
                    if not self._push_frame(item, last_alpha):
                        return False
                return True

            for (before, frame), alpha in self._remover.stream_tagged(tagged(), quality=self._quality):
                if stopped.is_set():  # a flush or a stop: the frames the window still held are not wanted
                    return
                if not push_before(before):
                    return
                counts[0] += 1
                last_alpha = alpha
                if not self._push_frame(frame, alpha, self._remover.batch_seconds):
                    return
            if not stopped.is_set():  # the stream ended with EOS: what came after the last frame follows it
                push_before(waiting)
        except Exception as error:  # any failure (the engine, a background gone) ends the stream with an error
            self._error(Gst.stream_error_quark(), Gst.StreamError.FAILED,
                        f"rmbg: background removal failed: {error}", repr(error))
            self._flow = Gst.FlowReturn.ERROR

    def _push_frame(self, frame: Frame, alpha: np.ndarray, network: float = 0.0) -> bool:
        """Push ``frame``'s output; False (its flow handed upstream) when downstream refused it.

        ``alpha``: (H,W) uint8, ``frame``'s. ``network``: the seconds the engine took for its batch; with
        the time the output picture takes (a decontaminated composite is not free), they are what the
        latency must cover.
        """
        started = time.perf_counter()
        picture = composite(frame.pixels, alpha, self._mode, self._background,
                            decontaminate=self._quality.decontaminate)
        buffer = output_buffer(frame, picture, self._pushed_info.stride[0])
        self._measured(network + time.perf_counter() - started)
        flow = self.srcpad.push(buffer)
        if flow != Gst.FlowReturn.OK:
            self._stop_with(flow)
            return False
        return True

    def _push_event(self, event: Gst.Event) -> None:
        """Push a queued event; a CAPS event sets the layout of the buffers after it (and fits the background)."""
        if event.type == Gst.EventType.CAPS:
            self._pushed_info = GstVideo.VideoInfo.new_from_caps(event.parse_caps())
            if self._mode.kind == "image":
                self._background = read_rgb(self._mode.image, (self._pushed_info.width, self._pushed_info.height))
        self.srcpad.push_event(event)

    def _stop_with(self, flow: Gst.FlowReturn) -> None:
        """Hand a failed push's flow upstream; post an error for the fatal ones, as GST_ELEMENT_FLOW_ERROR."""
        self._flow = flow
        if flow in (Gst.FlowReturn.NOT_LINKED, Gst.FlowReturn.NOT_NEGOTIATED) or flow < Gst.FlowReturn.EOS:
            self._error(Gst.stream_error_quark(), Gst.StreamError.FAILED,
                        f"rmbg: internal data stream error (downstream returned {flow.value_nick})", "")


__all__ = ["QUEUE_DEPTH", "WorkerMixin"]
