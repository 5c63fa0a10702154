"""How much the fuzz tests run: a fixed slice in ``make test``, the full count in ``make fuzz``.

``make fuzz`` sets ``RMBG_FUZZ=1``: every fuzz test runs its full number of cases, with
fresh random examples each run (and hypothesis's example database under ``.hypothesis/``,
so a failure found once is replayed first next time). Otherwise each runs its slice,
derandomized: the same cases every run, so ``make test`` cannot flake on a new example.
Hypothesis counts the cases it ran: ``--hypothesis-show-statistics`` prints them, and
``scripts/fuzz_summary.py`` adds them up.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from hypothesis import HealthCheck, settings

__all__ = ["FULL", "Hang", "at_most", "cases"]

#: True under ``make fuzz``
FULL = os.environ.get("RMBG_FUZZ") == "1"


def cases(full: int, slice: int) -> settings:
    """Hypothesis settings for ``full`` cases under ``make fuzz`` and ``slice`` in ``make test``.

    No deadline (the machine is shared and noisy: a hang is caught by ``at_most`` instead).
    """
    return settings(max_examples=full if FULL else slice, deadline=None, derandomize=not FULL,
                    database=settings.default.database if FULL else None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


class Hang(AssertionError):
    """A case ran past its time: a hang, reported as the failure it is."""


@contextlib.contextmanager
def at_most(seconds: float) -> Iterator[None]:
    """Fail with Hang when the block runs longer than ``seconds`` (main thread only: it uses SIGALRM)."""

    def expired(signum: int, frame: object) -> None:
        raise Hang(f"the case did not end within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
