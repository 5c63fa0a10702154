"""``rmbg-filter pipe`` between two real ffmpeg processes, as users run it."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import CLI, one_error_line, run_cli

from rmbg_filter import load

SIZE = "321x241"
SOURCE = f"testsrc2=size=320x240:rate=25,scale={SIZE.replace('x', ':')}"


def sh(command: str, cwd: Path, model: Path) -> subprocess.CompletedProcess[bytes]:
    """Run a shell pipeline with the venv's rmbg-filter first on PATH."""
    env = {**os.environ, "PATH": f"{CLI.parent}:{os.environ['PATH']}", "RMBG_MODEL": str(model),
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          timeout=300)


def ffmpeg_rgb(args: str, cwd: Path, count: int) -> np.ndarray:
    """Frames (N,241,321,3) that ffmpeg decodes from ``args``."""
    done = subprocess.run(f"ffmpeg -v error {args} -f rawvideo -pix_fmt rgb24 -", shell=True, cwd=cwd,
                          capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.uint8).reshape(count, 241, 321, 3)


def gray_frames(path: Path, count: int) -> np.ndarray:
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                          capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.uint8).reshape(count, 241, 321)


@pytest.fixture(scope="module")
def small(checkpoints: dict[str, Path]):
    return load(checkpoints["safetensors"], device="cpu", model_size=64)


def test_raw_rgb_through_the_pipe_to_a_lossless_gray_video(tmp_path: Path, checkpoints, small) -> None:
    command = (f"ffmpeg -v error -f lavfi -i {SOURCE} -frames:v 5 -f rawvideo -pix_fmt rgb24 - "
               f"| rmbg-filter pipe --size {SIZE} --model-size 64 "
               f"| ffmpeg -v error -f rawvideo -pix_fmt gray -s {SIZE} -r 25 -i - -c:v ffv1 alpha.mkv")
    done = sh(command, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr
    frames = ffmpeg_rgb(f"-f lavfi -i {SOURCE} -frames:v 5", tmp_path, 5)
    written = gray_frames(tmp_path / "alpha.mkv", 5)
    assert np.abs(written.astype(int) - small(frames)).max() <= 1


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "gray"])
def test_y4m_in_y4m_out_needs_no_sizes(pix_fmt: str, tmp_path: Path, checkpoints, small) -> None:
    command = (f"ffmpeg -v error -f lavfi -i {SOURCE} -frames:v 2 -pix_fmt {pix_fmt} -strict -1 "
               "-f yuv4mpegpipe - | tee in.y4m "
               "| rmbg-filter pipe --out-format y4m --model-size 64 "
               "| ffmpeg -v error -f yuv4mpegpipe -i - -c:v ffv1 alpha.mkv")
    done = sh(command, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr
    frames = ffmpeg_rgb("-i in.y4m", tmp_path, 2)
    difference = np.abs(gray_frames(tmp_path / "alpha.mkv", 2).astype(int) - small(frames))
    # the pipe converts y4m to RGB exactly as ffmpeg's command line does
    assert difference.max() <= 1, (pix_fmt, difference.max())


def test_cut_stream_writes_complete_frames_then_exits_2(tmp_path: Path, checkpoints) -> None:
    frame = 321 * 241 * 3
    command = (f"ffmpeg -v quiet -f lavfi -i {SOURCE} -frames:v 3 -f rawvideo -pix_fmt rgb24 - "
               f"| head -c {2 * frame + 1000} | rmbg-filter pipe --size {SIZE} --model-size 64 > alpha.gray")
    done = sh(command, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        f"rmbg-filter pipe: error: stdin ended inside frame 2: got 1000 of {frame} bytes "
        f"(is --size {SIZE} --pix-fmt rgb24 right?)")
    assert (tmp_path / "alpha.gray").stat().st_size == 2 * 321 * 241


def test_reader_closing_early_is_a_quiet_exit_141(tmp_path: Path, checkpoints) -> None:
    """As a writer killed by SIGPIPE: no message, status 128 + 13 (a pipefail pipeline sees it)."""
    command = ("ffmpeg -v quiet -f lavfi -i testsrc2=size=64x48:rate=25 -frames:v 50 -f rawvideo -pix_fmt rgb24 - "
               "| rmbg-filter pipe --size 64x48 --model-size 64 2>err.txt | head -c 5000 > /dev/null; "
               "echo ${PIPESTATUS[1]}")
    done = sh(command.replace("bash -o pipefail", "bash"), tmp_path, checkpoints["safetensors"])
    assert done.stdout.decode().strip() == "141"
    assert (tmp_path / "err.txt").read_text() == ""


@pytest.mark.parametrize(("signum", "status", "word"),
                         [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_sigterm_while_stdin_is_silent(signum: int, status: int, word: str, checkpoints) -> None:
    # the upstream writer stays alive and says nothing: the reading thread is blocked on stdin
    env = {**os.environ, "RMBG_MODEL": str(checkpoints["safetensors"])}
    process = subprocess.Popen([str(CLI), "pipe", "--size", "64x48", "--model-size", "64", "--temporal-radius", "2"],
                               env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdin is not None and process.stdout is not None
    # the first alpha needs 2 frames after it (the window); a full batch (1 frame) goes on without waiting
    process.stdin.write(bytes(64 * 48 * 3 * 3))
    process.stdin.flush()
    ready, _, _ = select.select([process.stdout], [], [], 60)
    if not ready:
        process.kill()
    assert ready, "no alpha for the first frame: 3 frames in should give one (window of 2)"
    assert len(process.stdout.read(64 * 48)) == 64 * 48  # the first alpha: the model is loaded, frames flow
    process.send_signal(signum)
    try:
        process.wait(timeout=30)  # not communicate(): closing stdin would end the stream and free the reader
    finally:
        process.kill()
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert process.returncode == status, stderr
    assert stderr.strip() == f"rmbg-filter pipe: {word}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pipe", "--size", "1280by720"], r"argument --size: size must be WIDTHxHEIGHT such as 1280x720"),
        (["pipe", "--size", "100000x100000"], r"size 100000x100000 is out of range \(1 to 16384 a side\)"),
        (["pipe", "--size", "64x48", "--pix-fmt", "yuv420p"], r"argument --pix-fmt: invalid choice: 'yuv420p'"),
        (["pipe", "--size", "64x48", "--output", "image:/no/such.png"], r"input not found: /no/such\.png"),
    ],
)
def test_usage_errors(args: list[str], message: str, checkpoints) -> None:
    done = run_cli(*args, model=checkpoints["safetensors"], input="")
    assert done.returncode == 2
    assert re.search(message, one_error_line(done))


def test_garbage_y4m_header_is_one_line(checkpoints) -> None:
    done = run_cli("pipe", model=checkpoints["safetensors"], input="YUV4MPEG2 Wabc\n")
    assert done.returncode == 2
    assert "lacks a valid width and height" in one_error_line(done)


def test_limited_and_full_range_y4m_convert_as_ffmpeg_does(tmp_path: Path) -> None:
    from rmbg_filter.cli.y4m import read_header, y4m_frames

    for color_range in ("tv", "pc"):
        y4m = tmp_path / f"{color_range}.y4m"
        subprocess.run(f"ffmpeg -v error -f lavfi -i {SOURCE} -frames:v 1 -pix_fmt yuv420p -color_range "
                       f"{color_range} -strict -1 -f yuv4mpegpipe {y4m}", shell=True, check=True)
        expected = ffmpeg_rgb(f"-i {y4m}", tmp_path, 1)[0]
        with y4m.open("rb") as stream:
            (ours,) = y4m_frames(stream, read_header(stream))
        assert np.abs(ours.astype(int) - expected).max() <= 1, color_range
