"""The element class ``RmbgFilter`` (``rmbg``): its pads, settings and state changes, wiring the parts.

What the element does is told in the plugin file's docstring (``plugins/gstreamer/python/rmbg.py``).
Here: the pads and their functions, the start (settings checked, engine loaded), the upstream
streaming thread's side (buffers to frames for the worker, serialized events after them) and the
queries. The worker threads (``worker``), QoS (``qos``) and latency (``latency``) are mixins.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any

from gi.repository import GLib, GObject, Gst, GstVideo

from .caps import OUT_FORMAT, SINK_FORMATS, answer_caps, any_format, derived_caps, output_template, raw_caps
from .core import IMPORT_ERROR
from .frames import ShortBuffer, UnsupportedColour, input_frame, yuv_colour
from .latency import LatencyMixin
from .properties import gobject_properties, plain
from .qos import QosMixin
from .worker import QUEUE_DEPTH, WorkerMixin

if IMPORT_ERROR is None:  # torch waits for the first start
    from rmbg_filter.compositing import parse_output, read_rgb
    from rmbg_filter.errors import InputError, ModelNotFoundError, OptionError, first_line
    from rmbg_filter.options import ModelOptions, QualityOptions, all_specs, split_keywords

    from .properties import PROPERTIES
if TYPE_CHECKING:
    import numpy as np

_PROPERTIES = gobject_properties()


class RmbgFilter(Gst.Element, WorkerMixin, QosMixin, LatencyMixin):
    """Removes the background of every frame with RMBG-1.4 (see the plugin file's docstring)."""

    __gtype_name__ = "GstRmbg"
    __gstmetadata__ = ("RMBG-1.4 background removal", "Filter/Effect/Video",
                       "Removes the background of raw RGB video with BRIA's RMBG-1.4: "
                       "RGBA with the alpha, the alpha alone, or a composite",
                       "rmbg-filter")
    __gsttemplates__ = (
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, raw_caps(SINK_FORMATS)),
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
        self._live: bool | None = None  # whether upstream is live; None: not asked yet in this stream
        self._reported = 0  # the latency last answered, ns
        self._in_info: GstVideo.VideoInfo | None = None
        self._colour: Any = None  # how YUV input becomes RGB (frames.Colour), None for RGB input
        self._pushed_info: GstVideo.VideoInfo | None = None  # the worker's: caps of the buffers it pushes
        self._background: np.ndarray | None = None  # the worker's: the image: background at that size
        self._segment = Gst.Segment.new()  # the streaming thread's: the segment of the frames that come in
        self._earliest = Gst.CLOCK_TIME_NONE  # from QoS: frames of an earlier running time would be dropped
        self._to_run = 0  # frames queued for the network whose alphas are not pushed yet
        self._to_run_lock = threading.Lock()
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._slots = threading.Semaphore(QUEUE_DEPTH)  # room in the inbox for frames to run and events
        self._worker: threading.Thread | None = None  # pushes downstream
        self._runner: threading.Thread | None = None  # runs the network
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
            self._live = None
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
            options, quality = split_keywords({spec.name: plain(self._settings[spec.name]) for spec in all_specs()}
                                              | {"model": self._settings["model"] or None})
            if self._remover is None or (self._loaded_with, self._quality) != (options, quality):
                from rmbg_filter import engine  # torch: loaded on the first start, not at registry scans

                self._remover = engine.shared_engine(options)
                self._loaded_with, self._quality = options, quality
                self._batch_seconds = self._time_one_batch()
        except OptionError as error:  # a model that is not there is NOT_FOUND, as filesrc says of a missing file
            code = Gst.ResourceError.NOT_FOUND if isinstance(error, ModelNotFoundError) else Gst.ResourceError.SETTINGS
            self._error(Gst.resource_error_quark(), code, f"rmbg: {error.worded(PROPERTIES)}", repr(error))
            return False
        except InputError as error:
            self._error(Gst.resource_error_quark(), Gst.ResourceError.SETTINGS, f"rmbg: {error}", repr(error))
            return False
        except Exception as error:  # an OSError, CUDA out of memory, ...: the start fails, told in one line
            self._error(Gst.resource_error_quark(), Gst.ResourceError.FAILED,
                        f"rmbg: cannot start: {type(error).__name__}: {first_line(error)}", repr(error))
            return False
        return True

    # -- sink side (the upstream streaming thread) ---------------------------------------------

    def _chain(self, pad: Gst.Pad, parent: Gst.Object, buffer: Gst.Buffer) -> Gst.FlowReturn:
        if self._in_info is None:
            self._error(Gst.core_error_quark(), Gst.CoreError.NEGOTIATION, "rmbg: a buffer came before its caps", "")
            return Gst.FlowReturn.NOT_NEGOTIATED
        if self._live is None:  # the pipeline asks once its sink has a first buffer: too late for the frames before
            self._live = self._upstream_live()
        try:
            frame = input_frame(buffer, self._in_info, self._colour, self._is_late(buffer.pts))
        except ShortBuffer as error:  # upstream's fault: one element error, not a traceback
            self._error(Gst.stream_error_quark(), Gst.StreamError.FORMAT, f"rmbg: {error}", "")
            return Gst.FlowReturn.ERROR
        flow = self._enqueue(frame, counted=not frame.skips_network)
        if flow == Gst.FlowReturn.OK and not frame.skips_network:
            self._count_to_run(1)
        return flow

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
        if info is None or info.finfo.name not in SINK_FORMATS:
            return None
        try:
            colour = yuv_colour(info, str(self._remover.backend.device) if self._remover is not None else "cpu")
        except UnsupportedColour as error:
            self._error(Gst.stream_error_quark(), Gst.StreamError.FORMAT, f"rmbg: {error}", "")
            return None
        if self._remover is not None and self._quality is not None:
            try:  # frames too large for memory: refused at negotiation, before any is read
                self._remover.check_frames(info.height, info.width, self._quality)
            except OptionError as error:
                self._error(Gst.stream_error_quark(), Gst.StreamError.FORMAT, f"rmbg: {error.worded(PROPERTIES)}",
                            repr(error))
                return None
        self._in_info, self._colour = info, colour
        return Gst.Event.new_caps(derived_caps(caps, self._mode.channels))

    # -- queries (and the QoS events, in qos) ------------------------------------------------------

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

    def _error(self, domain: int, code: Any, text: str, debug: str) -> None:
        """Post an element error message, as GST_ELEMENT_ERROR does."""
        self.post_message(Gst.Message.new_error(self, GLib.Error.new_literal(domain, text, int(code)), debug))


__all__ = ["RmbgFilter"]
