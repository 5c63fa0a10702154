"""The quality options reach the network's output the same way in every adapter: ``video``, ``pipe``,
VapourSynth (frames asked for in reverse order) and GStreamer give the core's alphas for the same frames,
with a temporal window of radius 2 and with each per-frame option. Real IS-Net small at model size 64.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
from cli_helpers import CLI, run_cli
from hosts import gst_environment, vs_python
from make_sample import sample_frame
from PIL import Image
from real_network import photo

from rmbg_filter import load
from rmbg_filter.compositing import composite, parse_output
from rmbg_filter.options import QualityOptions

#: the frames have more pixels than the model's input, so that guided refinement applies
WIDTH, HEIGHT, MODEL = 96, 64, ["--model-size", "64", "--runtime", "torch", "--device", "cpu"]
#: options that change the output of one frame, with the --output they need to show
PER_FRAME = [({"normalize": "none"}, "alpha"), ({"refine": "guided"}, "alpha"),
             ({"refine": "guided", "refine_radius": 3, "refine_eps": 0.01}, "alpha"),
             ({"decontaminate": True}, "rgba"), ({"reuse_threshold": 30.0}, "alpha")]


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Ten frames (N,64,96,3) uint8: a sphere moving over stripes with noise, then a hard cut to a still photo."""
    rng = np.random.default_rng(7)
    moving = [sample_frame(WIDTH, HEIGHT, phase=0.4 * index) for index in range(6)]
    cup = np.asarray(Image.fromarray(photo("coffee")).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR))
    clean = np.stack(moving + [cup] * 4).astype(float)
    return np.clip(clean + rng.normal(0, 3, clean.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def core(isnet_small: Path):
    return load(isnet_small, device="cpu", runtime="torch", model_size=64)


def flags(options: dict) -> list[str]:
    """Command-line flags of quality options: {"refine": "guided"} -> --refine guided."""
    words = []
    for name, value in options.items():
        words += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return words


def run_pipe(frames: np.ndarray, model: Path, options: dict, output: str = "alpha") -> np.ndarray:
    """``rmbg-filter pipe`` on raw rgb24 ``frames``: (N,H,W,C) uint8 of ``output``."""
    command = [str(CLI), "pipe", "--size", f"{WIDTH}x{HEIGHT}", "--output", output, "--model", str(model), *MODEL,
               *flags(options)]
    done = subprocess.run(command, input=frames.tobytes(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr, done.stderr.decode()  # a pipe that works says nothing (no library warnings)
    return np.frombuffer(done.stdout, np.uint8).reshape(len(frames), HEIGHT, WIDTH, -1)


def run_video(frames: np.ndarray, model: Path, tmp_path: Path, options: dict) -> np.ndarray:
    """``rmbg-filter video`` on an FFV1 (lossless RGB) file of ``frames``, alpha out as lossless gray."""
    source, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "bgr0"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="bgr0")))
        container.mux(stream.encode())
    done = run_cli("video", source, out, "--output", "alpha", "--codec", "ffv1", "--pix-fmt", "gray", *MODEL,
                   *flags(options), model=model)
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        return np.stack([frame.to_ndarray(format="gray") for frame in container.decode(video=0)])


def run_vapoursynth(frames: np.ndarray, model: Path, tmp_path: Path, settings: list[dict]) -> list[np.ndarray]:
    """vsrmbg's masks of ``frames`` (or ``rmbg``'s frames and alphas, for decontaminate) for each of
    ``settings``, every frame asked for in reverse order."""
    np.save(tmp_path / "frames.npy", frames)
    script = textwrap.dedent("""\
        import json, sys
        import numpy as np
        import vapoursynth as vs
        import vsrmbg
        core = vs.core
        pixels = np.load("frames.npy")
        blank = core.std.BlankClip(format=vs.RGB24, width=pixels.shape[2], height=pixels.shape[1],
                                   length=len(pixels))
        def paint(n, f):
            out = f.copy()
            for plane in range(3):
                np.copyto(np.asarray(out[plane]), pixels[n, :, :, plane])
            return out
        clip = core.std.ModifyFrame(blank, blank, paint)
        for index, options in enumerate(json.loads(sys.argv[1])):
            if options.get("decontaminate"):
                made = vsrmbg.rmbg(clip, model=sys.argv[2], model_size=64, runtime="torch", device="cpu", **options)
                grab = lambda f: np.dstack([np.asarray(f[p]) for p in range(3)]
                                           + [np.asarray(f.props["_Alpha"][0])])
            else:
                made = vsrmbg.mask(clip, model=sys.argv[2], model_size=64, runtime="torch", device="cpu", **options)
                grab = lambda f: np.asarray(f[0])[..., None].copy()
            out = [None] * made.num_frames
            for n in reversed(range(made.num_frames)):
                out[n] = grab(made.get_frame(n))
            np.save(f"vs{index}.npy", np.stack(out))
        """)
    (tmp_path / "script.py").write_text(script)
    done = subprocess.run([str(vs_python()), "script.py", json.dumps(settings), str(model)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return [np.load(tmp_path / f"vs{index}.npy") for index in range(len(settings))]


def run_gstreamer(frames: np.ndarray, model: Path, tmp_path: Path, options: dict, output: str = "alpha"
                  ) -> np.ndarray:
    """The element's output for ``frames`` (rows are padded to GStreamer's 4-byte stride)."""
    (tmp_path / "in.raw").write_bytes(frames.tobytes())  # 96*3 bytes a row: no padding
    properties = " ".join(f"{name.replace('_', '-')}={str(value).lower()}" for name, value in options.items())
    pipeline = (f"filesrc location=in.raw ! rawvideoparse format=rgb width={WIDTH} height={HEIGHT} framerate=25/1 "
                f"! rmbg output={output} model-size=64 runtime=torch device=cpu {properties} "
                "! filesink location=out.raw")
    done = subprocess.run(["gst-launch-1.0", "-q", *pipeline.split()], env=gst_environment(tmp_path, model),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    channels = 4 if output == "rgba" else 1
    return np.frombuffer((tmp_path / "out.raw").read_bytes(), np.uint8).reshape(len(frames), HEIGHT, WIDTH, channels)


def test_every_adapter_gives_the_cores_alphas_with_a_temporal_radius(frames: np.ndarray, core, isnet_small: Path,
                                                                      tmp_path: Path) -> None:
    """The same ten frames (motion, noise, a hard cut) with radius 2: ``video``, ``pipe``, VapourSynth asked
    for its frames last to first, and GStreamer give the core's alphas exactly, which differ from radius 0."""
    window = {"temporal_radius": 2}
    expected = core(frames, QualityOptions(**window))
    assert (expected != core(frames)).mean() > 0.01
    np.testing.assert_array_equal(run_pipe(frames, isnet_small, window)[..., 0], expected)
    np.testing.assert_array_equal(run_video(frames, isnet_small, tmp_path, window), expected)
    np.testing.assert_array_equal(run_vapoursynth(frames, isnet_small, tmp_path, [window])[0][..., 0], expected)
    np.testing.assert_array_equal(run_gstreamer(frames, isnet_small, tmp_path, window)[..., 0], expected)


@pytest.mark.parametrize(("options", "output"), PER_FRAME, ids=lambda value: str(value))
def test_pipe_and_gstreamer_pass_each_option_on(options: dict, output: str, frames: np.ndarray, core,
                                               isnet_small: Path, tmp_path: Path) -> None:
    """Each option gives the core's result, which differs from the default's: an ignored option fails."""
    quality = QualityOptions(**options)
    alphas = core(frames, quality)
    mode = parse_output(output)
    expected = np.stack([composite(frame, alpha, mode, decontaminate=quality.decontaminate)
                         for frame, alpha in zip(frames, alphas, strict=True)]).reshape(len(frames), HEIGHT, WIDTH, -1)
    default = np.stack([composite(frame, alpha, mode) for frame, alpha in zip(frames, core(frames), strict=True)])
    assert not np.array_equal(expected, default.reshape(expected.shape))
    np.testing.assert_array_equal(run_pipe(frames, isnet_small, options, output), expected)
    np.testing.assert_array_equal(run_gstreamer(frames, isnet_small, tmp_path, options, output), expected)


def test_vapoursynth_passes_each_option_on(frames: np.ndarray, core, isnet_small: Path, tmp_path: Path) -> None:
    """``mask`` with each option gives the core's alphas; ``rmbg`` with ``decontaminate`` gives the
    decontaminated colours beside the alpha."""
    found = run_vapoursynth(frames, isnet_small, tmp_path, [options for options, _ in PER_FRAME])
    for (options, output), made in zip(PER_FRAME, found, strict=True):
        quality = QualityOptions(**options)
        alphas = core(frames, quality)
        if output == "rgba":
            expected = np.stack([composite(frame, alpha, parse_output("rgba"), decontaminate=True)
                                 for frame, alpha in zip(frames, alphas, strict=True)])
            np.testing.assert_array_equal(made, expected, err_msg=str(options))
        else:
            assert not np.array_equal(alphas, core(frames)), options
            np.testing.assert_array_equal(made[..., 0], alphas, err_msg=str(options))


def test_image_takes_the_per_frame_options_and_says_one_line(frames: np.ndarray, core, isnet_small: Path,
                                                             tmp_path: Path) -> None:
    """A picture read from a file is a read-only array: decontamination copies it instead of letting torch
    warn on stderr. The cut-out is the core's."""
    Image.fromarray(frames[0]).save(tmp_path / "in.png")
    done = run_cli("image", tmp_path / "in.png", tmp_path / "out.png", *MODEL, "--refine", "guided",
                   "--decontaminate", model=isnet_small)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"wrote {tmp_path / 'out.png'} ({WIDTH}x{HEIGHT}, rgba)"]
    quality = QualityOptions(refine="guided", decontaminate=True)
    expected = composite(frames[0], core(frames[0], quality), parse_output("rgba"), decontaminate=True)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)


def test_a_pipe_cut_inside_a_frame_still_gets_the_alphas_its_window_held(frames: np.ndarray, core,
                                                                         isnet_small: Path) -> None:
    """stdin ends inside frame 10: frames 0..9 are all written (the last two waited for the window), then
    exit 2 with the one-line reason."""
    command = [str(CLI), "pipe", "--size", f"{WIDTH}x{HEIGHT}", "--model", str(isnet_small), *MODEL,
               "--temporal-radius", "2"]
    data = frames.tobytes() + frames[0].tobytes()[:1000]
    done = subprocess.run(command, input=data, capture_output=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.decode().strip().endswith("stdin ended inside frame 10: got 1000 of 18432 bytes "
                                                 f"(is --size {WIDTH}x{HEIGHT} --pix-fmt rgb24 right?)")
    written = np.frombuffer(done.stdout, np.uint8).reshape(-1, HEIGHT, WIDTH)
    np.testing.assert_array_equal(written, core(frames, QualityOptions(temporal_radius=2)))
