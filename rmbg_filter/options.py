"""The model options, declared once: every adapter builds its own flags, properties or keywords from them.

``ModelOptions`` is a frozen dataclass; each field carries its default, its
choices (or bounds) and its help in the field's metadata, read back as
``OptionSpec`` by ``specs()``. The command line makes ``--batch-size N`` of
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

__all__ = ["ModelOptions", "OptionSpec", "specs"]


@dataclass(frozen=True)
class OptionSpec:
    """One option as adapters present it: its type (str, int or bool), default, choices or bounds, help."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    metavar: str | None = None


def _option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field whose metadata holds what OptionSpec needs besides the name and type."""
    return dataclasses.field(default=default, metadata={"help": help, **spec})


@dataclass(frozen=True)
class ModelOptions:
    """Which network, where, in what precision and how it is batched: the options every adapter takes.

    Hashable: one engine is loaded per distinct value (``engine.shared_engine``).
    """

    model: str | None = _option(
        None, "Hub repo id, Hub-layout directory or weights file (.safetensors, .pth, .bin, .onnx); "
              "default: $RMBG_MODEL, else briaai/RMBG-1.4", metavar="M")
    device: str = _option("auto", "auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    dtype: str = _option("auto", "auto: float16 on CUDA, float32 elsewhere; bfloat16 is the fast CPU mode",
                         choices=("auto", "float32", "float16", "bfloat16"))
    runtime: str = _option("auto", "auto: ONNX Runtime for float32 on the CPU when installed (faster there), "
                                   "else torch", choices=("auto", "torch", "onnxruntime"))
    batch_size: int = _option(1, "frames a network call (default 1; larger helps GPUs)",
                              minimum=1, maximum=256, metavar="N")
    model_size: int = _option(1024, "side of the square the network sees (default 1024, as trained; smaller is "
                                    "faster and coarser)", minimum=32, maximum=4096, metavar="N")
    compile: bool = _option(False, "torch.compile the network (CUDA graphs on CUDA): the first frame waits for "
                                   "the compile, the rest run faster; for long runs")

    def __post_init__(self) -> None:
        for spec in specs():
            _check(spec, getattr(self, spec.name))
        if self.compile and self.runtime == "onnxruntime":
            raise OptionError("compile", Mention("compile"), " needs ", Mention("runtime", "torch"),
                              " (ONNX Runtime plans its own graph)")

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> ModelOptions:
        """Options from keyword arguments; an unknown name is an OptionError naming it."""
        names = {spec.name for spec in specs()}
        for name in keywords:
            if name not in names:
                raise OptionError(name, f"unknown option {name!r}; the options are {', '.join(sorted(names))}")
        return cls(**keywords)


def specs() -> tuple[OptionSpec, ...]:
    """Every ModelOptions field as an OptionSpec, in declaration order."""
    hints = typing.get_type_hints(ModelOptions)
    return tuple(OptionSpec(field.name, _plain(hints[field.name]), field.default, **field.metadata)
                 for field in dataclasses.fields(ModelOptions))


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


_ARTICLE = {str: "a string", int: "an int", bool: "True or False"}
