"""runtime="openvino": the same export as ONNX Runtime's, compiled by OpenVINO for the CPU (rmbg-filter[openvino])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from real_network import photo

from rmbg_filter import OptionError, load

pytest.importorskip("openvino", reason="runtime openvino needs rmbg-filter[openvino]")


def test_float32_in_openvino_is_onnx_runtimes_alpha(checkpoints: dict[str, Path]) -> None:
    frames = np.stack([photo("coins")[:240, :320], photo("camera")[:240, :320]])
    exact = load(checkpoints["safetensors"], device="cpu", runtime="onnxruntime", model_size=64, batch_size=2)(frames)
    openvino = load(checkpoints["safetensors"], device="cpu", runtime="openvino", model_size=64, batch_size=2)
    assert openvino.backend.describe().startswith("cpu, float32, openvino on ")
    assert np.abs(openvino(frames[:1]).astype(int) - exact[:1]).max() <= 1  # a short batch, padded
    assert np.abs(openvino(frames).astype(int) - exact).max() <= 1


def test_a_size_openvino_cannot_compile_is_one_option_error(checkpoints: dict[str, Path]) -> None:
    with pytest.raises(OptionError) as raised:
        load(checkpoints["safetensors"], device="cpu", runtime="openvino", model_size=32)
    assert raised.value.option == "runtime"
    message = str(raised.value)
    assert message.startswith("runtime='openvino' cannot run the network at 32x32 (OpenVINO: Model wasn't fully "
                              "converted")
    assert message.endswith("); use a larger model_size= or runtime='onnxruntime'") and "\n" not in message
