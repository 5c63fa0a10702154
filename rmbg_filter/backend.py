"""Where, in what precision and by what runtime the network runs.

``Backend.choose`` resolves ModelOptions' ``device``, ``dtype`` and ``runtime``
words (``"auto"`` included) to a torch device, a torch dtype and a runtime name. bfloat16 asked
for on a CPU that only emulates it still runs, but one warning is logged (see ``emulated_bf16``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from . import cpu_features, onnx_runtime
from .errors import Mention, OptionError, OptionNotice

__all__ = ["DTYPES", "Backend", "emulated_bf16"]

_LOG = logging.getLogger(__name__)

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
        use is an OptionError naming ``device``. bfloat16 on a CPU without native bfloat16 is
        chosen all the same, with one warning logged (an OptionNotice, see ``emulated_bf16``).
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
        if chosen.type == "cpu" and resolved == torch.bfloat16:  # asked for: "auto" never picks it on the CPU
            notice = emulated_bf16()
            if notice is not None:
                _LOG.warning(notice)
        return cls(chosen, resolved, runtime)

    def describe(self) -> str:
        """One line, what runs where: ``cpu, float32, onnxruntime on Intel(R) Xeon(R) ... (avx2 avx512f ...)``;
        on the CPU its features (``cpu_features``), on CUDA the GPU's name."""
        where = ""
        if self.device.type == "cpu":
            where = f" on {cpu_features.detect().describe()}"
        elif self.device.type == "cuda":
            where = f" on {torch.cuda.get_device_name(self.device)}"
        return f"{self.device}, {str(self.dtype).removeprefix('torch.')}, {self.runtime}{where}"


def emulated_bf16() -> OptionNotice | None:
    """The warning that this CPU emulates bfloat16 (None where it computes it natively, or none can tell).

    Native means oneDNN has avx512_bf16 or AMX-BF16 once ONEDNN_MAX_CPU_ISA has capped the CPU's
    flags (``cpu_features.detect``), and torch's own oneDNN does not say otherwise. Emulated, the
    network ran 6x to 10x slower than in float32 (AMD Zen 3; Zen 4 capped to AVX2).
    """
    features = cpu_features.detect()
    torch_says = cpu_features.torch_bf16_supported()
    if features.native_bf16 is not False and torch_says is not False:
        return None
    if features.native_bf16 is not False:
        why = "torch's oneDNN does not use them here"
    elif features.detected and features.detected & {"avx512_bf16", "amx_bf16"}:  # the CPU has them: a cap hides them
        why = f"{', '.join(cap for cap in features.caps if not cap.startswith(cpu_features.ATEN_ENV))} hides them"
    else:
        why = "this CPU has neither"
    return OptionNotice("dtype", "rmbg-filter: ", Mention("dtype", "bfloat16"), " is emulated on this CPU, several "
                        "times slower than float32; use ", Mention("dtype", "float32"), " (native bfloat16 needs "
                        f"avx512_bf16 or amx_bf16: {why}; -v names the CPU's features)")
