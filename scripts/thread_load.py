"""The CPU time each thread of this process spends while a block of code runs: where a pipeline's time goes.

``video`` overlaps decoding (the engine's reading thread, ``rmbg-read``, and libavcodec's decoder threads),
inference (``rmbg-infer``) and encoding (the main thread, and libavcodec's encoder threads). A thread that
is busy for about the whole wall time is the stage the others wait for; threads waiting for the GIL, a
queue or the GPU's results (unless CUDA spins) are not busy. Linux only: it reads ``/proc/self/task``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import defaultdict

__all__ = ["ThreadLoad"]


def _cpu_ticks(tid: str) -> int | None:
    """utime + stime of thread ``tid`` in clock ticks; None once it has ended."""
    try:
        with open(f"/proc/self/task/{tid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5), counted after the command name


def _native_name(tid: str) -> str:
    """The kernel's name of a thread that Python did not start (libavcodec's, torch's), digits dropped."""
    try:
        with open(f"/proc/self/task/{tid}/comm", errors="replace") as handle:
            return re.sub(r"\d+$", "", handle.read().strip()) or "?"
    except OSError:
        return "?"


class ThreadLoad:
    """Sample every thread's CPU time while the ``with`` block runs; ``shares()`` then gives, per thread
    name, CPU seconds per wall second (1.0: one thread busy throughout; threads of one name add up), how
    many threads had that name and the busiest one's share.

    Resolution: the kernel's clock tick (10 ms), and a thread that ends inside the block loses what it
    spent after the last sample (at most ``interval`` seconds)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._start: dict[str, int] = {}  # tid -> ticks when the block began (absent: started later, from 0)
        self._last: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._run, name="thread-load", daemon=True)
        self._wall = 0.0

    def _sample(self) -> None:
        python = {str(t.native_id): t.name for t in threading.enumerate()}
        for tid in os.listdir("/proc/self/task"):
            ticks = _cpu_ticks(tid)
            if ticks is not None:
                self._last[tid] = ticks
                if tid in python:  # a Python thread, possibly seen before Python knew its id
                    self._names[tid] = python[tid]
                else:
                    self._names.setdefault(tid, _native_name(tid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> ThreadLoad:
        self._sample()
        self._start = dict(self._last)
        self._wall = time.perf_counter()
        self._sampler.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._sampler.join()
        self._sample()
        self._wall = time.perf_counter() - self._wall

    def shares(self) -> dict[str, tuple[float, int, float]]:
        """Thread name -> (CPU seconds per wall second of the block, summed over its threads; how many
        threads; the busiest one's share), busiest name first (the sampler left out)."""
        per_second = os.sysconf("SC_CLK_TCK")
        per_name: dict[str, list[float]] = defaultdict(list)
        for tid, ticks in self._last.items():
            name = self._names[tid]
            if name != self._sampler.name:
                per_name[name].append(max(0, ticks - self._start.get(tid, 0)) / per_second / max(self._wall, 1e-9))
        loads = {name: (sum(each), len(each), max(each)) for name, each in per_name.items()}
        return dict(sorted(loads.items(), key=lambda item: -item[1][0]))

    def summary(self, most: int = 4) -> str:
        """The ``most`` busiest names, e.g. ``MainThread 0.97, encoder 1.33 (4 threads, busiest 0.41)``
        (names under 0.005 left out): a single thread near 1.00 is the stage the others wait for."""
        busy = [(name, load) for name, load in self.shares().items() if load[0] >= 0.005]
        return ", ".join(f"{name} {total:.2f}" + (f" ({count} threads, busiest {top:.2f})" if count > 1 else "")
                         for name, (total, count, top) in busy[:most])
