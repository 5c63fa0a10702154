"""Frames in and out: an input buffer's pixels as RGB, and an output picture in a buffer laid out as its caps say."""

from __future__ import annotations

from dataclasses import dataclass

from gi.repository import Gst, GstVideo

from .caps import RGB_ORDER
from .core import IMPORT_ERROR

if IMPORT_ERROR is None:
    import numpy as np


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


def input_frame(buffer: Gst.Buffer, info: GstVideo.VideoInfo, late: bool) -> Frame:
    """``buffer``'s Frame: its pixels (a GAP buffer's are black: it may carry none), timing, offsets, flags."""
    gap = buffer.has_flags(Gst.BufferFlags.GAP)
    pixels = np.zeros((info.height, info.width, 3), np.uint8) if gap else rgb_pixels(buffer, info)
    return Frame(pixels, buffer.pts, buffer.dts, buffer.duration, buffer.offset, buffer.offset_end,
                 int(buffer.get_flags()) & ~int(_NOT_CARRIED), late and not gap)


class ShortBuffer(ValueError):
    """A buffer holds fewer bytes than a frame of its caps; the message is one line for the bus."""


def rgb_pixels(buffer: Gst.Buffer, info: GstVideo.VideoInfo) -> np.ndarray:
    """The buffer's picture as (H,W,3) uint8 RGB, honouring the row stride of ``info``, its negotiated caps
    (one of the formats of ``RGB_ORDER``); ShortBuffer when it holds less than a frame."""
    channels = info.finfo.pixel_stride[0]
    order = list(RGB_ORDER[info.finfo.name])
    needed = info.offset[0] + info.stride[0] * info.height
    if buffer.get_size() < needed:
        raise ShortBuffer(f"a buffer of {buffer.get_size()} bytes is smaller than a {info.width}x{info.height} "
                          f"{info.finfo.name} frame of its caps ({needed} bytes); check the element before rmbg")
    with buffer.map(Gst.MapFlags.READ) as mapped:
        rows = np.frombuffer(mapped.data, np.uint8, count=info.stride[0] * info.height, offset=info.offset[0])
        pixels = rows.reshape(info.height, info.stride[0])[:, :info.width * channels]
        return pixels.reshape(info.height, info.width, channels)[:, :, order]  # fancy indexing copies


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


__all__ = ["Frame", "ShortBuffer", "input_frame", "output_buffer", "rgb_pixels"]
