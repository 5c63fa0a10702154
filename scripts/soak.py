"""Soak runs: the memory of a long stream through ``rmbg-filter pipe`` and the GStreamer element must stay flat.

    .venv/bin/python scripts/soak.py [--runs pipe gst] [--frames 10000] [--model PATH] [--max-growth-mb 20]

``pipe``: ``rmbg-filter pipe --size 32x32 --model-size 32`` on --frames raw rgb24 frames of varied content,
written by a feeder thread while the alphas are read back; the process's VmRSS (/proc/PID/status) is sampled
every --frames/20 frames read. ``gst``: ``videotestsrc pattern=ball ! rmbg model-size=32 ! fakesink`` in a
GStreamer application of the system Python (as gst-launch-1.0 runs it, with a registry of its own), whose
probe on the sink counts the buffers and samples the application's own VmRSS every --frames/20 buffers.
The model defaults to IS-Net small (``real_network.isnet_onnx``, fetched once into ~/.cache).

Prints the CPU, one row per sample and a summary per run (first, warm and last sample, peak, growth, seconds);
writes no file. Exit status 1 when a run fails, or when its RSS grows by more than --max-growth-mb after the
warm-up (the sample at the first tenth of the frames).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDE = 32
#: samples a run takes (besides the one at its first frame)
SAMPLES = 20


@dataclass(frozen=True)
class Sample:
    """The process's resident memory after ``frames`` frames, ``seconds`` after the process started."""

    frames: int
    rss_mb: float
    seconds: float


@dataclass(frozen=True)
class Verdict:
    """A run's summary: samples at the first frame, at the end of the warm-up and at the end; the peak after
    the warm-up; ``growth_mb`` = that peak minus the warm-up sample."""

    first: Sample
    warm: Sample
    last: Sample
    peak_mb: float
    growth_mb: float


def verdict(samples: list[Sample], frames: int) -> Verdict:
    """Summarise ``samples`` (in frame order, the last at ``frames``); warm-up: the first tenth of the frames."""
    warm = next(sample for sample in samples if sample.frames >= frames // 10)
    after = [sample for sample in samples if sample.frames >= warm.frames]
    peak = max(sample.rss_mb for sample in after)
    return Verdict(samples[0], warm, samples[-1], peak, peak - warm.rss_mb)


def rss_mb(pid: int | str = "self") -> float:
    """VmRSS of process ``pid`` in MB (MiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def sample_points(frames: int) -> set[int]:
    """The frame counts at which a run samples: the first frame and every frames/SAMPLES, the last included."""
    every = max(frames // SAMPLES, 1)
    return {1, frames, *range(every, frames + 1, every)}


def varied_frames(count: int) -> Iterator[bytes]:
    """``count`` raw rgb24 frames (SIDE,SIDE,3) uint8: a gradient whose colours drift, a square that moves
    and changes size, and noise, so no two frames are alike."""
    import numpy as np

    rows, cols = np.indices((SIDE, SIDE))
    noise = np.random.default_rng(12)
    for index in range(count):
        frame = np.empty((SIDE, SIDE, 3), np.uint8)
        frame[..., 0] = (rows * 8 + index) % 256
        frame[..., 1] = (cols * 8 + 3 * index) % 256
        frame[..., 2] = (index * 7) % 256
        top, left, size = index % SIDE, (index // 3) % SIDE, 4 + index % 12
        frame[top:top + size, left:left + size] = (255 - index % 64, index % 200, 90)
        frame ^= noise.integers(0, 16, frame.shape, dtype=np.uint8)
        yield frame.tobytes()


def run_pipe(frames: int, model: Path, timeout: float, report: Callable[[Sample], None]) -> list[Sample]:
    """Stream ``frames`` frames through ``rmbg-filter pipe``; the samples of its RSS as alphas come back, each
    passed to ``report`` when taken."""
    command = [str(Path(sys.prefix) / "bin" / "rmbg-filter"), "pipe", "--size", f"{SIDE}x{SIDE}",
               "--model-size", str(SIDE), "--model", str(model)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryFile() as errors:
        started = time.monotonic()
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env)
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()

        def feed() -> None:
            try:
                for frame in varied_frames(frames):
                    process.stdin.write(frame)
                process.stdin.close()
            except BrokenPipeError:  # the filter died: the reader reports it
                pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        samples, points = [], sample_points(frames)
        try:
            for done in range(1, frames + 1):
                if len(process.stdout.read(SIDE * SIDE)) != SIDE * SIDE:
                    break
                if done in points:
                    samples.append(Sample(done, rss_mb(process.pid), time.monotonic() - started))
                    report(samples[-1])
            process.stdout.close()
            status = process.wait()
        finally:
            watchdog.cancel()
            process.kill()
        feeder.join()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip().splitlines()[-3:]
    if status != 0 or len(samples) != len(points):
        raise RuntimeError(f"rmbg-filter pipe ended with status {status} after {samples[-1].frames if samples else 0}"
                           f" of {frames} frames: {' | '.join(message)}")
    return samples


def run_gst(frames: int, model: Path, timeout: float, report: Callable[[Sample], None]) -> list[Sample]:
    """Run ``frames`` buffers through the element in a GStreamer application (``--child``) of the system Python;
    its samples, each passed to ``report`` as it comes."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    with tempfile.TemporaryDirectory(prefix="soak-gst-") as registry, tempfile.TemporaryFile() as errors:
        env.update({"HF_HUB_OFFLINE": "1", "VIRTUAL_ENV": sys.prefix, "RMBG_MODEL": str(model),
                    "GST_PLUGIN_PATH": str(ROOT / "plugins" / "gstreamer"),
                    "GST_REGISTRY": str(Path(registry) / "registry.bin")})
        process = subprocess.Popen(["/usr/bin/python3", __file__, "--child", "--frames", str(frames)], env=env,
                                   stdout=subprocess.PIPE, stderr=errors, text=True)
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        samples = []
        try:
            for line in process.stdout:
                samples.append(Sample(**json.loads(line)))
                report(samples[-1])
            status = process.wait()
        finally:
            watchdog.cancel()
            process.kill()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip().splitlines()[-3:]
    if status != 0 or len(samples) != len(sample_points(frames)):
        raise RuntimeError(f"the GStreamer application ended with status {status} after "
                           f"{samples[-1].frames if samples else 0} of {frames} buffers: {' | '.join(message)}")
    return samples


def gst_child(frames: int) -> None:
    """The GStreamer application (system Python): print a Sample as a JSON line at each sample point."""
    sys.path.insert(0, str(Path(__file__).parent))
    from gst_bus import Gst, play

    started = time.monotonic()
    Gst.init(None)
    pipeline = Gst.parse_launch(f"videotestsrc num-buffers={frames} pattern=ball "
                                f"! video/x-raw,format=RGB,width={SIDE},height={SIDE} "
                                f"! rmbg model-size={SIDE} ! fakesink name=sink")  # the model: RMBG_MODEL
    points, count = sample_points(frames), [0]

    def counted(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        count[0] += 1
        if count[0] in points:
            print(json.dumps(Sample(count[0], rss_mb(), time.monotonic() - started).__dict__), flush=True)
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, counted)
    play(pipeline, timeout_s=600)


def print_row(run: str, sample: Sample) -> None:
    """One sample as a row of the table."""
    print(f"{run:<5} {sample.frames:>7} {sample.rss_mb:>8.1f} {sample.seconds:>8.1f}", flush=True)


def cpu_model() -> str:
    """The CPU's 'model name' from /proc/cpuinfo, with the number of cores."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else 'unknown CPU'} ({os.cpu_count()} cores)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=("pipe", "gst"), default=["pipe", "gst"])
    parser.add_argument("--frames", type=int, default=10_000, help="frames (buffers) a run (default 10000)")
    parser.add_argument("--model", type=Path, help="weights file or directory (default: IS-Net small, ONNX)")
    parser.add_argument("--max-growth-mb", type=float, default=20.0,
                        help="most the RSS may grow after the warm-up (default 20)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a run may take (default 3600)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames < SAMPLES:
        parser.error(f"--frames must be at least {SAMPLES}")
    if args.child:
        gst_child(args.frames)
        return 0
    if args.model is None:
        from real_network import isnet_onnx

        args.model = isnet_onnx("small")
    print(f"soak: {args.frames} frames of {SIDE}x{SIDE} a run, model {args.model.name} at model-size {SIDE}, "
          f"on {cpu_model()}")
    print(f"{'run':<5} {'frames':>7} {'RSS MB':>8} {'seconds':>8}")
    verdicts, failed = {}, False
    for run in args.runs:
        try:
            samples = (run_pipe if run == "pipe" else run_gst)(args.frames, args.model.resolve(), args.timeout,
                                                               functools.partial(print_row, run))
        except RuntimeError as error:
            print(f"{run:<5} FAILED: {error}")
            failed = True
            continue
        verdicts[run] = verdict(samples, args.frames)
    print(f"{'run':<5} {'first MB':>9} {'warm MB':>8} {'last MB':>8} {'peak MB':>8} {'growth MB':>10} "
          f"{'seconds':>8} {'fps':>6}  verdict")
    for run, summary in verdicts.items():
        flat = summary.growth_mb <= args.max_growth_mb
        failed |= not flat
        steady = (summary.last.frames - summary.first.frames) / max(summary.last.seconds - summary.first.seconds,
                                                                    1e-9)
        print(f"{run:<5} {summary.first.rss_mb:>9.1f} {summary.warm.rss_mb:>8.1f} {summary.last.rss_mb:>8.1f} "
              f"{summary.peak_mb:>8.1f} {summary.growth_mb:>10.1f} {summary.last.seconds:>8.1f} {steady:>6.0f}  "
              f"{'flat' if flat else f'GREW more than {args.max_growth_mb:g} MB'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
