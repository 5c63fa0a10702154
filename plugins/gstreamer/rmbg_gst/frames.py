"""Frames in and out: an input buffer's pixels as RGB, and an output picture in a buffer laid out as its caps say."""

from __future__ import annotations

from dataclasses import dataclass

from gi.repository import Gst, GstVideo

from .caps import RGB_ORDER
from .core import IMPORT_ERROR

if IMPORT_ERROR is None:
    import numpy as np


@dataclass(frozen=True)
class Frame:
    """One input buffer's pixels (H,W,3) uint8 RGB, the timing its output keeps, and whether QoS found it
    late (it then gets the last alpha, if that is of its size, instead of a network run)."""

    pixels: np.ndarray
    pts: int
    dts: int
    duration: int
    offset: int
    discont: bool
    late: bool


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
    buffer.pts, buffer.dts, buffer.duration, buffer.offset = frame.pts, frame.dts, frame.duration, frame.offset
    if frame.discont:
        buffer.set_flags(Gst.BufferFlags.DISCONT)
    return buffer


__all__ = ["Frame", "ShortBuffer", "output_buffer", "rgb_pixels"]
