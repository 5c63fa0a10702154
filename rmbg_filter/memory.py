"""What a job will need in memory, checked before it is allocated: absurd requests are one line, not a crash.

Three checks, made as early as each adapter can make them:

- ``check_frame_size``: a frame's declared size (a y4m header, ``--size``, a picture's
  header before it is decoded) is at most MAX_SIDE a side and MAX_PIXELS in all, and its
  pixels fit in the memory available.
- ``check_network``: a batch of the network's inputs (``batch_size`` frames at ``model_size``)
  fits, when the network runs in this machine's memory (the CPU).
- ``check_frames``: the frames in flight and the finishing work (refinement and
  decontamination work on full-resolution float maps) fit beside the network.

The estimates are measured, not exact (see the constants); they refuse what cannot
run, not what would run slowly. Importing this module loads no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError, Mention, OptionError
from .options import ModelOptions, QualityOptions

__all__ = ["MAX_PIXELS", "MAX_SIDE", "available_bytes", "check_frame_size", "check_frames", "check_network",
           "frame_bytes", "network_bytes"]

#: the longest side of a frame any reader accepts
MAX_SIDE = 16384
#: the most pixels a frame may have: Pillow's decompression-bomb limit (2 x Image.MAX_IMAGE_PIXELS), for every input
MAX_PIXELS = 178_956_970
#: the network's working memory a pixel of its input (model_size squared), a frame of a batch, float32 on the CPU:
#: peak RSS of a batch of 4 at 1024 less that of a batch of 1 is about 830 MB a frame (torch 2.13, 2-core Xeon)
NETWORK_BYTES_PER_PIXEL = 850
#: memory a full-resolution pixel of a frame in flight takes: the decoded frame, its tensor, alpha and output
IN_FLIGHT_BYTES_PER_PIXEL = 8
#: finishing's working memory a full-resolution pixel: the alpha upsampled in float32 and the output; with
#: refine=guided or decontaminate, float32 maps of the guided filter and the colour estimate (measured on a
#: 4000x3000 frame: peak RSS 190 MB over the loaded engine plain, 1480 MB with both)
FINISH_BYTES_PER_PIXEL = 20
REFINED_BYTES_PER_PIXEL = 130
#: frames in flight a batch: read ahead (depth 2), in the network, on their way out
BATCHES_IN_FLIGHT = 4

_GIB = 1 << 30


def available_bytes() -> int | None:
    """Memory this process may still take: MemAvailable, bounded by its cgroup's limit; None where unknown
    or where ``RMBG_MEMORY_CHECK=off`` turns the checks off (an estimate that is wrong for a machine)."""
    if os.environ.get("RMBG_MEMORY_CHECK") == "off":
        return None
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in meminfo.splitlines() if ":" in line)
    if "MemAvailable" not in fields:
        return None
    available = int(fields["MemAvailable"].split()[0]) * 1024
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        stat = dict(line.split() for line in Path("/sys/fs/cgroup/memory.stat").read_text().splitlines())
    except (OSError, ValueError):
        return available
    if limit == "max":
        return available
    used -= int(stat.get("inactive_file", 0))  # page cache the kernel takes back first: not in use
    return max(0, min(available, int(limit) - used))


def _shortfall(need: int) -> int | None:
    """The bytes available when ``need`` bytes are more than that (a check fails), else None (it fits, or the
    checks are off or cannot know)."""
    available = available_bytes()
    return available if available is not None and need > available else None


def network_bytes(batch_size: int, model_size: int, dtype_bytes: int = 4) -> int:
    """Bytes the network's activations take for a batch of ``batch_size`` inputs of ``model_size`` squared,
    at ``dtype_bytes`` a value (4: float32, 2: float16 and bfloat16)."""
    return batch_size * model_size ** 2 * NETWORK_BYTES_PER_PIXEL * dtype_bytes // 4


def frame_bytes(width: int, height: int, batch_size: int, quality: QualityOptions, *, host_finishing: bool = True,
                frames: int | None = None) -> int:
    """Bytes the frames in flight and their finishing take, for frames of ``width`` x ``height``: ``frames``
    at once, or (None) a stream's (BATCHES_IN_FLIGHT batches and the temporal window). ``host_finishing``:
    finishing runs in this machine's memory (on the CPU), not a GPU's."""
    in_flight = BATCHES_IN_FLIGHT * batch_size + 2 * quality.temporal_radius + 1 if frames is None else frames
    refined = quality.refine == "guided" or quality.decontaminate
    finishing = (REFINED_BYTES_PER_PIXEL if refined else FINISH_BYTES_PER_PIXEL) if host_finishing else 0
    return width * height * (in_flight * IN_FLIGHT_BYTES_PER_PIXEL + finishing)


def check_frame_size(width: int, height: int, what: str, *, side_limit: bool = True) -> None:
    """InputError unless a ``width`` x ``height`` frame (``what`` names it: "y4m frame size", a path) is one
    that can be read: 1 to MAX_SIDE a side (unless not ``side_limit``: pictures, panoramas among them),
    at most MAX_PIXELS, its RGB pixels fitting in memory."""
    if min(width, height) < 1 or (side_limit and max(width, height) > MAX_SIDE):
        raise InputError(f"{what} {width}x{height} is out of range (1 to {MAX_SIDE} a side)")
    if width * height > MAX_PIXELS:
        raise InputError(f"{what} {width}x{height} is {width * height / 1e6:.0f} megapixels, more than the "
                         f"{MAX_PIXELS / 1e6:.0f} accepted; scale it down first")
    available = _shortfall(width * height * 3)
    if available is not None:
        raise InputError(f"{what} {width}x{height} needs {width * height * 3 / _GIB:.1f} GiB, more than the "
                         f"{available / _GIB:.1f} GiB of memory available; scale it down first")


def check_network(options: ModelOptions, dtype_bytes: int = 4) -> None:
    """OptionError (naming batch_size) when a batch of ``options`` cannot fit in this machine's memory;
    for a network that runs here, on the CPU."""
    need = network_bytes(options.batch_size, options.model_size, dtype_bytes)
    available = _shortfall(need)
    if available is not None:
        raise OptionError("batch_size", Mention("batch_size", str(options.batch_size)), " at ",
                          Mention("model_size", str(options.model_size)),
                          f" needs about {need / _GIB:.1f} GiB for the network, more than the "
                          f"{available / _GIB:.1f} GiB available; lower ", Mention("batch_size"), " or ",
                          Mention("model_size"))


def check_frames(width: int, height: int, batch_size: int, quality: QualityOptions, *, network: int = 0,
                 host_finishing: bool = True, frames: int | None = None) -> None:
    """OptionError (naming batch_size) when frames of ``width`` x ``height`` cannot be worked on in memory
    beside ``network`` bytes (the network's share, when it runs in this machine's memory); ``host_finishing``
    and ``frames`` as in ``frame_bytes``. Before the device is known (before the model loads) the
    adapters check without finishing; the engine checks again knowing it."""
    need = frame_bytes(width, height, batch_size, quality, host_finishing=host_finishing, frames=frames) + network
    available = _shortfall(need)
    if available is not None:
        fewer = (", or lower ", Mention("batch_size"), " or ", Mention("temporal_radius")) if frames is None else ()
        raise OptionError("batch_size", f"frames of {width}x{height} need about {need / _GIB:.1f} GiB of memory, "
                          f"more than the {available / _GIB:.1f} GiB available; scale them down", *fewer)

