"""Exact reads from a byte stream, shared by the raw and y4m frame readers."""

from __future__ import annotations

from typing import BinaryIO

__all__ = ["read_exact"]


def read_exact(stream: BinaryIO, size: int) -> bytearray:
    """Read up to ``size`` bytes, retrying short reads (pipes deliver in pieces).

    Returns fewer than ``size`` bytes only at the end of the stream.
    """
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    del view
    return buffer if filled == size else buffer[:filled]
