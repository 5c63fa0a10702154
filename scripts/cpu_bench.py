"""Every CPU class, every CPU mode: seconds a 720p frame, the ratio to the seed's loop, and the error against float32;
then the speed knobs (model size, refinement, frame reuse) against quality on real clips, with a plot.

Each mode runs in its own fresh process on the real IS-Net (scripts/real_network.py). Errors are in levels of 255,
against float32 (ONNX Runtime) in the native class, on photos kept out of the int8 calibration
(motorcycle_left, coins, camera): the mean, the 99.9th percentile and the max over every pixel of the three. The
fast mode's budget (issue 23): mean <= 0.5, 99.9th percentile <= 4, max <= 16.

CPU classes: the host as it is ("native"), and the classes below it that torch's and OpenVINO's switches can
emulate: ``avx2`` (ONEDNN_MAX_CPU_ISA=AVX2 OV_CPU_MAX_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2: an AMD Zen 3) and
``avx512_bf16`` (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 OV_CPU_MAX_ISA=AVX512_CORE_BF16: avx512_bf16 and VNNI without
AMX, an AMD Zen 4). ONNX Runtime has no such switch (its MLAS picks kernels by CPUID alone): its rows in an
emulated class run with the host's instructions, and say so.

The knobs table: 720p pans across two held-out photos (8 frames each); edge MAE is the mean error, against
float32 at model size 1024, where that alpha has an edge (its 7x7 max - min > 64); flicker is the mean
|(a_t - a_t-1) - (r_t - r_t-1)| over all pixels: frame-to-frame change of the alpha a that the reference r does
not have.

Usage: python scripts/cpu_bench.py [--classes native,avx2,avx512_bf16] [--modes exact,fast,...] [--rounds 2]
       [--model-size 1024] [--no-knobs] [--plot PNG] [--out MARKDOWN]
(--modes takes the first word of each mode's name; tests/test_int8.py runs a slice at a small model size)
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

from make_sample import panned_frame  # noqa: E402
from real_network import isnet_onnx, photo  # noqa: E402

from rmbg_filter import cpu_features  # noqa: E402

PHOTOS = ("motorcycle_left", "coins", "camera")
CLIPS = ("motorcycle_left", "camera")
CLIP_FRAMES = 8
BUDGET = {"mean": 0.5, "p99.9": 4.0, "max": 16.0}
#: class -> the environment that emulates it
CLASSES = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "OV_CPU_MAX_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "avx512_bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "OV_CPU_MAX_ISA": "AVX512_CORE_BF16"},
}
#: mode -> rmbg_filter.load's keywords (None: the seed's own loop)
MODES: dict[str, dict[str, str] | None] = {
    "seed loop (float32, torch)": None,
    "exact (float32, runtime auto)": {"dtype": "float32"},
    "fast (dtype fast)": {"dtype": "fast"},
    "bfloat16, torch": {"dtype": "bfloat16", "runtime": "torch"},
    "bfloat16, openvino": {"dtype": "bfloat16", "runtime": "openvino"},
    "float32, openvino": {"dtype": "float32", "runtime": "openvino"},
    "int8, onnxruntime": {"dtype": "int8", "runtime": "onnxruntime"},
    "int8, openvino": {"dtype": "int8", "runtime": "openvino"},
}
#: the knobs: (label, load keywords, quality keywords)
KNOBS: list[tuple[str, dict, dict]] = [
    *[(f"{name} {size}{' guided' if refine else ''}", {**keywords, "model_size": size},
       {"refine": "guided"} if refine else {})
      for name, keywords in (("exact", {"dtype": "float32"}), ("fast", {"dtype": "fast"}), ("int8", {"dtype": "int8"}))
      for size in (1024, 768, 512) for refine in (False, True)],
    ("exact 1024 reuse 40", {"dtype": "float32", "model_size": 1024}, {"reuse_threshold": 40.0}),
    ("preview: int8 512 reuse 40", {"dtype": "int8", "model_size": 512}, {"reuse_threshold": 40.0}),
    ("preview: int8 320", {"dtype": "int8", "model_size": 320}, {}),
    ("preview: fast 320", {"dtype": "fast", "model_size": 320}, {}),
]


def clip(name: str) -> np.ndarray:
    """(CLIP_FRAMES, 720, 1280, 3) uint8: a pan across the photo ``name``."""
    picture = photo(name)
    return np.stack([panned_frame(picture, 1280, 720, index / (CLIP_FRAMES - 1)) for index in range(CLIP_FRAMES)])


def child(spec: dict) -> None:
    """In a fresh process: load the mode, write its alphas to spec["out"] (npz), print its timing as JSON."""
    import torch

    started = time.perf_counter()
    if spec["load"] is None:
        import bench

        bench.SIZE = (spec.get("model_size", 1024),) * 2
        run = bench.seed_runner()
        described = "seed loop"
    else:
        import rmbg_filter
        from rmbg_filter import QualityOptions
        from rmbg_filter.cli.engine_loading import keep_freed_memory

        keep_freed_memory()  # as the command line does
        engine = rmbg_filter.load(isnet_onnx("medium"), device="cpu", **{"model_size": spec.get("model_size", 1024),
                                                                         **spec["load"]})
        quality = QualityOptions(**spec.get("quality", {}))
        described = engine.backend.describe()

        def run(frames: np.ndarray) -> np.ndarray:
            return engine(frames, quality)
    loaded = time.perf_counter() - started
    alphas: dict[str, np.ndarray] = {}
    if spec["kind"] == "class":
        frames = clip(CLIPS[0])[:3]
        start = time.perf_counter()
        run(frames[0])  # the first call pays one-time costs
        first = time.perf_counter() - start
        rounds, count = (1, 1) if first > 6 else (spec["rounds"], len(frames))
        seconds = []
        for _ in range(rounds):
            start = time.perf_counter()
            for frame in frames[:count]:
                run(frame)
            seconds.append((time.perf_counter() - start) / count)
        if spec["load"] is not None:
            alphas = {name: run(photo(name)) for name in PHOTOS}
        per_frame = min(seconds)
    else:
        run(clip(CLIPS[0])[:1])  # warm-up
        total, count = 0.0, 0
        for name in CLIPS:
            frames = clip(name)
            start = time.perf_counter()
            alphas[name] = run(frames)
            total += time.perf_counter() - start
            count += len(frames)
        per_frame = total / count
    np.savez_compressed(spec["out"], **alphas)
    print(json.dumps({"seconds": per_frame, "loaded": loaded, "described": described,
                      "threads": torch.get_num_threads()}))


def run_child(spec: dict, environ: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env={**os.environ, **environ})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def errors(reference: dict, alphas: dict, names: tuple[str, ...]) -> dict[str, float]:
    """Mean, 99.9th percentile and max of |alpha - reference| over every pixel of ``names``."""
    differences = np.concatenate([np.abs(alphas[name].astype(int) - reference[name].astype(int)).ravel()
                                  for name in names])
    return {"mean": float(differences.mean()), "p99.9": float(np.percentile(differences, 99.9)),
            "max": float(differences.max())}


def edge_and_flicker(reference: dict, alphas: dict) -> tuple[float, float]:
    """Edge MAE and added flicker (see the module's docstring) over CLIPS."""
    from scipy import ndimage

    edge_errors, flicker = [], []
    for name in CLIPS:
        ref, alpha = reference[name].astype(np.float64), alphas[name].astype(np.float64)
        for index in range(len(ref)):
            band = ndimage.maximum_filter(ref[index], 7) - ndimage.minimum_filter(ref[index], 7) > 64
            edge_errors.append(np.abs(alpha[index] - ref[index])[band])
        flicker.append(np.abs(np.diff(alpha, axis=0) - np.diff(ref, axis=0)).ravel())
    return float(np.concatenate(edge_errors).mean()), float(np.concatenate(flicker).mean())


def versions() -> str:
    """The runtimes' versions, as ``torch 2.13.0+cpu, onnxruntime 1.32.0, openvino 2026.4.1``."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("torch", "onnxruntime", "openvino"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def host_line(environ: dict[str, str]) -> str:
    found = cpu_features.features_of(*cpu_features.parse_cpuinfo(Path("/proc/cpuinfo").read_text()), environ)
    return found.describe()


def class_table(classes: list[str], modes: list[str], rounds: int, model_size: int,
                folder: Path) -> tuple[list[str], dict]:
    reference_spec = {"kind": "class", "load": {"dtype": "float32", "runtime": "onnxruntime"}, "rounds": 1,
                      "model_size": model_size, "out": str(folder / "reference.npz")}
    run_child(reference_spec, {})
    reference = dict(np.load(folder / "reference.npz"))
    lines = ["| class | mode | runs as | s/frame | vs seed | vs exact | mean | p99.9 | max | in budget |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    rows: dict = {}
    for name in classes:
        environ = CLASSES[name]
        emulated = bool(environ)
        results = {}
        for mode in modes:
            keywords = MODES[mode]
            spec = {"kind": "class", "load": keywords, "rounds": rounds, "model_size": model_size,
                    "out": str(folder / "alphas.npz")}
            result = run_child(spec, environ)
            if "failed" not in result and keywords is not None:
                result["errors"] = errors(reference, dict(np.load(folder / "alphas.npz")), PHOTOS)
            results[mode] = result
            print(f"  {name} / {mode}: {result.get('seconds', result.get('failed'))}", file=sys.stderr, flush=True)
        seed = results["seed loop (float32, torch)"].get("seconds")
        exact = results["exact (float32, runtime auto)"].get("seconds")
        for mode, result in results.items():
            if "failed" in result:
                lines.append(f"| {name} | {mode} | failed: {result['failed'][:80]} | | | | | | | |")
                continue
            runs_as = result["described"].split(" on ")[0]
            if emulated and "onnxruntime" in runs_as:
                runs_as += " (host ISA: not capped)"
            elif emulated:
                runs_as += " (emulated)"
            seconds = result["seconds"]
            error = result.get("errors")
            cells = [f"{error['mean']:.2f}", f"{error['p99.9']:.0f}", f"{error['max']:.0f}",
                     "yes" if all(error[key] <= BUDGET[key] for key in BUDGET) else "no"] if error else ["", "", "", ""]
            lines.append(f"| {name} | {mode} | {runs_as} | {seconds:.2f} | {seed / seconds:.2f}x | "
                         f"{exact / seconds:.2f}x | " + " | ".join(cells) + " |")
        rows[name] = results
    return lines, rows


def knob_table(folder: Path) -> tuple[list[str], list[tuple[str, float, float]]]:
    run_child({"kind": "knob", "load": {"dtype": "float32", "runtime": "onnxruntime", "model_size": 1024},
               "out": str(folder / "clip_reference.npz")}, {})
    reference = dict(np.load(folder / "clip_reference.npz"))
    lines = ["| setting | runs as | s/frame (720p) | fps | edge MAE | flicker |", "|---|---|---|---|---|---|"]
    points = []
    for label, keywords, quality in KNOBS:
        result = run_child({"kind": "knob", "load": keywords, "quality": quality,
                            "out": str(folder / "clip.npz")}, {})
        if "failed" in result:
            lines.append(f"| {label} | failed: {result['failed'][:80]} | | | | |")
            continue
        edge, flicker = edge_and_flicker(reference, dict(np.load(folder / "clip.npz")))
        seconds = result["seconds"]
        lines.append(f"| {label} | {result['described'].split(' on ')[0]} | {seconds:.2f} | {1 / seconds:.1f} | "
                     f"{edge:.2f} | {flicker:.2f} |")
        points.append((label, seconds, edge))
        print(f"  {label}: {seconds:.2f} s, edge {edge:.2f}", file=sys.stderr, flush=True)
    return lines, points


def plot(points: list[tuple[str, float, float]], machine: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=110)
    for label, seconds, edge in points:
        family = label.split()[0] if not label.startswith("preview") else "preview"
        axes.scatter(seconds, edge, s=28, color={"exact": "tab:blue", "fast": "tab:green", "int8": "tab:red",
                                                 "preview": "tab:purple"}.get(family, "gray"))
        axes.annotate(label.removeprefix("preview: "), (seconds, edge), fontsize=7, xytext=(4, 2),
                      textcoords="offset points")
    axes.set_xscale("log")
    axes.set_xlabel("seconds per 720p frame (log scale; left is faster)")
    axes.set_ylabel("edge MAE against float32 at 1024 (levels of 255; lower is better)")
    axes.set_title(f"rmbg-filter on the CPU: speed against quality\n{machine}", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", default="native,avx2,avx512_bf16")
    parser.add_argument("--modes", default=",".join(mode.split()[0].rstrip(",") for mode in MODES),
                        help="first words of the modes (seed and exact are always run: the ratios need them)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model-size", type=int, default=1024, help="of the class table (the knobs have their own)")
    parser.add_argument("--no-knobs", action="store_true", help="only the CPU classes table")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "images" / "speed_quality.png"))
    parser.add_argument("--out", help="also write the tables (markdown) here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(json.loads(arguments.child))
        return
    host = cpu_features.detect()
    classes = []
    for name in arguments.classes.split(","):
        capped = cpu_features.features_of(host.model, host.detected, CLASSES[name])
        if name != "native" and capped.flags == host.flags:
            print(f"cpu_bench: {name} is what this host is (or above it): not emulated", file=sys.stderr)
            continue
        classes.append(name)
    report = [f"CPU: {host_line({})}", f"date: {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; {versions()}", ""]
    for name in classes:
        if CLASSES[name]:
            settings = " ".join(f"{key}={value}" for key, value in CLASSES[name].items())
            report.append(f"- class {name}: {settings} -> {host_line(CLASSES[name])}")
    with tempfile.TemporaryDirectory(prefix="cpu-bench-") as name:
        folder = Path(name)
        asked = {"seed", "exact", *arguments.modes.split(",")}
        modes = [mode for mode in MODES if mode.split()[0].rstrip(",") in asked]
        lines, _ = class_table(classes, modes, arguments.rounds, arguments.model_size, folder)
        report += ["", f"### Every CPU mode, per CPU class (one 720p frame; error on real photos at model size "
                   f"{arguments.model_size})", "",
                   *lines]
        if not arguments.no_knobs:
            lines, points = knob_table(folder)
            report += ["", "### Speed knobs against quality (native class; 720p pans across two photos)", "", *lines]
            plot(points, host_line({}), Path(arguments.plot))
            report += ["", f"plot: {arguments.plot}"]
    text = "\n".join(report)
    print(text)
    if arguments.out:
        Path(arguments.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
