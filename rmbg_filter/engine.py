"""The engine: frames in, alphas out, in batches on the chosen device.

``load()`` is the entry point. The returned BackgroundRemover is called with
one frame or a batch, or streams any iterable of frames with ``.stream()``,
where reading, inference and the consumer's own work overlap through bounded
queues, so memory stays flat however long the stream.

Its parts: ``backend`` (where, in what precision and by what runtime the network
runs), ``batched_matte`` (the network in batches, halved when memory runs out) and
``frame_stream`` (one stream's batches, reuse and temporal window).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch

from . import memory
from .backend import DTYPES, Backend
from .batched_matte import BatchedMatte
from .finishing import finish
from .frame_stream import FrameStream
from .loading import load_network
from .network import RMBGNetwork
from .options import ModelOptions, QualityOptions
from .streaming import prefetch
from .transfers import DeviceTransfers
from .transforms import as_frame_batch, view

__all__ = ["Backend", "BackgroundRemover", "build", "load", "shared_engine"]

T = TypeVar("T")

_LOG = logging.getLogger(__name__)


class BackgroundRemover:
    """RMBG-1.4 with the seed's transforms around it.

    Call it with one uint8 frame (H,W), (H,W,3) or (H,W,4) to get its alpha
    (H,W) uint8, or with a batch (N,H,W[,C]) to get (N,H,W); numpy or torch in,
    numpy out. ``stream()`` does the same for an iterable of frames.
    """

    def __init__(
        self,
        network: RMBGNetwork,
        backend: Backend,
        *,
        model_size: tuple[int, int] = (1024, 1024),
        batch_size: int = 1,
        compile: bool = False,
    ) -> None:
        self.backend = backend
        self.model_size = model_size
        self._said_smaller = False  # the out-of-memory warning has been logged (see ``mattes``)
        #: the frame shapes (H,W), quality options and counts whose memory has been checked (see ``check_frames``)
        self._checked: set[tuple[int, int, QualityOptions, int | None]] = set()
        self.network = network.to(device=backend.device, dtype=backend.torch_dtype,
                                  memory_format=torch.channels_last).eval()
        input_dtype = _stem_in_float32(self.network) if backend.torch_dtype == torch.bfloat16 else backend.torch_dtype
        self._mattes = BatchedMatte(self.network, backend, input_dtype=input_dtype, model_size=model_size,
                                    batch_size=batch_size, compile=compile)
        self._transfers = DeviceTransfers(backend.device)
        #: held while the network runs: one caller at a time, whatever thread it is in
        self.lock = threading.Lock()
        #: seconds the network took for the last batch streamed (see stream_tagged); 0.0 before any
        self.batch_seconds = 0.0
        #: frames the network has run on so far (frames that reused an output are not counted)
        self.network_runs = 0

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype the network's input is made in: the backend's, float32 for a bfloat16 network whose stem
        stays float32 (see ``_stem_in_float32``)."""
        return self._mattes.input_dtype

    @property
    def compile(self) -> bool:
        """Whether the network runs through ``torch.compile`` (see ``compiled``)."""
        return self._mattes.compile

    @property
    def batch_size(self) -> int:
        """The most frames the network runs at a time: the batch size asked for, until running out of memory
        lowers it (see ``mattes``)."""
        return self._mattes.batch_size

    @property
    def asked_batch_size(self) -> int | None:
        """The batch size asked for, when running out of memory has lowered ``batch_size`` (see ``mattes``)."""
        return self._mattes.asked_batch_size

    def __call__(self, frames: Any, quality: QualityOptions | None = None) -> np.ndarray:
        """The alpha (H,W) uint8 of one frame, or the alphas (N,H,W) of a batch (N,H,W,C).

        ``quality`` (default: the seed's per-frame result): a batch is a sequence of
        frames for its temporal window and reuse.
        """
        quality = quality or QualityOptions()
        batch, batched = as_frame_batch(frames)
        # the array is in memory already: what comes on top is a batch's work at a time
        self.check_frames(batch.shape[1], batch.shape[2], quality, frames=min(batch.shape[0], self.batch_size))
        if quality.temporal_radius or quality.reuse_threshold:
            alphas = np.stack(list(self.stream(batch, quality=quality)))
        else:
            step = self.batch_size  # once: running out of memory may lower it meanwhile (mattes splits then)
            alphas = np.concatenate([self.infer_batch(batch[start:start + step], quality)
                                     for start in range(0, batch.shape[0], step)])
        return alphas if batched else alphas[0]

    def infer_batch(self, batch: torch.Tensor, quality: QualityOptions | None = None) -> np.ndarray:
        """Alphas (N,H,W) uint8 of checked frames (N,H,W,C) uint8 on any device, each frame on its own
        (``quality``'s per-frame options: normalisation and refinement)."""
        quality = quality or QualityOptions()
        with torch.inference_mode():
            pixels = self._transfers.arrived(self._transfers.upload(batch))
            views = self.views(pixels)
            return self._transfers.download(finish(pixels, views, self.mattes(views), quality)).numpy()

    def views(self, pixels: torch.Tensor) -> torch.Tensor:
        """Frames (N,H,W,C) uint8 on the device as the network sees them: (N,3,h,w) float32 in [0,1]."""
        return view(pixels, self.model_size)

    def mattes(self, views: torch.Tensor) -> torch.Tensor:
        """The network's outputs (N,1,h,w) float32 in [0,1] (side 1) for views (N,3,h,w) float32 in [0,1].

        Holds the engine's lock: callers in several threads (VapourSynth's, two GStreamer
        elements sharing one engine) take turns on the network.

        On running out of memory (the torch runtime's: CUDA's, MPS's or the CPU allocator's),
        ``batch_size`` is halved and the batch run again in parts, down to single frames; the
        first time, one warning is logged (``logging``, so stderr unless the application routes
        it) once a size works. ONNX Runtime's own allocation failures are raised as they are.
        """
        with self.lock, torch.inference_mode():
            self.network_runs += views.shape[0]
            mattes = self._mattes(views)
            if self.asked_batch_size is not None and not self._said_smaller:  # once a size has worked
                self._said_smaller = True
                _LOG.warning("rmbg-filter: out of memory with batches of %d frames; going on with %d (ask for "
                             "that batch size to skip the failed tries)", self.asked_batch_size, self.batch_size)
            return mattes

    def check_frames(self, height: int, width: int, quality: QualityOptions, frames: int | None = None) -> None:
        """OptionError (see ``memory.check_frames``) when frames of ``width`` x ``height`` cannot be worked
        on in this machine's memory with this engine's batch size and ``quality``: ``frames`` at once, or
        (None) a stream's frames in flight. On a GPU the network and finishing work there, not in this
        machine's memory. Once for each shape, options and count."""
        key = (height, width, quality, frames)
        if key in self._checked:
            return
        on_host = self.backend.device.type == "cpu"
        network = 0
        if on_host and not self.network_runs:  # once it has run, its memory is this process's already
            network = memory.network_bytes(self.batch_size, max(self.model_size), self.backend.torch_dtype.itemsize)
        memory.check_frames(width, height, self.batch_size, quality, network=network, host_finishing=on_host,
                            frames=frames)
        self._checked.add(key)

    def stream(self, frames: Iterable[Any], *, depth: int = 2,
               quality: QualityOptions | None = None) -> Iterator[np.ndarray]:
        """Yield the alpha (H,W) uint8 of every frame of ``frames``, in order (see ``stream_tagged``)."""
        for _, alpha in self.stream_tagged(((None, frame) for frame in frames), depth=depth, quality=quality):
            yield alpha

    def stream_tagged(self, items: Iterable[tuple[T, Any]], *, depth: int = 2, quality: QualityOptions | None = None,
                      read_wait: float | None = None) -> Iterator[tuple[T, np.ndarray]]:
        """Yield ``(tag, alpha)`` for every ``(tag, frame)`` of ``items``, in order.

        The tag is anything the caller wants back beside the frame's alpha (H,W)
        uint8: a decoded frame's timing, a GStreamer buffer's metadata, the frame
        itself. Frames are read (and on CUDA uploaded) ``depth`` batches ahead and
        inferred one batch ahead of the consumer, each in its own thread;
        consecutive frames of one shape share a batch. Memory is bounded by
        ``depth``, the batch size and the temporal window. With ``quality``'s
        ``temporal_radius`` R, the alpha of a frame comes once R frames after it
        have been read (or the stream has ended); every frame's network output is
        computed once. An error raised by ``items`` (or a refused frame) comes out
        here after the alphas of the frames before it.

        Closing this generator (an interrupt in the consumer) stops both threads
        and waits for them, so that none is left inside torch or a decoder when
        the interpreter exits or the input is closed: the reading thread for at
        most ``read_wait`` seconds (None: until it stops; give a bound where
        ``items`` may block for good, as a read of a silent stdin does).
        """
        run = FrameStream(self, self._transfers, quality or QualityOptions())
        stopped = threading.Event()  # closing the results stops the reading thread too
        uploads = prefetch(((tags, self._transfers.upload(b)) for tags, b in run.batches(items)), depth,
                           name="rmbg-read", join=read_wait, cancel=stopped)
        results = prefetch(run.finished(uploads), 1, name="rmbg-infer", stop=stopped)
        with contextlib.closing(results):  # now, not whenever the generator is collected
            for tags, download, seconds in results:
                waited = time.perf_counter()
                alphas = download.numpy()
                self.batch_seconds = seconds + time.perf_counter() - waited
                yield from zip(tags, alphas, strict=True)


def _stem_in_float32(network: RMBGNetwork) -> torch.dtype:
    """Keep the input and the first convolution in float32 in a bfloat16 network; returns the input dtype.

    bfloat16's 8-bit mantissa rounds the normalised pixels themselves (steps of up to 1/256 on
    [-0.5, 0.5]); on the real network that input rounding was the largest single source of error:
    rocket.jpg's alpha moved up to 17 levels from float32 with it, 6 without it, at no measured cost
    (one 3-to-64-channel convolution). The stem's output is cast to the network's dtype.
    """
    dtype = network.conv_in.weight.dtype
    network.conv_in.float()
    network.conv_in.register_forward_hook(lambda _module, _args, output: output.to(dtype))
    return torch.float32


def load(
    model: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    runtime: str = "auto",
    batch_size: int = 1,
    model_size: int = 1024,
    revision: str | None = None,
    compile: bool = False,
) -> BackgroundRemover:
    """Load RMBG-1.4 and return a BackgroundRemover (a new one on every call; see ``shared_engine``).

    ``model``: Hub repo id, Hub-layout directory or weights file; None means
    ``$RMBG_MODEL``, else ``briaai/RMBG-1.4``. ``device``: "auto" (cuda, mps,
    cpu) or a torch device. ``dtype``: "auto" (float16 on cuda, else float32), "fast" (the
    fastest path within 16 levels of float32 on this machine: ``backend.fast_path``),
    "float32", "float16", "bfloat16" (on a CPU without avx512_bf16 or AMX, emulated and several
    times slower than float32: one warning is logged) or "int8" (ONNX Runtime on the CPU; the
    quantized graph is built once, in a minute or more, and cached). ``runtime``: "auto" (ONNX Runtime for
    float32 on the CPU when installed; OpenVINO for int8 and fast's bfloat16 when installed; else torch),
    "torch", "onnxruntime" or "openvino". ``model_size``: the side of the
    square input, default 1024 as the model was trained. ``compile``: run the
    torch network (``runtime`` "auto" becomes "torch") through ``torch.compile``, CUDA graphs
    on CUDA; the first batch pays the compile (over a minute on 2 CPU cores; seconds in a
    later process, from inductor's cache), so it suits long runs. A bad value is an OptionError
    (a ValueError) naming its option.
    """
    if isinstance(dtype, torch.dtype):
        dtype = next((word for word, value in DTYPES.items() if value == dtype), str(dtype))
    options = ModelOptions(model=None if model is None else os.fspath(model),
                           device=str(device) if isinstance(device, torch.device) else device,
                           dtype=dtype, runtime=runtime, batch_size=batch_size, model_size=model_size,
                           compile=compile)
    return build(options, revision=revision)


def build(options: ModelOptions, *, revision: str | None = None) -> BackgroundRemover:
    """A new BackgroundRemover for checked ``options``; logs (INFO) the device, dtype and runtime chosen."""
    runtime = "torch" if options.compile and options.runtime == "auto" else options.runtime
    backend = Backend.choose(options.device, options.dtype, runtime)
    if backend.device.type == "cpu":  # the network's batch in this machine's memory: refused before loading
        memory.check_network(options, backend.torch_dtype.itemsize)
    remover = BackgroundRemover(load_network(options.model, revision=revision), backend,
                                model_size=(options.model_size, options.model_size), batch_size=options.batch_size,
                                compile=options.compile)
    if _LOG.isEnabledFor(logging.INFO):  # describing reads /proc/cpuinfo or asks CUDA for the GPU's name
        _LOG.info("rmbg-filter: %s", backend.describe())  # what runs where, and on the CPU the features that chose it
    return remover


_SHARED: dict[ModelOptions, BackgroundRemover] = {}
_SHARED_LOCK = threading.Lock()


def shared_engine(options: ModelOptions) -> BackgroundRemover:
    """The process's one engine for ``options``, loaded on first use.

    Adapters that may be instantiated many times in one process (VapourSynth
    nodes, GStreamer elements) share it; its ``lock`` makes them take turns.
    """
    with _SHARED_LOCK:
        if options not in _SHARED:
            _SHARED[options] = build(options)
        return _SHARED[options]
