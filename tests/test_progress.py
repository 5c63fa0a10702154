"""The progress bar: frames, fps and ETA on a terminal, nothing elsewhere."""

from __future__ import annotations

import io

from rmbg_filter.cli.progress import Progress


def test_line_shows_frames_fps_and_eta() -> None:
    progress = Progress(100, shown=False)
    progress.count = 25
    line = progress.line(progress.started + 10.0)
    assert "frame 25/100" in line and "2.50 fps" in line and "ETA 0:30" in line
    assert line.startswith("[######..................]")
    unknown = Progress(None, shown=False)
    unknown.count = 5
    assert unknown.line(unknown.started + 2.0) == "frame 5  2.50 fps"


def test_drawn_only_when_shown() -> None:
    shown, hidden = io.StringIO(), io.StringIO()
    for stream, visible in ((shown, True), (hidden, False)):
        progress = Progress(3, shown=visible, stream=stream)
        for _ in range(3):
            progress.advance()
        progress.finish()
    assert hidden.getvalue() == ""
    assert shown.getvalue().startswith("\r[") and shown.getvalue().endswith("\n")
    assert "frame 3/3" in shown.getvalue()
