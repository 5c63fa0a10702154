"""The worker threads: the element's thread boundary between upstream's streaming thread and downstream.

Buffers and serialized events go into a bounded inbox (``QUEUE_DEPTH`` slots). The runner thread
numbers them in arrival order and sends the frames that need the network through the core's
tagged stream; everything else (events, GAP buffers, late frames that re-use the last alpha) goes
straight to the outbox, as do the network's results. The pusher thread pushes the outbox
downstream in arrival order: a late frame leaves as soon as the frame before it has, not with
the next frame the network runs.

A mixin of ``RmbgFilter``: it works on the element's state that ``RmbgFilter.__init__`` sets (the
pads, ``_remover``, ``_quality``, ``_mode``, ``_background``, ``_pushed_info``, the inbox, slots
and threads, ``_flushing``, ``_flow``, and the QoS counts) and on its ``_error``, ``_post_qos``,
``_count_to_run`` and ``_measured``.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
_STOP = object()  # inbox: stop now
_DONE = object()  # outbox: the runner has ended


@dataclass(frozen=True)
class _Ran:
    """A frame the network ran: its alpha (H,W) uint8 and the seconds its batch took."""

    frame: Frame
    alpha: np.ndarray
    seconds: float


@dataclass(frozen=True)
class _Failed:
    """The runner's stream failed."""

    error: Exception


class WorkerMixin:
    """Starts, feeds and stops the runner and pusher threads."""

    def _start_worker(self) -> None:
        self._inbox = queue.Queue()
        self._slots = threading.Semaphore(QUEUE_DEPTH)
        self._flushing = False
        self._flow = Gst.FlowReturn.OK
        self._earliest = Gst.CLOCK_TIME_NONE
        self._to_run = 0
        outbox: queue.Queue[Any] = queue.Queue()
        self._runner = threading.Thread(target=self._run, args=(self._inbox, self._slots, outbox), name="rmbg-gst",
                                        daemon=True)
        self._worker = threading.Thread(target=self._push_in_order, args=(outbox,), name="rmbg-gst-push",
                                        daemon=True)
        self._runner.start()
        self._worker.start()

    def _stop_worker(self) -> None:
        """Unblock and end both threads; what was queued is dropped."""
        self._flushing = True
        if self._worker is None:
            return
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
        self._inbox.put(_STOP)  # the inbox has no bound: this never waits
        self._runner.join()
        self._worker.join()
        self._worker = self._runner = None

    def _enqueue(self, item: Any, *, counted: bool = True) -> Gst.FlowReturn:
        """Queue ``item`` for the runner; give up with the pusher's flow when it stopped or we flush.

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

    def _run(self, inbox: queue.Queue[Any], slots: threading.Semaphore, outbox: queue.Queue[Any]) -> None:
        """Number ``inbox``'s items; run the frames that need the network through the engine; put every item,
        or its result, in ``outbox`` as ``(number, item)``, then ``_DONE``.

        ``inbox`` and its ``slots`` are this runner's own: after a flush a new runner gets new ones. A late
        frame runs anyway when no alpha of its size came before it.
        """
        numbers = itertools.count()
        stopped = threading.Event()

        def tagged() -> Iterator[tuple[tuple[int, Frame], np.ndarray]]:
            shape = None  # of the last frame sent to the network
            while True:
                item = inbox.get()
                if item is _STOP:
                    stopped.set()
                    return
                number = next(numbers)
                if isinstance(item, Gst.Event):
                    slots.release()
                    outbox.put((number, item))
                    if item.type == Gst.EventType.EOS:
                        return
                    continue
                if item.gap or (item.late and item.pixels.shape == shape):
                    outbox.put((number, item))
                    continue
                if item.late:  # nothing to re-use: it runs, and counts as a frame in the network
                    self._count_to_run(1)
                else:
                    slots.release()
                shape = item.pixels.shape
                yield (number, item), item.pixels

        try:
            for (number, frame), alpha in self._remover.stream_tagged(tagged(), quality=self._quality):
                if stopped.is_set():  # a flush or a stop: the frames the window still held are not wanted
                    break
                outbox.put((number, _Ran(frame, alpha, self._remover.batch_seconds)))
        except Exception as error:  # any failure (the engine, a background gone) ends the stream with an error
            outbox.put((None, _Failed(error)))
        outbox.put(_DONE)

    def _push_in_order(self, outbox: queue.Queue[Any]) -> None:
        """Push ``outbox``'s items downstream in their numbers' order, until the runner ends, a push is refused
        or we flush. A late frame gets the alpha of the last frame the network ran before it; a GAP buffer
        an alpha of 0."""
        expected = 0
        early: dict[int, Any] = {}  # items that came out before their turn
        counts = [0, 0]  # frames the network ran, frames given the last alpha
        last_alpha: np.ndarray | None = None
        while (entry := outbox.get()) is not _DONE:
            number, item = entry
            if isinstance(item, _Failed):
                self._error(Gst.stream_error_quark(), Gst.StreamError.FAILED,
                            f"rmbg: background removal failed: {item.error}", repr(item.error))
                self._flow = Gst.FlowReturn.ERROR
                return
            early[number] = item
            while expected in early:
                item = early.pop(expected)
                expected += 1
                if self._flushing:
                    return
                if isinstance(item, _Ran):
                    self._count_to_run(-1)  # out of the network: the next frame may go in
                    counts[0] += 1
                    last_alpha = item.alpha
                    pushed = self._push_frame(item.frame, item.alpha, item.seconds)
                elif isinstance(item, Gst.Event):
                    self._push_event(item)
                    pushed = True
                elif item.gap:
                    pushed = self._push_frame(item, np.zeros(item.pixels.shape[:2], np.uint8))
                else:
                    counts[1] += 1
                    self._post_qos(item, *counts)
                    pushed = self._push_frame(item, last_alpha)
                if not pushed:
                    return

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
