"""``make gst-yuv``: I420 straight into ``rmbg`` against ``videoconvert ! rmbg``, frames per second, side by side.

    GST_PLUGIN_PATH=plugins/gstreamer VIRTUAL_ENV=$PWD/.venv python scripts/gst_yuv.py --model MODEL

Each setting runs ``gst-launch-1.0`` in its own process: ``--frames`` I420 frames of ``--size`` from
``videotestsrc`` (pattern ball) through ``rmbg output=alpha`` into ``fakesink sync=false``, the two settings
alternating for ``--rounds`` rounds; the table gives the median seconds a frame (model load excluded: a run of
one frame is subtracted) and the CPU's model and flags.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_bench import host_line, versions

SETTINGS = {"videoconvert ! rmbg (RGB in)": "videoconvert ! video/x-raw,format=RGB ! ",
            "rmbg (I420 in)": ""}


def seconds(frames: int, size: str, between: str, element: str) -> float:
    """Wall seconds of one gst-launch-1.0 run of ``frames`` frames."""
    width, height = size.split("x")
    pipeline = (f"videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=I420,width={width},"
                f"height={height},framerate=25/1 ! {between}{element} ! fakesink sync=false")
    started = time.perf_counter()
    subprocess.run(["gst-launch-1.0", "-q", *pipeline.split()], check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="weights for the element's model property")
    parser.add_argument("--size", default="1920x1080", help="frame size (default 1920x1080)")
    parser.add_argument("--frames", type=int, default=30, help="frames a run (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the settings alternating (default 3)")
    parser.add_argument("--model-size", type=int, default=320, help="the element's model-size (default 320)")
    parser.add_argument("--dtype", default="fast", help="the element's dtype (default fast)")
    args = parser.parse_args()
    element = f"rmbg model={args.model} model-size={args.model_size} dtype={args.dtype} output=alpha"
    per_frame: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, between in SETTINGS.items():
            whole = seconds(args.frames, args.size, between, element)
            start = seconds(1, args.size, between, element)
            per_frame[name].append((whole - start) / max(args.frames - 1, 1))
    print(f"CPU: {host_line(dict(os.environ))}; {versions()}")
    print(f"{args.size} I420, {args.frames} frames a run, {args.rounds} rounds, rmbg model-size={args.model_size} "
          f"dtype={args.dtype} output=alpha, fakesink sync=false\n")
    print("| setting | s/frame (median) | fps | vs videoconvert |")
    print("|---|---|---|---|")
    base = statistics.median(per_frame[next(iter(SETTINGS))])
    for name, values in per_frame.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.4f} | {1 / median:.2f} | {base / median:.2f}x |")


if __name__ == "__main__":
    main()
