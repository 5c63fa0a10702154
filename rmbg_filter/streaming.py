"""Run the stages of a stream concurrently through bounded queues.

``prefetch(items, depth)`` drains an iterator in a background thread, at most
``depth`` items ahead of its consumer. Chaining it (decode -> inference ->
encode) lets codec work hide behind inference while memory stays bounded by
the queue depths, however long the stream.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")

_POLL_SECONDS = 0.1


class _End:
    """Marks the end of a stream, carrying the exception that ended it, if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = 2, name: str = "rmbg-prefetch", *, join: bool = False) -> Iterator[T]:
    """Yield ``items`` in order while a daemon thread computes up to ``depth`` ahead.

    An exception raised by ``items`` is re-raised here, in the consumer. When the
    consumer stops early (the generator is closed), the thread stops at its
    next item instead of running on; with ``join`` the close waits for that, so
    no work (a network running in torch) is left running at interpreter exit.
    Leave ``join`` off for a thread that may block on I/O (reading stdin).
    """
    if depth < 1:
        raise ValueError(f"prefetch: depth must be at least 1, got {depth}")
    slots: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: T | _End) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
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

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        if join:
            worker.join()
