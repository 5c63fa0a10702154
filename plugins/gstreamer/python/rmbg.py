"""GStreamer element ``rmbg``: RMBG-1.4 background removal on raw RGB video.

    GST_PLUGIN_PATH=<repo>/plugins/gstreamer gst-launch-1.0 \\
        videotestsrc num-buffers=30 ! videoconvert ! rmbg model=model.safetensors ! videoconvert ! ...

Sink: raw RGB, BGR, RGBA, BGRA, RGBx or BGRx of any size and rate. Source: RGBA
carrying the alpha (``output=rgba``, the default), GRAY8 (``output=alpha``) or
RGB composited over a background (``green``, ``color:#RRGGBB``, ``blur``,
``image:PATH``), with the input's size, rate and timestamps.

Properties: the model options of ``rmbg_filter.ModelOptions`` (``model``,
``device``, ``dtype``, ``runtime``, ``batch-size``, ``model-size``, ``compile``),
the quality options of ``rmbg_filter.QualityOptions`` (``temporal-radius``,
``normalize``, ``refine``, ``refine-radius``, ``refine-eps``, ``decontaminate``,
``reuse-threshold``), ``output`` and ``qos``. With ``temporal-radius`` R the
output runs R frames behind the input (the latency says so); EOS drains the
last R, a flushing seek starts the window afresh. Frames QoS lets skip the
network skip the window too. Caps are proxied both ways: a size or rate asked for
downstream is asked of upstream, and the source pad offers only the format
``output`` makes.

The element is a thread boundary: buffers and serialized events go into a
bounded queue; a worker runs them through the core's tagged stream (batched
reading and inference in their own threads) and pushes the results, in order,
from its own thread. Upstream decoding and downstream encoding thus run
concurrently with inference. The model loads (torch is imported) when the
element goes from READY to PAUSED, shared with any other element of the same
model options, and one batch is timed there for the latency the element
reports; any failure there fails that change with an element error. Once
frames flow, every batch the network runs is timed; when one takes longer than
the latency reported, a latency message asks the pipeline to ask again.
With ``qos`` (the default), frames that downstream's QoS events say would be
dropped as late get the last alpha instead of a network run; each posts a QoS
message whose stats count the frames run and reused.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, GObject, Gst, GstVideo  # noqa: E402

# the element's helpers: the package rmbg_gst in plugins/gstreamer, not here (gst-python imports every module here)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from rmbg_gst.caps import (  # noqa: E402
    OUT_FORMAT,
    RGB_ORDER,
    answer_caps,
    any_format,
    derived_caps,
    output_template,
    raw_caps,
)
from rmbg_gst.core import IMPORT_ERROR  # noqa: E402
from rmbg_gst.frames import Frame, output_buffer, rgb_pixels  # noqa: E402
from rmbg_gst.properties import gobject_properties  # noqa: E402

if IMPORT_ERROR is None:  # numpy too comes from the venv; torch waits for the first start
    import numpy as np
    from rmbg_gst.properties import PROPERTIES

    from rmbg_filter.compositing import composite, parse_output, read_rgb
    from rmbg_filter.errors import InputError, OptionError, first_line
    from rmbg_filter.options import ModelOptions, QualityOptions, all_specs, split_keywords

QUEUE_DEPTH = 4
_POLL_SECONDS = 0.1
_STOP = object()
#: the latency reported is the longest batch measured times this
_LATENCY_MARGIN = 1.25
_PROPERTIES = gobject_properties()


class RmbgFilter(Gst.Element):
    """Removes the background of every frame with RMBG-1.4 (see the module docstring)."""

    __gtype_name__ = "GstRmbg"
    __gstmetadata__ = ("RMBG-1.4 background removal", "Filter/Effect/Video",
                       "Removes the background of raw RGB video with BRIA's RMBG-1.4: "
                       "RGBA with the alpha, the alpha alone, or a composite",
                       "rmbg-filter")
    __gsttemplates__ = (
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, raw_caps(RGB_ORDER)),
        Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, raw_caps(OUT_FORMAT.values())),
    )
    __gproperties__ = _PROPERTIES  # PyGObject takes the attribute away once it has made the properties

    def __init__(self) -> None:
        super().__init__()
        self._settings = {name.replace("-", "_"): spec[-2] for name, spec in _PROPERTIES.items()}
        self.sinkpad = Gst.Pad.new_from_template(self.__gsttemplates__[0], "sink")
        self.sinkpad.set_chain_function_full(self._chain)
        self.sinkpad.set_event_function_full(self._sink_event)
        self.sinkpad.set_query_function_full(self._sink_query)
        self.add_pad(self.sinkpad)
        self.srcpad = Gst.Pad.new_from_template(self.__gsttemplates__[1], "src")
        self.srcpad.set_query_function_full(self._src_query)
        self.srcpad.set_event_function_full(self._src_event)
        self.add_pad(self.srcpad)
        self._remover: Any = None
        self._loaded_with: ModelOptions | None = None
        self._quality: QualityOptions | None = None
        self._mode: Any = None
        self._batch_seconds = 0.0
        self._live = False
        self._reported = 0  # the latency last answered, ns
        self._in_info: GstVideo.VideoInfo | None = None
        self._pushed_info: GstVideo.VideoInfo | None = None  # the worker's: caps of the buffers it pushes
        self._background: np.ndarray | None = None  # the worker's: the image: background at that size
        self._segment = Gst.Segment.new()  # the streaming thread's: the segment of the frames that come in
        self._earliest = Gst.CLOCK_TIME_NONE  # from QoS: frames of an earlier running time would be dropped
        self._to_run = 0  # frames queued for the network and not yet taken by the worker
        self._to_run_lock = threading.Lock()
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._slots = threading.Semaphore(QUEUE_DEPTH)  # room in the inbox for frames to run and events
        self._worker: threading.Thread | None = None
        self._flushing = True
        self._flow = Gst.FlowReturn.FLUSHING

    def do_get_property(self, prop: GObject.ParamSpec) -> Any:
        return self._settings[prop.name.replace("-", "_")]

    def do_set_property(self, prop: GObject.ParamSpec, value: Any) -> None:
        self._settings[prop.name.replace("-", "_")] = value

    # -- state ---------------------------------------------------------------------------------

    def do_change_state(self, transition: Gst.StateChange) -> Gst.StateChangeReturn:
        if transition == Gst.StateChange.READY_TO_PAUSED:
            if not self._prepare():
                return Gst.StateChangeReturn.FAILURE
            self._start_worker()
        elif transition == Gst.StateChange.PAUSED_TO_READY:
            self._stop_worker()
        result = Gst.Element.do_change_state(self, transition)
        if transition == Gst.StateChange.PAUSED_TO_READY:
            self._in_info = None
        return result

    def _prepare(self) -> bool:
        """Check the settings and load the engine (shared per set of model options); False after posting an error.

        Every failure posts an element error: a setting (named as the property), a missing
        file, and anything else, an OSError or the GPU running out of memory included.
        """
        if IMPORT_ERROR is not None:
            self._error(Gst.library_error_quark(), Gst.LibraryError.INIT,
                        f"rmbg: cannot import rmbg_filter ({IMPORT_ERROR}); activate the venv it is installed in "
                        "(source .venv/bin/activate) or put it on PYTHONPATH", str(IMPORT_ERROR))
            return False
        try:
            self._mode = parse_output(self._settings["output"])
            if self._mode.kind == "image":
                read_rgb(self._mode.image)  # a missing or unreadable picture fails the start, not the stream
            options, quality = split_keywords({spec.name: self._settings[spec.name] for spec in all_specs()}
                                              | {"model": self._settings["model"] or None})
            if self._remover is None or (self._loaded_with, self._quality) != (options, quality):
                from rmbg_filter import engine  # torch: loaded on the first start, not at registry scans

                self._remover = engine.shared_engine(options)
                self._loaded_with, self._quality = options, quality
                self._batch_seconds = self._time_one_batch()
        except OptionError as error:
            self._error(Gst.resource_error_quark(), Gst.ResourceError.SETTINGS,
                        f"rmbg: {error.worded(PROPERTIES)}", repr(error))
            return False
        except InputError as error:
            self._error(Gst.resource_error_quark(), Gst.ResourceError.SETTINGS, f"rmbg: {error}", repr(error))
            return False
        except Exception as error:  # an OSError, CUDA out of memory, ...: the start fails, told in one line
            self._error(Gst.resource_error_quark(), Gst.ResourceError.FAILED,
                        f"rmbg: cannot start: {type(error).__name__}: {first_line(error)}", repr(error))
            return False
        return True

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

    def _latency(self) -> int:
        """The latency this element adds, in ns: waiting for a full batch and for the R frames after a frame
        that its temporal window needs, then running the batch (the longest measured, at the start and since),
        with a margin."""
        frame = 0
        if self._in_info is not None and self._in_info.fps_n > 0:
            frame = Gst.SECOND * self._in_info.fps_d // self._in_info.fps_n
        waited = self._settings["batch_size"] - 1 + self._settings["temporal_radius"]
        return waited * frame + int(self._batch_seconds * _LATENCY_MARGIN * Gst.SECOND)

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

    # -- sink side (the upstream streaming thread) ---------------------------------------------

    def _chain(self, pad: Gst.Pad, parent: Gst.Object, buffer: Gst.Buffer) -> Gst.FlowReturn:
        if self._in_info is None:
            self._error(Gst.core_error_quark(), Gst.CoreError.NEGOTIATION, "rmbg: a buffer came before its caps", "")
            return Gst.FlowReturn.NOT_NEGOTIATED
        late = self._is_late(buffer.pts)
        frame = Frame(rgb_pixels(buffer, self._in_info), buffer.pts, buffer.dts, buffer.duration, buffer.offset,
                      buffer.has_flags(Gst.BufferFlags.DISCONT), late)
        flow = self._enqueue(frame, counted=not late)
        if flow == Gst.FlowReturn.OK and not late:
            self._count_to_run(1)
        return flow

    def _count_to_run(self, change: int) -> None:
        """Count a frame queued for the network (+1, the streaming thread) or taken by the worker (-1)."""
        with self._to_run_lock:
            self._to_run += change

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

    def _sink_event(self, pad: Gst.Pad, parent: Gst.Object, event: Gst.Event) -> bool:
        kind = event.type
        if kind == Gst.EventType.FLUSH_START:
            self.srcpad.push_event(event)
            self._stop_worker()
            return True
        if kind == Gst.EventType.FLUSH_STOP:
            self.srcpad.push_event(event)
            self._start_worker()
            return True
        if kind == Gst.EventType.CAPS:
            event = self._output_caps_event(event)
            if event is None:
                return False
        if kind == Gst.EventType.SEGMENT:
            self._segment = event.parse_segment()
        if Gst.EventType.get_flags(kind) & Gst.EventTypeFlags.SERIALIZED:
            return self._enqueue(event) == Gst.FlowReturn.OK
        return Gst.Pad.event_default(pad, parent, event)

    def _output_caps_event(self, event: Gst.Event) -> Gst.Event | None:
        """Take the input caps; return the CAPS event for the source pad, or None when they cannot be read
        or their frames cannot fit in memory (an element error says so)."""
        caps = event.parse_caps()
        info = GstVideo.VideoInfo.new_from_caps(caps)
        if info is None or info.finfo.name not in RGB_ORDER:
            return None
        if self._remover is not None and self._quality is not None:
            try:  # frames too large for memory: refused at negotiation, before any is read
                self._remover.check_frames(info.height, info.width, self._quality)
            except OptionError as error:
                self._error(Gst.stream_error_quark(), Gst.StreamError.FORMAT, f"rmbg: {error.worded(PROPERTIES)}",
                            repr(error))
                return None
        self._in_info = info
        return Gst.Event.new_caps(derived_caps(caps, self._mode.channels))

    def _sink_query(self, pad: Gst.Pad, parent: Gst.Object, query: Gst.Query) -> bool:
        if query.type == Gst.QueryType.ALLOCATION:
            return True  # our buffers are copied in; upstream allocates as it likes
        if query.type == Gst.QueryType.CAPS:  # what downstream takes, in any of our input formats
            template = output_template(self._settings["output"], self.srcpad.get_pad_template_caps())
            downstream = self.srcpad.peer_query_caps(any_format(template))
            return answer_caps(query, pad.get_pad_template_caps().intersect(any_format(downstream)))
        return Gst.Pad.query_default(pad, parent, query)

    def _src_query(self, pad: Gst.Pad, parent: Gst.Object, query: Gst.Query) -> bool:
        if query.type == Gst.QueryType.LATENCY:
            if not self.sinkpad.peer_query(query):
                return False
            live, minimum, maximum = query.parse_latency()
            self._live = live
            ours = self._reported = self._latency()
            query.set_latency(live, minimum + ours, maximum if maximum == Gst.CLOCK_TIME_NONE else maximum + ours)
            return True
        if query.type == Gst.QueryType.CAPS:  # what upstream offers, in the one format ``output`` makes
            template = output_template(self._settings["output"], self.srcpad.get_pad_template_caps())
            upstream = self.sinkpad.peer_query_caps(any_format(self.sinkpad.get_pad_template_caps()))
            return answer_caps(query, template.intersect(any_format(upstream)))
        return Gst.Pad.query_default(pad, parent, query)

    def _src_event(self, pad: Gst.Pad, parent: Gst.Object, event: Gst.Event) -> bool:
        if event.type == Gst.EventType.QOS:
            _kind, _proportion, diff, timestamp = event.parse_qos()
            info = self._in_info
            if diff > 0:  # late: the lateness grows while we catch up, so expect twice it (as GstBaseTransform)
                duration = info.fps_d * Gst.SECOND // info.fps_n if info is not None and info.fps_n else 0
                self._earliest = timestamp + 2 * diff + duration
            else:
                self._earliest = Gst.CLOCK_TIME_NONE
        return Gst.Pad.event_default(pad, parent, event)

    # -- the worker ----------------------------------------------------------------------------

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

    def _is_late(self, pts: int) -> bool:
        """Whether QoS says a frame of ``pts`` would come too late downstream (it is dropped there anyway).

        While the last QoS event said late: a frame of a running time before the earliest it
        allows, and any frame while another already waits for the network (it would wait
        behind that one and come later still). The network then runs on the newest frames
        at its own pace, and the frames between get the last alpha.
        """
        earliest = self._earliest
        if not self._settings["qos"] or earliest == Gst.CLOCK_TIME_NONE or pts == Gst.CLOCK_TIME_NONE:
            return False
        running = self._segment.to_running_time(Gst.Format.TIME, pts)
        return self._to_run > 0 or (running != Gst.CLOCK_TIME_NONE and running <= earliest)

    def _post_qos(self, frame: Frame, processed: int, reused: int) -> None:
        """Tell the application a frame skipped the network (as GstBaseTransform does for the frames it drops)."""
        running = self._segment.to_running_time(Gst.Format.TIME, frame.pts)
        stream = self._segment.to_stream_time(Gst.Format.TIME, frame.pts)
        message = Gst.Message.new_qos(self, self._live, running, stream, frame.pts, frame.duration)
        message.set_qos_stats(Gst.Format.BUFFERS, processed, reused)
        self.post_message(message)

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

    def _push_frame(self, frame: Frame, alpha: np.ndarray, network: float = 0.0) -> bool:
        """Push ``frame``'s output; False (its flow handed upstream) when downstream refused it.

        ``network``: the seconds the engine took for its batch; with the time the output picture
        takes (a decontaminated composite is not free), they are what the latency must cover.
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

    def _error(self, domain: int, code: Any, text: str, debug: str) -> None:
        """Post an element error message, as GST_ELEMENT_ERROR does."""
        self.post_message(Gst.Message.new_error(self, GLib.Error.new_literal(domain, text, int(code)), debug))


GObject.type_register(RmbgFilter)
__gstelementfactory__ = ("rmbg", Gst.Rank.NONE, RmbgFilter)

__all__ = ["RmbgFilter"]

