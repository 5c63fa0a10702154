"""dtype="int8": the exported network quantized by ONNX Runtime, calibrated on the shipped photos, cached.

Its accuracy is measured on the real IS-Net, on photos kept out of calibration, at a small model size
(make bench measures it at 1024 with every other mode); the cache is checked on the deterministic weights.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from real_network import photo

from rmbg_filter import int8_graph, load
from rmbg_filter.digests import sha256_of
from rmbg_filter.int8_graph import CALIBRATION

pytest.importorskip("onnxruntime", reason="the int8 mode needs rmbg-filter[onnx]")

#: held out of calibration (the shipped photos are chelsea, coffee, rocket, hubble_deep_field)
HELD_OUT = ("motorcycle_left", "coins", "camera")


def test_the_calibration_photos_are_shipped_and_none_is_measured() -> None:
    assert [path.name for path in CALIBRATION] == ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "hubble_deep_field.jpg"]
    assert all(path.is_file() and path.stat().st_size > 10_000 for path in CALIBRATION)
    assert not {path.stem for path in CALIBRATION} & set(HELD_OUT)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_int8_on_the_real_network_cuts_out_what_float32_does(runtime: str, isnet_medium: Path) -> None:
    """At model size 320 (IS-Net, these photos, ONNX Runtime: mean 0.5-3.5 levels, 99.9th percentile 14-36, max
    28-60, the subject's mask (alpha >= 128) 0.93-1.0 of float32's (intersection over union); min-max calibration
    gave max 250 at 1024). OpenVINO runs the same graph."""
    if runtime == "openvino":
        pytest.importorskip("openvino", reason="runtime openvino needs rmbg-filter[openvino]")
    exact = load(isnet_medium, device="cpu", dtype="float32", runtime="onnxruntime", model_size=320)
    int8 = load(isnet_medium, device="cpu", dtype="int8", runtime=runtime, model_size=320)
    assert int8.backend.int8 and int8.backend.runtime == runtime
    for name in HELD_OUT:
        picture = photo(name)
        reference, quantized = exact(picture).astype(int), int8(picture).astype(int)
        error = np.abs(reference - quantized)
        assert error.mean() <= 5.0, name
        assert np.percentile(error, 99.9) <= 56, name
        assert error.max() <= 100, name
        subject, found = reference >= 128, quantized >= 128
        assert (subject & found).sum() / (subject | found).sum() >= 0.9, name


def int8_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "rmbg_filter.int8_graph"]


def test_the_int8_graph_is_built_once_and_rebuilt_when_damaged(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RMBG_CACHE", str(tmp_path))
    frame = photo("coins")
    with caplog.at_level(logging.WARNING, "rmbg_filter"):
        first = load(checkpoints["safetensors"], device="cpu", dtype="int8", model_size=64)(frame)
    (built,) = int8_records(caplog)
    assert built.startswith("rmbg-filter: building the int8 network for these weights at 64x64, once")
    (graph,) = tmp_path.glob("*/matte-int8-*.onnx")
    assert graph.with_suffix(".sha256").read_text().strip() == sha256_of(graph)

    caplog.clear()
    with caplog.at_level(logging.WARNING, "rmbg_filter"):
        assert np.array_equal(load(checkpoints["safetensors"], device="cpu", dtype="int8", model_size=64)(frame), first)
    assert int8_records(caplog) == []  # reused

    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # a copy cut short
    caplog.clear()
    with caplog.at_level(logging.WARNING, "rmbg_filter"):
        again = load(checkpoints["safetensors"], device="cpu", dtype="int8", model_size=64)
    assert int8_records(caplog) == [f"rmbg-filter: the int8 cache {graph} is damaged (its sha256 does not match); "
                                    "building it again"]
    assert np.array_equal(again(frame), first)  # calibration is deterministic: the same graph again
    assert not list(graph.parent.glob("partial-*"))


def test_other_settings_make_another_graph(checkpoints: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache is keyed by the quantizer's settings (and ONNX Runtime's version): a stale graph is never used."""
    monkeypatch.setenv("RMBG_CACHE", str(tmp_path))
    load(checkpoints["safetensors"], device="cpu", dtype="int8", runtime="onnxruntime", model_size=32)
    monkeypatch.setattr(int8_graph, "SETTINGS", {**int8_graph.SETTINGS, "percentile": 99.99})
    load(checkpoints["safetensors"], device="cpu", dtype="int8", runtime="onnxruntime", model_size=32)
    assert len(list(tmp_path.glob("*/matte-int8-*.onnx"))) == 2
