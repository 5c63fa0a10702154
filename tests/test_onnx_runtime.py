"""The ONNX Runtime float32 path: same alphas as torch, export cached, clear error when it cannot cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rmbg_filter import OptionError, load
from rmbg_filter.cli.main import FLAGS

RNG = np.random.default_rng(13)


def test_same_alphas_as_torch_and_the_export_is_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, checkpoints: dict[str, Path]
) -> None:
    monkeypatch.setenv("RMBG_CACHE", str(tmp_path / "cache"))
    frames = RNG.integers(0, 256, (3, 45, 61, 3), dtype=np.uint8)
    onnx = load(checkpoints["safetensors"], device="cpu", runtime="onnxruntime", model_size=96, batch_size=2)
    torch_alphas = load(checkpoints["safetensors"], device="cpu", runtime="torch", model_size=96)(frames)
    assert np.abs(onnx(frames).astype(int) - torch_alphas).max() <= 1
    (export,) = (tmp_path / "cache").glob("*/matte.onnx")
    written = export.stat().st_mtime_ns
    load(checkpoints["pth"], device="cpu", runtime="onnxruntime", model_size=96)  # same weights, other file
    assert export.stat().st_mtime_ns == written
    assert [p.name for p in export.parent.iterdir() if p.name.startswith("partial-")] == []


def test_unwritable_cache_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, checkpoints: dict[str, Path]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("RMBG_CACHE", str(blocker))
    expected = r"cannot write the ONNX export cache .*set RMBG_CACHE .*or use runtime='torch'"
    with pytest.raises(OptionError, match=expected) as refused:
        load(checkpoints["safetensors"], device="cpu", runtime="onnxruntime", model_size=64)
    assert refused.value.worded(FLAGS).endswith("or use --runtime torch")
