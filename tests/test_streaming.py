"""prefetch: order, bounded look-ahead, errors handed over, early stop."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rmbg_filter.streaming import prefetch


def test_order_and_completeness() -> None:
    assert list(prefetch(range(100), depth=3)) == list(range(100))
    assert list(prefetch([], depth=1)) == []


def test_look_ahead_is_bounded_by_depth() -> None:
    produced = 0

    def source() -> Iterator[int]:
        nonlocal produced
        for value in range(50):
            produced += 1
            yield value

    for consumed, _ in enumerate(prefetch(source(), depth=4), start=1):
        time.sleep(0.002)  # a slow consumer: the producer runs ahead as far as it may
        # queued (depth) + one the producer holds while the queue is full
        assert produced - consumed <= 4 + 1


def test_error_reaches_the_consumer_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("boom")

    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        for value in prefetch(source()):
            seen.append(value)
    assert seen == [1, 2]


def test_closing_early_stops_and_closes_the_source() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            value = 0
            while True:
                yield value
                value += 1
        finally:
            closed.set()

    stream = prefetch(source(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert closed.wait(timeout=5)


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be at least 1, got 0"):
        list(prefetch([1], depth=0))


def test_closing_a_chain_whose_source_blocks_for_good_returns() -> None:
    # the source stands for a read of a stdin that stays open and silent
    never = threading.Event()

    def source() -> Iterator[int]:
        yield 1
        never.wait()
        yield 2

    stopped = threading.Event()
    reading = prefetch(source(), depth=1, name="reading", join=0.2, cancel=stopped)
    working = prefetch((value * 10 for value in reading), depth=1, name="working", join=None, stop=stopped)
    assert next(working) == 10

    def close() -> None:
        working.close()
        reading.close()

    closing = threading.Thread(target=close, daemon=True)
    closing.start()
    closing.join(timeout=5)
    assert not closing.is_alive(), "closing waits for a thread that waits for a source that never answers"
    assert not any(thread.name == "working" for thread in threading.enumerate())
    never.set()


@pytest.mark.skipif(not Path("/proc/thread-self/comm").exists(), reason="the kernel's thread names are Linux's")
def test_a_stage_thread_carries_its_name_in_the_kernel_and_passes_it_on() -> None:
    """top -H and /proc show which stage is busy; threads a stage starts inherit the name (a Python thread
    stands in for torch's native workers, up to 3.14: from then on Python names its own threads itself)."""
    inherits = sys.version_info < (3, 14)

    def names() -> Iterator[str]:
        yield Path("/proc/thread-self/comm").read_text().strip()
        if inherits:
            seen: list[str] = []
            child = threading.Thread(target=lambda: seen.append(Path("/proc/thread-self/comm").read_text().strip()))
            child.start()
            child.join()
            yield seen[0]

    each = 2 if inherits else 1
    assert list(prefetch(names(), 1, name="rmbg-read")) == ["rmbg-read"] * each
    assert list(prefetch(names(), 1, name="a-stage-name-longer-than-15")) == ["a-stage-name-lo"] * each
    assert list(prefetch(names(), 1, name="étape")) == ["?tape"] * each
