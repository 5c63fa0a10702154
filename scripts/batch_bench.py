"""Files per minute of ``rmbg-filter batch``: in one process, and on a local Ray cluster with 1 and 2 workers.

Usage: python scripts/batch_bench.py [--files 8] [--size 320x240] [--model-size 512] [--model small|medium]
Makes ``--files`` 2-second clips (50 frames, pans across scikit-image photos), then times each mode
as its own ``rmbg-filter batch`` process (model loading, Ray's start and the workers' start
included: what a user waits for) into a fresh output folder, and prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision import cpu_model
from real_network import isnet_onnx

CLI = Path(sys.executable).parent / "rmbg-filter"
PHOTOS = ("motorcycle_left", "astronaut", "coffee", "chelsea", "rocket", "motorcycle_right")
MODES = (("here", ()), ("ray local, 1 worker", ("--ray", "local", "--workers", "1")),
         ("ray local, 2 workers", ("--ray", "local", "--workers", "2")))


def make_clips(folder: Path, count: int, size: str) -> None:
    for index in range(count):
        subprocess.run([sys.executable, str(Path(__file__).parent / "make_sample.py"), str(folder / f"clip{index}.mp4"),
                        size, "--photo", PHOTOS[index % len(PHOTOS)]], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--model-size", default="512")
    parser.add_argument("--model", choices=("small", "medium"), default="small")
    args = parser.parse_args()
    model = isnet_onnx(args.model)
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as root:
        clips = Path(root) / "clips"
        clips.mkdir()
        make_clips(clips, args.files, args.size)
        rows = []
        for name, flags in MODES:
            out = Path(root) / name.replace(" ", "_").replace(",", "")
            started = time.monotonic()
            done = subprocess.run([str(CLI), "batch", str(clips), "--out-dir", str(out), "--model", str(model),
                                   "--model-size", args.model_size, "-q", *flags], capture_output=True, text=True,
                                  env={**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")})
            wall = time.monotonic() - started
            if done.returncode:
                sys.exit(f"{name}: rmbg-filter batch failed: {done.stderr.strip()}")
            records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
            frames = sum(record["frames"] for record in records)
            rows.append((name, len(records), frames, wall, len(records) / wall * 60, frames / wall))
    print(f"Machine: {cpu_model()} ({os.cpu_count()} CPUs); IS-Net {args.model} (ONNX weights, runtime auto) at "
          f"model size {args.model_size}; {args.files} clips of {args.size}, 50 frames each, to ProRes 4444 .mov")
    print("| mode | files | frames | wall s | files/min | frames/s |")
    print("|---|---|---|---|---|---|")
    for name, files, frames, wall, per_minute, fps in rows:
        print(f"| {name} | {files} | {frames} | {wall:.1f} | {per_minute:.1f} | {fps:.2f} |")


if __name__ == "__main__":
    main()
