"""GStreamer element ``rmbg``: RMBG-1.4 background removal on raw RGB video.

    GST_PLUGIN_PATH=<repo>/plugins/gstreamer gst-launch-1.0 \\
        videotestsrc num-buffers=30 ! videoconvert ! rmbg model=model.safetensors ! videoconvert ! ...

Sink: raw RGB, BGR, RGBA, BGRA, RGBx or BGRx of any size and rate. Source: RGBA
carrying the alpha (``output=rgba``, the default), GRAY8 (``output=alpha``) or
RGB composited over a background (``green``, ``color:#RRGGBB``, ``blur``,
``image:PATH``), with the input's size, rate and timestamps.

The element is a thread boundary: buffers and serialized events go into a
bounded queue; a worker runs them through the core's streaming engine
(batched reading and inference in their own threads) and pushes the results,
in order, from its own thread. Upstream decoding and downstream encoding thus
run concurrently with inference. The model loads when the element goes from
READY to PAUSED, and one batch is timed there for the latency the element
reports; a bad model or option fails that change with an element error.
"""

from __future__ import annotations

import collections
import importlib
import os
import queue
import site
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, GObject, Gst, GstVideo  # noqa: E402


def _find_core() -> ImportError | None:
    """Make the core importable; the ImportError when it cannot be found.

    GStreamer's plugin loader runs the system Python, which does not see a venv.
    The core is found through PYTHONPATH, or in the venv that ``VIRTUAL_ENV`` names
    (set by ``source .venv/bin/activate``), whose site directory is then added.
    """
    try:
        importlib.import_module("rmbg_filter")
    except ImportError as error:
        venv = os.environ.get("VIRTUAL_ENV")
        if not venv:
            return error
        site.addsitedir(f"{venv}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages")
        try:
            importlib.import_module("rmbg_filter")
        except ImportError as second:
            return second
    return None


_IMPORT_ERROR = _find_core()
if _IMPORT_ERROR is None:  # numpy too comes from the venv
    import numpy as np

    from rmbg_filter import InputError, load
    from rmbg_filter.compositing import composite, parse_output
    from rmbg_filter.errors import keyword_message
    from rmbg_filter.image_tool import read_rgb

#: Sink formats and the positions of R, G, B in their pixels.
RGB_ORDER = {"RGB": (0, 1, 2), "BGR": (2, 1, 0), "RGBA": (0, 1, 2), "BGRA": (2, 1, 0),
             "RGBx": (0, 1, 2), "BGRx": (2, 1, 0)}
#: Output caps format by the channels of a composite (rmbg_filter.compositing.OutputMode.channels).
OUT_FORMAT = {4: "RGBA", 1: "GRAY8", 3: "RGB"}
QUEUE_DEPTH = 4
_POLL_SECONDS = 0.1
_STOP = object()


def _raw_caps(formats: Any) -> Gst.Caps:
    """video/x-raw caps of ``formats`` at any size and rate."""
    listed = ", ".join(formats)
    return Gst.Caps.from_string(f"video/x-raw, format=(string){{ {listed} }}, width=(int)[1, 16384], "
                                "height=(int)[1, 16384], framerate=(fraction)[0/1, 2147483647/1]")


def _answer_caps(query: Gst.Query, caps: Gst.Caps) -> bool:
    """Answer a CAPS query with ``caps``, narrowed to the query's filter when it has one."""
    wanted = query.parse_caps()
    query.set_caps_result(caps.intersect(wanted) if wanted else caps)
    return True


@dataclass(frozen=True)
class _Frame:
    """One input buffer's pixels (H,W,3) uint8 RGB and the timing its output keeps."""

    pixels: np.ndarray
    pts: int
    dts: int
    duration: int
    offset: int
    discont: bool


class RmbgFilter(Gst.Element):
    """Removes the background of every frame with RMBG-1.4 (see the module docstring)."""

    __gtype_name__ = "GstRmbg"
    __gstmetadata__ = ("RMBG-1.4 background removal", "Filter/Effect/Video",
                       "Removes the background of raw RGB video with BRIA's RMBG-1.4: "
                       "RGBA with the alpha, the alpha alone, or a composite",
                       "rmbg-filter")
    __gsttemplates__ = (
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, _raw_caps(RGB_ORDER)),
        Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, _raw_caps(OUT_FORMAT.values())),
    )

    _ready_only = GObject.ParamFlags.READWRITE | Gst.PARAM_MUTABLE_READY
    model = GObject.Property(
        type=str, default="", nick="Model", flags=_ready_only,
        blurb="Hub repo id, Hub-layout directory or weights file (.safetensors, .pth, .bin); "
              "empty: $RMBG_MODEL, else briaai/RMBG-1.4")
    output = GObject.Property(
        type=str, default="rgba", nick="Output", flags=_ready_only,
        blurb="rgba (RGBA with the alpha), alpha (GRAY8), green, color:#RRGGBB, blur or image:PATH (RGB composite)")
    device = GObject.Property(type=str, default="auto", nick="Device", flags=_ready_only,
                              blurb="auto (cuda, then mps, then cpu), cpu, cuda[:N] or mps")
    dtype = GObject.Property(type=str, default="auto", nick="Precision", flags=_ready_only,
                             blurb="auto (float16 on cuda, else float32), float32, float16 or bfloat16 (fast on "
                                   "CPUs with native bf16)")
    runtime = GObject.Property(type=str, default="auto", nick="Runtime", flags=_ready_only,
                               blurb="auto (ONNX Runtime for float32 on the CPU when installed), torch or onnxruntime")
    batch_size = GObject.Property(type=int, default=1, minimum=1, maximum=64, nick="Batch size", flags=_ready_only,
                                  blurb="frames per network call (larger helps on a GPU)")
    compile = GObject.Property(type=bool, default=False, nick="Compile", flags=_ready_only,
                               blurb="torch.compile the network (CUDA graphs on CUDA): the first frame waits for "
                                     "the compile, the rest run faster")
    model_size = GObject.Property(type=int, default=1024, minimum=32, maximum=4096, nick="Model size",
                                  flags=_ready_only, blurb="side of the square the network sees, as trained: 1024")

    def __init__(self) -> None:
        super().__init__()
        self.sinkpad = Gst.Pad.new_from_template(self.__gsttemplates__[0], "sink")
        self.sinkpad.set_chain_function_full(self._chain)
        self.sinkpad.set_event_function_full(self._sink_event)
        self.sinkpad.set_query_function_full(self._sink_query)
        self.add_pad(self.sinkpad)
        self.srcpad = Gst.Pad.new_from_template(self.__gsttemplates__[1], "src")
        self.srcpad.set_query_function_full(self._src_query)
        self.add_pad(self.srcpad)
        self._remover: Any = None
        self._loaded_with: dict[str, Any] | None = None
        self._mode: Any = None
        self._batch_seconds = 0.0
        self._in_info: GstVideo.VideoInfo | None = None
        self._pushed_info: GstVideo.VideoInfo | None = None  # the worker's: caps of the buffers it pushes
        self._background: np.ndarray | None = None  # the worker's: the image: background at that size
        self._out_caps: Gst.Caps | None = None
        self._inbox: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._worker: threading.Thread | None = None
        self._flushing = True
        self._flow = Gst.FlowReturn.FLUSHING

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
            self._in_info = self._out_caps = None
        return result

    def _prepare(self) -> bool:
        """Parse ``output`` and load the engine (once per set of model options); False after posting an error."""
        if _IMPORT_ERROR is not None:
            self._error(Gst.library_error_quark(), Gst.LibraryError.INIT,
                        f"rmbg: cannot import rmbg_filter ({_IMPORT_ERROR}); activate the venv it is installed in "
                        "(source .venv/bin/activate) or put it on PYTHONPATH", str(_IMPORT_ERROR))
            return False
        try:
            self._mode = parse_output(self.output)
            if self._mode.kind == "image":
                read_rgb(self._mode.image)  # a missing or unreadable picture fails the start, not the stream
            options = {"model": self.model or None, "device": self.device, "dtype": self.dtype,
                       "runtime": self.runtime, "batch_size": self.batch_size, "model_size": self.model_size,
                       "compile": self.compile}
            if self._remover is None or self._loaded_with != options:
                self._remover = load(**options)
                self._loaded_with = options
                self._batch_seconds = self._time_one_batch()
        except (ValueError, TypeError, InputError) as error:
            self._error(Gst.resource_error_quark(), Gst.ResourceError.SETTINGS, f"rmbg: {keyword_message(error)}",
                        repr(error))
            return False
        return True

    def _time_one_batch(self) -> float:
        """Seconds the engine takes for one full batch: a warm-up (first-call costs, a compile) and a timed run."""
        height, width = self._remover.model_size
        frames = np.zeros((self._remover.batch_size, height, width, 3), np.uint8)
        self._remover(frames)
        start = time.perf_counter()
        self._remover(frames)
        return time.perf_counter() - start

    def _latency(self) -> int:
        """The latency this element adds, in ns: waiting for a full batch, then running it."""
        frame = 0
        if self._in_info is not None and self._in_info.fps_n > 0:
            frame = Gst.SECOND * self._in_info.fps_d // self._in_info.fps_n
        return (self.batch_size - 1) * frame + int(self._batch_seconds * Gst.SECOND)

    def _start_worker(self) -> None:
        self._inbox = queue.Queue(maxsize=QUEUE_DEPTH)
        self._flushing = False
        self._flow = Gst.FlowReturn.OK
        self._worker = threading.Thread(target=self._work, name="rmbg-gst", daemon=True)
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
        self._inbox.put(_STOP)
        self._worker.join()
        self._worker = None

    # -- sink side (the upstream streaming thread) ---------------------------------------------

    def _chain(self, pad: Gst.Pad, parent: Gst.Object, buffer: Gst.Buffer) -> Gst.FlowReturn:
        if self._in_info is None:
            self._error(Gst.core_error_quark(), Gst.CoreError.NEGOTIATION, "rmbg: a buffer came before its caps", "")
            return Gst.FlowReturn.NOT_NEGOTIATED
        frame = _Frame(self._rgb_pixels(buffer), buffer.pts, buffer.dts, buffer.duration, buffer.offset,
                       buffer.has_flags(Gst.BufferFlags.DISCONT))
        return self._enqueue(frame)

    def _rgb_pixels(self, buffer: Gst.Buffer) -> np.ndarray:
        """The buffer's picture as (H,W,3) uint8 RGB, honouring the negotiated row stride."""
        info = self._in_info
        channels = info.finfo.pixel_stride[0]
        order = list(RGB_ORDER[info.finfo.name])
        with buffer.map(Gst.MapFlags.READ) as mapped:
            rows = np.frombuffer(mapped.data, np.uint8, count=info.stride[0] * info.height, offset=info.offset[0])
            pixels = rows.reshape(info.height, info.stride[0])[:, :info.width * channels]
            return pixels.reshape(info.height, info.width, channels)[:, :, order]  # fancy indexing copies

    def _enqueue(self, item: Any) -> Gst.FlowReturn:
        """Wait for room in the queue; give up with the worker's flow when it stopped or we flush."""
        while True:
            if self._flushing:
                return Gst.FlowReturn.FLUSHING
            if self._flow != Gst.FlowReturn.OK:
                return self._flow
            try:
                self._inbox.put(item, timeout=_POLL_SECONDS)
                return Gst.FlowReturn.OK
            except queue.Full:
                continue

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
        if Gst.EventType.get_flags(kind) & Gst.EventTypeFlags.SERIALIZED:
            return self._enqueue(event) == Gst.FlowReturn.OK
        return Gst.Pad.event_default(pad, parent, event)

    def _output_caps_event(self, event: Gst.Event) -> Gst.Event | None:
        """Take the input caps; return the CAPS event for the source pad, or None when they cannot be read."""
        caps = event.parse_caps()
        info = GstVideo.VideoInfo.new_from_caps(caps)
        if info is None or info.finfo.name not in RGB_ORDER:
            return None
        self._in_info = info
        self._out_caps = self._derived_caps(caps)
        return Gst.Event.new_caps(self._out_caps)

    def _derived_caps(self, caps: Gst.Caps) -> Gst.Caps:
        """The input caps with the output format: same size, rate and pixel aspect."""
        out = caps.copy()
        out.set_value("format", OUT_FORMAT[self._mode.channels])
        for field in ("colorimetry", "chroma-site"):
            out.get_structure(0).remove_field(field)
        return out

    def _sink_query(self, pad: Gst.Pad, parent: Gst.Object, query: Gst.Query) -> bool:
        if query.type == Gst.QueryType.ALLOCATION:
            return True  # our buffers are copied in; upstream allocates as it likes
        if query.type == Gst.QueryType.CAPS:
            return _answer_caps(query, pad.get_pad_template_caps())
        return Gst.Pad.query_default(pad, parent, query)

    def _src_query(self, pad: Gst.Pad, parent: Gst.Object, query: Gst.Query) -> bool:
        if query.type == Gst.QueryType.LATENCY:
            if not self.sinkpad.peer_query(query):
                return False
            live, minimum, maximum = query.parse_latency()
            ours = self._latency()
            query.set_latency(live, minimum + ours, maximum if maximum == Gst.CLOCK_TIME_NONE else maximum + ours)
            return True
        if query.type == Gst.QueryType.CAPS:
            return _answer_caps(query, self._out_caps or pad.get_pad_template_caps())
        return Gst.Pad.query_default(pad, parent, query)

    # -- the worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        """Run queued frames through the engine and push results and events downstream, in order."""
        waiting: list[Gst.Event] = []
        pending: collections.deque[tuple[_Frame, list[Gst.Event]]] = collections.deque()
        stopped = threading.Event()

        def frames() -> Iterator[np.ndarray]:
            while True:
                item = self._inbox.get()
                if item is _STOP:
                    stopped.set()
                    return
                if isinstance(item, Gst.Event):
                    waiting.append(item)
                    if item.type == Gst.EventType.EOS:
                        return
                    continue
                pending.append((item, waiting[:]))
                waiting.clear()
                yield item.pixels

        try:
            for alpha in self._remover.stream(frames()):
                frame, events = pending.popleft()
                for event in events:
                    self._push_event(event)
                flow = self.srcpad.push(self._output_buffer(frame, alpha))
                if flow != Gst.FlowReturn.OK:
                    self._stop_with(flow)
                    return
            if not stopped.is_set():  # the stream ended with EOS: the events after the last frame follow it
                for event in waiting:
                    self._push_event(event)
        except Exception as error:  # any failure (the engine, a background gone) ends the stream with an error
            self._error(Gst.stream_error_quark(), Gst.StreamError.FAILED,
                        f"rmbg: background removal failed: {error}", repr(error))
            self._flow = Gst.FlowReturn.ERROR

    def _push_event(self, event: Gst.Event) -> None:
        """Push a queued event; a CAPS event sets the layout of the buffers after it (and fits the background)."""
        if event.type == Gst.EventType.CAPS:
            self._pushed_info = GstVideo.VideoInfo.new_from_caps(event.parse_caps())
            if self._mode.kind == "image":
                self._background = read_rgb(self._mode.image, (self._pushed_info.width, self._pushed_info.height))
        self.srcpad.push_event(event)

    def _output_buffer(self, frame: _Frame, alpha: np.ndarray) -> Gst.Buffer:
        """The output picture in a new buffer laid out as its caps say (rows padded to the stride)."""
        picture = composite(frame.pixels, alpha, self._mode, self._background)
        height = alpha.shape[0]
        rows = np.zeros((height, self._pushed_info.stride[0]), np.uint8)
        rows[:, :picture[0].size] = picture.reshape(height, -1)
        buffer = Gst.Buffer.new_wrapped(rows.tobytes())
        buffer.pts, buffer.dts, buffer.duration, buffer.offset = frame.pts, frame.dts, frame.duration, frame.offset
        if frame.discont:
            buffer.set_flags(Gst.BufferFlags.DISCONT)
        return buffer

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

