"""``make quality``: each quality option on the real network, on clips with a known alpha.

Clips (scripts/quality_clips.py) are made from scikit-image's photos and textures; the network is IS-Net
(RMBG-1.4's architecture, trained; scripts/real_network.py). For each option it prints MAE against the
truth, flicker on the still shot, dtSSD on the moving shot, the first frame after a cut against the
settled frames, mean alpha on empty frames, edge-band MAE at 1080p and 2160p (and the change outside the
band), colour error of the cut-out laid over a new background, network runs, and seconds per 1080p frame
(each option timed in its own fresh process).

Usage: python scripts/quality.py [--model small|medium|PATH] [--dtype bfloat16] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import quality_clips as clips  # noqa: E402
from precision import cpu_model  # noqa: E402
from real_network import isnet_onnx  # noqa: E402

from rmbg_filter import load  # noqa: E402
from rmbg_filter.compositing import composite, parse_output  # noqa: E402
from rmbg_filter.options import QualityOptions  # noqa: E402

#: the rows of the table: what is printed, and the options
ROWS: tuple[tuple[str, QualityOptions], ...] = (
    ("off (the original's per-frame alpha)", QualityOptions()),
    ("--temporal-radius 2", QualityOptions(temporal_radius=2)),
    ("--normalize none", QualityOptions(normalize="none")),
    ("--refine guided", QualityOptions(refine="guided")),
    ("--decontaminate", QualityOptions(decontaminate=True)),
    ("--reuse-threshold 35", QualityOptions(reuse_threshold=35.0)),
    ("--temporal-radius 2 --refine guided", QualityOptions(temporal_radius=2, refine="guided")),
)
#: settled frames of the second shot of the cut clip start this many frames after the cut
SETTLE = 3


def levels(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float64)


def mae(alphas: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """Mean absolute error in levels over every frame."""
    return float(np.mean([np.abs(levels(a) - t).mean() for a, t in zip(alphas, truths, strict=True)]))


def flicker(alphas: Sequence[np.ndarray], band: np.ndarray) -> float:
    """Mean |alpha_t - alpha_(t-1)| in levels over ``band`` (H,W) bool, over consecutive frames."""
    return float(np.mean([np.abs(levels(b) - a)[band].mean() for a, b in itertools.pairwise(alphas)]))


def dtssd(alphas: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """RMS in levels of (p_t - p_(t-1)) - (g_t - g_(t-1)) over every pixel of every pair of frames."""
    squares = [(((levels(alphas[t]) - alphas[t - 1]) - (levels(truths[t]) - truths[t - 1])) ** 2).mean()
               for t in range(1, len(alphas))]
    return float(np.sqrt(np.mean(squares)))


def band_radius(truth: np.ndarray) -> int:
    """The edge band's radius: 2 model-size pixels (1024) in the frame's scale, plus 2."""
    return int(np.ceil(2 * max(truth.shape) / 1024)) + 2


def colour_error(clip: clips.Clip, alpha: np.ndarray, decontaminate: bool, *, true_alpha: bool = False) -> float:
    """Mean |RGB difference| in levels, near the edge, between the cut-out (the frame's colours, or the
    decontaminated ones, under ``alpha``) laid over the clip's new background and the subject's own
    colours laid over it by the same ``alpha``: the error the colours make. With ``true_alpha`` the
    subject is laid by the true alpha instead: the whole composite's error, the alpha's included."""
    background, truth = clip.backgrounds[0], clip.truths[0]
    ours = composite(clip.frames[0], alpha, parse_output("image:new"), background, decontaminate=decontaminate)
    wanted = clips.laid(clip.subjects[0], (truth if true_alpha else alpha).astype(np.float32) / 255.0, background)
    band = clips.edge_band(truth, 6) | ((truth > 0) & (truth < 255))
    return float(np.abs(levels(ours) - wanted)[band].mean())


@dataclass
class Scores:
    """One row of the table."""

    still_mae: float = 0.0
    flicker: float = 0.0
    flicker_hd: float = 0.0
    moving_mae: float = 0.0
    dtssd: float = 0.0
    cut_first: float = 0.0
    cut_settled: float = 0.0
    empty_mean: float = 0.0
    edge_1080: float = 0.0
    edge_2160: float = 0.0
    flat_change: float = 0.0
    colour: float = 0.0
    composite: float = 0.0
    runs: int = 0
    frames: int = 0


def make_clips(matter: clips.Matter, quick: bool) -> dict[str, clips.Clip]:
    """Every clip of the table, its truths from ``matter`` (the network in float32)."""
    made = {"still": clips.still(matter), "still 1080p": clips.still(matter, 6, (1920, 1080), sigma=3.0),
            "moving": clips.moving(matter), "cut": clips.cut(matter),
            "empty": clips.empty(), "1080": clips.sharp(matter, (1920, 1080)), "green": clips.green(matter)}
    if not quick:
        made["2160"] = clips.sharp(matter, (3840, 2160))
    return made


def score(remover, made: dict[str, clips.Clip], quality: QualityOptions, baseline: dict[str, np.ndarray] | None
          ) -> tuple[Scores, dict[str, np.ndarray]]:
    """Scores of ``quality`` on every clip; and the alphas of the sharp clips (for the flat-region change)."""
    alphas = {name: remover(np.stack(clip.frames), quality) for name, clip in made.items()}
    found = Scores(runs=remover.network_runs, frames=sum(len(clip.frames) for clip in made.values()))
    still, moving, cut = made["still"], made["moving"], made["cut"]
    found.still_mae = mae(alphas["still"], still.truths)
    found.flicker = flicker(alphas["still"], clips.edge_band(still.truths[0], band_radius(still.truths[0])))
    hd = made["still 1080p"].truths[0]
    found.flicker_hd = flicker(alphas["still 1080p"], clips.edge_band(hd, band_radius(hd)))
    found.moving_mae = mae(alphas["moving"], moving.truths)
    found.dtssd = dtssd(alphas["moving"], moving.truths)
    half = len(cut.frames) // 2
    found.cut_first = mae(alphas["cut"][half:half + 1], cut.truths[half:half + 1])
    found.cut_settled = mae(alphas["cut"][half + SETTLE:], cut.truths[half + SETTLE:])
    found.empty_mean = float(np.mean(alphas["empty"]))
    changes = []
    for name in ("1080", "2160"):
        if name not in made:
            continue
        truth = made[name].truths[0]
        band = clips.edge_band(truth, band_radius(truth))
        setattr(found, f"edge_{name}", float(np.abs(levels(alphas[name][0]) - truth)[band].mean()))
        if baseline is not None:
            changes.append(float(np.abs(levels(alphas[name][0]) - baseline[name][0])[~band].mean()))
    found.flat_change = max(changes, default=0.0)
    found.colour = colour_error(made["green"], alphas["green"][0], quality.decontaminate)
    found.composite = colour_error(made["green"], alphas["green"][0], quality.decontaminate, true_alpha=True)
    return found, {name: alphas[name] for name in ("1080", "2160") if name in alphas}


def costs(model: str, dtype: str, frames: int, rounds: int) -> list[float]:
    """Seconds per 1080p frame of each row's options: the median of ``rounds`` rounds, each row in a fresh
    process each round (one warm-up frame first), rows interleaved so that a noisy spell hits them alike."""
    found: list[list[float]] = [[] for _ in ROWS]
    for _ in range(rounds):
        for index, (_, quality) in enumerate(ROWS):
            command = [sys.executable, __file__, "--cost-child", json.dumps(quality.__dict__), "--model", model,
                       "--dtype", dtype, "--frames", str(frames)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            found[index].append(float(done.stdout.strip().splitlines()[-1]))
    return [float(np.median(seconds)) for seconds in found]


def cost_child(model: str, dtype: str, quality: QualityOptions, frames: int) -> None:
    """Print the seconds per frame of streaming ``frames`` 1080p frames to rgba cut-outs (after one warm-up
    frame): the alphas, and the colours when ``quality`` decontaminates."""
    from rmbg_filter.cli.engine_loading import keep_freed_memory

    keep_freed_memory()
    remover = load(model, device="cpu", dtype=dtype)
    background = clips.texture("gravel", (1920, 1080))
    rng = np.random.default_rng(5)
    pictures = [clips.noisy(background, 2.0, rng) for _ in range(frames + 1)]
    remover(pictures[0])
    rgba = parse_output("rgba")
    started = time.perf_counter()
    for picture, alpha in remover.stream_tagged(((p, p) for p in pictures[1:]), quality=quality):
        composite(picture, alpha, rgba, decontaminate=quality.decontaminate)
    print((time.perf_counter() - started) / frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="medium", help="small, medium (IS-Net from npm) or a weights path")
    parser.add_argument("--dtype", default="bfloat16", help="the network's dtype for the table (default bfloat16)")
    parser.add_argument("--frames", type=int, default=8, help="1080p frames timed per option and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of timings (median)")
    parser.add_argument("--quick", action="store_true", help="no 2160p clip, no timings")
    parser.add_argument("--cost-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    model = str(isnet_onnx(args.model)) if args.model in ("small", "medium") else args.model
    if args.cost_child:
        cost_child(model, args.dtype, QualityOptions(**json.loads(args.cost_child)), args.frames)
        return
    exact = load(model, device="cpu", dtype="float32")
    made = make_clips(exact, args.quick)
    del exact
    remover = load(model, device="cpu", dtype=args.dtype)
    print(f"Machine: {cpu_model()}; IS-Net {Path(model).name} {args.dtype} at 1024; truths from its float32 alpha")
    print()
    print("| options | still MAE | flicker | flicker 1080p | moving MAE | dtSSD | cut: first / settled MAE | "
          "empty mean | edge MAE 1080p | edge MAE 2160p | change off the edge | colour error | composite error | "
          "network runs | s/frame 1080p |")
    print("|---|" + "---|" * 14)
    rows = []
    baseline = None
    for _, quality in ROWS:
        remover.network_runs = 0
        found, sharp = score(remover, made, quality, baseline)
        baseline = baseline or sharp
        rows.append(found)
    del remover
    timed = [] if args.quick else costs(model, args.dtype, args.frames, args.rounds)
    seconds = [f"{value:.3f}" for value in timed] or ["-"] * len(ROWS)
    for (label, _), found, cost in zip(ROWS, rows, seconds, strict=True):
        print(f"| {label} | {found.still_mae:.2f} | {found.flicker:.2f} | {found.flicker_hd:.2f} | "
              f"{found.moving_mae:.2f} | {found.dtssd:.2f} | {found.cut_first:.2f} / {found.cut_settled:.2f} | "
              f"{found.empty_mean:.2f} | {found.edge_1080:.2f} | {found.edge_2160:.2f} | {found.flat_change:.2f} | "
              f"{found.colour:.2f} | {found.composite:.2f} | {found.runs}/{found.frames} | {cost} |")
    if timed:
        print(f"\nTemporal radius 2 and guided refinement together: {100 * (timed[-1] / timed[0] - 1):+.1f}% "
              f"a 1080p frame ({args.rounds} rounds of {args.frames} frames, medians).")


if __name__ == "__main__":
    main()
