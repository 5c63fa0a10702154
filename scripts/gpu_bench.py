"""The GPU rows of the benchmark: inference fps at 1024, end-to-end 1080p ``video``, peak GPU memory.

Every configuration is timed in its own fresh process. Compiled configurations are compiled
first, all at once in parallel processes that fill inductor's on-disk cache, so that each timed
process loads its compiled graph from that cache instead of spending minutes compiling in turn.
Rows are printed (and appended to the table file) as soon as they are measured, so a run cut
short still leaves what it measured.

Usage: python scripts/gpu_bench.py --weights FILE --table OUT.md [--dry-run]
``--dry-run`` runs every step on the CPU with tiny sizes (model 64, a 128x96 clip, libx264
instead of NVENC, one compiled configuration), so that the script itself is tested without a GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts")]

from make_sample import sample_frame, write_clip  # noqa: E402
from precision import cpu_model  # noqa: E402
from thread_load import ThreadLoad  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """What one run measures: the device, the model input, frames per timing, the clip."""

    device: str
    model_size: int
    frames: int
    clip: tuple[int, int]
    clip_frames: int
    configs: tuple[tuple[str, int, bool], ...]  # (dtype, batch size, compiled)
    nvenc: bool


FULL = Sizes("cuda", 1024, 96, (1920, 1080), 240,
             tuple((d, b, c) for c in (False, True) for d in ("float16", "bfloat16") for b in (1, 4, 8)), True)
DRY = Sizes("cpu", 64, 8, (128, 96), 12,
            (*((d, b, False) for d in ("float16", "bfloat16") for b in (1, 4, 8)), ("bfloat16", 1, True)),
            False)


def child_infer(weights: str, sizes: Sizes, dtype: str, batch: int, compiled: bool, warm_only: bool) -> dict:
    """Time the engine on ``sizes.frames`` frames of model size, in batches of ``batch``.

    Returns fps with frames already on the device (network + pre/post + alpha download), fps of
    ``stream()`` from host memory (uploads included), the first call's seconds and peak GPU memory.
    """
    import torch

    import rmbg_filter

    cuda = sizes.device == "cuda"
    start = time.perf_counter()
    remover = rmbg_filter.load(weights, device=sizes.device, dtype=dtype, batch_size=batch,
                               model_size=sizes.model_size, compile=compiled)
    side = sizes.model_size
    host = [sample_frame(side, side, phase=i * 0.3) for i in range(batch)]
    on_device = torch.from_numpy(np.stack(host)).to(sizes.device)
    remover.infer_batch(on_device)
    first = time.perf_counter() - start
    if warm_only:
        return {"first_call_s": first}
    for _ in range(2):
        remover.infer_batch(on_device)
    rounds = max(sizes.frames // batch, 2)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(rounds):
        remover.infer_batch(on_device)  # waits for the alphas to reach the host
    device_fps = rounds * batch / (time.perf_counter() - start)
    frames = [host[i % batch] for i in range(rounds * batch)]
    start = time.perf_counter()
    for _ in remover.stream(iter(frames)):
        pass
    stream_fps = len(frames) / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
    return {"device_fps": device_fps, "stream_fps": stream_fps, "first_call_s": first, "peak_mib": peak}


def encoder_opens(codec: str) -> bool:
    """Whether ``codec`` opens and encodes a frame here (NVENC needs an encoder engine: an H100 has none)."""
    import av

    try:
        context = av.CodecContext.create(codec, "w")
        context.width, context.height, context.pix_fmt, context.time_base = 256, 256, "yuv420p", Fraction(1, 25)
        frame = av.VideoFrame(256, 256, "yuv420p")
        frame.pts = 0
        context.encode(frame)
        return True
    except Exception:  # the build or the device lacks it
        return False


def stage_rates(clip: Path, sizes: Sizes) -> dict[str, float | str]:
    """fps of each CPU-side stage of ``video`` alone: decoding with the RGB conversion (with one converter kept,
    as ``video`` does, and with a converter made for each frame, as ``frame.to_ndarray`` does), NVDEC, the
    encoders."""
    import av
    from av.video.reformatter import VideoReformatter

    rates: dict[str, float | str] = {}
    kept = VideoReformatter()
    conversions = {"decode + RGB (libavcodec h264, threads auto; swscale bicubic, one converter kept)":
                   lambda frame: kept.reformat(frame, format="rgb24", interpolation="BICUBIC").to_ndarray(),
                   "decode + RGB, a converter made for each frame (frame.to_ndarray)":
                   lambda frame: frame.to_ndarray(format="rgb24", interpolation="BICUBIC")}
    for label, convert in conversions.items():
        with av.open(str(clip)) as container:
            container.streams.video[0].thread_type = "AUTO"
            start = time.perf_counter()
            decoded = [convert(frame) for frame in container.decode(video=0)]
            rates[label] = len(decoded) / (time.perf_counter() - start)
    if sizes.nvenc:
        try:
            with av.open(str(clip)) as container:
                stream = container.streams.video[0]
                context = av.CodecContext.create("h264_cuvid", "r")
                context.extradata = stream.codec_context.extradata
                start = time.perf_counter()
                count = sum(len(context.decode(packet)) for packet in container.demux(stream) if packet.size)
                count += len(context.decode(None))
                rates["decode (NVDEC h264_cuvid, frames to host)"] = count / (time.perf_counter() - start)
        except Exception as error:  # the decoder may be missing or refuse the device
            rates["decode (NVDEC h264_cuvid, frames to host)"] = f"n/a ({str(error).splitlines()[0][:120]})"
    source = av.VideoFrame.from_ndarray(decoded[0], format="rgb24")
    encoders = [("prores_ks", "yuva444p10le", {"profile": "4444"}, "encode ProRes 4444 (prores_ks, the .mov default)"),
                ("prores_aw", "yuva444p10le", {"profile": "4"}, "encode ProRes 4444 (prores_aw)"),
                ("ffv1", "yuva420p", {"level": "3", "slices": "24"}, "encode FFV1 yuva420p, 24 slices")]
    encoders.append(("h264_nvenc", "yuv420p", {}, "encode H.264 (NVENC)") if sizes.nvenc
                    else ("libx264", "yuv420p", {"preset": "ultrafast"}, "encode H.264 (libx264 ultrafast)"))
    for codec, pix_fmt, options, label in encoders:
        try:
            frame = source.reformat(format=pix_fmt)
            with tempfile.TemporaryDirectory() as folder, av.open(f"{folder}/e.mkv", "w") as out:
                stream = out.add_stream(codec, rate=25, options=options)
                stream.width, stream.height, stream.pix_fmt = *sizes.clip, pix_fmt
                stream.thread_type = "AUTO"
                start = time.perf_counter()
                for index in range(len(decoded)):
                    frame.pts = index
                    for packet in stream.encode(frame):
                        out.mux(packet)
                for packet in stream.encode(None):
                    out.mux(packet)
                rates[label] = len(decoded) / (time.perf_counter() - start)
        except Exception as error:  # an encoder the build or the device lacks
            rates[label] = f"n/a ({str(error).splitlines()[0][:120]})"
    return rates


def child_video(weights: str, sizes: Sizes, clip: str, dtype: str, batch: int, compiled: bool) -> dict:
    """End-to-end ``video`` (the job the CLI runs) for four outputs, after a warm-up of the model: label ->
    {"fps", "threads": the busiest threads' CPU seconds per wall second}, or the reason it could not run."""
    import rmbg_filter
    from rmbg_filter.cli.video import VideoJob, VideoOptions
    from rmbg_filter.compositing import parse_output
    from rmbg_filter.streaming import name_os_thread

    remover = rmbg_filter.load(weights, device=sizes.device, dtype=dtype, batch_size=batch,
                               model_size=sizes.model_size, compile=compiled)
    width, height = sizes.clip
    remover(np.zeros((batch, height, width, 3), np.uint8))
    name_os_thread("encoder")  # the encoders' threads, started by this (the writing) thread from here on
    codec = "h264_nvenc" if sizes.nvenc and encoder_opens("h264_nvenc") else "libx264"
    outputs = [("rgba to .mov (ProRes 4444, CPU)", "out.mov", VideoOptions(parse_output("rgba"), overwrite=True)),
               ("rgba to .mkv (FFV1, CPU)", "out.mkv", VideoOptions(parse_output("rgba"), overwrite=True)),
               (f"alpha to .mp4 ({codec})", "alpha.mp4",
                VideoOptions(parse_output("alpha"), codec=codec, pix_fmt="yuv420p", overwrite=True)),
               (f"green composite to .mp4 ({codec})", "green.mp4",
                VideoOptions(parse_output("green"), codec=codec, overwrite=True))]
    fps = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, name, options in outputs:
            try:
                with VideoJob(Path(clip), Path(folder) / name, options) as job, ThreadLoad() as load:
                    start = time.perf_counter()
                    written = job.run(remover)
                    seconds = time.perf_counter() - start
                fps[label] = {"fps": written / seconds, "threads": load.summary()}
            except Exception as error:  # an encoder the build or the device lacks
                fps[label] = f"n/a ({str(error).splitlines()[0][:80]})"
    return fps


def run_child(args: list[str], timeout: float) -> dict | str:
    """Run this script as a child with ``args``; its last stdout line is JSON. A failure becomes a short reason."""
    try:
        done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no message"]
        return f"failed: {lines[-1][:100]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


class Table:
    """Markdown lines printed at once and appended to a file, so partial runs keep their rows."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, *lines: str) -> None:
        with self.path.open("a") as handle:
            for line in lines:
                print(line, flush=True)
                handle.write(line + "\n")


def machine_line(sizes: Sizes) -> str:
    import torch

    gpu = (f"{torch.cuda.get_device_name()}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB, "
           f"CUDA {torch.version.cuda}" if sizes.device == "cuda" else "no GPU (dry run on the CPU)")
    return f"{gpu}; host {cpu_model()}; torch {torch.__version__}"


def clip_size(text: str) -> tuple[int, int, int]:
    """``WIDTHxHEIGHTxFRAMES`` (each at least 1) for ``--clip``."""
    parts = text.split("x")
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHTxFRAMES such as 1920x1080x60, got {text!r}")
    width, height, frames = (int(part) for part in parts)
    return width, height, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--table", type=Path, required=True, help="markdown file the rows are appended to")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--budget", type=float, default=300, help="seconds; later rows are skipped past it")
    parser.add_argument("--parts", default="warm,infer,video",
                        help="warm (compile in parallel), infer, video: any of them, comma-separated")
    parser.add_argument("--configs", help="only these inference configurations, e.g. float16:8:0,bfloat16:4:1")
    parser.add_argument("--clip", type=clip_size,
                        help="the end-to-end clip's WIDTHxHEIGHTxFRAMES instead of the default, e.g. 1920x1080x60 "
                        "with --dry-run for the CPU-side account of 1080p here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = DRY if args.dry_run else FULL
    if args.configs:
        chosen = [(d, int(b), c == "1") for d, b, c in (item.split(":") for item in args.configs.split(","))]
        sizes = replace(sizes, configs=tuple(chosen))
    if args.clip:
        width, height, frames = args.clip
        sizes = replace(sizes, clip=(width, height), clip_frames=frames)
    if args.child:
        kind, dtype, batch, compiled = args.child[0], args.child[1], int(args.child[2]), args.child[3] == "1"
        if kind == "video":
            result = child_video(args.weights, sizes, args.child[4], dtype, batch, compiled)
        else:
            result = child_infer(args.weights, sizes, dtype, batch, compiled, warm_only=kind == "warm")
        print(json.dumps(result))
        return
    table = Table(args.table)
    table.add(f"Machine: {machine_line(sizes)}", "")
    common = ["--weights", args.weights, "--table", str(args.table)] + (["--dry-run"] if args.dry_run else []) + (
        ["--clip", "x".join(map(str, args.clip))] if args.clip else [])
    started = time.perf_counter()

    def child(arguments: list[str]) -> dict | str:
        left = args.budget - (time.perf_counter() - started)
        return run_child([*common, "--child", *arguments], min(left, 150)) if left > 10 else "skipped (time budget)"

    parts = args.parts.split(",")
    if "warm" in parts:
        warm_part(sizes, common, table)
    if "infer" in parts:
        infer_part(sizes, table, child)
    if "video" in parts:
        video_part(sizes, table, child)


def warm_part(sizes: Sizes, common: list[str], table: Table) -> None:
    """Compile every compiled configuration at once, in parallel processes, to fill inductor's on-disk cache.

    Nothing is timed here, so other untimed work (the tests, precision) may share the GPU meanwhile.
    """
    compiled = [c for c in sizes.configs if c[2]]
    started = time.perf_counter()
    warmers = [subprocess.Popen([sys.executable, __file__, *common, "--child", "warm", d, str(b), "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for d, b, _ in compiled]
    for warmer in warmers:
        try:
            warmer.wait(timeout=max(1.0, 200 - (time.perf_counter() - started)))
        except subprocess.TimeoutExpired:
            warmer.kill()
    table.add(f"Compiling the {len(compiled)} compiled configurations in parallel (inductor's cache): "
              f"{time.perf_counter() - started:.0f} s", "")


def infer_part(sizes: Sizes, table: Table, child: Callable[[list[str]], dict | str]) -> None:
    """Time each configuration in turn, each in its own process (compiled ones from inductor's cache)."""
    table.add(f"Inference at {sizes.model_size}x{sizes.model_size}, {sizes.frames} frames a configuration, "
              "each in its own process", "",
              "| dtype | batch | compiled | fps, frames on the device | fps, stream() from host memory "
              "| first call s | peak GPU MiB |", "|---|---|---|---|---|---|---|")
    for dtype, batch, is_compiled in sizes.configs:
        result = child(["infer", dtype, str(batch), "1" if is_compiled else "0"])
        if isinstance(result, str):
            table.add(f"| {dtype} | {batch} | {'yes' if is_compiled else 'no'} | {result} | | | |")
        else:
            table.add(f"| {dtype} | {batch} | {'yes' if is_compiled else 'no'} | {result['device_fps']:.1f} | "
                      f"{result['stream_fps']:.1f} | {result['first_call_s']:.1f} | {result['peak_mib']:.0f} |")


def video_part(sizes: Sizes, table: Table, child: Callable[[list[str]], dict | str]) -> None:
    """Each stage of ``video`` alone, then ``video`` itself, eager float16 batch 8 and the largest compiled setting."""
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        # H.264, 30 distinct frames cycled: a quick clip, saving scarce GPU time
        write_clip(str(clip), *sizes.clip, sizes.clip_frames, options={"preset": "ultrafast", "crf": "18"}, distinct=30)
        width, height = sizes.clip
        table.add("", f"End to end at {width}x{height}: {sizes.clip_frames} frames of H.264; each stage alone, then "
                  "`video` (decode, inference and encode overlapping), with the CPU seconds its busiest threads "
                  "spent a wall second, summed over the threads of a name (a single thread near 1.00 is the stage "
                  "the others wait for; a thread waiting for CUDA may spin): MainThread writes (alpha plane, RGB to "
                  "YUV), rmbg-read decodes, converts to RGB and uploads, rmbg-infer runs the network (with its CPU "
                  "workers), av:h264:df are the decoder's threads, encoder the encoder's", "",
                  "| what | fps | busiest threads |", "|---|---|---|")
        for label, rate in stage_rates(clip, sizes).items():
            table.add(f"| {label} | {rate if isinstance(rate, str) else f'{rate:.1f}'} | |")
        compiled = [c for c in sizes.configs if c[2]]
        settings = [("float16", 8, False)] + ([max(compiled, key=lambda c: (c[0] == "float16", c[1]))] if compiled
                                               else [])
        for dtype, batch, is_compiled in settings:
            result = child(["video", dtype, str(batch), "1" if is_compiled else "0", str(clip)])
            setting = f"{dtype}, batch {batch}{', compiled' if is_compiled else ''}"
            if isinstance(result, str):
                table.add(f"| `video`, {setting} | {result} | |")
                continue
            for label, run in result.items():
                cells = f"{run} |" if isinstance(run, str) else f"{run['fps']:.1f} | {run['threads']}"
                table.add(f"| `video` {label}, {setting} | {cells} |")


if __name__ == "__main__":
    main()
