"""``rmbg-filter pipe``: raw or y4m frames on stdin, raw or y4m frames on stdout, frame for frame.

Each output frame is written and flushed as soon as its alpha is ready, so
``ffmpeg ... - | rmbg-filter pipe ... | ffmpeg ... -i -`` streams.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from ..compositing import OutputMode, composite, read_rgb
from ..errors import InputError
from ..memory import check_frame_size, check_frames
from ..options import QualityOptions
from .rawio import read_exact
from .y4m import SIGNATURE, mono_header, read_header, y4m_frames

if TYPE_CHECKING:
    from ..engine import BackgroundRemover

__all__ = ["PIXEL_FORMATS", "PipeOptions", "parse_size", "run_pipe"]

#: ffmpeg pixel format -> (bytes a pixel, channel indices that give R, G, B)
PIXEL_FORMATS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb24": (3, (0, 1, 2)),
    "bgr24": (3, (2, 1, 0)),
    "rgba": (4, (0, 1, 2)),
    "bgra": (4, (2, 1, 0)),
    "gray": (1, (0, 0, 0)),
}
_SIZE = re.compile(r"^(\d+)x(\d+)$")
# How long an interrupted pipe waits for its reading thread: a read of a stdin that stays
# open and silent never returns, and is left behind (it holds no lock, see main's raw stdin).
STDIN_READ_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class PipeOptions:
    """What the command line asked of the pipe (``size``/``pix_fmt`` None when not given)."""

    size: tuple[int, int] | None
    pix_fmt: str | None
    mode: OutputMode
    y4m_out: bool
    quality: QualityOptions = field(default_factory=QualityOptions)
    #: the engine's batch size, for the memory check made before the model is loaded
    batch_size: int = 1


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (width, height); ValueError if malformed or too large to be read (``memory.check_frame_size``)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"size must be WIDTHxHEIGHT such as 1280x720, got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    try:
        check_frame_size(width, height, "size")
    except InputError as error:
        raise ValueError(str(error)) from error
    return width, height


def raw_frames(stream: BinaryIO, width: int, height: int, pix_fmt: str, start: bytes = b"") -> Iterator[np.ndarray]:
    """Yield (H,W,3) uint8 RGB frames of raw ``pix_fmt`` data; ``start`` is data already read.

    A stream that ends inside a frame raises InputError after the complete ones.
    """
    channels, order = PIXEL_FORMATS[pix_fmt]
    frame_bytes = width * height * channels
    index = 0
    while True:  # ``start`` may hold more than a frame: a 1x1 rgb24 frame is 3 bytes, the y4m probe reads 10
        data = start[:frame_bytes] + read_exact(stream, frame_bytes - len(start[:frame_bytes]))
        start = start[frame_bytes:]
        if not data:
            return
        if len(data) < frame_bytes:
            raise InputError(f"stdin ended inside frame {index}: got {len(data)} of {frame_bytes} bytes "
                             f"(is --size {width}x{height} --pix-fmt {pix_fmt} right?)")
        pixels = np.frombuffer(data, np.uint8).reshape(height, width, channels)
        yield pixels[..., list(order)]  # a fresh (H,W,3) RGB array
        index += 1


def run_pipe(load_remover: Callable[[], BackgroundRemover], options: PipeOptions, stdin: BinaryIO,
             stdout: BinaryIO) -> int:
    """Filter every frame of ``stdin`` to ``stdout``; returns the number of frames written.

    The stream's header and the options are checked before ``load_remover``
    loads the model. BrokenPipeError (the reader went away) propagates.
    """
    start = read_exact(stdin, len(SIGNATURE))
    if start == SIGNATURE:
        header = read_header(stdin, start)
        if options.size not in (None, (header.width, header.height)):
            raise InputError(f"--size disagrees with the y4m header ({header.width}x{header.height}); drop --size")
        if options.pix_fmt is not None:
            raise InputError("--pix-fmt does not apply to y4m input (the header says it); drop --pix-fmt")
        width, height, rate, aspect = header.width, header.height, header.rate, header.aspect
        frames = y4m_frames(stdin, header)
    elif options.size is None:
        raise InputError("raw input needs --size WxH (or feed y4m: ffmpeg -f yuv4mpegpipe -)")
    else:
        (width, height), rate, aspect = options.size, "25:1", "1:1"
        frames = raw_frames(stdin, width, height, options.pix_fmt or "rgb24", bytes(start))
    check_frames(width, height, options.batch_size, options.quality, host_finishing=False)  # the engine: again
    if options.y4m_out and options.mode.kind != "alpha":
        raise InputError("--out-format y4m carries --output alpha only; use raw for rgba and composites")
    background = None
    if options.mode.image is not None:
        background = read_rgb(options.mode.image, (width, height))
    remover = load_remover()
    if options.y4m_out:
        stdout.write(mono_header(width, height, rate, aspect))
    written = 0
    quality = options.quality
    for frame, alpha in remover.stream_tagged(((frame, frame) for frame in frames), quality=quality,
                                              read_wait=STDIN_READ_WAIT_SECONDS):
        if options.y4m_out:
            stdout.write(b"FRAME\n")
        stdout.write(composite(frame, alpha, options.mode, background, decontaminate=quality.decontaminate).tobytes())
        stdout.flush()
        written += 1
    stdout.flush()
    return written

