"""What this CPU offers the network's precision: native bfloat16, VNNI, AMX, as torch will use them.

bfloat16 is fast only where the CPU computes it natively (avx512_bf16, AMX); elsewhere oneDNN
emulates it, several times slower than float32 (6x to 10x measured on an AVX2-only AMD Zen 3 and on
a Zen 4 capped to AVX2). ``detect()`` reads the CPU's model name and flags (Linux's
``/proc/cpuinfo``; elsewhere no flags are known, and ``describe()`` says so) and caps them by
torch's own switches, read as the libraries read them:

- ``ONEDNN_MAX_CPU_ISA`` (or its older name ``DNNL_MAX_CPU_ISA``, read when the first is unset or
  empty) caps what oneDNN, which runs the network's convolutions, may use. Its values are those of
  oneDNN's "CPU Dispatcher Control" page (doc/performance_considerations/dispatcher_control.md,
  https://oneapi-src.github.io/oneDNN/dev_guide_cpu_dispatcher_control.html), in any case; an
  unknown value caps nothing, as oneDNN ignores it too.
- ``ATEN_CPU_CAPABILITY`` (``default``, ``avx2``, ``avx512``) caps ATen's own kernels. torch
  compares it case-sensitively and ignores any other value (with a warning): so does this module.

The result is the detected flags minus whatever a cap excludes; native bfloat16, VNNI and AMX are
judged on what is left for oneDNN. The flag logic is pure (``parse_cpuinfo``, ``features_of``:
text and environment in, answer out) so that tests can give any CPU. Importing this module loads
no torch; ``torch_bf16_supported`` asks torch itself, importing it then.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ATEN_ENV", "FEATURES", "ONEDNN_ENVS", "CpuFeatures", "detect", "features_of", "parse_cpuinfo",
           "torch_bf16_supported"]

#: the CPU flags (as /proc/cpuinfo names them) that decide how fast the network runs, in the order shown
FEATURES = ("avx2", "avx512f", "avx_vnni", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")

#: the environment variables that cap oneDNN's instruction sets, in the order oneDNN reads them
ONEDNN_ENVS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
#: the environment variable that caps ATen's kernels
ATEN_ENV = "ATEN_CPU_CAPABILITY"

_AVX512 = frozenset({"avx2", "avx512f"})
_VNNI = _AVX512 | {"avx512_vnni"}
_BF16 = _VNNI | {"avx512_bf16"}
_FP16 = _BF16 | {"avx_vnni"}  # AVX10_1_512 is above AVX2_VNNI in oneDNN's order, AVX512_CORE_* are not
_AMX = _FP16 | {"amx_tile", "amx_int8", "amx_bf16"}
#: ONEDNN_MAX_CPU_ISA's values (upper case) -> the FEATURES oneDNN may still use under it; absent: no cap
_ONEDNN_LEVELS: dict[str, frozenset[str]] = {
    "SSE41": frozenset(), "AVX": frozenset(), "AVX2": frozenset({"avx2"}),
    "AVX2_VNNI": frozenset({"avx2", "avx_vnni"}), "AVX2_VNNI_2": frozenset({"avx2", "avx_vnni"}),
    "AVX512_CORE": _AVX512, "AVX512_CORE_VNNI": _VNNI, "AVX512_CORE_BF16": _BF16,
    "AVX10_1_512": _FP16, "AVX512_CORE_FP16": _FP16,
    "AVX10_1_512_AMX": _AMX, "AVX512_CORE_AMX": _AMX,
    "AVX10_1_512_AMX_FP16": _AMX, "AVX512_CORE_AMX_FP16": _AMX,
}
#: ATEN_CPU_CAPABILITY's x86 values, lowest first (torch's spelling: lower case only)
_ATEN_LEVELS = ("default", "avx2", "avx512")


@dataclass(frozen=True)
class CpuFeatures:
    """One CPU's features as torch will use them.

    ``model``: the CPU's model name. ``detected``: the FEATURES it reports (None: its flags are not
    known, as off Linux). ``flags``: those oneDNN may use once ``ONEDNN_MAX_CPU_ISA`` has capped them.
    ``aten``: the level of ATen's kernels (``default``, ``avx2`` or ``avx512``; None: unknown).
    ``caps``: the environment settings that removed something, as ``NAME=value``.
    """

    model: str
    detected: frozenset[str] | None
    flags: frozenset[str]
    aten: str | None = None
    caps: tuple[str, ...] = ()

    @property
    def native_bf16(self) -> bool | None:
        """Whether oneDNN computes bfloat16 natively here (avx512_bf16 or AMX-BF16); None: not known."""
        return None if self.detected is None else bool(self.flags & {"avx512_bf16", "amx_bf16"})

    @property
    def vnni(self) -> bool | None:
        """Whether oneDNN has int8 dot products here (avx512_vnni or avx_vnni); None: not known."""
        return None if self.detected is None else bool(self.flags & {"avx512_vnni", "avx_vnni"})

    @property
    def amx(self) -> bool | None:
        """Whether oneDNN has AMX tiles for bfloat16 or int8 here; None: not known."""
        return None if self.detected is None else "amx_tile" in self.flags and bool(
            self.flags & {"amx_bf16", "amx_int8"})

    def describe(self) -> str:
        """One short line: ``Intel(R) Xeon(R) ... (avx2 avx512f ... amx_bf16; ONEDNN_MAX_CPU_ISA=AVX2 caps it to
        avx2)``."""
        if self.detected is None:
            return f"{self.model} (CPU flags not known on {platform.system() or 'this system'})"
        parts = [_listed(self.detected) or "none of " + ", ".join(FEATURES)]
        for cap in self.caps:
            if cap.startswith(ATEN_ENV):
                parts.append(f"{cap} caps ATen's kernels to {self.aten}")
            else:
                parts.append(f"{cap} caps it to {_listed(self.flags) or 'none of these'}")
        return f"{self.model} ({'; '.join(parts)})"


def _listed(flags: frozenset[str]) -> str:
    """``flags`` in FEATURES' order, space-separated."""
    return " ".join(flag for flag in FEATURES if flag in flags)


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str] | None]:
    """The model name and every flag of the first processor in a Linux ``/proc/cpuinfo`` text; the flags are
    None where it has no x86 ``flags`` line (an ARM host's says ``Features``), the model ``unknown CPU``
    where it names none."""
    model, flags = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = " ".join(value.split())
        elif key == "flags" and flags is None:
            flags = frozenset(value.split())
        if model is not None and flags is not None:
            break
    return model or "unknown CPU", flags


def features_of(model: str, flags: frozenset[str] | None, environ: Mapping[str, str]) -> CpuFeatures:
    """The CpuFeatures of a CPU named ``model`` with ``flags`` (None: not known) under the environment
    ``environ`` (its ONEDNN_MAX_CPU_ISA, DNNL_MAX_CPU_ISA and ATEN_CPU_CAPABILITY)."""
    if flags is None:
        return CpuFeatures(model, None, frozenset())
    detected = frozenset(flags) & set(FEATURES)
    caps = []
    usable = detected
    name = next((name for name in ONEDNN_ENVS if environ.get(name)), None)
    allowed = _ONEDNN_LEVELS.get(environ[name].strip().upper()) if name else None
    if name and allowed is not None and detected - allowed:
        usable = detected & allowed
        caps.append(f"{name}={environ[name].strip()}")
    aten = _aten_level(flags)
    asked = environ.get(ATEN_ENV, "")
    if asked in _ATEN_LEVELS and _ATEN_LEVELS.index(asked) < _ATEN_LEVELS.index(aten):
        aten = asked
        caps.append(f"{ATEN_ENV}={asked}")
    return CpuFeatures(model, detected, usable, aten, tuple(caps))


def _aten_level(flags: frozenset[str]) -> str:
    """ATen's kernel level for CPU ``flags`` as torch picks it: avx512 needs AVX-512 F, BW, VL and DQ."""
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "fma"} <= flags:
        return "avx512"
    return "avx2" if {"avx2", "fma"} <= flags else "default"


@functools.cache
def detect() -> CpuFeatures:
    """This machine's CpuFeatures under this process's environment, read once (torch reads its switches once
    too)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            model, flags = parse_cpuinfo(cpuinfo.read())
    except OSError:  # not Linux: the flags are not known
        model, flags = platform.processor() or platform.machine() or "unknown CPU", None
    return features_of(model, flags, os.environ)


def torch_bf16_supported() -> bool | None:
    """torch's own answer, whether its oneDNN runs bfloat16 here (None: this torch cannot say); imports torch.

    Trust only its False: it says True wherever oneDNN can emulate bfloat16 as well (AVX-512 without
    avx512_bf16), and so it cannot tell native from emulated.
    """
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None
