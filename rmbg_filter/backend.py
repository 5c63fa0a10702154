"""Where, in what precision and by what runtime the network runs.

``Backend.choose`` resolves ModelOptions' ``device``, ``dtype`` and ``runtime``
words (``"auto"`` included) to a torch device, a torch dtype and a runtime name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import onnx_runtime
from .errors import Mention, OptionError

__all__ = ["DTYPES", "Backend"]

#: ModelOptions' ``dtype`` words other than "auto", and the torch dtypes they name
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Backend:
    """Where, in what precision and by what runtime the network runs."""

    device: torch.device
    dtype: torch.dtype
    runtime: str = "torch"

    @classmethod
    def choose(cls, device: str = "auto", dtype: str = "auto", runtime: str = "auto") -> Backend:
        """Resolve ``"auto"``: cuda, then mps, then cpu; float16 on cuda, else float32;
        ONNX Runtime for float32 on the CPU when installed (measured faster there), else torch.

        ``dtype`` and ``runtime`` are ModelOptions words (checked there); a device torch cannot
        use is an OptionError naming ``device``.
        """
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
            raise OptionError("device", Mention("device"), f" must be auto, cpu, cuda, cuda:N or mps, got {device!r}") \
                from error
        if chosen.type not in ("cpu", "cuda", "mps"):  # torch knows meta, xla, hpu, ...: none runs this network
            raise OptionError("device", Mention("device"), f" must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise OptionError("device", Mention("device"), f" is {device!r}, but torch sees no CUDA GPU; use ",
                              Mention("device", "cpu"))
        if chosen.type == "cuda" and (chosen.index or 0) >= torch.cuda.device_count():
            raise OptionError("device", Mention("device"), f" is {device!r}, but torch sees "
                              f"{torch.cuda.device_count()} CUDA GPUs (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        if chosen.type == "mps" and not torch.backends.mps.is_available():
            raise OptionError("device", Mention("device"), " is 'mps', but torch sees no Apple GPU; use ",
                              Mention("device", "cpu"))
        resolved = (torch.float16 if chosen.type == "cuda" else torch.float32) if dtype == "auto" else DTYPES[dtype]
        onnx_fits = chosen.type == "cpu" and resolved == torch.float32
        if runtime == "onnxruntime" and not (onnx_fits and onnx_runtime.available()):
            raise OptionError("runtime", Mention("runtime", "onnxruntime"), " runs float32 on the CPU and needs "
                              "pip install 'rmbg-filter[onnx]'; or use ", Mention("runtime", "torch"))
        if runtime == "auto":
            runtime = "onnxruntime" if onnx_fits and onnx_runtime.available() else "torch"
        return cls(chosen, resolved, runtime)
