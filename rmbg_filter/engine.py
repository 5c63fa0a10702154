"""The engine: frames in, alphas out, in batches on the chosen device.

``load()`` is the entry point. The returned BackgroundRemover is called with
one frame or a batch, or streams any iterable of frames with ``.stream()``,
where reading, inference and the consumer's own work overlap through bounded
queues, so memory stays flat however long the stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import onnx_runtime
from .compiled import compiled_matte
from .loading import load_network
from .network import BriaRMBG
from .streaming import prefetch
from .transfers import DeviceTransfers, Download, Upload
from .transforms import as_frame_batch, postprocess, preprocess

__all__ = ["Backend", "BackgroundRemover", "load"]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


RUNTIMES = ("auto", "torch", "onnxruntime")


@dataclass(frozen=True)
class Backend:
    """Where, in what precision and by what runtime the network runs."""

    device: torch.device
    dtype: torch.dtype
    runtime: str = "torch"

    @classmethod
    def choose(cls, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
               runtime: str = "auto") -> Backend:
        """Resolve ``"auto"``: cuda, then mps, then cpu; float16 on cuda, else float32;
        ONNX Runtime for float32 on the CPU when installed (measured faster there), else torch."""
        if device == "auto":
            if torch.cuda.is_available():
                device = "cuda"
            elif torch.backends.mps.is_available():
                device = "mps"
            else:
                device = "cpu"
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"load: device must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {device!r}") from error
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("load: device 'cuda' asked for, but torch sees no CUDA GPU; use device='cpu'")
        if dtype == "auto":
            resolved = torch.float16 if chosen.type == "cuda" else torch.float32
        elif isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
            resolved = dtype
        elif isinstance(dtype, str) and dtype in DTYPES:
            resolved = DTYPES[dtype]
        else:
            raise ValueError(f"load: dtype must be 'auto' or one of {', '.join(DTYPES)}, got {dtype!r}")
        if runtime not in RUNTIMES:
            raise ValueError(f"load: runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        onnx_fits = chosen.type == "cpu" and resolved == torch.float32
        if runtime == "onnxruntime" and not (onnx_fits and onnx_runtime.available()):
            raise ValueError("load: runtime 'onnxruntime' runs float32 on the CPU and needs "
                             "pip install 'rmbg-filter[onnx]'")
        if runtime == "auto":
            runtime = "onnxruntime" if onnx_fits and onnx_runtime.available() else "torch"
        return cls(chosen, resolved, runtime)


class BackgroundRemover:
    """RMBG-1.4 with the seed's transforms around it.

    Call it with one uint8 frame (H,W), (H,W,3) or (H,W,4) to get its alpha
    (H,W) uint8, or with a batch (N,H,W[,C]) to get (N,H,W); numpy or torch in,
    numpy out. ``stream()`` does the same for an iterable of frames.
    """

    def __init__(
        self,
        network: BriaRMBG,
        backend: Backend,
        *,
        model_size: tuple[int, int] = (1024, 1024),
        batch_size: int = 1,
        compile: bool = False,
    ) -> None:
        self.backend = backend
        self.model_size = model_size
        self.batch_size = batch_size
        self.network = network.to(device=backend.device, dtype=backend.dtype,
                                  memory_format=torch.channels_last).eval()
        #: the dtype the network's input is made in (see _stem_in_float32)
        self.input_dtype = _stem_in_float32(self.network) if backend.dtype == torch.bfloat16 else backend.dtype
        if backend.runtime == "onnxruntime":
            self._matte = onnx_runtime.OnnxMatte(self.network, model_size, batch_size).matte
        elif compile:
            self._matte = compiled_matte(self.network, batch_size, backend.device)
        else:
            self._matte = self.network.matte
        self._transfers = DeviceTransfers(backend.device)

    def __call__(self, frames: Any) -> np.ndarray:
        batch, batched = as_frame_batch(frames)
        alphas = np.concatenate([
            self.infer_batch(batch[start:start + self.batch_size])
            for start in range(0, batch.shape[0], self.batch_size)
        ])
        return alphas if batched else alphas[0]

    def infer_batch(self, batch: torch.Tensor) -> np.ndarray:
        """Alphas (N,H,W) uint8 of checked frames (N,H,W,C) uint8 on any device."""
        return self._infer(self._transfers.upload(batch)).numpy()

    def _infer(self, upload: Upload) -> Download:
        """Run the network on uploaded frames; the alphas (N,H,W) uint8 start their way back."""
        with torch.inference_mode():
            pixels = self._transfers.arrived(upload)
            side = self._matte(preprocess(pixels, self.model_size, self.input_dtype))
            return self._transfers.download(postprocess(side, tuple(pixels.shape[1:3])))

    def stream(self, frames: Iterable[Any], *, depth: int = 2) -> Iterator[np.ndarray]:
        """Yield the alpha (H,W) uint8 of every frame of ``frames``, in order.

        Frames are read (and on CUDA uploaded) ``depth`` batches ahead and
        inferred one batch ahead of the consumer, each in its own thread;
        consecutive frames of one shape share a batch. Memory is bounded by
        ``depth`` and the batch size.
        """
        for _, alpha in self.stream_pairs(frames, depth=depth):
            yield alpha

    def stream_pairs(self, frames: Iterable[Any], *, depth: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """As ``stream()``, yielding ``(frame, alpha)``: the checked frame (H,W,C) uint8 beside its alpha.

        For adapters that composite or encode the frame with its alpha.
        """
        uploads = prefetch(((b, self._transfers.upload(b)) for b in self._batches(frames)), depth,
                           name="rmbg-read")
        results = prefetch(((b, self._infer(u)) for b, u in uploads), 1, name="rmbg-infer", join=True)
        for batch, download in results:
            yield from zip(batch.cpu().numpy(), download.numpy(), strict=True)

    def _batches(self, frames: Iterable[Any]) -> Iterator[torch.Tensor]:
        """Group checked frames into batches (N,H,W,C) of one shape, N <= batch_size.

        When ``frames`` raises (or a frame is refused), the frames before it are
        still yielded, then the error is raised.
        """
        pending: list[torch.Tensor] = []
        try:
            for index, frame in enumerate(frames):
                tensor, batched = as_frame_batch(frame, name=f"frame {index}")
                if batched:
                    raise ValueError(f"frame {index} must be one frame (H,W[,C]), got a batch {tuple(tensor.shape)}")
                if pending and (len(pending) == self.batch_size or pending[0].shape != tensor.shape):
                    yield torch.cat(pending)
                    pending = []
                pending.append(tensor)
        except Exception:
            if pending:
                yield torch.cat(pending)
            raise
        if pending:
            yield torch.cat(pending)


def _stem_in_float32(network: BriaRMBG) -> torch.dtype:
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
    model_size: int | tuple[int, int] = 1024,
    revision: str | None = None,
    compile: bool = False,
) -> BackgroundRemover:
    """Load RMBG-1.4 and return a BackgroundRemover.

    ``model``: Hub repo id, Hub-layout directory or weights file; None means
    ``$RMBG_MODEL``, else ``briaai/RMBG-1.4``. ``device``: "auto" (cuda, mps,
    cpu) or a torch device. ``dtype``: "auto" (float16 on cuda, else float32),
    "float32", "float16" or "bfloat16". ``runtime``: "auto" (ONNX Runtime for
    float32 on the CPU when installed, else torch), "torch" or "onnxruntime". ``model_size``: the network's input,
    an int or (height, width), default 1024 as the model was trained. ``compile``: run the
    torch network (``runtime`` "auto" becomes "torch") through ``torch.compile``, CUDA graphs
    on CUDA; the first batch pays the compile (over a minute on 2 CPU cores; seconds in a
    later process, from inductor's cache), so it suits long runs.
    """
    if compile and runtime == "auto":
        runtime = "torch"
    backend = Backend.choose(device, dtype, runtime)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"load: batch_size must be a positive int, got {batch_size!r}")
    size = (model_size, model_size) if isinstance(model_size, int) else tuple(model_size)
    if len(size) != 2 or not all(isinstance(s, int) and s >= 32 for s in size):
        raise ValueError(f"load: model_size must be an int or (height, width) of ints >= 32, got {model_size!r}")
    if compile and backend.runtime != "torch":
        raise ValueError("load: compile needs runtime='torch' (ONNX Runtime plans its own graph)")
    return BackgroundRemover(load_network(model, revision=revision), backend,
                             model_size=size, batch_size=batch_size, compile=compile)
