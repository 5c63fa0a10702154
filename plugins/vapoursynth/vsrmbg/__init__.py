"""VapourSynth filter: RMBG-1.4 background removal on a clip.

    import vsrmbg
    alpha = vsrmbg.mask(clip)            # GRAY in the clip's depth and sample type, its size and length
    clip = vsrmbg.rmbg(clip)             # the clip, alpha attached as ``_Alpha``
    merged = core.std.MaskedMerge(background, clip, vsrmbg.mask(clip), first_plane=True)

Accepts constant-format RGB and YUV clips of 8 to 16 bits or float. Frames are
converted to RGB24 for the network (YUV with the frames' ``_Matrix``, else
``matrix``); RGB24 goes in untouched, so ``mask`` gives the same alpha as
``rmbg_filter.load()`` on the same pixels. The model options are the keywords of
``rmbg_filter.ModelOptions`` (``model``, ``device``, ``dtype``, ``runtime``,
``batch_size``, ``model_size``, ``compile``); nodes with the same options share
one engine, which runs one frame at a time under its lock while VapourSynth's
own threads decode the frames ahead.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import vapoursynth as vs

from rmbg_filter import InputError, ModelOptions, OptionError, shared_engine
from rmbg_filter.errors import KEYWORDS
from rmbg_filter.options import specs

__all__ = ["mask", "rmbg"]

#: Frame properties copied from the source frame to the mask frame: timing only.
_TIMING_PROPS = ("_DurationNum", "_DurationDen", "_AbsoluteTime")


def mask(clip: vs.VideoNode, model: str | None = None, *, matrix: str = "709", **options: Any) -> vs.VideoNode:
    """The alpha of every frame of ``clip``: GRAY in the clip's own bit depth and sample type, full range
    (0 transparent; 255, 1023, 65535 or 1.0 opaque), so it serves ``std.MaskedMerge`` as it is.

    ``model`` and ``options``: the ModelOptions keywords (see ``rmbg_filter.ModelOptions``).
    ``matrix``: the YUV matrix (zimg's names: "709", "170m", "2020ncl", ...) used for frames
    that do not carry ``_Matrix``.
    """
    return _in_depth(clip, _alpha8("vsrmbg.mask", clip, model, matrix, options))


def rmbg(clip: vs.VideoNode, model: str | None = None, *, matrix: str = "709", **options: Any) -> vs.VideoNode:
    """``clip`` unchanged, with its alpha attached to every frame as ``_Alpha``.

    The alpha frame is ``mask()``'s, as VapourSynth's alpha convention asks; arguments as ``mask()``.
    """
    return vs.core.std.ClipToProp(clip, mclip=_in_depth(clip, _alpha8("vsrmbg.rmbg", clip, model, matrix, options)),
                                  prop="_Alpha")


def _signature() -> inspect.Signature:
    """mask()'s and rmbg()'s signature with every model option spelled out, for help() and IDEs."""
    keywords = [inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=spec.default,
                                  annotation=spec.type.__name__) for spec in specs() if spec.name != "model"]
    return inspect.Signature([
        inspect.Parameter("clip", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="vs.VideoNode"),
        inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation="str | None"),
        inspect.Parameter("matrix", inspect.Parameter.KEYWORD_ONLY, default="709", annotation="str"),
        *keywords,
    ], return_annotation="vs.VideoNode")


mask.__signature__ = rmbg.__signature__ = _signature()  # type: ignore[attr-defined]


def _alpha8(function: str, clip: Any, model: str | None, matrix: str, options: dict[str, Any]) -> vs.VideoNode:
    """The GRAY8 alpha clip of ``clip``; errors are vs.Error naming ``function`` (and the keyword at fault).

    The options are checked first, then the clip, then the engine is loaded (or shared).
    """
    try:
        chosen = ModelOptions.from_keywords({"model": model, **options})
        rgb = _as_rgb24(function, clip, matrix)
        remover = shared_engine(chosen)
    except (OptionError, InputError) as error:
        message = error.worded(KEYWORDS) if isinstance(error, OptionError) else str(error)
        raise vs.Error(f"{function}: {message}") from error
    blank = vs.core.std.BlankClip(clip, format=vs.GRAY8, keep=True)

    def alpha_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        pixels = np.dstack([np.asarray(f[1][plane]) for plane in range(3)])
        alpha = remover(pixels)  # the engine's lock makes VapourSynth's threads take turns
        out = f[0].copy()
        np.copyto(np.asarray(out[0]), alpha)
        out.props["_Range"] = vs.RANGE_FULL
        for name in _TIMING_PROPS:
            if name in f[1].props:
                out.props[name] = f[1].props[name]
        return out

    return vs.core.std.ModifyFrame(blank, [blank, rgb], alpha_frame)


def _in_depth(clip: vs.VideoNode, alpha: vs.VideoNode) -> vs.VideoNode:
    """The GRAY8 ``alpha`` in ``clip``'s sample type and bit depth, full range to full range."""
    family = clip.format
    if (family.sample_type, family.bits_per_sample) == (vs.INTEGER, 8):
        return alpha
    gray = vs.core.query_video_format(vs.GRAY, family.sample_type, family.bits_per_sample, 0, 0)
    return vs.core.resize.Point(alpha, format=gray.id, range_in_s="full", range_s="full")


def _as_rgb24(function: str, clip: Any, matrix: str) -> vs.VideoNode:
    """Check ``clip`` and return it as RGB24; vs.Error naming ``function`` otherwise."""
    if not isinstance(clip, vs.VideoNode):
        raise vs.Error(f"{function}: clip must be a vapoursynth.VideoNode, got {type(clip).__name__}")
    if clip.format is None or not clip.width or not clip.height:
        raise vs.Error(f"{function}: clip must have one format and size, got a variable one; "
                       "resize it to a constant format first")
    family = clip.format.color_family
    if family not in (vs.RGB, vs.YUV):
        raise vs.Error(f"{function}: clip must be RGB or YUV, got {clip.format.name}")
    if not isinstance(matrix, str) or not matrix:
        raise vs.Error(f"{function}: matrix= must be a zimg matrix name such as '709', got {matrix!r}")
    if clip.format.id == vs.RGB24:
        return clip
    if family == vs.RGB:
        return vs.core.resize.Point(clip, format=vs.RGB24)
    try:
        return vs.core.resize.Bicubic(clip, format=vs.RGB24, matrix_in_s=matrix)
    except vs.Error as error:
        raise vs.Error(f"{function}: cannot convert the clip to RGB with matrix={matrix!r}: {error}") from error
