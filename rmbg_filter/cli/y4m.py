"""YUV4MPEG2 (y4m), the format of ``ffmpeg -f yuv4mpegpipe``: header, frames, and mono output.

A stream is a header line ``YUV4MPEG2 W.. H.. F.. I.. A.. C.. X..`` then, per
frame, ``FRAME\\n`` followed by the planes. Frames are turned into RGB with
PyAV's converter, honouring the header's chroma layout and ``XCOLORRANGE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np

from ..errors import InputError
from ..memory import check_frame_size
from .avframes import fill_plane
from .rawio import read_exact

__all__ = ["SIGNATURE", "Y4mHeader", "mono_header", "read_header", "y4m_frames"]

SIGNATURE = b"YUV4MPEG2 "
MAX_LINE = 4096
#: y4m colour-space tag -> (PyAV pixel format, bytes a sample, chroma subsampling (x, y) as shifts)
COLOR_SPACES: dict[str, tuple[str, int, tuple[int, int] | None]] = {
    "420jpeg": ("yuv420p", 1, (1, 1)),
    "420paldv": ("yuv420p", 1, (1, 1)),
    "420mpeg2": ("yuv420p", 1, (1, 1)),
    "420": ("yuv420p", 1, (1, 1)),
    "422": ("yuv422p", 1, (1, 0)),
    "444": ("yuv444p", 1, (0, 0)),
    "mono": ("gray", 1, None),
    "420p10": ("yuv420p10le", 2, (1, 1)),
    "422p10": ("yuv422p10le", 2, (1, 0)),
    "444p10": ("yuv444p10le", 2, (0, 0)),
}
_RANGES = {"FULL": 2, "LIMITED": 1}  # AVColorRange: JPEG (full), MPEG (limited)


@dataclass(frozen=True)
class Y4mHeader:
    """What a y4m header says: size, rate and aspect as ``n:d`` text, colour space and range."""

    width: int
    height: int
    rate: str
    aspect: str
    color_space: str
    color_range: int

    @property
    def plane_sizes(self) -> list[tuple[int, int]]:
        """(height, width) of each plane, in samples."""
        _, _, shifts = COLOR_SPACES[self.color_space]
        planes = [(self.height, self.width)]
        if shifts is not None:
            chroma = (-(-self.height >> shifts[1]), -(-self.width >> shifts[0]))  # rounded up
            planes += [chroma, chroma]
        return planes

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame's planes (the FRAME line excluded)."""
        sample = COLOR_SPACES[self.color_space][1]
        return sum(h * w for h, w in self.plane_sizes) * sample


def read_header(stream: BinaryIO, start: bytes = b"") -> Y4mHeader:
    """Parse the header line; ``start`` is what was already read of it. InputError if malformed."""
    line = bytearray(start)
    while not line.endswith(b"\n"):
        byte = stream.read(1)
        if not byte or len(line) > MAX_LINE:
            raise InputError("y4m header is cut short or too long; feed the whole stream of ffmpeg -f yuv4mpegpipe")
        line += byte
    if not line.startswith(SIGNATURE):
        raise InputError("stdin is not a y4m stream (no YUV4MPEG2 signature)")
    fields = {token[:1]: token[1:] for token in line[len(SIGNATURE):].decode("ascii", "replace").split()}
    extras = dict(token[1:].partition("=")[::2] for token in line.decode("ascii", "replace").split()
                  if token.startswith("X"))
    try:
        width, height = int(fields["W"]), int(fields["H"])
    except (KeyError, ValueError) as error:
        raise InputError(f"y4m header lacks a valid width and height: {line.decode(errors='replace').strip()}") \
            from error
    check_frame_size(width, height, "y4m frame size")
    color_space = fields.get("C", "420jpeg")
    if color_space not in COLOR_SPACES:
        raise InputError(f"y4m colour space C{color_space} is not supported; "
                         f"use one of {', '.join(COLOR_SPACES)} (ffmpeg -pix_fmt yuv420p)")
    if fields.get("I", "p") not in ("p", "?"):
        raise InputError(f"y4m interlacing I{fields['I']} is not supported; deinterlace first (ffmpeg -vf bwdif)")
    # "420jpeg" names the chroma siting, not the range: limited unless XCOLORRANGE=FULL, as ffmpeg reads it
    color_range = _RANGES.get(extras.get("COLORRANGE", ""), _RANGES["LIMITED"])
    return Y4mHeader(width, height, fields.get("F", "25:1"), fields.get("A", "1:1"), color_space, color_range)


def y4m_frames(stream: BinaryIO, header: Y4mHeader) -> Iterator[np.ndarray]:
    """Yield each frame as (H,W,3) uint8 RGB. InputError on a cut or malformed frame."""
    pixel_format = COLOR_SPACES[header.color_space][0]
    index = 0
    while True:
        tag = read_exact(stream, 5)
        if not tag:
            return
        if tag != b"FRAME":
            raise InputError(f"y4m frame {index} does not start with FRAME; the stream is corrupt")
        _skip_line(stream, index)
        data = read_exact(stream, header.frame_bytes)
        if len(data) < header.frame_bytes:
            raise InputError(f"stdin ended inside frame {index}: got {len(data)} of {header.frame_bytes} bytes")
        yield _to_rgb(data, header, pixel_format)
        index += 1


def _skip_line(stream: BinaryIO, index: int) -> None:
    """Skip the frame parameters up to and including the newline."""
    for _ in range(MAX_LINE):
        byte = stream.read(1)
        if byte == b"\n":
            return
        if not byte:
            break
    raise InputError(f"y4m frame {index} header is cut short or too long; the stream is corrupt")


def _to_rgb(data: bytearray, header: Y4mHeader, pixel_format: str) -> np.ndarray:
    """Convert one frame's planes to (H,W,3) uint8 RGB with the header's range, as ffmpeg would."""
    frame = av.VideoFrame(header.width, header.height, pixel_format)
    frame.color_range = header.color_range
    dtype = np.dtype("<u2") if COLOR_SPACES[header.color_space][1] == 2 else np.dtype(np.uint8)
    offset = 0
    for plane, (rows, columns) in zip(frame.planes, header.plane_sizes, strict=True):
        fill_plane(plane, np.frombuffer(data, dtype, rows * columns, offset).reshape(rows, columns))
        offset += rows * columns * dtype.itemsize
    return frame.to_ndarray(format="rgb24", interpolation="BICUBIC")  # ffmpeg's default scaler


def mono_header(width: int, height: int, rate: str, aspect: str) -> bytes:
    """The header of a y4m stream of full-range gray frames (the alpha)."""
    return f"YUV4MPEG2 W{width} H{height} F{rate} Ip A{aspect} Cmono XCOLORRANGE=FULL\n".encode("ascii")
