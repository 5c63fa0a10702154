"""Every example in the README runs as written (the two make commands excepted: they are CI itself)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import CLI

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_commands() -> list[str]:
    """The lines of every sh block after the first (make demo / make test), comments stripped."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)[1:]:
        for line in block.splitlines():
            command = re.sub(r"\s+# .*$", "", line).strip()
            if command:
                lines.append(command)
    return lines


def named_files() -> dict[str, str]:
    """The blocks fenced with a file name (```python cutout.vpy): name -> text."""
    return dict(re.findall(r"```\w+ ([\w-]+\.\w+)\n(.*?)```", README.read_text(), flags=re.S))


@pytest.fixture(scope="module")
def setup_env() -> dict[str, str]:
    """The environment after the README's setup block has run in the repository root, as a user runs it."""
    (block,) = re.findall(r"```sh setup\n(.*?)```", README.read_text(), flags=re.S)
    done = subprocess.run(["bash", "-c", f"{block}\nenv -0"], cwd=ROOT, capture_output=True, text=True,
                          check=True, timeout=60)
    env = dict(entry.split("=", 1) for entry in done.stdout.split("\0") if "=" in entry)
    # VapourSynth's venv (Python 3.12+) provides vspipe where the main venv cannot
    vs_bin = Path(os.environ.get("RMBG_VS_PYTHON", ROOT / ".venv-vs" / "bin" / "python")).parent
    env["PATH"] = f"{env['PATH']}:{vs_bin}"
    return env


def test_the_readme_has_the_examples() -> None:
    commands = readme_commands()
    assert sum("| rmbg-filter pipe" in c for c in commands) == 5
    assert sum(c.startswith("rmbg-filter video") for c in commands) == 8
    assert sum(c.startswith("rmbg-filter batch") for c in commands) == 3
    assert sum("rmbg-filter image" in c for c in commands) == 7
    assert sum(c.startswith("vspipe") for c in commands) == 2
    assert sum(c.startswith("gst-launch-1.0") for c in commands) == 4
    assert set(named_files()) == {"cutout.vpy"}


def test_the_setup_block_finds_the_element(setup_env: dict[str, str]) -> None:
    done = subprocess.run(["gst-inspect-1.0", "rmbg"], env=setup_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command", [pytest.param(command, marks=pytest.mark.xdist_group("ray")) if "--ray" in command
                                     else command for command in readme_commands()])
def test_readme_command_runs(command: str, tmp_path: Path, checkpoints: dict[str, Path],
                             setup_env: dict[str, str], isnet_medium: Path) -> None:
    subprocess.run("ffmpeg -v error -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440 "
                   "-frames:v 2 -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest input.mp4",
                   shell=True, cwd=tmp_path, check=True)
    for picture in ("photo.jpg", "beach.jpg"):
        subprocess.run(f"ffmpeg -v error -f lavfi -i testsrc2=size=320x240 -frames:v 1 {picture}",
                       shell=True, cwd=tmp_path, check=True)
    (tmp_path / "frames").mkdir()
    for name, text in named_files().items():
        (tmp_path / name).write_text(text)
    model_dir = tmp_path / "home" / "models" / "RMBG-1.4"  # links, not copies: 170 MB a file, 15 commands
    model_dir.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (model_dir / name).symlink_to(checkpoints["published"] / name)
    (model_dir / "model.pth").symlink_to(checkpoints["pth"])
    (model_dir.parent / "isnet-medium.onnx").symlink_to(isnet_medium)
    env = {**setup_env, "PATH": f"{CLI.parent}:{setup_env['PATH']}", "RMBG_MODEL": str(checkpoints["pth"]),
           "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path / "home")}
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    produced = {p.name for p in tmp_path.iterdir()} | {p.name for p in (tmp_path / "frames").iterdir()}
    assert len(produced - {"input.mp4", "photo.jpg", "beach.jpg", "frames", "home", *named_files()}) >= 1


def test_python_example_runs(checkpoints: dict[str, Path]) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    done = subprocess.run([sys.executable, "-c", example], env={**os.environ, "RMBG_MODEL": str(checkpoints["pth"])},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
