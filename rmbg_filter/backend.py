"""Where, in what precision and by what runtime the network runs.

``Backend.choose`` resolves ModelOptions' ``device``, ``dtype`` and ``runtime``
words (``"auto"`` and ``"fast"`` included) to a torch device, a torch dtype, a runtime name and
whether the graph runs in int8. bfloat16 asked for on a CPU that only emulates it still runs, but
one warning is logged (see ``emulated_bf16``). ``fast_path`` is the dispatch table of ``"fast"``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from . import cpu_features, onnx_runtime, openvino_runtime
from .errors import Mention, OptionError, OptionNotice

__all__ = ["DTYPES", "Backend", "emulated_bf16", "fast_path"]

_LOG = logging.getLogger(__name__)

#: ModelOptions' ``dtype`` words other than "auto", and the torch dtypes they name
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Backend:
    """Where, in what precision and by what runtime the network runs."""

    device: torch.device
    #: the network's dtype in torch (float32 for int8: the int8 graph is quantized from it)
    dtype: torch.dtype
    runtime: str = "torch"
    #: the graph runs quantized to int8 (ONNX Runtime on the CPU; see ``int8_graph``)
    int8: bool = False

    @property
    def torch_dtype(self) -> torch.dtype:
        """The dtype torch holds the network in: ``dtype`` in torch; float32 where ONNX Runtime or OpenVINO runs
        its export (they take the precision as a setting of their own)."""
        return self.dtype if self.runtime == "torch" else torch.float32

    @property
    def precision(self) -> str:
        """The ModelOptions ``dtype`` word of what runs: ``float32``, ``float16``, ``bfloat16`` or ``int8``."""
        return "int8" if self.int8 else str(self.dtype).removeprefix("torch.")

    @classmethod
    def choose(cls, device: str = "auto", dtype: str = "auto", runtime: str = "auto") -> Backend:
        """Resolve ``"auto"``: cuda, then mps, then cpu; float16 on cuda, else float32;
        ONNX Runtime for float32 on the CPU when installed (measured faster there), else torch; for
        int8, OpenVINO when installed, else ONNX Runtime. ``dtype`` ``"fast"`` is resolved by
        ``fast_path`` for this device and CPU.

        ``dtype`` and ``runtime`` are ModelOptions words (checked there); a device torch cannot
        use, or a dtype its runtime cannot run, is an OptionError naming the option. bfloat16 on a
        CPU without native bfloat16 is chosen all the same, with one warning logged (an
        OptionNotice, see ``emulated_bf16``).
        """
        chosen = _device(device)
        if dtype == "fast":
            dtype, runtime = fast_path(chosen.type, cpu_features.detect() if chosen.type == "cpu" else None,
                                       runtime, onnx_runtime.available(), openvino_runtime.available())
        if dtype == "int8":
            return cls(chosen, torch.float32, _int8_runtime(chosen, runtime), int8=True)
        resolved = (torch.float16 if chosen.type == "cuda" else torch.float32) if dtype == "auto" else DTYPES[dtype]
        if runtime in _GRAPH_RUNTIMES:
            _check_graph_runtime(runtime, chosen, resolved)
        if runtime == "auto":
            onnx_fits = chosen.type == "cpu" and resolved == torch.float32
            runtime = "onnxruntime" if onnx_fits and onnx_runtime.available() else "torch"
        if chosen.type == "cpu" and resolved == torch.bfloat16 and runtime == "torch":  # OpenVINO never emulates it
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
        return f"{self.device}, {self.precision}, {self.runtime}{where}"


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


def fast_path(device_type: str, features: cpu_features.CpuFeatures | None, runtime: str = "auto",
              onnx: bool = True, openvino: bool = False) -> tuple[str, str]:
    """The dispatch table of ``dtype="fast"``: the fastest (dtype, runtime) words within the error budget.

    The budget, against float32 on real photos: mean <= 0.5 levels of 255, 99.9th percentile <= 4,
    max <= 16 (``make bench`` measures each path). On CUDA and MPS: float16. On a CPU that computes
    bfloat16 natively (avx512_bf16 or AMX-BF16, as ``features`` says once torch's switches cap it):
    bfloat16, in OpenVINO when ``openvino`` (installed) and ``runtime`` allow it (2.5x faster than
    torch's on AMX), else in torch. Elsewhere float32, in ONNX Runtime when ``onnx`` (installed) and
    ``runtime`` allow it: emulated bfloat16 is 6x to 10x slower than float32, and int8 is outside the
    budget (99.9th percentile 12 to 26 levels), so neither is ever picked. ``runtime`` is a ModelOptions
    word; the runtime returned is the one asked for, or the choice for "auto".
    """
    if device_type != "cpu":
        return "float16", "torch" if runtime == "auto" else runtime
    bf16_runtime = runtime if runtime != "auto" else "openvino" if openvino else "torch"
    native = features is not None and bool(features.native_bf16)
    if native and bf16_runtime == "torch":  # torch's own oneDNN must agree ("auto" without OpenVINO is torch too)
        native = cpu_features.torch_bf16_supported() is not False
    if native and bf16_runtime in ("openvino", "torch"):
        return "bfloat16", bf16_runtime
    return "float32", runtime if runtime != "auto" else "onnxruntime" if onnx else "torch"


def _device(device: str) -> torch.device:
    """ModelOptions' ``device`` word as a torch device this machine has (``"auto"``: cuda, then mps, then cpu);
    an OptionError naming ``device`` otherwise."""
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
    return chosen


def _int8_runtime(device: torch.device, runtime: str) -> str:
    """The runtime of ``dtype="int8"`` on ``device`` for ``runtime``: OpenVINO for "auto" where installed (3x
    faster than ONNX Runtime on AMX), else ONNX Runtime, whose quantizer builds the graph either way; an
    OptionError where that cannot be."""
    if device.type != "cpu":
        raise OptionError("dtype", Mention("dtype", "int8"), f" runs on the CPU, not on {device.type}; on a GPU "
                          "use ", Mention("dtype", "float16"))
    if runtime == "torch":
        raise OptionError("runtime", Mention("dtype", "int8"), " runs in ONNX Runtime or OpenVINO, not torch; use ",
                          Mention("runtime", "onnxruntime"), " or leave ", Mention("runtime"), " at auto")
    if not onnx_runtime.available():
        raise OptionError("dtype", Mention("dtype", "int8"), " needs ONNX Runtime's quantizer: pip install "
                          "'rmbg-filter[onnx]'")
    if runtime == "openvino":
        _check_installed("openvino", instead="onnxruntime")
    if runtime == "auto":
        return "openvino" if openvino_runtime.available() else "onnxruntime"
    return runtime


#: the runtimes that run the exported graph on the CPU -> the float dtypes each runs
_GRAPH_RUNTIMES = {"onnxruntime": (torch.float32,), "openvino": (torch.float32, torch.bfloat16)}
#: those runtimes -> their module here, their name and the extra that installs them
_GRAPH_RUNTIME_PACKAGES = {"onnxruntime": (onnx_runtime, "ONNX Runtime", "onnx"),
                           "openvino": (openvino_runtime, "OpenVINO", "openvino")}


def _check_graph_runtime(runtime: str, device: torch.device, dtype: torch.dtype) -> None:
    """An OptionError naming ``runtime`` when ONNX Runtime or OpenVINO cannot run ``dtype`` on ``device``, or is
    not installed."""
    if device.type != "cpu" or dtype not in _GRAPH_RUNTIMES[runtime]:
        words = [str(each).removeprefix("torch.") for each in _GRAPH_RUNTIMES[runtime]]
        dtypes = ", ".join(words) + " or int8"
        raise OptionError("runtime", Mention("runtime", runtime), f" runs {dtypes} on the CPU, not "
                          f"{str(dtype).removeprefix('torch.')} on {device.type}; use ", Mention("runtime", "torch"))
    _check_installed(runtime, instead="torch")


def _check_installed(runtime: str, *, instead: str) -> None:
    """An OptionError naming ``runtime`` (onnxruntime or openvino) and its extra when it is not installed; it
    suggests the runtime ``instead``."""
    module, name, extra = _GRAPH_RUNTIME_PACKAGES[runtime]
    if not module.available():
        raise OptionError("runtime", Mention("runtime", runtime), f" needs {name}: pip install "
                          f"'rmbg-filter[{extra}]'; or use ", Mention("runtime", instead))
