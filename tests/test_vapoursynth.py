"""The VapourSynth filter ``vsrmbg``, run for real: ``vspipe`` on a script, and its API in VapourSynth's Python.

VapourSynth's wheels need Python 3.12+, so these run in the VapourSynth venv
that ``make setup`` makes (``$RMBG_VS_PYTHON``, default ``.venv-vs/bin/python``,
or this venv when it is 3.12+), each in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hosts import vs_python
from pictures import picture

from rmbg_filter import load

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
        vsrmbg.mask(clip, model=os.environ["MODEL"], model_size=64, runtime="torch").set_output()
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
        vsrmbg.mask(from_array(np.load("frame.npy"), vs.RGB24), model=os.environ["MODEL"], model_size=64).set_output()
    """, tmp_path, onnx_checkpoint, vspipe=True)
    assert done.returncode == 0, done.stderr.decode()
    for alpha in np.frombuffer(done.stdout, np.uint8).reshape(3, 40, 56):
        assert np.abs(alpha.astype(int) - engine(pixels)).max() <= 1


@pytest.mark.parametrize(("fmt", "gray", "opaque"), [("YUV420P8", "Gray8", 255), ("YUV444P10", "Gray10", 1023),
                                                   ("RGB48", "Gray16", 65535), ("RGBS", "GrayS", 1.0),
                                                   ("YUV422P16", "Gray16", 65535)])
def test_the_mask_is_gray_in_the_clips_depth_and_sample_type(fmt: str, gray: str, opaque: float, tmp_path: Path,
                                                             checkpoints, engine) -> None:
    pixels = picture(96, 128)
    np.save(tmp_path / "frame.npy", pixels)
    done = run_vs(f"""
        import os
        clip = from_array(np.load("frame.npy"), vs.{fmt})
        alpha = vsrmbg.mask(clip, model=os.environ["MODEL"], model_size=64, runtime="torch")
        frame = alpha.get_frame(2)
        print(alpha.format.name, alpha.width, alpha.height, alpha.num_frames, int(frame.props["_Range"]))
        np.save("alpha.npy", np.asarray(frame[0]))
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == [gray, "128", "96", "3", "1"]
    alpha = np.load(tmp_path / "alpha.npy").astype(np.float64) / opaque * 255
    # the clip went RGB -> fmt -> RGB: close to the alpha of the original pixels, not equal
    assert np.abs(alpha - engine(pixels)).mean() < 8


def test_rmbg_attaches_the_masks_alpha_and_keeps_the_clip(tmp_path: Path, checkpoints) -> None:
    np.save(tmp_path / "frame.npy", picture(64, 96))
    done = run_vs("""
        import os
        clip = from_array(np.load("frame.npy"), vs.RGB48)
        out = vsrmbg.rmbg(clip, model=os.environ["MODEL"], model_size=64, runtime="torch")
        mask = vsrmbg.mask(clip, model=os.environ["MODEL"], model_size=64, runtime="torch").get_frame(0)
        frame = out.get_frame(0)
        alpha = frame.props["_Alpha"]
        print(out.format.name == clip.format.name, alpha.format.name, alpha.width, alpha.height)
        print(bool((np.asarray(alpha[0]) == np.asarray(mask[0])).all()),
              bool((np.asarray(frame[0]) == np.asarray(clip.get_frame(0)[0])).all()))
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["True", "Gray16", "96", "64", "True", "True"]


def test_masked_merge_takes_the_mask_of_a_ten_bit_clip_as_it_is(tmp_path: Path, checkpoints, engine) -> None:
    pixels = picture(64, 96)
    np.save(tmp_path / "frame.npy", pixels)
    done = run_vs("""
        import os
        clip = from_array(np.load("frame.npy"), vs.YUV420P10)
        background = core.std.BlankClip(clip, color=[64, 512, 512])
        merged = core.std.MaskedMerge(background, clip, vsrmbg.mask(clip, model=os.environ["MODEL"], model_size=64,
                                                                      runtime="torch"), first_plane=True)
        rgb = core.resize.Bicubic(merged, format=vs.RGB24, matrix_in_s="709").get_frame(0)
        np.save("merged.npy", np.dstack([np.asarray(rgb[plane]) for plane in range(3)]))
        print(merged.format.name)
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["YUV420P10"]
    merged = np.load(tmp_path / "merged.npy").astype(np.float64)
    weight = engine(pixels)[..., None] / 255.0
    expected = pixels * weight + np.zeros(3) * (1 - weight)  # the blank background is black (Y 64, limited)
    assert np.abs(merged - expected).mean() < 6


def test_nodes_with_the_same_options_share_one_engine_and_take_turns(tmp_path: Path, checkpoints) -> None:
    np.save(tmp_path / "frame.npy", picture(48, 64))
    done = run_vs("""
        import os, threading
        from rmbg_filter import ModelOptions, shared_engine
        core.num_threads = 4
        clip = from_array(np.load("frame.npy"), vs.RGB24) * 4
        first = vsrmbg.mask(clip, model=os.environ["MODEL"], model_size=64, runtime="torch")
        second = vsrmbg.mask(core.std.FlipHorizontal(clip), model=os.environ["MODEL"], model_size=64, runtime="torch")
        engine = shared_engine(ModelOptions(model=os.environ["MODEL"], model_size=64, runtime="torch"))
        running, most, calls = [0], [0], [0]
        guard = threading.Lock()
        def enter(module, args):
            with guard:
                running[0] += 1
                calls[0] += 1
                most[0] = max(most[0], running[0])
        def leave(module, args, output):
            with guard:
                running[0] -= 1
        engine.network.conv_in.register_forward_pre_hook(enter)  # once a frame: the first convolution
        engine.network.side1.register_forward_hook(leave)  # and the last
        for frame in core.std.Interleave([first, second]).frames(prefetch=8):
            pass
        print(calls[0], most[0])
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()
    calls, most = map(int, done.stdout.split())
    assert calls == 24  # both nodes ran on this one engine: 12 frames each
    assert most == 1


MATRICES = ("1 (709/bt709), 4 (fcc), 5 (470bg/bt470bg/bt470_bg/bt601), 6 (170m/smpte170m/st170_m), "
            "7 (240m/smpte240m/st240_m), 8 (ycgco), 9 (2020ncl/bt2020ncl/bt2020_ncl/bt2020)")


@pytest.mark.parametrize(("code", "message"), [
    ("vsrmbg.mask(core.std.BlankClip(format=vs.GRAY8), model=MODEL)",
     "vsrmbg.mask: clip must be RGB or YUV, got Gray8"),
    ("vsrmbg.rmbg('clip.mp4', model=MODEL)",
     "vsrmbg.rmbg: clip must be a vapoursynth.VideoNode, got str"),
    ("vsrmbg.rmbg(core.std.BlankClip(format=vs.RGB24), model=MODEL, model_size=8)",
     "vsrmbg.rmbg: model_size= must be from 32 to 4096, got 8"),
    ("vsrmbg.mask(core.std.BlankClip(format=vs.RGB24), model=MODEL, model_size=321)",
     "vsrmbg.mask: model_size= must be a multiple of 32, got 321; use 320 or 352"),
    ("vsrmbg.mask(core.std.BlankClip(format=vs.YUV420P8), model=MODEL, matrix='')",
     "vsrmbg.mask: matrix= must be a YUV matrix as vstools' MatrixLike: one of " + MATRICES + ", got ''"),
    ("vsrmbg.mask(core.std.BlankClip(format=vs.YUV420P8), model=MODEL, matrix='rgb')",
     "vsrmbg.mask: matrix= must be a YUV matrix as vstools' MatrixLike: one of " + MATRICES + ", got 'rgb'"),
    ("vsrmbg.mask(core.std.BlankClip(format=vs.YUV420P8), model=MODEL, matrix=2)",
     "vsrmbg.mask: matrix= must be a YUV matrix as vstools' MatrixLike: one of " + MATRICES + ", got 2"),
    ("vsrmbg.mask(core.std.BlankClip(format=vs.RGB24), MODEL)",  # jetpack passes a ref clip there
     "vsrmbg.mask: the second argument is vs-jetpack's ref clip (not used), got str; pass the model as model= "
     "(every option is a keyword)"),
    ("vsrmbg.mask(core.std.Splice([core.std.BlankClip(format=vs.YUV420P8, width=64, height=48), "
     "core.std.BlankClip(format=vs.RGB24, width=32, height=48)], mismatch=True), model=MODEL)",
     "vsrmbg.mask: clip must have one format and size, got a variable one; resize it to a constant format first"),
    ("vsrmbg.mask(core.std.BlankClip(format=core.query_video_format(vs.RGB, vs.INTEGER, 32, 0, 0).id), model=MODEL)",
     "vsrmbg.mask: clip must have 8 to 16 bits or float samples, got RGB96"),
    ("vsrmbg.rmbg(core.std.BlankClip(format=vs.RGB24), model='missing/model.safetensors')",
     "vsrmbg.rmbg: model not found: missing/model.safetensors is neither a file, a directory nor a Hub repo id; "
     "pass a local directory or weights file with model=PATH or RMBG_MODEL=PATH"),
])
def test_bad_arguments_name_the_function_called_and_the_keyword(code: str, message: str, tmp_path: Path,
                                                                checkpoints) -> None:
    done = run_vs(f"""
        import os
        MODEL = os.environ["MODEL"]
        try:
            {code}
        except vs.Error as error:
            print(str(error))
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == message


def test_vspipe_reports_a_missing_model_and_fails(tmp_path: Path, checkpoints) -> None:
    done = run_vs("""
        vsrmbg.mask(core.std.BlankClip(format=vs.RGB24), model="missing/model.safetensors").set_output()
    """, tmp_path, checkpoints["safetensors"], vspipe=True)
    assert done.returncode != 0
    assert b"vsrmbg.mask: " in done.stderr and b"missing/model.safetensors" in done.stderr
    assert done.stdout == b""


@pytest.mark.parametrize(("code", "why"), [(77, "not an H.273 code"), (0, "RGB's, on a YUV clip"),
                                         (10, "BT.2020 constant luminance, which needs a transfer")])
def test_a_frames_unusable_matrix_is_named_with_the_function_frame_and_fix(code: int, why: str, tmp_path: Path,
                                                                          checkpoints) -> None:
    done = run_vs(f"""
        import os
        MODEL = os.environ["MODEL"]
        clip = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=1)  # one frame: vspipe asks
        clip = core.std.SetFrameProps(clip, _Matrix={code})                           # for several at once
        vsrmbg.mask(clip, model=MODEL, model_size=64).set_output()
    """, tmp_path, checkpoints["safetensors"], vspipe=True)
    assert done.returncode != 0
    # VapourSynth prints a Python callback's traceback, then the error's one line
    errors = [line for line in done.stderr.decode().splitlines() if line.startswith("vapoursynth.Error: ")]
    assert errors == [(f"vapoursynth.Error: vsrmbg.mask: frame 0 has _Matrix={code}, which the conversion to RGB "
                       "cannot use (usable: 1, 2, 4, 5, 6, 7, 8, 9; 2 takes matrix=); set the clip's matrix with "
                       "std.SetFrameProps(_Matrix=...) or remove it with std.RemoveFrameProps(props='_Matrix')")], why
    assert b"Resize error" not in done.stderr


def test_frames_too_large_for_memory_are_refused_when_the_node_is_made(tmp_path: Path, checkpoints) -> None:
    done = run_vs("""
        import os
        try:
            vsrmbg.mask(core.std.BlankClip(format=vs.RGB24, width=16384, height=10922), model=os.environ["MODEL"],
                        model_size=32, batch_size=64, temporal_radius=8)
        except vs.Error as error:
            print(str(error))
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith("vsrmbg.mask: frames of 16384x10922 need about 367.4 GiB of memory, more "
                                           "than the ")
    assert done.stdout.decode().strip().endswith("available; scale them down, or lower batch_size= or temporal_radius=")


def test_batch_size_runs_groups_of_frames_with_the_same_alphas_in_any_order(tmp_path: Path, checkpoints) -> None:
    """batch_size=4: the network runs 4 consecutive frames a call (12 frames, 3 calls), each alpha within 1 level
    of batch_size=1's, whether the frames are asked for last to first or by 4 threads at once."""
    np.save(tmp_path / "frame.npy", picture(64, 96))
    done = run_vs("""
        import os
        from rmbg_filter import ModelOptions, shared_engine
        core.num_threads = 4
        base = from_array(np.load("frame.npy"), vs.RGB24)
        clip = core.std.Splice([core.std.Invert(base) if n % 2 else base for n in range(4)])  # 12 frames
        keywords = dict(model=os.environ["MODEL"], model_size=64, runtime="onnxruntime", device="cpu")
        engine = shared_engine(ModelOptions(batch_size=4, **keywords))
        batched = vsrmbg.mask(clip, batch_size=4, **keywords)
        backwards = {n: np.asarray(batched.get_frame(n)[0]).astype(int) for n in range(11, -1, -1)}
        runs_backwards = engine.network_runs  # frames run by the network so far
        threaded = [np.asarray(frame[0]).astype(int)
                    for frame in vsrmbg.mask(clip, batch_size=4, refine_radius=2, **keywords).frames(prefetch=8)]
        single = vsrmbg.mask(clip, batch_size=1, **keywords)
        alone = [np.asarray(single.get_frame(n)[0]).astype(int) for n in range(12)]
        print(max(int(np.abs(backwards[n] - alone[n]).max()) for n in range(12)),
              max(int(np.abs(threaded[n] - alone[n]).max()) for n in range(12)), runs_backwards)
    """, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    backwards, threaded, runs = map(int, done.stdout.split())
    assert backwards <= 1 and threaded <= 1
    assert runs == 12  # 3 calls of 4: no frame ran twice
