"""Precision of every mode against float32, on the real network and real photos.

Each mode runs in its own fresh process (a second model in one process changes
its speed, and compile state must not leak), computes the alpha of every photo,
and hands it back; this process compares them with float32 torch (TF32 off on
CUDA) and prints a markdown table: max, 99.9th percentile and mean absolute
difference in alpha levels (0-255), over all pixels of all photos.

Usage: python scripts/precision.py [--weights FILE] [--device cpu|cuda] [--modes a,b,...]
       [--model-size 1024] [--photos chelsea,coffee,...] [--out TABLE.md]
Modes: float32, float32-tf32 (CUDA's default float32), float16, bfloat16,
bfloat16-compile, float16-compile, onnxruntime (float32, CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_network import PHOTOS, isnet_onnx, photo

REFERENCE = "float32"


def machine(device: str) -> str:
    """One line naming the hardware the numbers come from."""
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"{cpu_model()} (torch {torch.__version__})"


def cpu_model() -> str:
    """The CPU's model name, core count and the vector extensions that decide bf16/fp16 speed."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    extensions = [name for name in ("avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16") if name in flags]
    return f"{model}, {os.cpu_count()} cores, {' '.join(extensions) or 'no AVX-512'}"


def child(mode: str, weights: str, device: str, model_size: int, photos: list[str], out: str) -> None:
    """Compute the alphas of ``photos`` in ``mode`` and save them to ``out`` (npz), with the seconds taken."""
    import torch

    import rmbg_filter

    if device.startswith("cuda") and mode != "float32-tf32":
        torch.backends.cudnn.allow_tf32 = False  # float32 means float32 for the reference
        torch.backends.cuda.matmul.allow_tf32 = False
    dtype = {"float32-tf32": "float32", "onnxruntime": "float32"}.get(mode, mode.removesuffix("-compile"))
    runtime = "onnxruntime" if mode == "onnxruntime" else "torch"
    remover = rmbg_filter.load(weights, device=device, dtype=dtype, runtime=runtime, model_size=model_size,
                               compile=mode.endswith("-compile"))
    remover(photo(photos[0]))  # first-call costs (a compile) are not timed
    start = time.perf_counter()
    alphas = {name: remover(photo(name)) for name in photos}
    seconds = (time.perf_counter() - start) / len(photos)
    np.savez(out, seconds=seconds, **alphas)


def measure(modes: list[str], weights: Path, device: str, model_size: int, photos: list[str]) -> Iterator[str]:
    """Markdown rows, each as soon as its mode has run: the mode's difference from float32 over ``photos``."""
    reference: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in [REFERENCE, *[m for m in modes if m != REFERENCE]]:
            out = Path(folder) / f"{mode}.npz"
            subprocess.run([sys.executable, __file__, "--child", mode, "--weights", str(weights), "--device", device,
                            "--model-size", str(model_size), "--photos", ",".join(photos), "--out", str(out)],
                           check=True)
            with np.load(out) as data:
                alphas = {k: data[k] for k in data.files}
            if mode == REFERENCE:
                reference = alphas
                yield f"| {mode} (reference) | 0 | 0 | 0 | {float(alphas['seconds']):.3f} |"
                continue
            errors = np.concatenate([np.abs(alphas[n].astype(int) - reference[n]).ravel() for n in photos])
            worst = max(photos, key=lambda n: int(np.abs(alphas[n].astype(int) - reference[n]).max()))
            yield (f"| {mode} | {errors.max()} ({worst}) | {np.percentile(errors, 99.9):.0f} | "
                   f"{errors.mean():.3f} | {float(alphas['seconds']):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="model file (default: the cached IS-Net medium ONNX)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default="float16,bfloat16,bfloat16-compile,onnxruntime")
    parser.add_argument("--model-size", type=int, default=1024)
    parser.add_argument("--photos", default=",".join(PHOTOS))
    parser.add_argument("--out", help="also write the table here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    photos = args.photos.split(",")
    weights = args.weights or str(isnet_onnx("medium"))
    if args.child:
        child(args.child, weights, args.device, args.model_size, photos, args.out)
        return
    header = [f"Precision against float32 on {Path(weights).name}, model input {args.model_size}, "
              f"{len(photos)} photos ({', '.join(photos)}); {machine(args.device)}", "",
              "| mode | max levels (photo) | 99.9th pct | mean | s/frame |", "|---|---|---|---|---|"]
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(Path(args.out).open("w")) if args.out else None
        for line in itertools.chain(header, measure(args.modes.split(","), Path(weights), args.device,
                                                    args.model_size, photos)):
            print(line, flush=True)  # row by row: a run cut short keeps what it measured
            if out is not None:
                out.write(line + "\n")
                out.flush()


if __name__ == "__main__":
    main()
