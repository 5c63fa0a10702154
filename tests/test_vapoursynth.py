"""The VapourSynth filter ``vsrmbg``, run for real: ``vspipe`` on a script, and its API in VapourSynth's Python.

VapourSynth's wheels need Python 3.12+, so these run in the VapourSynth venv
that ``make setup`` makes (``$RMBG_VS_PYTHON``, default ``.venv-vs/bin/python``,
or this venv when it is 3.12+), each in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pictures import picture

from rmbg_filter import load

ROOT = Path(__file__).resolve().parents[1]


def vs_python() -> Path:
    """The Python that has vapoursynth and vsrmbg installed."""
    configured = os.environ.get("RMBG_VS_PYTHON")
    if configured:
        return Path(configured)
    if sys.version_info >= (3, 12):
        return Path(sys.executable)
    return ROOT / ".venv-vs" / "bin" / "python"


PROLOGUE = """\
import numpy as np
import vapoursynth as vs
import vsrmbg
core = vs.core

def from_array(pixels, fmt):
    '''A 3-frame clip of the (H,W,3) array, converted from RGB24 to fmt.'''
    blank = core.std.BlankClip(format=vs.RGB24, width=pixels.shape[1], height=pixels.shape[0], length=3)
    def paint(n, f):
        out = f.copy()
        for plane in range(3):
            np.copyto(np.asarray(out[plane]), pixels[:, :, plane])
        return out
    clip = core.std.ModifyFrame(blank, blank, paint)
    if fmt == vs.RGB24:
        return clip
    if core.get_video_format(fmt).color_family == vs.YUV:
        return core.resize.Bicubic(clip, format=fmt, matrix_s="709")
    return core.resize.Point(clip, format=fmt)
"""


def run_vs(code: str, tmp_path: Path, model: Path, *args: str,
           vspipe: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run ``code`` (after PROLOGUE) as a script: with ``vspipe`` writing raw frames to stdout, else with python."""
    script = tmp_path / "script.vpy"
    script.write_text(PROLOGUE + textwrap.dedent(code))
    bin_dir = vs_python().parent
    command = ([str(bin_dir / "vspipe"), str(script), "-", *args] if vspipe
               else [str(vs_python()), str(script), *args])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MODEL": str(model)}
    return subprocess.run(command, env=env, capture_output=True, timeout=300, cwd=tmp_path)


@pytest.fixture(scope="module")
def engine(checkpoints: dict[str, Path]):
    """The core engine the filter must agree with (torch runtime, as the VapourSynth venv has no ONNX Runtime)."""
    return load(checkpoints["safetensors"], device="cpu", runtime="torch", model_size=64)


def test_vspipe_mask_of_rgb24_equals_the_core_alpha(tmp_path: Path, checkpoints, engine) -> None:
    pixels = picture(75, 133)
    np.save(tmp_path / "frame.npy", pixels)
    done = run_vs("""
        import os
        clip = from_array(np.load("frame.npy"), vs.RGB24)
        vsrmbg.mask(clip, os.environ["MODEL"], model_size=64, runtime="torch").set_output()
    """, tmp_path, checkpoints["safetensors"], vspipe=True)
    assert done.returncode == 0, done.stderr.decode()
    frames = np.frombuffer(done.stdout, np.uint8).reshape(3, 75, 133)
    expected = engine(pixels)
    for alpha in frames:
        assert np.abs(alpha.astype(int) - expected).max() <= 1
    assert frames.std() > 0


def test_an_onnx_export_serves_as_model(tmp_path: Path, onnx_checkpoint: Path, engine) -> None:
    pixels = picture(40, 56)
    np.save(tmp_path / "frame.npy", pixels)
    done = run_vs("""
        import os
        vsrmbg.mask(from_array(np.load("frame.npy"), vs.RGB24), os.environ["MODEL"], model_size=64).set_output()
    """, tmp_path, onnx_checkpoint, vspipe=True)
    assert done.returncode == 0, done.stderr.decode()
    for alpha in np.frombuffer(done.stdout, np.uint8).reshape(3, 40, 56):
        assert np.abs(alpha.astype(int) - engine(pixels)).max() <= 1


@pytest.mark.parametrize("fmt", ["YUV420P8", "YUV444P10", "RGB48", "RGBS", "YUV422P16"])
def test_formats_give_a_gray8_mask_of_the_clip_size_and_length(fmt: str, tmp_path: Path, checkpoints,
                                                             engine) -> None:
    pixels = picture(96, 128)
    np.save(tmp_path / "frame.npy", pixels)
    done = run_vs(f"""
        import os
        clip = from_array(np.load("frame.npy"), vs.{fmt})
        alpha = vsrmbg.mask(clip, os.environ["MODEL"], model_size=64)
        frame = alpha.get_frame(2)
        print(alpha.format.name, alpha.width, alpha.height, alpha.num_frames, int(frame.props["_Range"]))
        np.save("alpha.npy", np.asarray(frame[0]))
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["Gray8", "128", "96", "3", "1"]
    alpha = np.load(tmp_path / "alpha.npy")
    # the clip went RGB -> fmt -> RGB: close to the alpha of the original pixels, not equal
    assert np.abs(alpha.astype(int) - engine(pixels)).mean() < 8


@pytest.mark.parametrize(("fmt", "opaque"), [("YUV420P8", 255), ("RGB48", 65535), ("RGBS", 1.0)])
def test_rmbg_attaches_alpha_in_the_clips_depth(fmt: str, opaque: float, tmp_path: Path, checkpoints) -> None:
    np.save(tmp_path / "frame.npy", picture(64, 96))
    done = run_vs(f"""
        import os
        clip = from_array(np.load("frame.npy"), vs.{fmt})
        out = vsrmbg.rmbg(clip, os.environ["MODEL"], model_size=64)
        gray = vsrmbg.mask(clip, os.environ["MODEL"], model_size=64).get_frame(0)
        frame = out.get_frame(0)
        alpha = frame.props["_Alpha"]
        print(out.format.name == clip.format.name, alpha.format.name, alpha.width, alpha.height)
        np.save("gray.npy", np.asarray(gray[0]))
        np.save("alpha.npy", np.asarray(alpha[0]))
        np.save("same.npy", np.asarray(frame[0]) == np.asarray(clip.get_frame(0)[0]))
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()
    same_format, alpha_format, width, height = done.stdout.decode().split()
    assert same_format == "True" and (width, height) == ("96", "64")
    assert alpha_format.startswith("Gray")
    assert np.load(tmp_path / "same.npy").all()
    gray = np.load(tmp_path / "gray.npy").astype(np.float64)
    alpha = np.load(tmp_path / "alpha.npy").astype(np.float64)
    np.testing.assert_allclose(alpha / opaque, gray / 255, atol=1e-3)


@pytest.mark.parametrize(("code", "message"), [
    ("vsrmbg.mask(core.std.BlankClip(format=vs.GRAY8), MODEL)",
     "vsrmbg.mask: clip must be RGB or YUV, got Gray8"),
    ("vsrmbg.rmbg('clip.mp4', MODEL)",
     "vsrmbg.mask: clip must be a vapoursynth.VideoNode, got str"),
    ("vsrmbg.mask(core.std.BlankClip(format=vs.RGB24), MODEL, model_size=8)",
     "vsrmbg.mask: model_size must be an int or (height, width) of ints >= 32, got 8"),
    ("vsrmbg.mask(core.std.BlankClip(format=vs.RGB24), 'missing/model.safetensors')",
     "vsrmbg.mask: model not found: missing/model.safetensors is neither a file, a directory nor a Hub repo id; "
     "pass a local directory or weights file with model=PATH or RMBG_MODEL=PATH"),
])
def test_bad_arguments_name_the_function_and_parameter(code: str, message: str, tmp_path: Path,
                                                       checkpoints) -> None:
    done = run_vs(f"""
        import os
        MODEL = os.environ["MODEL"]
        try:
            {code}
        except (TypeError, ValueError, vs.Error) as error:
            print(str(error).splitlines()[0])
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip().startswith(message)


def test_vspipe_reports_a_missing_model_and_fails(tmp_path: Path, checkpoints) -> None:
    done = run_vs("""
        vsrmbg.mask(core.std.BlankClip(format=vs.RGB24), "missing/model.safetensors").set_output()
    """, tmp_path, checkpoints["safetensors"], vspipe=True)
    assert done.returncode != 0
    assert b"vsrmbg.mask: " in done.stderr and b"missing/model.safetensors" in done.stderr
    assert done.stdout == b""
