"""The options, declared once: every adapter builds its own flags, properties or keywords from them.

``ModelOptions`` (which network, where, how batched: one engine each) and
``QualityOptions`` (what is made of the network's output: temporal window,
normalisation, refinement, decontamination, reuse) are frozen dataclasses; each
field carries its default, its choices (or bounds) and its help in the field's
metadata, read back as ``OptionSpec`` by ``specs()``. The command line makes ``--batch-size N`` of
``batch_size``, the GStreamer element a ``batch-size`` property, vsrmbg a
``batch_size=`` keyword. Values are checked on construction: a bad one is an
OptionError naming the option. Importing this module loads no torch.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import Mention, OptionError

__all__ = ["MODEL_ENV", "ModelOptions", "OptionSpec", "QualityOptions", "all_specs", "specs", "split_keywords"]

#: the environment variable that names the model when ``model`` is not given
MODEL_ENV = "RMBG_MODEL"


@dataclass(frozen=True)
class OptionSpec:
    """One option as adapters present it: its type (str, int, float or bool), default, choices or bounds, help."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    metavar: str | None = None
    #: an int option's values must be multiples of this (model_size: 32)
    multiple: int | None = None


def _option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field whose metadata holds what OptionSpec needs besides the name and type."""
    return dataclasses.field(default=default, metadata={"help": help, **spec})


class _Declared:
    """What both option classes share: values checked on construction (ints stand for floats)."""

    def __post_init__(self) -> None:
        for spec in specs(type(self)):
            value = getattr(self, spec.name)
            if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, spec.name, float(value))  # 30 means 30.0
            _check(spec, getattr(self, spec.name))


@dataclass(frozen=True)
class ModelOptions(_Declared):
    """Which network, where, in what precision and how it is batched: the options every adapter takes.

    Hashable: one engine is loaded per distinct value (``engine.shared_engine``).
    """

    model: str | None = _option(
        None, "Hub repo id, Hub-layout directory or weights file (.safetensors, .pth, .bin, or .onnx: an ONNX "
              "export's weights, read into this project's network, which runtime then runs); default: $RMBG_MODEL, "
              "else briaai/RMBG-1.4", metavar="M")
    device: str = _option("auto", "auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    dtype: str = _option("auto", "auto: float16 on CUDA, float32 elsewhere; fast: the fastest within 16 levels of "
                                 "float32 on this machine (bfloat16 on CPUs with avx512_bf16 or AMX, else as auto); "
                                 "int8: ONNX Runtime on the CPU, built once; bfloat16 elsewhere is emulated, several "
                                 "times slower",
                         choices=("auto", "fast", "float32", "float16", "bfloat16", "int8"))
    runtime: str = _option("auto", "auto: ONNX Runtime for float32 on the CPU when installed (faster there), OpenVINO "
                                   "for int8 and for fast's bfloat16 when installed, else torch",
                           choices=("auto", "torch", "onnxruntime", "openvino"))
    batch_size: int = _option(1, "frames a network call (default 1; larger helps GPUs)",
                              minimum=1, maximum=256, metavar="N")
    # the network halves its maps five times: off a multiple of 32 they misalign (IS-Net medium on three photos:
    # edge error against 1024 of 89 levels at 321, 46 at 320, 43 at 336), so other sizes are refused
    model_size: int = _option(1024, "side of the square the network sees, a multiple of 32 (default 1024, as "
                                    "trained; smaller is faster and coarser)", minimum=32, maximum=4096, metavar="N",
                              multiple=32)
    compile: bool = _option(False, "torch.compile the network (CUDA graphs on CUDA): the first frame waits for "
                                   "the compile, the rest run faster; for long runs")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compile and self.runtime in ("onnxruntime", "openvino"):
            raise OptionError("compile", Mention("compile"), " needs ", Mention("runtime", "torch"),
                              f" ({'ONNX Runtime' if self.runtime == 'onnxruntime' else 'OpenVINO'} plans its own "
                              "graph)")
        if self.compile and self.dtype == "int8":
            raise OptionError("compile", Mention("compile"), " does not apply to ", Mention("dtype", "int8"),
                              " (ONNX Runtime or OpenVINO plans its own graph)")


#: frames a reused network output may stand for: a fresh run at least this often (see QualityOptions)
REUSE_SPAN = 8


@dataclass(frozen=True)
class QualityOptions(_Declared):
    """What is made of the network's output, frame by frame: the same words in every adapter.

    The defaults give the seed's per-frame alpha. Deterministic: the alpha of frame n depends
    on frames n-R..n+R and their network outputs only (with ``reuse_threshold``, also on up to
    REUSE_SPAN-1 frames before, whose output a still frame reuses).
    """

    temporal_radius: int = _option(
        0, "stabilise each alpha over frames n-R..n+R, weighting each neighbour down where it differs from "
           "frame n and leaving out frames across a scene cut (default 0: off); streams run R frames behind",
        minimum=0, maximum=8, metavar="R")
    normalize: str = _option(
        "minmax", "minmax (default, the original's per-frame stretch to 0..255) or none (the network's "
                  "output as it is: an empty frame stays near 0)", choices=("minmax", "none"))
    refine: str = _option(
        "none", "none (default: bilinear upsampling of the model-size alpha) or guided (a fast guided filter "
                "with the full-resolution frame as guide: sharper edges on frames larger than the model's input)",
        choices=("none", "guided"))
    refine_radius: int = _option(1, "window radius of the guided filter, in cells of 4x4 model-size pixels "
                                    "(default 1, chosen by make quality)", minimum=1, maximum=64, metavar="R")
    refine_eps: float = _option(1e-5, "regularisation of the guided filter: larger smooths more (default 0.00001, "
                                      "chosen by make quality)", minimum=1e-8, maximum=1.0, metavar="EPS")
    decontaminate: bool = _option(False, "estimate the subject's own colours where the alpha is soft, so no rim "
                                         "of the old background shows (rgba and composites)")
    reuse_threshold: float = _option(
        0.0, "reuse the previous frame's network output when a frame's PSNR to it is above DB decibels (e.g. "
             "40; default 0: off); a fresh run at least every 8 frames", minimum=0.0, maximum=100.0, metavar="DB")


def specs(options: type = ModelOptions) -> tuple[OptionSpec, ...]:
    """Every field of ``options`` (ModelOptions or QualityOptions) as an OptionSpec, in declaration order."""
    hints = typing.get_type_hints(options)
    return tuple(OptionSpec(field.name, _plain(hints[field.name]), field.default, **field.metadata)
                 for field in dataclasses.fields(options))


def all_specs() -> tuple[OptionSpec, ...]:
    """The specs of ModelOptions, then QualityOptions: every option an adapter takes."""
    return specs(ModelOptions) + specs(QualityOptions)


def split_keywords(keywords: Mapping[str, Any]) -> tuple[ModelOptions, QualityOptions]:
    """ModelOptions and QualityOptions from one set of keyword arguments; an unknown name is an OptionError."""
    known = {spec.name for spec in all_specs()}
    for name in keywords:
        if name not in known:
            raise OptionError(name, f"unknown option {name!r}; the options are {', '.join(sorted(known))}")
    return tuple(kind(**{name: value for name, value in keywords.items()  # type: ignore[return-value]
                         if name in {spec.name for spec in specs(kind)}})
                 for kind in (ModelOptions, QualityOptions))


def _plain(hint: Any) -> type:
    """The type of a field's hint without None: ``str | None`` -> str."""
    return next(arg for arg in typing.get_args(hint) if arg is not type(None)) if typing.get_args(hint) else hint


def _check(spec: OptionSpec, value: Any) -> None:
    """Raise OptionError unless ``value`` is of the spec's type, among its choices and within its bounds."""
    if spec.name == "model" and value is None:
        return
    wanted = spec.type
    right_type = isinstance(value, wanted) and (wanted is bool or not isinstance(value, bool))
    if not right_type:
        raise OptionError(spec.name, Mention(spec.name), f" must be {_ARTICLE[wanted]}, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise OptionError(spec.name, Mention(spec.name), f" must be one of {', '.join(spec.choices)}, got {value!r}")
    if spec.minimum is not None and not spec.minimum <= value <= spec.maximum:
        raise OptionError(spec.name, Mention(spec.name),
                          f" must be from {spec.minimum} to {spec.maximum}, got {value!r}")
    if spec.multiple and value % spec.multiple:
        below = value - value % spec.multiple
        raise OptionError(spec.name, Mention(spec.name), f" must be a multiple of {spec.multiple}, got {value!r}; "
                          f"use {below} or {below + spec.multiple}")


_ARTICLE = {str: "a string", int: "an int", float: "a number", bool: "True or False"}
