"""A one-line progress bar on stderr (frames, fps, ETA), shown only on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Redraws ``frame N/T  fps  ETA`` at most a few times a second; silent when not shown."""

    def __init__(self, total: int | None, *, shown: bool, stream: TextIO = sys.stderr) -> None:
        self.total = total if total else None
        self.shown = shown
        self.stream = stream
        self.count = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def advance(self) -> None:
        """Count one frame done; redraw if a quarter second has passed."""
        self.count += 1
        now = time.monotonic()
        if self.shown and now - self._drawn >= 0.25:
            self._drawn = now
            self.stream.write("\r" + self.line(now) + "\033[K")
            self.stream.flush()

    def line(self, now: float) -> str:
        """The text of the bar at time ``now``."""
        elapsed = max(now - self.started, 1e-9)
        fps = self.count / elapsed
        if self.total is None:
            return f"frame {self.count}  {fps:.2f} fps"
        done = min(self.count / self.total, 1.0)
        filled = int(done * 24)
        eta = (self.total - self.count) / fps if fps > 0 else 0.0
        return (f"[{'#' * filled}{'.' * (24 - filled)}] frame {self.count}/{self.total}  {fps:.2f} fps  "
                f"ETA {int(eta // 60)}:{int(eta % 60):02d}")

    def finish(self) -> None:
        """End the bar's line."""
        if self.shown and self.count:
            self.stream.write("\r" + self.line(time.monotonic()) + "\033[K\n")
            self.stream.flush()
