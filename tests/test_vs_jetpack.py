"""vsrmbg as a vs-jetpack user meets it: a jetpack script run unchanged, the clip's properties kept on the mask,
``matrix=`` as vstools' MatrixLike, and ``set_output(alpha=)`` through vspipe into a container that keeps alpha.

Runs in the VapourSynth venv (vsjetpack comes with its ``vs-test`` extra), each script in a subprocess.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from hosts import vs_python
from pictures import picture
from test_vapoursynth import run_vs

JETPACK = """
import functools, os
from vstools import ColorRange, FieldBased, Matrix, get_y
from vsmasktools import Morpho, normalize_mask

clip = from_array(np.load("frame.npy"), vs.YUV420P10)
clip = core.std.SetFrameProps(clip, _FieldBased=2, _SARNum=16, _SARDen=15, _ChromaLocation=0)
clip = core.std.RemoveFrameProps(clip, "_Matrix")  # the matrix comes from matrix= then
rmbg = functools.partial(vsrmbg.mask, model=os.environ["MODEL"], model_size=64, runtime="torch")
mask = normalize_mask(rmbg, clip, clip)  # jetpack calls mask(clip, ref)
background = core.std.BlankClip(clip, color=[64, 512, 512])
merged = core.std.MaskedMerge(background, clip, mask, first_plane=True)
grown = Morpho.maximum(mask)
luma = get_y(merged)
eight = rmbg(clip)
said = []
for frame in (2, 0, 1, 2):  # random access: the same frames whatever the order
    said.append(np.asarray(mask.get_frame(frame)[0]).tobytes())
same_order = said[0] == said[3]
m, g, e = mask.get_frame(1), grown.get_frame(1), eight.get_frame(1)
print(mask.format.name, merged.format.name, luma.format.name, grown.format.name)
print(same_order, bool((np.asarray(g[0]) >= np.asarray(m[0])).all()))
print(FieldBased.from_video(mask).name, m.props["_SARNum"], m.props["_SARDen"], m.props["_ChromaLocation"],
      ColorRange.from_video(mask).name)
print(sorted(set(m.props) & {"_Matrix", "_Transfer", "_Primaries"}),
      sorted(set(e.props) & {"_Matrix", "_Transfer", "_Primaries"}), e.props["_FieldBased"])
alphas = [np.asarray(rmbg(clip, matrix=matrix).get_frame(0)[0]).tobytes()
          for matrix in ("709", "bt709", "BT709", 1, Matrix.BT709, Matrix.BT709.name)]
other = np.asarray(rmbg(clip, matrix=Matrix.ST170_M).get_frame(0)[0]).tobytes()
print(len(set(alphas)), len({alphas[0], other}))
"""


def test_a_vs_jetpack_script_runs_unchanged(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    np.save(tmp_path / "frame.npy", picture(64, 96))
    done = run_vs(JETPACK, tmp_path, checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    formats, access, props, colour, matrices = done.stdout.decode().strip().splitlines()
    assert formats.split() == ["Gray10", "YUV420P10", "Gray10", "Gray10"]
    assert access.split() == ["True", "True"]
    assert props.split() == ["TFF", "16", "15", "0", "FULL"]
    assert colour == "[] [] 2"  # no colorimetry on a GRAY mask, at 10 bits and at 8
    assert matrices.split() == ["1", "2"]  # every spelling of BT.709 is one matrix; 170m is another


def test_set_output_alpha_through_vspipe_keeps_the_alpha_in_ffv1(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    """The route for vspipe: ``clip.set_output(0, alpha=vsrmbg.mask(clip))``; vspipe writes each frame's planes
    then its alpha plane, which is ffmpeg's yuva420p; FFV1 in Matroska keeps it."""
    np.save(tmp_path / "frame.npy", picture(48, 64))
    script = """
        import os
        clip = from_array(np.load("frame.npy"), vs.YUV420P8)
        clip = core.std.AssumeFPS(clip, fpsnum=25, fpsden=1)
        clip.set_output(0, alpha=vsrmbg.mask(clip, model=os.environ["MODEL"], model_size=64, runtime="torch"))
        vsrmbg.mask(clip, model=os.environ["MODEL"], model_size=64, runtime="torch").set_output(1)
    """
    raw = run_vs(script, tmp_path, checkpoints["safetensors"], vspipe=True)
    assert raw.returncode == 0, raw.stderr.decode()[-2000:]
    frame_bytes = 64 * 48 * 3 // 2 + 64 * 48
    assert len(raw.stdout) == 3 * frame_bytes  # Y, U, V, then A: yuva420p
    masks = run_vs(script, tmp_path, checkpoints["safetensors"], "-o", "1", vspipe=True)
    assert masks.returncode == 0, masks.stderr.decode()[-2000:]
    out = tmp_path / "out.mkv"
    encoded = subprocess.run(["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuva420p", "-s", "64x48",
                              "-r", "25", "-i", "-", "-c:v", "ffv1", str(out)], input=raw.stdout, capture_output=True,
                             timeout=120)
    assert encoded.returncode == 0, encoded.stderr.decode()
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert [frame.format.name for frame in frames] == ["yuva420p"] * 3
    expected = np.frombuffer(masks.stdout, np.uint8).reshape(3, 48, 64)
    for frame, alpha in zip(frames, expected, strict=True):
        plane = np.frombuffer(bytes(frame.planes[3]), np.uint8).reshape(48, frame.planes[3].line_size)[:, :64]
        assert np.array_equal(plane, alpha)
    assert expected.max() > expected.min()  # a real mask, not a flat one


@pytest.fixture(autouse=True, scope="module")
def _jetpack() -> None:
    done = subprocess.run([str(vs_python()), "-c", "import vstools, vsmasktools"], capture_output=True)
    if done.returncode != 0:
        pytest.fail("vsjetpack is not installed in the VapourSynth venv: make setup installs it (the vs-test extra)")
