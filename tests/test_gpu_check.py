"""scripts/gpu_check.sh, the one-shot CUDA check, tested here by its eager dry run: every step on the CPU, tiny sizes,
without the compiled configurations (``make gpu-dry`` runs them too: minutes of compiling on a CPU; ``--compile``
itself is tested by test_compiled.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_dry_run_runs_every_step_and_writes_one_table(tmp_path: Path, isnet_medium: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable,
           "RMBG_ISNET_CACHE": str(isnet_medium.parent)}
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run-eager"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (tmp_path / "gpu_check.md").read_text()
    assert done.stdout.rstrip().endswith(table.rstrip())  # printed, and written under $OUT
    for step in ("tests", "warm", "bench", "precision"):
        assert f"step {step}: status 0" in table
    assert "tests/test_cuda.py: 4 skipped" in table  # no GPU here: the CUDA tests skip, and say so
    rows = re.findall(r"^\| (float16|bfloat16) \| (\d) \| (yes|no) \| ([\d.]+) \| ([\d.]+) \|", table, re.M)
    assert {(d, b, c) for d, b, c, _, _ in rows} == {(d, b, "no") for d in ("float16", "bfloat16") for b in "148"}
    assert all(float(fps) > 0 and float(stream) > 0 for *_, fps, stream in rows)
    for stage in ("decode + RGB", "encode ProRes 4444 (prores_ks", "encode FFV1"):
        assert re.search(rf"^\| {re.escape(stage)}.* \| [\d.]+ \| \|$", table, re.M), stage
    # 4 outputs, each with its (up to 4) busiest threads: the inference thread among them
    videos = re.findall(r"^\| `video` .* \| [\d.]+ \| (.+) \|$", table, re.M)
    assert len(videos) == 4, videos
    entry = r"\S+ \d+\.\d\d( \(\d+ threads, busiest \d+\.\d\d\))?"
    for threads in videos:
        assert re.fullmatch(rf"{entry}(, {entry}){{0,3}}", threads), threads
        infer = re.search(r"\brmbg-infer (\d+\.\d\d)", threads)
        assert infer and float(infer[1]) > 0.05, threads
    precision = dict(re.findall(r"^\| (float16|bfloat16) \| (\d+) \(", table, re.M))
    assert set(precision) == {"float16", "bfloat16"}
    assert int(precision["float16"]) <= 2  # at model size 64 on the real network; bf16 is looser
