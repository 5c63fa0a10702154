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
one engine, which runs ``batch_size`` consecutive frames a call (a group; see
``_grouped_mattes``) while VapourSynth's other threads decode ahead. The quality
options are the keywords of ``rmbg_filter.QualityOptions`` (``temporal_radius``,
``normalize``, ``refine``, ``refine_radius``, ``refine_eps``, ``decontaminate``,
``reuse_threshold``).

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
import threading
from collections.abc import Callable
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

#: Frame properties copied from the source frame to the mask frame: timing, field order, aspect, chroma siting.
_KEPT_PROPS = ("_DurationNum", "_DurationDen", "_AbsoluteTime", "_FieldBased", "_SARNum", "_SARDen",
               "_ChromaLocation")
#: colorimetry a GRAY mask does not have: removed at every depth (resize adds them to deeper masks)
_COLOUR_PROPS = ["_Matrix", "_Transfer", "_Primaries"]
#: what ``matrix=`` takes (vstools' MatrixLike): an H.273 matrix code (an int or IntEnum) or a name
MatrixLike = int | str
#: H.273's matrix codes that turn YUV into RGB by themselves -> their names (zimg's first, then ITU/SMPTE's and
#: vstools' Matrix members'), matched in any case
_YUV_MATRICES = {1: ("709", "bt709"), 4: ("fcc",), 5: ("470bg", "bt470bg", "bt470_bg", "bt601"),
                 6: ("170m", "smpte170m", "st170_m"), 7: ("240m", "smpte240m", "st240_m"), 8: ("ycgco",),
                 9: ("2020ncl", "bt2020ncl", "bt2020_ncl", "bt2020")}


def mask(clip: vs.VideoNode, ref: vs.VideoNode | None = None, *, model: str | None = None,
         matrix: MatrixLike = "709", **options: Any) -> vs.VideoNode:
    """The alpha of every frame of ``clip``: GRAY in the clip's own bit depth and sample type, full range
    (0 transparent; 255, 1023, 65535 or 1.0 opaque), so it serves ``std.MaskedMerge`` as it is.

    ``model`` and ``options``: the ModelOptions and QualityOptions keywords (see
    ``rmbg_filter.ModelOptions``, ``rmbg_filter.QualityOptions``); ``decontaminate`` has no
    effect on a mask. ``matrix``: the YUV matrix used for frames that do not carry ``_Matrix``, as
    vstools' MatrixLike: an int or IntEnum of H.273's codes (``1``, ``vstools.Matrix.BT709``), or a name
    (zimg's "709", "170m", "2020ncl", ..., or "bt709", "smpte170m", "bt2020ncl", ... in any case). Every
    argument after ``clip`` and ``ref`` is a keyword.

    The mask keeps the clip's ``_FieldBased``, ``_SARNum``/``_SARDen``, ``_ChromaLocation`` and timing
    properties, says ``_Range`` full, and carries no ``_Matrix``, ``_Transfer`` or ``_Primaries``
    (a mask has no colour), at every depth.

    ``ref`` is there for vs-jetpack's mask-function protocol, ``mask(clip, ref)`` (as in
    ``normalize_mask(vsrmbg.mask, clip, ref)``): it is not used; the mask is ``clip``'s.
    """
    _check_ref("vsrmbg.mask", ref)
    return _in_depth(clip, _alpha8("vsrmbg.mask", clip, model, matrix, options)[0])


def rmbg(clip: vs.VideoNode, ref: vs.VideoNode | None = None, *, model: str | None = None,
         matrix: MatrixLike = "709", **options: Any) -> vs.VideoNode:
    """``clip`` with its alpha attached to every frame as ``_Alpha``.

    The alpha frame is ``mask()``'s, as VapourSynth's alpha convention asks; arguments as ``mask()``.
    The clip's pixels are unchanged, unless ``decontaminate=True``: then they are the subject's
    estimated own colours (converted back to the clip's format with ``matrix`` for YUV).
    """
    _check_ref("vsrmbg.rmbg", ref)
    alpha, rgb, quality = _alpha8("vsrmbg.rmbg", clip, model, matrix, options)
    if quality.decontaminate:
        clip = _back_to(clip, vs.core.std.ModifyFrame(rgb, [rgb, alpha], _decontaminated_frame), _matrix_code(matrix))
    return vs.core.std.ClipToProp(clip, mclip=_in_depth(clip, alpha), prop="_Alpha")


def _check_ref(function: str, ref: Any) -> None:
    """vs.Error unless ``ref`` is None or a clip (vs-jetpack's mask functions are called as ``mask(clip, ref)``)."""
    if ref is not None and not isinstance(ref, vs.VideoNode):
        raise vs.Error(f"{function}: the second argument is vs-jetpack's ref clip (not used), got "
                       f"{type(ref).__name__}; pass the model as model= (every option is a keyword)")


def _signature() -> inspect.Signature:
    """mask()'s and rmbg()'s signature with every model and quality option spelled out, for help() and IDEs."""
    keywords = [inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=spec.default,
                                  annotation=spec.type.__name__) for spec in all_specs() if spec.name != "model"]
    return inspect.Signature([
        inspect.Parameter("clip", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="vs.VideoNode"),
        inspect.Parameter("ref", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                          annotation="vs.VideoNode | None"),
        inspect.Parameter("model", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="str | None"),
        inspect.Parameter("matrix", inspect.Parameter.KEYWORD_ONLY, default="709", annotation="int | str"),
        *keywords,
    ], return_annotation="vs.VideoNode")


mask.__signature__ = rmbg.__signature__ = _signature()  # type: ignore[attr-defined]


def _alpha8(function: str, clip: Any, model: str | None, matrix: MatrixLike, options: dict[str, Any]
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
        raise vs.Error(f"{function}: {message}") from None  # one line: the cause is in the message
    side, device = remover.model_size, remover.backend.device
    views = vs.core.std.BlankClip(rgb, width=side[1], height=side[0], format=vs.RGBS, keep=True)

    def view_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:  # computed on the device, as streams do
        pixels = torch.from_numpy(_rgb(f[1]))[None].to(device)
        return _filled(f[0], remover.views(pixels)[0])

    views = vs.core.std.ModifyFrame(views, [views, rgb], view_frame)
    blank = vs.core.std.BlankClip(views, format=vs.GRAYS, keep=True)

    mattes = _grouped_mattes(blank, views, remover.mattes, remover.batch_size, device)
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
        source = f[-1].props  # the clip's own frame: converting YUV to RGB drops _ChromaLocation
        for name in _KEPT_PROPS:
            if name in source:
                out.props[name] = source[name]
        return out

    return vs.core.std.ModifyFrame(blank, [blank, rgb, *neighbours, clip], alpha_frame), rgb, quality


def _grouped_mattes(blank: vs.VideoNode, views: vs.VideoNode, mattes: Callable[[torch.Tensor], torch.Tensor],
                    group: int, device: torch.device) -> vs.VideoNode:
    """The network's outputs (``blank``'s GRAYS clip) of ``views``, run ``group`` frames a call (one frame a call,
    with nothing kept, for ``group`` 1).

    VapourSynth calls a Python filter for one frame at a time, so frames asked for together cannot
    meet in one call; instead frame n's call runs the frames of its group (n - n % group and the
    group - 1 after it, those in the clip) as one batch and keeps the others' outputs until they are
    asked for (at most 4 groups' worth: random access may never ask). Each output is within 1 level of
    a batch of one (tests/test_vapoursynth.py), whichever frame of its group came first.
    """
    length = views.num_frames
    neighbours = [_shifted(views, offset) for offset in range(-(group - 1), group)]
    kept: dict[int, torch.Tensor] = {}
    lock = threading.Lock()  # VapourSynth may call for frames of other instances at once

    def matte_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        with lock:
            output = kept.pop(n, None)
        if output is None:
            members = range(n - n % group, min(n - n % group + group, length))
            outputs = mattes(torch.cat([_tensor(f[group + m - n]) for m in members]).to(device))
            output = outputs[n - members[0]]
            with lock:
                kept.update((m, outputs[m - members[0]]) for m in members if m != n)
                for stale in list(kept)[:max(0, len(kept) - 4 * group)]:
                    del kept[stale]
        return _filled(f[0], output)

    return vs.core.std.ModifyFrame(blank, [blank, *neighbours], matte_frame)


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


def _back_to(clip: vs.VideoNode, rgb: vs.VideoNode, matrix: int) -> vs.VideoNode:
    """RGB24 ``rgb`` in ``clip``'s format (YUV with the frames' ``_Matrix``, else ``matrix``)."""
    if clip.format.id == vs.RGB24:
        return rgb
    if clip.format.color_family == vs.RGB:
        return vs.core.resize.Point(rgb, format=clip.format.id)
    return vs.core.resize.Bicubic(rgb, format=clip.format.id, matrix=matrix)


def _in_depth(clip: vs.VideoNode, alpha: vs.VideoNode) -> vs.VideoNode:
    """The GRAY8 ``alpha`` in ``clip``'s sample type and bit depth, full range to full range."""
    family = clip.format
    if (family.sample_type, family.bits_per_sample) == (vs.INTEGER, 8):
        return alpha
    gray = vs.core.query_video_format(vs.GRAY, family.sample_type, family.bits_per_sample, 0, 0)
    deeper = vs.core.resize.Point(alpha, format=gray.id, range_in_s="full", range_s="full")
    # resize drops a GRAY frame's _ChromaLocation and adds colorimetry: the 8-bit mask's properties are the rule
    kept = vs.core.std.CopyFrameProps(deeper, alpha, props=list(_KEPT_PROPS))
    return vs.core.std.RemoveFrameProps(kept, _COLOUR_PROPS)


def _matrix_code(matrix: Any) -> int | None:
    """``matrix=`` (MatrixLike) as an H.273 code that turns YUV into RGB; None when it is not one."""
    if isinstance(matrix, int) and not isinstance(matrix, bool):
        return int(matrix) if int(matrix) in _YUV_MATRICES else None
    if isinstance(matrix, str):
        return next((code for code, names in _YUV_MATRICES.items() if matrix.lower() in names), None)
    return None


#: a frame's _Matrix that the conversion to RGB can use: the YUV matrices, and 2 (unspecified: matrix= is used)
_USABLE_FRAME_MATRICES = frozenset(_YUV_MATRICES) | {2}


def _matrix_checked(function: str, clip: vs.VideoNode) -> vs.VideoNode:
    """``clip`` (YUV), each frame's ``_Matrix`` checked before resize reads it: a vs.Error naming ``function``,
    the frame and the fix, where zimg would say only "Resize error 3074" (a frame's property outranks
    ``matrix_in``). VapourSynth prints a Python callback's traceback above the message."""
    def checked(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        code = f.props.get("_Matrix", 2)
        if code not in _USABLE_FRAME_MATRICES:
            usable = ", ".join(str(code) for code in sorted(_USABLE_FRAME_MATRICES))
            raise vs.Error(f"{function}: frame {n} has _Matrix={code}, which the conversion to RGB cannot use "
                           f"(usable: {usable}; 2 takes matrix=); set the clip's matrix with "
                           "std.SetFrameProps(_Matrix=...) or remove it with std.RemoveFrameProps(props='_Matrix')")
        return f

    return vs.core.std.ModifyFrame(clip, clip, checked)


def _as_rgb24(function: str, clip: Any, matrix: Any) -> vs.VideoNode:
    """Check ``clip`` and ``matrix`` and return the clip as RGB24; vs.Error naming ``function`` otherwise."""
    if not isinstance(clip, vs.VideoNode):
        raise vs.Error(f"{function}: clip must be a vapoursynth.VideoNode, got {type(clip).__name__}")
    # a variable format is None before R81 and the UNDEFINED family (format id 0) from R81 on
    if clip.format is None or clip.format.color_family == vs.UNDEFINED or not clip.width or not clip.height:
        raise vs.Error(f"{function}: clip must have one format and size, got a variable one; "
                       "resize it to a constant format first")
    family = clip.format.color_family
    if family not in (vs.RGB, vs.YUV):
        raise vs.Error(f"{function}: clip must be RGB or YUV, got {clip.format.name}")
    if clip.format.sample_type == vs.INTEGER and clip.format.bits_per_sample > 16:
        raise vs.Error(f"{function}: clip must have 8 to 16 bits or float samples, got {clip.format.name}")
    code = _matrix_code(matrix)
    if code is None:
        names = ", ".join(f"{code} ({'/'.join(names)})" for code, names in _YUV_MATRICES.items())
        raise vs.Error(f"{function}: matrix= must be a YUV matrix as vstools' MatrixLike: one of {names}, "
                       f"got {matrix!r}")
    if clip.format.id == vs.RGB24:
        return clip
    if family == vs.RGB:
        return vs.core.resize.Point(clip, format=vs.RGB24)
    try:
        return vs.core.resize.Bicubic(_matrix_checked(function, clip), format=vs.RGB24, matrix_in=code)
    except vs.Error as error:
        raise vs.Error(f"{function}: cannot convert the clip to RGB with matrix={matrix!r}: {error}") from None
