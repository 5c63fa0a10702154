"""``rmbg-filter image`` run for real: outputs, and one line and exit 2 for each user error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_error_line, run_cli
from PIL import Image

from rmbg_filter import load

RNG = np.random.default_rng(5)


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An odd-sized JPEG (width 211, height 143)."""
    path = tmp_path_factory.mktemp("pictures") / "photo.jpg"
    y, x = np.mgrid[0:143, 0:211]
    picture = np.stack([x % 256, y * 2 % 256, (x + y) % 256], axis=2).astype(np.uint8)
    picture[40:100, 60:150] = (200, 40, 30)
    Image.fromarray(picture).save(path, quality=92)
    return path


def test_jpeg_to_rgba_png_of_the_same_size_with_the_engines_alpha(
    jpeg: Path, tmp_path: Path, checkpoints: dict[str, Path]
) -> None:
    out = tmp_path / "cutout.png"
    done = run_cli("image", jpeg, out, model=checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr
    with Image.open(out) as written:
        assert written.format == "PNG" and written.mode == "RGBA" and written.size == (211, 143)
        rgba = np.asarray(written)
    with Image.open(jpeg) as source:
        rgb = np.asarray(source.convert("RGB"))
    np.testing.assert_array_equal(rgba[..., :3], rgb)
    expected = load(checkpoints["safetensors"], device="cpu")(rgb)
    assert np.abs(rgba[..., 3].astype(int) - expected).max() <= 1
    assert list(tmp_path.iterdir()) == [out]


def test_alpha_and_composite_outputs(jpeg: Path, tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    mask = tmp_path / "mask.png"
    assert run_cli("image", jpeg, mask, "--output", "alpha", model=checkpoints["pth"]).returncode == 0
    with Image.open(mask) as written:
        assert written.mode == "L" and written.size == (211, 143)
    green = tmp_path / "green.jpg"
    done = run_cli("image", jpeg, green, "--output", "green", model=checkpoints["pth"])
    assert done.returncode == 0, done.stderr
    with Image.open(green) as written:
        assert written.format == "JPEG" and written.mode == "RGB" and written.size == (211, 143)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["image", "{missing}", "{out}"], r"input not found: .*missing\.jpg"),
        (["image", "{text}", "{out}"], r"cannot read .*notes\.png as an image"),
        (["image", "{jpeg}", "{out}", "--output", "mask"], r"argument --output: must be rgba, alpha"),
        (["image", "{jpeg}", "{out}", "--model", "{missing}"], r"model not found: .*missing\.jpg.*--model PATH"),
        (["image", "{jpeg}", "{out}", "--model", "{text}"], r"unsupported weights file type \.png"),
        (["image", "{jpeg}", "{out}", "--device", "cuda"], r"torch sees no CUDA GPU"),
        (["image", "{jpeg}", "{tmp}/rgba.jpg"], r"cannot write .*rgba\.jpg with --output rgba .*use \.png"),
        (["image", "{jpeg}", "{tmp}/no/such/dir/out.png"], r"folder .* does not exist"),
        (["image", "{jpeg}", "{tmp}/out.xyz"], r"cannot tell the image format"),
        (["image", "{jpeg}"], r"the following arguments are required: OUT"),
        (["frobnicate"], r"argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2_leaving_nothing(
    args: list[str], message: str, jpeg: Path, tmp_path: Path, checkpoints: dict[str, Path]
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    names = {"missing": tmp_path / "missing.jpg", "out": tmp_path / "out.png", "text": text, "jpeg": jpeg,
             "tmp": tmp_path}
    done = run_cli(*[a.format(**names) for a in args], model=checkpoints["safetensors"])
    assert done.returncode == 2, done.stderr
    assert re.search(message, one_error_line(done)), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.png"]


def test_existing_output_is_kept_unless_overwrite(jpeg: Path, tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    done = run_cli("image", jpeg, out, model=checkpoints["safetensors"])
    assert done.returncode == 2
    assert "already exists; pass --overwrite (or -y)" in one_error_line(done)
    assert out.read_bytes() == b"precious"
    assert run_cli("image", jpeg, out, "-y", model=checkpoints["safetensors"]).returncode == 0
    with Image.open(out) as written:
        assert written.mode == "RGBA"


def test_unreachable_hub_model_is_one_line(jpeg: Path, tmp_path: Path) -> None:
    done = run_cli("image", jpeg, tmp_path / "out.png", "--model", "briaai/RMBG-1.4")
    assert done.returncode == 2
    line = one_error_line(done)
    assert "cannot load model 'briaai/RMBG-1.4'" in line and "--model PATH" in line
    assert list(tmp_path.iterdir()) == []
