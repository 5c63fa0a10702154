"""Exact reads from a byte stream, shared by the raw and y4m frame readers."""

from __future__ import annotations

from typing import BinaryIO

__all__ = ["read_exact"]

#: the most read_exact sets aside before data arrives: a header's word alone never allocates a frame
FIRST_CHUNK = 16 << 20


def read_exact(stream: BinaryIO, size: int) -> bytearray:
    """Read up to ``size`` bytes, retrying short reads (pipes deliver in pieces).

    Returns fewer than ``size`` bytes only at the end of the stream. At most FIRST_CHUNK
    is set aside before data arrives, the whole ``size`` once that much has: a stream
    that declares large frames and ends early takes little memory.
    """
    buffer = bytearray(min(size, FIRST_CHUNK))
    filled = 0
    while filled < size:
        if filled == len(buffer):
            buffer += bytes(size - len(buffer))
        with memoryview(buffer) as view:
            count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    return buffer if filled == size else buffer[:filled]
