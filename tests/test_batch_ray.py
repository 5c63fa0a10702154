"""``rmbg-filter batch --ray`` on a real Ray cluster: a head node and a second worker node started here
with ``ray start``, each bounded to one CPU and 2 GB; stopped when the module ends, pass or fail."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import CLI, ffmpeg, one_error_line, read_manifest, run_cli

#: one Ray test at a time (pytest-xdist runs a group on one worker): two clusters would share ~/.ray and the CPUs
pytestmark = pytest.mark.xdist_group("ray")

RAY = Path(sys.executable).parent / "ray"
#: each node's bounds: one CPU, 2 GB for tasks, the smallest object store Ray takes
NODE = ("--num-cpus", "1", "--memory", str(2 * 10**9), "--object-store-memory", str(80 * 2**20),
        "--disable-usage-stats")
FAST = ("--model-size", "64", "-q")
#: every process of the test, the nodes included: Ray 2.60 turns token authentication on when
#: ~/.ray/auth_token exists (a local ray.init() writes one), which would make runs differ by machine
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _nodes_alive(address: str) -> int:
    """How many nodes ``ray status`` lists as active at ``address`` (0 while the cluster is not up)."""
    done = subprocess.run([str(RAY), "status", "--address", address], capture_output=True, text=True, timeout=60,
                          env=ENV)
    active = done.stdout.partition("Active:")[2].partition("Pending:")[0]
    return len(re.findall(r"^\s*1 node_", active, re.MULTILINE))


def _stop(process: subprocess.Popen) -> None:
    """Stop one ``ray start --block`` and everything it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # Ray drains the node (up to 30 s, unless killed after 5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The address of a two-node cluster on this machine."""
    if not RAY.exists():
        pytest.fail("Ray is not installed here: pip install -e '.[ray]' (make setup does)")
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    address = f"127.0.0.1:{_free_port()}"
    nodes: list[subprocess.Popen] = []

    def start(*args: str) -> None:
        log = (temp / f"node{len(nodes)}.log").open("w")
        nodes.append(subprocess.Popen([str(RAY), "start", "--block", *args, *NODE], stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True, env=ENV))

    try:
        start("--head", "--port", address.split(":")[1], "--node-ip-address", "127.0.0.1",
              "--include-dashboard", "false", "--temp-dir", str(temp))
        deadline = time.monotonic() + 60
        while _nodes_alive(address) < 1:
            assert time.monotonic() < deadline, (temp / "node0.log").read_text()
            time.sleep(0.5)
        start("--address", address, "--node-ip-address", "127.0.0.1")
        while _nodes_alive(address) < 2:
            assert time.monotonic() < deadline, (temp / "node1.log").read_text()
            time.sleep(0.5)
        yield address
    finally:
        for node in reversed(nodes):
            _stop(node)
        _kill_leftovers({node.pid for node in nodes})
        shutil.rmtree(temp, ignore_errors=True)


def _kill_leftovers(sessions: set[int], wait: float = 10) -> None:
    """Stop the cluster's processes that outlived their node's process group: Ray Data's helper actors
    take groups of their own (they exit a few seconds after the cluster), but stay in the session
    that ``start_new_session`` gave each node."""
    deadline = time.monotonic() + wait
    while True:
        left = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if entry.name.isdigit():
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                    if int(fields[3]) in sessions and fields[0] != "Z":
                        left.append(int(entry.name))
        if not left:
            return
        if time.monotonic() > deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small clips: four short ones, a long one (160 frames, time to kill its worker), a corrupt one."""
    root = tmp_path_factory.mktemp("library")
    for index, frames in enumerate((4, 5, 6, 7)):
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=96x64:rate=25,hue=h={40 * index}", "-frames:v", str(frames),
               "-c:v", "libx264", "-pix_fmt", "yuv420p", str(root / f"clip{index}.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-frames:v", "160", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(root / "long.mp4"))
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    return root


def _writer_of(partial: Path) -> int | None:
    """The pid of the process that has ``partial`` open, if any."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(os.readlink(fd) == str(partial) for fd in (entry / "fd").iterdir()):
                    return int(entry.name)
            except OSError:
                continue
    return None


@contextlib.contextmanager
def _running(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``command`` started with its stderr piped; killed if the test fails while it runs."""
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_library_on_two_nodes_survives_a_killed_worker_and_reruns_for_nothing(
        cluster: str, library: Path, tmp_path: Path, checkpoints) -> None:
    out = tmp_path / "out"
    command = [str(CLI), "batch", str(library), "--out-dir", str(out), "--ray", cluster, "--workers", "2", *FAST]
    env = {**ENV, "RMBG_MODEL": str(checkpoints["safetensors"])}
    killed = None
    with _running(command, env) as process:
        deadline = time.monotonic() + 90
        while killed is None and process.poll() is None and time.monotonic() < deadline:
            partial = next(out.glob(".long.*.partial.mov"), None) if out.is_dir() else None
            writer = _writer_of(partial) if partial else None
            if writer is not None:
                os.kill(writer, signal.SIGKILL)  # a worker dies in the middle of long.mp4
                killed = writer
            time.sleep(0.05)
        _, stderr = process.communicate(timeout=120)
    assert killed is not None, f"no worker was caught writing long.mp4; the kill would test nothing\n{stderr}"

    assert process.returncode == 1, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"rmbg-filter batch: error: 1 of 6 inputs failed (5 done, 0 skipped, 1 failed); see {out}/manifest.jsonl")
    records = {Path(record["input"]).name: record for record in read_manifest(out)}
    assert len(read_manifest(out)) == 6  # the killed attempt left no record: its retry did
    assert records["corrupt.mp4"]["status"] == "failed"
    assert records["corrupt.mp4"]["error"].startswith(f"cannot read {library / 'corrupt.mp4'} as a video")
    assert "\n" not in records["corrupt.mp4"]["error"]
    assert {name: record["status"] for name, record in records.items() if name != "corrupt.mp4"} == dict.fromkeys(
        ["clip0.mp4", "clip1.mp4", "clip2.mp4", "clip3.mp4", "long.mp4"], "done")
    assert records["long.mp4"]["frames"] == 160
    assert sorted(path.name for path in out.iterdir()) == [  # the killed writer's temporary is gone
        "clip0.mov", "clip1.mov", "clip2.mov", "clip3.mov", "long.mov", "manifest.jsonl"]

    for name in ("clip0", "clip1", "clip2", "clip3", "long"):  # each output is what `rmbg-filter video` makes of it
        alone = tmp_path / f"{name}.mov"
        done = run_cli("video", library / f"{name}.mp4", alone, *FAST, model=checkpoints["safetensors"])
        assert done.returncode == 0, done.stderr
        assert alone.read_bytes() == (out / f"{name}.mov").read_bytes(), name

    made = {path.name: path.stat().st_mtime_ns for path in out.iterdir() if path.suffix == ".mov"}
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1, again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("rmbg-filter batch: error: 1 of 6 inputs failed "
                                                            "(0 done, 5 skipped, 1 failed)")
    rerun = read_manifest(out)[6:]
    assert sorted(record["status"] for record in rerun) == ["failed"] + ["skipped"] * 5
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir() if path.suffix == ".mov"} == made


def test_sigterm_during_a_cluster_run_exits_143_and_leaves_no_partial_output(
        cluster: str, library: Path, tmp_path: Path, checkpoints) -> None:
    out = tmp_path / "out"
    env = {**ENV, "RMBG_MODEL": str(checkpoints["safetensors"])}
    with _running([str(CLI), "batch", str(library / "long.mp4"), "--out-dir", str(out), "--ray", cluster, *FAST],
                  env) as process:
        deadline = time.monotonic() + 90
        while process.poll() is None and time.monotonic() < deadline and not (
                out.is_dir() and next(out.glob(".long.*.partial.mov"), None)):
            time.sleep(0.05)
        assert process.poll() is None, "the batch ended before its file was being written: SIGTERM would test nothing"
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "rmbg-filter batch: terminated"
    assert sorted(path.name for path in out.iterdir()) == ["manifest.jsonl"]
    assert (out / "manifest.jsonl").read_text() == ""


def test_a_model_that_cannot_load_is_one_usage_error_before_the_cluster_is_used(
        cluster: str, library: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    done = run_cli("batch", library / "clip0.mp4", "--out-dir", tmp_path / "out", "--ray", cluster,
                   "--model", broken, *FAST)
    assert done.returncode == 2, done.stderr
    assert one_error_line(done).startswith(f"rmbg-filter batch: error: {broken}: not a readable weights file")
    assert read_manifest(tmp_path / "out") == []
