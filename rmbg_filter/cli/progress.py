"""One-line progress bars on stderr, shown only on a terminal: a video's frames (fps, ETA), a batch's files."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = ["BatchProgress", "Progress"]


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


class BatchProgress:
    """``[#####...] 3/6 files  1200 frames  2 failed  clip.mp4`` on one line of a terminal; silent elsewhere."""

    def __init__(self, total: int, *, shown: bool, stream: TextIO = sys.stderr) -> None:
        self.total, self.shown, self.stream = total, shown, stream
        self.files = self.frames = self.failed = 0
        self.current = ""
        self._drawn = 0.0

    def start_file(self, name: str) -> None:
        self.current = name
        self._draw(force=True)

    def frame(self) -> None:
        """Count one frame written (here: as it is encoded)."""
        self.frames += 1
        self._draw()

    def add_frames(self, count: int) -> None:
        """Count a finished file's frames at once (on a cluster, where frames are not seen one by one)."""
        self.frames += count

    def file_done(self, record: Mapping[str, Any]) -> None:
        """Count a finished file, and a failure."""
        self.files += 1
        self.failed += record["status"] == "failed"
        self._draw(force=True)

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.shown or (not force and now - self._drawn < 0.25):
            return
        self._drawn = now
        filled = int(24 * self.files / max(self.total, 1))
        failed = f"  {self.failed} failed" if self.failed else ""
        self.stream.write(f"\r[{'#' * filled}{'.' * (24 - filled)}] {self.files}/{self.total} files  "
                          f"{self.frames} frames{failed}  {self.current}\033[K")
        self.stream.flush()

    def clear(self) -> None:
        """Blank the line, so that a message can be printed on it."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
