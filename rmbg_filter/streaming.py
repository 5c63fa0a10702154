"""Run the stages of a stream concurrently through bounded queues.

``prefetch(items, depth)`` drains an iterator in a background thread, at most
``depth`` items ahead of its consumer. Chaining it (decode -> inference ->
encode) lets codec work hide behind inference while memory stays bounded by
the queue depths, however long the stream.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

__all__ = ["name_os_thread", "prefetch"]

T = TypeVar("T")

_POLL_SECONDS = 0.1


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` (its first 15 characters, non-ASCII ones as ``?``) in the kernel too,
    where ``top -H``, ``ps -L`` and ``/proc`` show it (Python names threads there itself only from 3.14).
    Native threads it starts from now on (torch's CPU workers, libavcodec's) inherit the name. Linux only;
    elsewhere, or without ctypes, nothing happens."""
    if sys.platform == "linux":
        with contextlib.suppress(ImportError, OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None).prctl(15, name.encode("ascii", "replace")[:15], 0, 0, 0)  # 15: PR_SET_NAME


class Cancelled(BaseException):
    """Raised to a consumer waiting for an item when the stream's shared ``stop`` is set.

    A BaseException, like GeneratorExit, so that ``except Exception`` clean-ups
    (which finish work already read) are skipped on the way out.
    """


class _End:
    """Marks the end of a stream, carrying the exception that ended it, if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = 2, name: str = "rmbg-prefetch", *, join: float | None = None,
             stop: threading.Event | None = None,
             cancel: threading.Event | None = None) -> Generator[T, None, None]:
    """Yield ``items`` in order while a daemon thread computes up to ``depth`` ahead.

    An exception raised by ``items`` is re-raised here, in the consumer. When the
    consumer stops early (the generator is closed), ``stop`` is set: the thread
    stops at its next item instead of running on, and the close waits up to
    ``join`` seconds for that (None: as long as it takes). A thread still inside
    torch when the interpreter exits aborts the process ("terminate called
    without an active exception", status -6 instead of 130 after Ctrl-C), so
    every thread doing work should be waited for; give a thread that may block
    on I/O (reading stdin) a bounded wait, since only its read can be left behind.

    In a chain, pass the last prefetch's ``stop`` as the ``cancel`` of the ones
    before it: once it is set, their threads stop too, and a consumer waiting
    for an item (a thread whose producer may be blocked for good, on stdin) gets
    ``Cancelled``. Without ``cancel`` the consumer waits without polling, which
    is what the main thread should do: a Ctrl-C landing inside a polling
    ``queue.get`` can leave its lock broken ("release unlocked lock").
    """
    if depth < 1:
        raise ValueError(f"prefetch: depth must be at least 1, got {depth}")
    slots: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
    stop = stop if stop is not None else threading.Event()

    def stopping() -> bool:
        return stop.is_set() or (cancel is not None and cancel.is_set())

    def offer(item: T | _End) -> bool:
        while not stopping():
            try:
                slots.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            name_os_thread(name)
            for item in source:
                if not offer(item):
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            offer(_End(error))
            return
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        offer(_End())

    def take() -> T | _End:
        if cancel is None:
            return slots.get()
        while not cancel.is_set():
            try:
                return slots.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
        raise Cancelled(f"{name}: the stream was stopped")

    worker = threading.Thread(target=produce, name=name, daemon=True)
    try:
        worker.start()  # inside: a signal landing in start() still stops the thread
        while True:
            item = take()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        if worker.ident is not None:  # started
            worker.join(join)
