"""Benchmark: the seed's loop, ONNX Runtime as rembg runs it, and this project's exact and fast modes.

Prints markdown tables. Each mode is timed in its own fresh process (a model that ran before
in the same process changes the next one's speed through the allocator: see the README), on the
same frames and the same deterministic weights (tests/recipe.py; speed does not depend on the
weights' values), and that process's peak RSS is read while it runs. With a CUDA GPU it adds
1080p inference and end-to-end fps on it. Precision is measured on the real network by
scripts/precision.py.

Usage: python scripts/bench.py [--frames 3] [--rounds 3] [--clip-frames 12] [--no-video]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]

from make_sample import sample_frame  # noqa: E402
from precision import cpu_model  # noqa: E402
from recipe import FIXTURES, recipe_state_dict  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import rmbg_filter  # noqa: E402
from rmbg_filter.cli.engine_loading import keep_freed_memory  # noqa: E402
from rmbg_filter.network import RMBGNetwork  # noqa: E402

SIZE = (1024, 1024)
MODES = ("seed", "onnxruntime-rembg", "exact", "fast", "fast-compiled")
LABELS = {
    "seed": "(1) seed loop: per frame, its pre/post, fp32 eager",
    "onnxruntime-rembg": "(2) ONNX Runtime fp32, as rembg runs it",
    "exact": "(3) rmbg-filter exact (float32, runtime auto)",
    "fast": "(4) rmbg-filter fast (dtype fast: this CPU's choice)",
    "fast-compiled": "(5) bfloat16 in torch with --compile (opt-in)",
}


def seed_network() -> RMBGNetwork:
    network = RMBGNetwork()
    network.load_state_dict(recipe_state_dict())
    return network.eval()


def seed_runner(device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """The seed's published loop body for one (H,W,3) uint8 frame (on the GPU: the same, moved there)."""
    network = seed_network().to(device)

    def run(frame: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            tensor = torch.tensor(frame, dtype=torch.float32, device=device).permute(2, 0, 1)
            tensor = F.interpolate(torch.unsqueeze(tensor, 0), size=SIZE, mode="bilinear")
            image = (tensor / 255.0 - 0.5) / 1.0
            result = network(image)[0][0]
            result = torch.squeeze(F.interpolate(result, size=frame.shape[:2], mode="bilinear"), 0)
            high, low = torch.max(result), torch.min(result)
            result = (result - low) / (high - low)
            return (result * 255).permute(1, 2, 0).cpu().numpy().astype(np.uint8)[..., 0]

    return run


def rembg_runner(folder: Path) -> Callable[[np.ndarray], np.ndarray]:
    """ONNX Runtime with default session options on the whole network (all six outputs),
    with numpy/PIL pre- and postprocess, the way rembg's BRIA session runs RMBG-1.4."""
    import onnxruntime
    from PIL import Image

    path = folder / "rmbg-full.onnx"
    torch.onnx.export(seed_network(), (torch.zeros(1, 3, *SIZE),), str(path), dynamo=False, opset_version=18,
                      input_names=["input"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(frame: np.ndarray) -> np.ndarray:
        picture = Image.fromarray(frame).resize(SIZE[::-1], Image.Resampling.BILINEAR)
        pixels = (np.asarray(picture, np.float32) / 255.0 - 0.5).transpose(2, 0, 1)[None]
        side = session.run(None, {"input": np.ascontiguousarray(pixels)})[0][0, 0]
        side = (side - side.min()) / (side.max() - side.min())
        mask = Image.fromarray((side * 255).astype(np.uint8)).resize(frame.shape[1::-1], Image.Resampling.BILINEAR)
        return np.asarray(mask)

    return run


def engine_runner(weights: Path, mode: str) -> Callable[[np.ndarray], np.ndarray]:
    keep_freed_memory()  # as the command line does
    dtype = {"exact": "float32", "fast": "fast", "fast-compiled": "bfloat16"}[mode]
    return rmbg_filter.load(weights, device="cpu", dtype=dtype, compile=mode == "fast-compiled")


def runner(mode: str, weights: Path, folder: Path) -> Callable[[np.ndarray], np.ndarray]:
    if mode == "seed":
        return seed_runner()
    if mode == "onnxruntime-rembg":
        return rembg_runner(folder)
    return engine_runner(weights, mode)


def frames_720p(count: int) -> list[np.ndarray]:
    return [sample_frame(1280, 720, phase=i * 0.7) for i in range(count)]


def peak_rss_mb(command: list[str]) -> tuple[float, str]:
    """Peak resident memory (MiB) of a child process run to its end, and what it printed.

    Read from the child's own ``VmHWM``, polled: ``ru_maxrss`` of a child on
    Linux starts from the parent's size at fork, which would hide the child's.
    """
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(command, stdout=output)
        status_file = Path(f"/proc/{process.pid}/status")
        peak_kib = 0
        while process.poll() is None:
            with contextlib.suppress(OSError):
                for line in status_file.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            time.sleep(0.05)
        if process.returncode != 0:
            raise RuntimeError(f"{command} failed with status {process.returncode}")
        output.seek(0)
        return peak_kib / 1024, output.read()


def child_main(mode: str, weights: Path, count: int, rounds: int) -> None:
    """Time ``mode`` in this fresh process: a warm-up frame (its first-call cost), then ``rounds`` rounds
    of ``count`` 720p frames; prints JSON with the median seconds a frame."""
    with tempfile.TemporaryDirectory() as folder:
        run = runner(mode, weights, Path(folder))
        frames = frames_720p(count)
        start = time.perf_counter()
        run(frames[0])
        first_call = time.perf_counter() - start
        seconds = []
        for _ in range(rounds):
            start = time.perf_counter()
            for frame in frames:
                run(frame)
            seconds.append((time.perf_counter() - start) / len(frames))
        time.sleep(0.2)  # let the parent's poll see the peak
    print(json.dumps({"seconds": statistics.median(seconds), "first_call": first_call}))


def make_clip(path: Path, frames: int, size: str = "1280x720") -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                    "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)


def video_rows(weights: Path, folder: Path, clip_frames: int) -> list[str]:
    """End-to-end ``video`` fps against inference alone on the same decoded frames, per mode."""
    import av

    from rmbg_filter.cli.video import VideoJob, VideoOptions
    from rmbg_filter.compositing import parse_output

    clip = folder / "clip720.mp4"
    make_clip(clip, clip_frames)
    with av.open(str(clip)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    rows = []
    for mode in ("exact", "fast"):
        remover = engine_runner(weights, mode)
        remover(decoded[0])  # warm-up
        start = time.perf_counter()
        for _ in remover.stream(iter(decoded)):
            pass
        inference = len(decoded) / (time.perf_counter() - start)
        out = folder / f"out-{mode}.mov"
        with VideoJob(clip, out, VideoOptions(parse_output("rgba"), overwrite=True)) as job:
            start = time.perf_counter()
            written = job.run(remover)
            end_to_end = written / (time.perf_counter() - start)
        rows.append(f"| {mode} | {inference:.3f} | {end_to_end:.3f} | {end_to_end / inference:.2f} |")
    return rows


def cuda_rows(weights: Path, folder: Path, clip_frames: int) -> list[str]:
    """Inference fps of the seed loop and the engine's CUDA settings on 1080p frames; end-to-end ``video`` fps."""
    import av

    from rmbg_filter.cli.video import VideoJob, VideoOptions
    from rmbg_filter.compositing import parse_output

    clip = folder / "clip1080.mp4"
    make_clip(clip, max(clip_frames, 32), size="1920x1080")
    with av.open(str(clip)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    seed = seed_runner("cuda")
    seed(decoded[0])
    start = time.perf_counter()
    for frame in decoded:
        seed(frame)
    rows = [f"| seed loop on the GPU, fp32 eager | {len(decoded) / (time.perf_counter() - start):.1f} |"]
    del seed
    settings = [("float16, batch 1", {"batch_size": 1}), ("float16, batch 8", {"batch_size": 8}),
                ("float16, batch 8, --compile (CUDA graphs)", {"batch_size": 8, "compile": True})]
    for label, options in settings:
        remover = rmbg_filter.load(weights, device="cuda", **options)
        for _ in remover.stream(iter(decoded[:options["batch_size"]])):
            pass  # warm-up (and compile)
        start = time.perf_counter()
        for _ in remover.stream(iter(decoded)):
            pass
        inference = len(decoded) / (time.perf_counter() - start)
        rows.append(f"| {label}: inference | {inference:.1f} |")
        with VideoJob(clip, folder / "out1080.mov", VideoOptions(parse_output("rgba"), overwrite=True)) as job:
            start = time.perf_counter()
            written = job.run(remover)
        rows.append(f"| {label}: end-to-end `video` to ProRes 4444 | {written / (time.perf_counter() - start):.1f} |")
    return rows


def rss_rows(weights: Path, folder: Path) -> list[str]:
    """Peak RSS of ``rmbg-filter video`` on 10 s and 60 s 720p clips (network at 128 to keep it short)."""
    cli = Path(sys.executable).parent / "rmbg-filter"
    warm = folder / "warm.mp4"
    make_clip(warm, 1)  # pays the ONNX export (cached) before either measured run
    subprocess.run([str(cli), "video", str(warm), str(folder / "warm.mkv"), "-y", "-q", "--model", str(weights),
                    "--model-size", "128"], check=True)
    rows = []
    for seconds in (10, 60):
        clip = folder / f"clip{seconds}.mp4"
        make_clip(clip, seconds * 25)
        command = [str(cli), "video", str(clip), str(folder / f"rss{seconds}.mkv"), "-y", "-q",
                   "--model", str(weights), "--model-size", "128"]
        start = time.perf_counter()
        peak, _ = peak_rss_mb(command)
        rows.append(f"| {seconds} s ({seconds * 25} frames) | {peak:.0f} | {time.perf_counter() - start:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3, help="720p frames per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clip-frames", type=int, default=12, help="frames of the end-to-end 720p clip")
    parser.add_argument("--no-video", action="store_true", help="skip the end-to-end and RSS parts")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "WEIGHTS", "COUNT", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], Path(args.child[1]), int(args.child[2]), int(args.child[3]))
        return
    os.environ.setdefault("RMBG_CACHE", tempfile.mkdtemp(prefix="rmbg-bench-cache-"))
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        weights = folder / "model.safetensors"
        save_file(recipe_state_dict(), weights)
        measured = {}
        for mode in MODES:
            peak, printed = peak_rss_mb([sys.executable, __file__, "--child", mode, str(weights), str(args.frames),
                                         str(args.rounds)])
            measured[mode] = {**json.loads(printed.strip().splitlines()[-1]), "rss": peak}
        seed = measured["seed"]["seconds"]
        fixture = np.load(FIXTURES / "rmbg14_parity.npz")
        exact_error = np.abs(engine_runner(weights, "exact")(fixture["frame_333x500"]).astype(int)
                             - fixture["alpha_333x500"])

        print(f"Machine: {cpu_model()}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
              f"1280x720 frames, model input 1024x1024; each mode in its own fresh process, median of "
              f"{args.rounds} rounds of {args.frames} frames\n")
        print("| mode | s/frame | speed-up vs (1) | peak RSS MiB | first frame s |")
        print("|---|---|---|---|---|")
        for mode in MODES:
            row = measured[mode]
            print(f"| {LABELS[mode]} | {row['seconds']:.3f} | {seed / row['seconds']:.2f}x | {row['rss']:.0f} | "
                  f"{row['first_call']:.1f} |")
        print(f"\n(3) against the seed's reference alpha (deterministic weights): max {exact_error.max()}, "
              f"mean {exact_error.mean():.3f} levels. Precision on the real network: scripts/precision.py.")
        if torch.cuda.is_available():
            print(f"\nCUDA: {torch.cuda.get_device_name()}, 1920x1080 frames, model input 1024x1024\n")
            print("| mode | fps |")
            print("|---|---|")
            for row in cuda_rows(weights, folder, args.clip_frames):
                print(row)
        if args.no_video:
            return
        print(f"\nEnd to end: `rmbg-filter video` to ProRes 4444 on a generated 720p H.264 clip of "
              f"{args.clip_frames} frames, against inference alone on the same decoded frames\n")
        print("| mode | inference fps | end-to-end fps | ratio |")
        print("|---|---|---|---|")
        for row in video_rows(weights, folder, args.clip_frames):
            print(row)
        print("\nMemory: peak RSS of `rmbg-filter video` (FFV1 out, --model-size 128 to keep the run short)\n")
        print("| clip | peak RSS MiB | wall s |")
        print("|---|---|---|")
        for row in rss_rows(weights, folder):
            print(row)


if __name__ == "__main__":
    main()
