"""The command line's engine: loaded once per process and per model options, with malloc told to keep memory.

Every command (``image``, ``pipe``, ``video``, ``batch``, and each ``batch --ray`` worker) loads its
model here.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from ..options import ModelOptions

if TYPE_CHECKING:
    from ..engine import BackgroundRemover

__all__ = ["keep_freed_memory", "load_engine"]


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for reuse instead of handing it back to the system.

    Its defaults return large blocks (the network's activations, tens of MB each) to the
    system and map them afresh, zero-filled, on the next frame; how often depends on what the
    process allocated before. Measured here: bfloat16 took 0.33 s a 720p frame in a fresh
    process and 0.47 s once a float32 network had run in the same process; with these two
    settings, 0.35 s in both cases. The command line owns its process, so it sets them; the
    cost is that memory stays at its peak (which a stream reaches in its first frames anyway).
    Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    mmap_threshold, trim_threshold = -3, -1  # mallopt's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD
    for option in (mmap_threshold, trim_threshold):
        libc.mallopt(option, 1 << 30)


def load_engine(options: ModelOptions) -> BackgroundRemover:
    """The engine ``options`` ask for: the process's one for them (``engine.shared_engine``), so that
    ``main`` called many times in one process loads each model once."""
    from ..engine import shared_engine

    keep_freed_memory()
    return shared_engine(options)
