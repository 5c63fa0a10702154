"""Frames in and out: an input buffer's pixels as RGB, and an output picture in a buffer laid out as its caps say."""

from __future__ import annotations

from dataclasses import dataclass

from gi.repository import Gst, GstVideo

from .caps import RGB_ORDER, YUV_FORMATS
from .core import IMPORT_ERROR

if IMPORT_ERROR is None:
    import numpy as np

#: GStreamer's colour matrices that YUV input may carry, as rmbg_filter.yuv names them
_MATRICES = {GstVideo.VideoColorMatrix.BT601: "bt601", GstVideo.VideoColorMatrix.BT709: "bt709",
             GstVideo.VideoColorMatrix.BT2020: "bt2020"}


#: the buffer flags an output buffer does not take from its input: they describe the input's memory
_NOT_CARRIED = Gst.BufferFlags.TAG_MEMORY


@dataclass(frozen=True)
class Frame:
    """One input buffer's pixels (H,W,3) uint8 RGB; the timing, offsets and flags its output keeps; whether
    QoS found it late (it then gets the last alpha, if that is of its size, instead of a network run); and
    whether it is a GAP buffer (no picture: no network run, an alpha of 0)."""

    pixels: np.ndarray
    pts: int
    dts: int
    duration: int
    offset: int
    offset_end: int
    flags: int
    late: bool

    @property
    def gap(self) -> bool:
        return bool(self.flags & Gst.BufferFlags.GAP)

    @property
    def skips_network(self) -> bool:
        """A late frame (QoS) or a gap: it waits for no network run and holds no slot of the queue."""
        return self.late or self.gap


def input_frame(buffer: Gst.Buffer, info: GstVideo.VideoInfo, colour: Colour | None, late: bool) -> Frame:
    """``buffer``'s Frame: its pixels (a GAP buffer's are black: it may carry none), timing, offsets, flags;
    ``colour``: how YUV input becomes RGB (None for RGB input)."""
    gap = buffer.has_flags(Gst.BufferFlags.GAP)
    pixels = np.zeros((info.height, info.width, 3), np.uint8) if gap else rgb_pixels(buffer, info, colour)
    return Frame(pixels, buffer.pts, buffer.dts, buffer.duration, buffer.offset, buffer.offset_end,
                 int(buffer.get_flags()) & ~int(_NOT_CARRIED), late and not gap)


class ShortBuffer(ValueError):
    """A buffer holds fewer bytes than a frame of its caps; the message is one line for the bus."""


class UnsupportedColour(ValueError):
    """YUV caps whose colour matrix the conversion does not know; the message is one line for the bus."""


@dataclass(frozen=True)
class Colour:
    """How YUV input becomes RGB: the matrix (a key of ``rmbg_filter.yuv.MATRICES``), the range, the device."""

    matrix: str
    full_range: bool
    device: str


def yuv_colour(info: GstVideo.VideoInfo, device: str) -> Colour | None:
    """The Colour of ``info``'s caps (None for RGB caps); UnsupportedColour for a matrix other than BT.601, BT.709
    or BT.2020. Caps without colorimetry have GStreamer's default for their size, as ``videoconvert`` reads them."""
    if info.finfo.name not in YUV_FORMATS:
        return None
    colorimetry = info.colorimetry
    if colorimetry.matrix not in _MATRICES:
        raise UnsupportedColour(f"YUV input with the colour matrix {colorimetry.matrix.value_nick} is not taken (only "
                                "BT.601, BT.709, BT.2020); put videoconvert before rmbg")
    full_range = colorimetry.range == getattr(GstVideo.VideoColorRange, "0_255")  # a name Python cannot spell
    return Colour(_MATRICES[colorimetry.matrix], full_range, device)


def rgb_pixels(buffer: Gst.Buffer, info: GstVideo.VideoInfo, colour: Colour | None = None) -> np.ndarray:
    """The buffer's picture as (H,W,3) uint8 RGB, honouring the planes' offsets and row strides of ``info``, its
    negotiated caps: one of the formats of ``RGB_ORDER``, or of ``YUV_FORMATS`` converted as ``colour`` says;
    ShortBuffer when it holds less than a frame."""
    yuv = info.finfo.name in YUV_FORMATS
    needed = info.size if yuv else info.offset[0] + info.stride[0] * info.height
    if buffer.get_size() < needed:
        raise ShortBuffer(f"a buffer of {buffer.get_size()} bytes is smaller than a {info.width}x{info.height} "
                          f"{info.finfo.name} frame of its caps ({needed} bytes); check the element before rmbg")
    with buffer.map(Gst.MapFlags.READ) as mapped:
        data = np.frombuffer(mapped.data, np.uint8)
        if yuv:
            return _yuv_to_rgb(data, info, colour)
        channels = info.finfo.pixel_stride[0]
        rows = data[info.offset[0]:info.offset[0] + info.stride[0] * info.height]
        pixels = rows.reshape(info.height, info.stride[0])[:, :info.width * channels]
        return pixels.reshape(info.height, info.width, channels)[:, :, list(RGB_ORDER[info.finfo.name])]  # a copy


def _plane(data: np.ndarray, info: GstVideo.VideoInfo, index: int, rows: int, width: int) -> np.ndarray:
    """Plane ``index`` of a mapped frame: (rows, width) uint8, a view."""
    start = info.offset[index]
    return data[start:start + info.stride[index] * rows].reshape(rows, info.stride[index])[:, :width]


def _yuv_to_rgb(data: np.ndarray, info: GstVideo.VideoInfo, colour: Colour) -> np.ndarray:
    """An I420 or NV12 frame's planes converted to (H,W,3) uint8 RGB on ``colour.device``."""
    from rmbg_filter.yuv import yuv420_to_rgb

    height, width = info.height, info.width
    chroma_rows, chroma_width = (height + 1) // 2, (width + 1) // 2
    luma = _plane(data, info, 0, height, width)
    if info.finfo.name == "NV12":
        both = _plane(data, info, 1, chroma_rows, 2 * chroma_width)
        cb, cr = both[:, 0::2], both[:, 1::2]
    else:
        cb, cr = _plane(data, info, 1, chroma_rows, chroma_width), _plane(data, info, 2, chroma_rows, chroma_width)
    return yuv420_to_rgb(luma, cb, cr, colour.matrix, colour.full_range, colour.device)


def output_buffer(frame: Frame, picture: np.ndarray, stride: int) -> Gst.Buffer:
    """``picture`` (H,W,4), (H,W,3) or (H,W) uint8, ``frame``'s output, in a new buffer with ``frame``'s
    timing and its rows padded to ``stride`` bytes (the negotiated output caps' row stride)."""
    height = picture.shape[0]
    rows = np.zeros((height, stride), np.uint8)
    rows[:, :picture[0].size] = picture.reshape(height, -1)
    buffer = Gst.Buffer.new_wrapped(rows.tobytes())
    buffer.pts, buffer.dts, buffer.duration = frame.pts, frame.dts, frame.duration
    buffer.offset, buffer.offset_end = frame.offset, frame.offset_end
    buffer.set_flags(Gst.BufferFlags(frame.flags))
    return buffer


__all__ = ["Colour", "Frame", "ShortBuffer", "UnsupportedColour", "input_frame", "output_buffer", "rgb_pixels",
           "yuv_colour"]
