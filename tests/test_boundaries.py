"""The package's boundaries: the core below the command line and the plugins, and what each import costs.

The import rule is ruff's banned-api (TID251), set in ``rmbg_filter/ruff.toml`` and
``plugins/ruff.toml``; ``make test`` runs ruff on the tree. Here the rule is shown to
catch what it forbids, and the light entry points are shown to load no torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import CLI

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


def lint(path: str, source: str) -> str:
    """ruff's findings for ``source`` as if it were the file ``path`` of this repository."""
    done = subprocess.run([str(RUFF), "check", "--no-cache", "--stdin-filename", path, "-"], input=source,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    return done.stdout


@pytest.mark.parametrize(("path", "source", "banned"), [
    ("rmbg_filter/probe.py", "from .cli.video import VideoJob\n", "rmbg_filter.cli"),
    ("rmbg_filter/probe.py", "from rmbg_filter.cli import main\n", "rmbg_filter.cli"),
    ("rmbg_filter/probe.py", "import av\n", "av"),
    ("rmbg_filter/probe.py", "from gi.repository import Gst\n", "gi"),
    ("rmbg_filter/probe.py", "import vapoursynth\n", "vapoursynth"),
    ("plugins/gstreamer/python/probe.py", "from rmbg_filter.cli.image import remove_background_from_image\n",
     "rmbg_filter.cli"),
    ("plugins/vapoursynth/vsrmbg/probe.py", "import rmbg_filter.cli.main\n", "rmbg_filter.cli"),
])
def test_the_import_rule_catches_what_it_forbids(path: str, source: str, banned: str) -> None:
    assert f"TID251 `{banned}` is banned" in lint(path, source)


@pytest.mark.parametrize("path", ["rmbg_filter/cli/probe.py", "tests/probe.py"])
def test_the_command_line_and_tests_may_import_the_command_line_and_pyav(path: str) -> None:
    assert "TID251" not in lint(path, "import av\n\nfrom rmbg_filter.cli.main import main\n\nprint(av, main)\n")


def imported_modules(command: list[str]) -> set[str]:
    """The top-level modules a command imports, from Python's own ``-X importtime`` report."""
    done = subprocess.run(command, env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in done.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("command", [
    [str(CLI), "--help"],
    [str(CLI), "video", "--help"],
    [sys.executable, "-c", "import rmbg_filter; from rmbg_filter import ModelOptions, OptionError"],
])
def test_light_entry_points_load_no_torch(command: list[str]) -> None:
    modules = imported_modules(command)
    assert "rmbg_filter" in modules  # the report is read right
    assert not modules & {"torch", "transformers"}


def test_the_engine_loads_torch_when_asked_for() -> None:
    modules = imported_modules([sys.executable, "-c", "from rmbg_filter import load"])
    assert "torch" in modules
