"""scripts/soak.py: a slice of the soak runs (600 frames through ``rmbg-filter pipe`` and the GStreamer element)
keeps a flat RSS, and a run whose RSS grows after the warm-up fails the script.

The full runs (10,000 frames each, IS-Net small) are ``python scripts/soak.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soak
from hosts import SCRIPTS

FRAMES = 600
MAX_GROWTH_MB = 10.0  # the slice grew 0-0.6 MB here; the full runs allow 20


def test_a_slice_of_the_soak_keeps_the_rss_flat(checkpoints: dict[str, Path]) -> None:
    done = subprocess.run([sys.executable, str(SCRIPTS / "soak.py"), "--frames", str(FRAMES),
                           "--model", str(checkpoints["safetensors"]), "--max-growth-mb", str(MAX_GROWTH_MB)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    for run in ("pipe", "gst"):
        samples = [(int(row[1]), float(row[2])) for row in rows if row[0] == run and len(row) == 4]
        assert [frames for frames, _ in samples] == sorted(soak.sample_points(FRAMES)), run
        warm = next(rss for frames, rss in samples if frames >= FRAMES // 10)
        assert max(rss for frames, rss in samples if frames >= FRAMES // 10) - warm <= MAX_GROWTH_MB, samples
        summary = next(row for row in rows if row[0] == run and len(row) == 9)
        assert summary[-1] == "flat" and float(summary[5]) <= MAX_GROWTH_MB, summary


def test_the_growth_counts_from_the_warm_up_on() -> None:
    points = sorted(soak.sample_points(1000))
    loading = [soak.Sample(frames, 800.0 if frames < 100 else 900.0, frames / 100) for frames in points]
    assert soak.verdict(loading, 1000).growth_mb == 0  # memory taken while warming up is no leak
    leaking = [soak.Sample(frames, 900 + frames / 20, frames / 100) for frames in points]
    summary = soak.verdict(leaking, 1000)
    assert (summary.first.frames, summary.warm.frames, summary.last.frames) == (1, 100, 1000)
    assert summary.growth_mb == pytest.approx(45)


def test_a_run_that_grows_fails_the_script(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    grows = [soak.Sample(frames, 500 + frames / 10, frames / 100) for frames in sorted(soak.sample_points(1000))]
    monkeypatch.setattr(soak, "run_pipe", lambda frames, model, timeout, report: grows)
    monkeypatch.setattr(sys, "argv", ["soak.py", "--runs", "pipe", "--frames", "1000", "--model", str(tmp_path),
                                      "--max-growth-mb", "20"])
    assert soak.main() == 1
    assert "GREW more than 20 MB" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", [*sys.argv[:-1], "100"])
    assert soak.main() == 0
