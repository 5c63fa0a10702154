"""VapourSynth filter: RMBG-1.4 background removal on a clip.

    import vsrmbg
    alpha = vsrmbg.mask(clip)            # GRAY8, the clip's size and length
    clip = vsrmbg.rmbg(clip)             # the clip, alpha attached as ``_Alpha``

Accepts constant-format RGB and YUV clips of 8 to 16 bits or float. Frames are
converted to RGB24 for the network (YUV with the frames' ``_Matrix``, else
``matrix``); RGB24 goes in untouched, so ``mask`` gives the same alpha as
``rmbg_filter.load()`` on the same pixels. The engine runs one frame at a time
under a lock while VapourSynth's own threads decode the frames ahead.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import vapoursynth as vs

from rmbg_filter import BackgroundRemover, InputError, load
from rmbg_filter.errors import keyword_message

__all__ = ["mask", "rmbg"]

#: Engines already loaded in this process, by their load() arguments, so that
#: several calls in one script share one network.
_ENGINES: dict[tuple[Any, ...], BackgroundRemover] = {}
_ENGINES_LOCK = threading.Lock()

#: Frame properties copied from the source frame to the mask frame: timing only.
_TIMING_PROPS = ("_DurationNum", "_DurationDen", "_AbsoluteTime")


def mask(
    clip: vs.VideoNode,
    model: str | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    runtime: str = "auto",
    model_size: int = 1024,
    matrix: str = "709",
    compile: bool = False,
) -> vs.VideoNode:
    """The alpha of every frame of ``clip``: a GRAY8 clip (full range, 255 = subject).

    ``model``: Hub id, Hub-layout directory or weights file; None means
    ``$RMBG_MODEL``, else ``briaai/RMBG-1.4``. ``device``, ``dtype``,
    ``runtime``, ``model_size``, ``compile``: as ``rmbg_filter.load()``. ``matrix``: the YUV
    matrix (zimg's names: "709", "170m", "2020ncl", ...) used for frames that do
    not carry ``_Matrix``.
    """
    rgb = _as_rgb24("vsrmbg.mask", clip, matrix)
    remover = _engine("vsrmbg.mask", model, device, dtype, runtime, model_size, compile)
    blank = vs.core.std.BlankClip(clip, format=vs.GRAY8, keep=True)
    inference = threading.Lock()

    def alpha_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        pixels = np.dstack([np.asarray(f[1][plane]) for plane in range(3)])
        with inference:
            alpha = remover(pixels)
        out = f[0].copy()
        np.copyto(np.asarray(out[0]), alpha)
        out.props["_Range"] = vs.RANGE_FULL
        for name in _TIMING_PROPS:
            if name in f[1].props:
                out.props[name] = f[1].props[name]
        return out

    return vs.core.std.ModifyFrame(blank, [blank, rgb], alpha_frame)


def rmbg(
    clip: vs.VideoNode,
    model: str | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    runtime: str = "auto",
    model_size: int = 1024,
    matrix: str = "709",
    compile: bool = False,
) -> vs.VideoNode:
    """``clip`` unchanged, with its alpha attached to every frame as ``_Alpha``.

    The alpha frame is GRAY in the clip's own sample type and depth, full range
    (0 transparent; 255, 65535 or 1.0 opaque), as VapourSynth's alpha
    convention asks; arguments as ``mask()``.
    """
    alpha = mask(clip, model, device=device, dtype=dtype, runtime=runtime, model_size=model_size, matrix=matrix,
                 compile=compile)
    family = clip.format
    if (family.sample_type, family.bits_per_sample) != (vs.INTEGER, 8):
        gray = vs.core.query_video_format(vs.GRAY, family.sample_type, family.bits_per_sample, 0, 0)
        alpha = vs.core.resize.Point(alpha, format=gray.id, range_in_s="full", range_s="full")
    return vs.core.std.ClipToProp(clip, mclip=alpha, prop="_Alpha")


def _as_rgb24(function: str, clip: Any, matrix: str) -> vs.VideoNode:
    """Check ``clip`` and return it as RGB24; ValueError/TypeError naming ``function`` otherwise."""
    if not isinstance(clip, vs.VideoNode):
        raise TypeError(f"{function}: clip must be a vapoursynth.VideoNode, got {type(clip).__name__}")
    if clip.format is None or not clip.width or not clip.height:
        raise ValueError(f"{function}: clip must have one format and size, got a variable one; "
                         "resize it to a constant format first")
    family = clip.format.color_family
    if family not in (vs.RGB, vs.YUV):
        raise ValueError(f"{function}: clip must be RGB or YUV, got {clip.format.name}")
    if not isinstance(matrix, str) or not matrix:
        raise TypeError(f"{function}: matrix must be a zimg matrix name such as '709', got {matrix!r}")
    if clip.format.id == vs.RGB24:
        return clip
    if family == vs.RGB:
        return vs.core.resize.Point(clip, format=vs.RGB24)
    try:
        return vs.core.resize.Bicubic(clip, format=vs.RGB24, matrix_in_s=matrix)
    except vs.Error as error:
        raise ValueError(f"{function}: cannot convert the clip to RGB with matrix={matrix!r}: {error}") from error


def _engine(function: str, model: str | None, device: str, dtype: str, runtime: str,
            model_size: int, compile: bool) -> BackgroundRemover:
    """The engine for these arguments, loaded once per process; errors name ``function``."""
    key = (None if model is None else str(model), device, dtype, runtime, model_size, compile)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            try:
                _ENGINES[key] = load(model, device=device, dtype=dtype, runtime=runtime, model_size=model_size,
                                     compile=compile)
            except (ValueError, TypeError, InputError) as error:
                raise vs.Error(f"{function}: {keyword_message(error)}") from error
        return _ENGINES[key]
