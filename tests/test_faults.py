"""Faults injected into real commands: a full disk, a read-only folder, a model that will not load, a full
stdout, absurd requests. Each must end in one line and its documented status, leaving nothing behind.

The small disk is a real tmpfs, mounted in a mount namespace of the command's own
(``unshare --map-root-user --mount``: no root needed where user namespaces are allowed,
and nothing stays mounted). Interrupts (SIGINT, SIGTERM) during ``video``, ``pipe`` and
``batch``, a decode error mid-stream and a cut stdin are tested beside each command
(test_cli_video, test_cli_pipe, test_batch, test_batch_ray).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import CLI, ffmpeg, one_error_line, read_manifest, run_cli
from PIL import Image

MOUNT = """
mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99
if [ "$3" = ro ]; then mount -o remount,ro "$2" || exit 99; fi
folder=$2 listing=$4
shift 4
"$@"
status=$?
ls -A "$folder" > "$listing"
exit $status
"""


def on_small_disk(command: list[str | Path], folder: Path, size: str, *, read_only: bool = False,
                  model: Path | None = None) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``command`` with a tmpfs of ``size`` mounted on ``folder`` (read-only if asked): its result,
    and what the disk held when it ended."""
    folder.mkdir(exist_ok=True)
    listing = folder.parent / f"{folder.name}.listing"
    wrapped = ["unshare", "--map-root-user", "--mount", "sh", "-c", MOUNT, "sh", size, str(folder),
               "ro" if read_only else "rw", str(listing), str(CLI), *map(str, command)]
    env = {"HF_HUB_OFFLINE": "1", **({} if model is None else {"RMBG_MODEL": str(model)})}
    done = subprocess.run(wrapped, capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    if done.returncode == 99:
        pytest.skip(f"no tmpfs can be mounted here (user namespaces off?): {done.stderr.strip()}")
    return done, listing.read_text().split()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-second clip, a noisy picture (a PNG far larger than the small disk), a corrupt ONNX model."""
    root = tmp_path_factory.mktemp("fault-inputs")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-frames:v", "50", "-pix_fmt", "yuv420p",
           str(root / "clip.mp4"))
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    Image.fromarray(noise).save(root / "noise.png")
    (root / "broken.onnx").write_bytes(b"\x08\x07\x12\x04junk" + bytes(100))
    return {"clip": root / "clip.mp4", "picture": root / "noise.png", "broken": root / "broken.onnx"}


@pytest.mark.parametrize("command", ["video", "image", "batch"])
def test_a_full_disk_is_one_line_status_1_and_leaves_nothing(command: str, inputs: dict[str, Path], tmp_path: Path,
                                                            checkpoints: dict[str, Path]) -> None:
    disk = tmp_path / "disk"
    args = {"video": ["video", inputs["clip"], disk / "out.mkv"],  # FFV1: far more than 256 KB
            "image": ["image", inputs["picture"], disk / "out.png"],
            "batch": ["batch", inputs["clip"], "--out-dir", disk, "--format", "mkv", "-q"]}[command]
    done, left = on_small_disk([*args, "--model-size", "32"], disk, "256k", model=checkpoints["safetensors"])
    assert done.returncode == 1, done.stderr
    if command == "batch":  # the file failed and is recorded; the command sums up
        assert left == ["manifest.jsonl"], left
        assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
    else:
        assert left == []
        assert one_error_line(done) == (f"rmbg-filter {command}: error: No space left on device; nothing was kept "
                                        "(free some space, or write elsewhere)")


@pytest.mark.parametrize("command", ["video", "image", "batch"])
def test_a_read_only_folder_is_refused_before_any_work(command: str, inputs: dict[str, Path], tmp_path: Path,
                                                       checkpoints: dict[str, Path]) -> None:
    disk = tmp_path / "disk"
    target = {"video": disk / "out.mov", "image": disk / "out.png", "batch": disk / "clip.mov"}[command]
    args = {"video": ["video", inputs["clip"], target], "image": ["image", inputs["picture"], target],
            "batch": ["batch", inputs["clip"], "--out-dir", disk]}[command]
    done, left = on_small_disk(args, disk, "1m", read_only=True, model=inputs["broken"])  # no model is loaded
    assert done.returncode == 2, done.stderr
    assert left == []
    line = one_error_line(done)
    if command == "batch":
        assert line == (f"rmbg-filter batch: error: cannot write {disk / 'manifest.jsonl'} (Read-only file system); "
                        "give a writable --out-dir")
    else:
        assert line == (f"rmbg-filter {command}: error: cannot write {target}: folder {disk} is not writable "
                        "(its permissions, or a read-only disk); write elsewhere")


@pytest.mark.parametrize("command", ["image", "video", "pipe", "batch"])
def test_a_model_that_will_not_load_is_one_line_status_2_and_writes_nothing(
        command: str, inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = {"image": ["image", inputs["picture"], out / "cut.png"], "video": ["video", inputs["clip"], out / "cut.mov"],
            "pipe": ["pipe", "--size", "4x4"], "batch": ["batch", inputs["clip"], "--out-dir", out]}[command]
    done = run_cli(*args, "--model", inputs["broken"], input="\0" * 4 * 4 * 3)
    assert done.returncode == 2, done.stderr
    assert one_error_line(done).startswith(f"rmbg-filter {command}: error: {inputs['broken']}: not a readable ONNX")
    assert done.stdout == ""
    assert sorted(path.name for path in out.iterdir()) == ([] if command != "batch" else ["manifest.jsonl"])
    if command == "batch":  # the model loads before the first file: no file was tried
        assert read_manifest(out) == []


def test_a_full_stdout_is_one_line_status_1(checkpoints: dict[str, Path]) -> None:
    with open("/dev/full", "wb") as full:
        done = subprocess.run([str(CLI), "pipe", "--size", "8x8", "--model-size", "32", "--model",
                               str(checkpoints["safetensors"])], input=bytes(8 * 8 * 3 * 3), stdout=full,
                              stderr=subprocess.PIPE, timeout=120)
    assert done.returncode == 1
    assert done.stderr.decode().strip() == ("rmbg-filter pipe: error: No space left on device; nothing was kept "
                                            "(free some space, or write elsewhere)")


@pytest.mark.parametrize(("args", "message"), [
    (["--size", "8x8", "--batch-size", "256", "--model-size", "4096"],
     "--batch-size 256 at --model-size 4096 needs about 3400.0 GiB for the network, more than the"),
    (["--size", "16384x16384"], "argument --size: size 16384x16384 is 268 megapixels, more than the 179 accepted"),
    (["--size", "16384x10922", "--batch-size", "64", "--temporal-radius", "8", "--model-size", "32"],
     "frames of 16384x10922 need about 364.0 GiB of memory, more than the"),
])
def test_absurd_requests_are_refused_before_the_model_loads(args: list[str], message: str, tmp_path: Path,
                                                             inputs: dict[str, Path]) -> None:
    """Refused in one line, status 2, with no model read at all (it names a broken file)."""
    done = run_cli("pipe", *args, "--model", inputs["broken"], "--device", "cpu", "--runtime", "torch",
                   input="\0" * 12)
    assert done.returncode == 2
    assert message in one_error_line(done)


def test_decompression_bombs_are_refused_for_image_and_background(inputs: dict[str, Path], tmp_path: Path) -> None:
    """A 240-megapixel PNG of 30 KB, as the picture and as the background: refused before decoding."""
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 12000)).save(bomb)
    for args in (["image", bomb, tmp_path / "cut.png"],
                 ["image", inputs["picture"], tmp_path / "cut.png", "--output", f"image:{bomb}"]):
        done = run_cli(*args, "--model", inputs["broken"])
        assert done.returncode == 2
        assert one_error_line(done).startswith(f"rmbg-filter image: error: {bomb} is larger than the 179 megapixels "
                                               "accepted")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bomb.png"]



OUT_OF_MEMORY = """
import resource, sys
import numpy as np
from rmbg_filter import load

def peak():
    return next(int(line.split()[1]) << 10 for line in open("/proc/self/status") if line.startswith("VmPeak"))

remover = load(sys.argv[1], device="cpu", runtime="torch", model_size=512, batch_size=4)
frames = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), np.uint8)
alone = np.stack([remover(frame) for frame in frames])  # one frame a network call: the peak of a batch of 1
resource.setrlimit(resource.RLIMIT_AS, (peak() + (500 << 20),) * 2)  # room for 2 frames, not 4 (about 212 MB each)
together = remover(frames)  # a batch of 4 asked for: it fails, then 2 runs of 2
assert together.shape == alone.shape and np.abs(together.astype(int) - alone).max() <= 1  # the same, to rounding
print(remover.asked_batch_size, remover.batch_size)
"""


def test_running_out_of_memory_halves_the_batch_and_says_so_once(checkpoints: dict[str, Path]) -> None:
    """A real allocation failure (the CPU allocator's, under an address-space limit; CUDA's is handled the
    same way): the batch runs again in halves, the alphas are the same, one line says so."""
    done = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY, str(checkpoints["safetensors"])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "2"]
    assert done.stderr == ("rmbg-filter: out of memory with batches of 4 frames; going on with 2 (ask for that "
                           "batch size to skip the failed tries)\n")


def test_a_name_with_a_line_break_still_makes_one_line(tmp_path: Path) -> None:
    """Messages quote what the user gave; its control characters are escaped so the error stays one line."""
    done = run_cli("image", tmp_path / "two\nlines.png", tmp_path / "out.png", "--model", tmp_path / "m\x1b.onnx")
    assert done.returncode == 2
    assert one_error_line(done) == f"rmbg-filter image: error: input not found: {tmp_path}/two\\nlines.png"


@pytest.mark.parametrize("device", ["meta", "xla", "hpu", "cuda:99"])
def test_devices_torch_knows_but_cannot_use_are_option_errors(device: str, inputs: dict[str, Path]) -> None:
    """They passed the check and failed at the first frame (found by fuzzing vsrmbg)."""
    done = run_cli("pipe", "--size", "4x4", "--device", device, "--model", inputs["broken"], input="\0" * 48)
    assert done.returncode == 2
    assert one_error_line(done).startswith("rmbg-filter pipe: error: --device ")
    assert device in done.stderr
