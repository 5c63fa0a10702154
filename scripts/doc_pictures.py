"""``make pictures``: the documentation's pictures, from real photos and the real network.

Writes into ``docs/images/`` (or ``--out``):

- ``preview.png``: the demo's preview sheet (original | alpha | cut-out), made by ``rmbg-filter video --preview``
  on the demo's clip (a pan across scikit-image's ``motorcycle_left``);
- ``flicker.png``: the alpha's change from frame to frame on a still, noisy shot, and the error against the
  truth on a moving shot, with the temporal window off (``temporal_radius=0``) and on (2);
- ``edge_crops.png``: crops of a 4K frame's edge: the truth, bilinear upsampling (``refine=none``) and the
  guided filter (``refine=guided``);
- ``spill_crops.png``: a soft-edged subject shot on chroma-key green, laid over a new background without and
  with ``decontaminate``;
- ``MACHINE.md``: the machine, the versions, the network and the settings the pictures were made with.

The clips are scripts/quality_clips.py's (each truth is known exactly); the network is IS-Net medium
(RMBG-1.4's architecture, trained; scripts/real_network.py). Usage: python scripts/doc_pictures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import quality_clips as clips  # noqa: E402
from cpu_bench import host_line, versions  # noqa: E402
from make_sample import write_clip  # noqa: E402
from quality import band_radius, colour_error, levels  # noqa: E402
from real_network import isnet_onnx  # noqa: E402

from rmbg_filter import load  # noqa: E402
from rmbg_filter.compositing import composite, parse_output  # noqa: E402
from rmbg_filter.options import QualityOptions  # noqa: E402

#: the dtype the pictures' alphas are made in (the truths always in float32)
DTYPE = "float32"
RADIUS = 2


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def preview(model: Path, out: Path) -> str:
    """The demo's job on the demo's clip; returns the command line it ran."""
    with tempfile.TemporaryDirectory() as scratch:
        sample = Path(scratch) / "sample.mp4"
        write_clip(str(sample), 640, 432, photo_name="motorcycle_left")
        command = [str(Path(sys.executable).parent / "rmbg-filter"), "video", str(sample),
                   str(Path(scratch) / "cutout.mov"), "--preview", str(out / "preview.png"), "--overwrite",
                   "--model", str(model)]
        subprocess.run(command, check=True)
    return "rmbg-filter video sample.mp4 cutout.mov --preview preview.png --model isnet-medium.onnx"


def per_frame_change(alphas: np.ndarray, band: np.ndarray) -> list[float]:
    """Mean |alpha_t - alpha_(t-1)| in levels over ``band`` (H,W) bool, for t = 1..N-1 of ``alphas`` (N,H,W)."""
    return [float(np.abs(levels(alphas[t]) - alphas[t - 1])[band].mean()) for t in range(1, len(alphas))]


def flicker(remover, matter, out: Path) -> str:
    """Two panels: flicker on a still shot, error on a moving shot; temporal window off and on."""
    still, moving = clips.still(matter, frames=24), clips.moving(matter, frames=16)
    still_band = clips.edge_band(still.truths[0], band_radius(still.truths[0]))
    series = {}
    for radius in (0, RADIUS):
        quality = QualityOptions(temporal_radius=radius)
        still_alphas = remover(np.stack(still.frames), quality)
        moving_alphas = remover(np.stack(moving.frames), quality)
        bands = [clips.edge_band(truth, band_radius(truth)) for truth in moving.truths]
        errors = [float(np.abs(levels(alpha) - truth)[band].mean())
                  for alpha, truth, band in zip(moving_alphas, moving.truths, bands, strict=True)]
        series[radius] = (per_frame_change(still_alphas, still_band), errors)
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for radius, (changes, errors) in series.items():
        label = "temporal_radius=0 (off)" if radius == 0 else f"temporal_radius={radius}"
        left.plot(range(1, len(changes) + 1), changes, marker="o", markersize=3, label=label)
        right.plot(range(len(errors)), errors, marker="o", markersize=3, label=label,
                   linestyle="-" if radius == 0 else "--")
    left.set_title("still, noisy shot: change from the frame before\n(the edge band; lower is steadier)", fontsize=9)
    left.set_xlabel("frame")
    left.set_ylabel("mean |alpha(t) - alpha(t-1)|, levels of 255")
    right.set_title("subject crossing the frame: error against the truth\n(the edge band; the window must not lag)",
                    fontsize=9)
    right.set_xlabel("frame")
    right.set_ylabel("mean |alpha - truth|, levels of 255")
    for axes in (left, right):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_ylim(bottom=0)
    figure.tight_layout()
    figure.savefig(out / "flicker.png")
    plt.close(figure)
    means = {radius: (np.mean(changes), np.mean(errors)) for radius, (changes, errors) in series.items()}
    return (f"flicker.png: still shot flicker {means[0][0]:.2f} -> {means[RADIUS][0]:.2f} levels; moving shot error "
            f"{means[0][1]:.2f} -> {means[RADIUS][1]:.2f} levels (temporal_radius 0 -> {RADIUS})")


def save_crops(panels: list[tuple[str, np.ndarray]], title: str, path: Path) -> None:
    """One row of crops, each (H,W) gray or (H,W,3) RGB uint8 under its title, shown pixel for pixel."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.4), dpi=110)
    for axis, (name, picture) in zip(axes, panels, strict=True):
        axis.imshow(picture, cmap="gray", vmin=0, vmax=255, interpolation="nearest")  # the map: gray crops only
        axis.set_title(name, fontsize=9)
        axis.set_axis_off()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    figure.savefig(path)
    plt.close(figure)


def _edge_window(truth: np.ndarray, size: int) -> tuple[slice, slice]:
    """A ``size`` square of ``truth`` (H,W) centred on an edge pixel near the frame's middle row."""
    edges = np.argwhere(clips.edge_band(truth, 1))
    middle = edges[np.argmin(np.abs(edges[:, 0] - truth.shape[0] // 2) + np.abs(edges[:, 1] - truth.shape[1] // 2))]
    top = int(np.clip(middle[0] - size // 2, 0, truth.shape[0] - size))
    left = int(np.clip(middle[1] - size // 2, 0, truth.shape[1] - size))
    return slice(top, top + size), slice(left, left + size)


def edge_crops(remover, matter, out: Path) -> str:
    """A 4K frame's edge: frame, truth, bilinear and guided alphas, each crop with its edge-band error."""
    sharp = clips.sharp(matter, (3840, 2160))
    truth = sharp.truths[0]
    band = clips.edge_band(truth, band_radius(truth))
    window = _edge_window(truth, 160)
    panels = [("the 4K frame", sharp.frames[0][window]), ("truth", truth[window])]
    notes = []
    for refine in ("none", "guided"):
        alpha = remover(sharp.frames[0], QualityOptions(refine=refine))
        error = float(np.abs(levels(alpha) - truth)[band].mean())
        name = "bilinear (refine=none)" if refine == "none" else "guided (refine=guided)"
        panels.append((f"{name}\nedge MAE {error:.2f}", alpha[window]))
        notes.append(f"{refine} {error:.2f}")
    save_crops(panels, "160x160 crops of a 3840x2160 frame at the subject's edge (edge MAE over the whole frame's "
                       "edge band, levels of 255)", out / "edge_crops.png")
    return "edge_crops.png: 2160p edge-band MAE " + ", ".join(notes)


def spill_crops(remover, matter, out: Path) -> str:
    """A soft-edged subject on green laid over a new background, without and with decontamination."""
    green = clips.green(matter)
    frame, truth, background = green.frames[0], green.truths[0], green.backgrounds[0]
    alpha = remover(frame)
    window = _edge_window(truth, 120)
    wanted = clips.laid(green.subjects[0], truth.astype(np.float32) / 255.0, background)
    panels = [("shot on green", frame[window]),
              ("the truth over the new background", np.clip(levels(wanted)[window], 0, 255).astype(np.uint8))]
    notes = []
    for decontaminate in (False, True):
        laid = composite(frame, alpha, parse_output("image:new"), background, decontaminate=decontaminate)
        error = colour_error(green, alpha, decontaminate)
        name = "decontaminate=True" if decontaminate else "decontaminate=False"
        panels.append((f"{name}\ncolour error {error:.2f}", laid[window]))
        notes.append(f"{decontaminate}: {error:.2f}")
    save_crops(panels, "120x120 crops at a soft edge: the cut-out laid over a new background (colour error near "
                       "the edge, levels of 255)", out / "spill_crops.png")
    return "spill_crops.png: colour error near the edge, decontaminate " + ", ".join(notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT.parent / "docs" / "images", help="folder for the pictures")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = isnet_onnx("medium")
    notes = [preview(model, args.out)]
    exact = load(str(model), device="cpu", dtype=DTYPE)
    notes += [flicker(exact, exact, args.out), edge_crops(exact, exact, args.out),
              spill_crops(exact, exact, args.out)]
    machine = host_line({})
    (args.out / "MACHINE.md").write_text(
        f"# How the pictures were made\n\n`make pictures` (scripts/doc_pictures.py), "
        f"{datetime.date.today().isoformat()}\n\n- CPU: {machine}\n- {versions()}\n"
        f"- network: IS-Net medium (`isnet-medium.onnx`, @imgly/background-removal-data 1.4.5) at model size 1024, "
        f"{DTYPE} on the CPU; truths from the same network's float32 alpha of each photo (scripts/quality_clips.py)\n"
        + "".join(f"- {note}\n" for note in notes))
    print("\n".join(notes))
    print(f"pictures in {args.out}; machine: {machine}")


if __name__ == "__main__":
    main()
