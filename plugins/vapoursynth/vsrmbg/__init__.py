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
own threads decode the frames ahead. The quality options are the keywords of
``rmbg_filter.QualityOptions`` (``temporal_radius``, ``normalize``, ``refine``,
``refine_radius``, ``refine_eps``, ``decontaminate``, ``reuse_threshold``).

The work is split into clips that VapourSynth caches: the frames as the network
sees them (RGBS at the model size), the network's outputs (GRAYS at the model
size; with ``reuse_threshold``, a still frame's is an earlier frame's), and the
alpha, whose frame n asks for frames n-R..n+R of the first two. So random access,
any order and any thread count give the alphas that ``rmbg-filter video`` gives
for the same frames (with ``batch_size`` 1), and no network output is computed
twice while it stays in the cache.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
import vapoursynth as vs

from rmbg_filter import InputError, OptionError, shared_engine
from rmbg_filter.decontaminate import decontaminated
from rmbg_filter.errors import KEYWORDS
from rmbg_filter.finishing import finish
from rmbg_filter.options import REUSE_SPAN, QualityOptions, all_specs, split_keywords
from rmbg_filter.temporal import Neighbour, motion_cells, needs_network, psnr, stabilise

__all__ = ["mask", "rmbg"]

#: Frame properties copied from the source frame to the mask frame: timing only.
_TIMING_PROPS = ("_DurationNum", "_DurationDen", "_AbsoluteTime")
#: zimg's matrix names that turn YUV into RGB by themselves (the others need more colorimetry, or are not YUV's)
_YUV_MATRICES = ("709", "170m", "470bg", "240m", "fcc", "ycgco", "2020ncl")


def mask(clip: vs.VideoNode, model: str | None = None, *, matrix: str = "709", **options: Any) -> vs.VideoNode:
    """The alpha of every frame of ``clip``: GRAY in the clip's own bit depth and sample type, full range
    (0 transparent; 255, 1023, 65535 or 1.0 opaque), so it serves ``std.MaskedMerge`` as it is.

    ``model`` and ``options``: the ModelOptions and QualityOptions keywords (see
    ``rmbg_filter.ModelOptions``, ``rmbg_filter.QualityOptions``); ``decontaminate`` has no
    effect on a mask. ``matrix``: the YUV matrix (zimg's names: "709", "170m", "2020ncl", ...)
    used for frames that do not carry ``_Matrix``.
    """
    return _in_depth(clip, _alpha8("vsrmbg.mask", clip, model, matrix, options)[0])


def rmbg(clip: vs.VideoNode, model: str | None = None, *, matrix: str = "709", **options: Any) -> vs.VideoNode:
    """``clip`` with its alpha attached to every frame as ``_Alpha``.

    The alpha frame is ``mask()``'s, as VapourSynth's alpha convention asks; arguments as ``mask()``.
    The clip's pixels are unchanged, unless ``decontaminate=True``: then they are the subject's
    estimated own colours (converted back to the clip's format with ``matrix`` for YUV).
    """
    alpha, rgb, quality = _alpha8("vsrmbg.rmbg", clip, model, matrix, options)
    if quality.decontaminate:
        clip = _back_to(clip, vs.core.std.ModifyFrame(rgb, [rgb, alpha], _decontaminated_frame), matrix)
    return vs.core.std.ClipToProp(clip, mclip=_in_depth(clip, alpha), prop="_Alpha")


def _signature() -> inspect.Signature:
    """mask()'s and rmbg()'s signature with every model and quality option spelled out, for help() and IDEs."""
    keywords = [inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=spec.default,
                                  annotation=spec.type.__name__) for spec in all_specs() if spec.name != "model"]
    return inspect.Signature([
        inspect.Parameter("clip", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="vs.VideoNode"),
        inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation="str | None"),
        inspect.Parameter("matrix", inspect.Parameter.KEYWORD_ONLY, default="709", annotation="str"),
        *keywords,
    ], return_annotation="vs.VideoNode")


mask.__signature__ = rmbg.__signature__ = _signature()  # type: ignore[attr-defined]


def _alpha8(function: str, clip: Any, model: str | None, matrix: str, options: dict[str, Any]
            ) -> tuple[vs.VideoNode, vs.VideoNode, QualityOptions]:
    """The GRAY8 alpha clip of ``clip``, the RGB24 clip it was computed from, and the quality options;
    errors are vs.Error naming ``function`` (and the keyword at fault).

    The options are checked first, then the clip, then the engine is loaded (or shared) and the
    memory its frames need is checked.
    """
    try:
        chosen, quality = split_keywords({"model": model, **options})
        rgb = _as_rgb24(function, clip, matrix)
        remover = shared_engine(chosen)
        remover.check_frames(rgb.height, rgb.width, quality)  # frames too large for memory: refused now
    except (OptionError, InputError) as error:
        message = error.worded(KEYWORDS) if isinstance(error, OptionError) else str(error)
        raise vs.Error(f"{function}: {message}") from error
    side, device = remover.model_size, remover.backend.device
    views = vs.core.std.BlankClip(rgb, width=side[1], height=side[0], format=vs.RGBS, keep=True)

    def view_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:  # computed on the device, as streams do
        pixels = torch.from_numpy(_rgb(f[1]))[None].to(device)
        return _filled(f[0], remover.views(pixels)[0])

    views = vs.core.std.ModifyFrame(views, [views, rgb], view_frame)
    blank = vs.core.std.BlankClip(views, format=vs.GRAYS, keep=True)

    def matte_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        return _filled(f[0], remover.mattes(_tensor(f[1]).to(device))[0])

    mattes = vs.core.std.ModifyFrame(blank, [blank, views], matte_frame)
    if quality.reuse_threshold:
        mattes = _reusing(mattes, views, quality.reuse_threshold)
    radius, length = quality.temporal_radius, clip.num_frames
    offsets = range(-radius, radius + 1)
    neighbours = [node for offset in offsets for node in (_shifted(views, offset), _shifted(mattes, offset))]
    blank = vs.core.std.BlankClip(clip, format=vs.GRAY8, keep=True)

    def alpha_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        pixels = torch.from_numpy(_rgb(f[1]))[None].to(device)
        window = []
        for index, offset in enumerate(offsets):
            view, matte = _tensor(f[2 + 2 * index]).to(device), _tensor(f[3 + 2 * index]).to(device)
            window.append((view, Neighbour(tuple(pixels.shape[1:3]), motion_cells(view), matte))
                          if 0 <= n + offset < length else None)
        with torch.inference_mode():
            stabilised = stabilise([item[1] if item else None for item in window]) if radius else window[0][1].matte
            alpha = finish(pixels, window[radius][0], stabilised, quality)[0].cpu().numpy()
        out = f[0].copy()
        np.copyto(np.asarray(out[0]), alpha)
        out.props["_Range"] = vs.RANGE_FULL
        for name in _TIMING_PROPS:
            if name in f[1].props:
                out.props[name] = f[1].props[name]
        return out

    return vs.core.std.ModifyFrame(blank, [blank, rgb, *neighbours], alpha_frame), rgb, quality


def _rgb(frame: vs.VideoFrame) -> np.ndarray:
    """An RGB24 frame's pixels (H,W,3) uint8."""
    return np.dstack([np.asarray(frame[plane]) for plane in range(3)])


def _filled(frame: vs.VideoFrame, planes: torch.Tensor) -> vs.VideoFrame:
    """A copy of float ``frame`` with its planes set from ``planes`` (C,h,w) float32 on any device."""
    out = frame.copy()
    for index, plane in enumerate(planes.cpu().numpy()):
        np.copyto(np.asarray(out[index]), plane)
    return out


def _tensor(frame: vs.VideoFrame) -> torch.Tensor:
    """A float frame's planes as one tensor (1,C,h,w) float32."""
    return torch.from_numpy(np.stack([np.asarray(frame[plane]) for plane in range(frame.format.num_planes)]))[None]


def _shifted(clip: vs.VideoNode, offset: int) -> vs.VideoNode:
    """``clip`` whose frame n is frame n+offset of ``clip``, clamped to its first and last frame; same length."""
    length = clip.num_frames
    if offset == 0 or abs(offset) >= length:
        return clip if offset == 0 else (clip[0] if offset < 0 else clip[-1]) * length
    return clip[0] * -offset + clip[:offset] if offset < 0 else clip[offset:] + clip[-1] * offset


def _reusing(mattes: vs.VideoNode, views: vs.VideoNode, threshold: float) -> vs.VideoNode:
    """``mattes`` where each frame that ``temporal.needs_network`` lets reuse takes the last run frame's.

    Frame m's PSNR to frame m-1 is a property of a tiny clip; frame n looks back at most REUSE_SPAN-1
    frames for the last that runs and takes that frame of ``mattes`` (which VapourSynth caches).
    """
    previous = _shifted(views, -1)
    tiny = vs.core.std.BlankClip(views, width=1, height=1, format=vs.GRAY8, keep=True)

    def similarity(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        out = f[0].copy()
        out.props["RmbgPSNR"] = 0.0 if n == 0 else min(psnr(_tensor(f[1]), _tensor(f[2])), 1e9)
        return out

    scores = vs.core.std.ModifyFrame(tiny, [tiny, views, previous], similarity)
    earlier = [_shifted(mattes, -back) for back in range(REUSE_SPAN)]

    def pick(n: int, f: list[vs.VideoFrame]) -> vs.VideoNode:
        back = 0
        while not needs_network(n - back, f[back].props["RmbgPSNR"], threshold):
            back += 1
        return earlier[back]

    return vs.core.std.FrameEval(mattes, pick, prop_src=[_shifted(scores, -back) for back in range(REUSE_SPAN)])


def _decontaminated_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
    """The RGB24 frame f[0] with its colours decontaminated under the GRAY8 alpha f[1]."""
    colours = decontaminated(_rgb(f[0]), np.asarray(f[1][0]))
    out = f[0].copy()
    for plane in range(3):
        np.copyto(np.asarray(out[plane]), colours[..., plane])
    return out


def _back_to(clip: vs.VideoNode, rgb: vs.VideoNode, matrix: str) -> vs.VideoNode:
    """RGB24 ``rgb`` in ``clip``'s format (YUV with the frames' ``_Matrix``, else ``matrix``)."""
    if clip.format.id == vs.RGB24:
        return rgb
    if clip.format.color_family == vs.RGB:
        return vs.core.resize.Point(rgb, format=clip.format.id)
    return vs.core.resize.Bicubic(rgb, format=clip.format.id, matrix_s=matrix)


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
    if clip.format.sample_type == vs.INTEGER and clip.format.bits_per_sample > 16:
        raise vs.Error(f"{function}: clip must have 8 to 16 bits or float samples, got {clip.format.name}")
    if not isinstance(matrix, str) or not matrix:
        raise vs.Error(f"{function}: matrix= must be a zimg matrix name such as '709', got {matrix!r}")
    if family == vs.YUV and matrix not in _YUV_MATRICES:
        raise vs.Error(f"{function}: matrix= must be one of {', '.join(_YUV_MATRICES)} for a YUV clip, got {matrix!r}")
    if clip.format.id == vs.RGB24:
        return clip
    if family == vs.RGB:
        return vs.core.resize.Point(clip, format=vs.RGB24)
    try:
        return vs.core.resize.Bicubic(clip, format=vs.RGB24, matrix_in_s=matrix)
    except vs.Error as error:
        raise vs.Error(f"{function}: cannot convert the clip to RGB with matrix={matrix!r}: {error}") from error
