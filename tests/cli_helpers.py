"""Run the installed ``rmbg-filter`` console script as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).parent / "rmbg-filter"


def run_cli(*args: str | Path, model: Path | None = None, timeout: float = 300,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``rmbg-filter ARGS`` with ``RMBG_MODEL`` set to ``model``; text output captured."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if model is not None:
        env["RMBG_MODEL"] = str(model)
    return subprocess.run([str(CLI), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed on stderr (asserts it is one line, no traceback)."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly, overwriting its output; raises if it fails."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def read_manifest(out: Path) -> list[dict]:
    """Every record of ``out``'s batch manifest, oldest first."""
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
