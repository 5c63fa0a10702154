"""ONNX exports of the network load as native weights; anything else is refused in one line."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from cli_helpers import run_cli
from onnx import numpy_helper
from pictures import picture
from recipe import recipe_state_dict

from rmbg_filter import BriaRMBG, ModelLoadError, RMBGConfig, load
from rmbg_filter.loading import load_network

SIZE = 64


def export(network: torch.nn.Module, path: Path, example: torch.Tensor) -> Path:
    """Export as BRIA and rembg did: TorchScript exporter, eval mode (batch norms folded), all outputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (example,), str(path), dynamo=False, opset_version=17, input_names=["input"])
    return path


@pytest.fixture(scope="module")
def recipe_network() -> BriaRMBG:
    network = BriaRMBG(RMBGConfig())
    network.load_state_dict(recipe_state_dict())
    return network.eval()


@pytest.fixture(scope="module")
def exported(onnx_checkpoint: Path) -> Path:
    return onnx_checkpoint


def pixels() -> torch.Tensor:
    """A normalised input (1,3,SIZE,SIZE) made from a picture."""
    return torch.from_numpy(picture(SIZE, SIZE)).permute(2, 0, 1)[None].float() / 255 - 0.5


def test_an_export_round_trips(exported: Path, recipe_network: BriaRMBG) -> None:
    loaded = load_network(exported)
    graph = onnx.load(str(exported)).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    # the first convolution (conv_in has no batch norm) and side1 keep their names and come back bit for bit
    for node, name in ((convs[0], "conv_in"), (convs[-6], "side1")):
        np.testing.assert_array_equal(loaded.state_dict()[f"{name}.weight"].numpy(), initializers[node.input[1]])
        np.testing.assert_array_equal(loaded.state_dict()[f"{name}.bias"].numpy(), initializers[node.input[2]])
    with torch.no_grad():
        sides, _ = loaded(pixels())
        original, _ = recipe_network(pixels())
    by_onnxruntime = onnxruntime.InferenceSession(str(exported)).run(None, {"input": pixels().numpy()})
    for ours, theirs, reference in zip(sides, by_onnxruntime[:6], original, strict=True):
        assert np.abs(ours.numpy() - theirs).max() < 2e-6  # the same arithmetic as the file describes
        assert (ours - reference).abs().max() < 2e-6  # folding the batch norms moved nothing beyond rounding


def test_an_export_gives_the_alpha_of_the_original(exported: Path, checkpoints: dict[str, Path]) -> None:
    frame = picture(48, 80)
    from_onnx = load(exported, device="cpu", runtime="torch", model_size=SIZE)(frame)
    original = load(checkpoints["safetensors"], device="cpu", runtime="torch", model_size=SIZE)(frame)
    assert np.abs(from_onnx.astype(int) - original).max() <= 1
    # and through the ONNX Runtime re-export, as runtime="auto" runs float32 on the CPU
    reexported = load(exported, device="cpu", runtime="onnxruntime", model_size=SIZE)(frame)
    assert np.abs(reexported.astype(int) - original).max() <= 1


def test_float16_weights_load_widened_exactly(exported: Path, tmp_path: Path) -> None:
    model = onnx.load(str(exported))
    for tensor in model.graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name))
    onnx.save(model, tmp_path / "fp16.onnx")
    half = load_network(tmp_path / "fp16.onnx").state_dict()
    full = load_network(exported).state_dict()
    for name in ("conv_in.weight", "stage3.rebnconv2.conv_s1.weight", "side1.bias"):
        assert half[name].dtype == torch.float32
        torch.testing.assert_close(half[name], full[name].half().float(), rtol=0, atol=0)


def test_dynamically_quantized_weights_load_dequantized(exported: Path, tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(exported), str(tmp_path / "q.onnx"), weight_type=QuantType.QUInt8)
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    weights = load_network(tmp_path / "q.onnx").state_dict()
    quantized, zero_point, scale = (values[f"conv_in.weight_{k}"] for k in ("quantized", "zero_point", "scale"))
    expected = (quantized.astype(np.float32) - zero_point.astype(np.float32)) * scale
    np.testing.assert_array_equal(weights["conv_in.weight"].numpy(), expected)
    full = load_network(exported).state_dict()
    for name in ("conv_in.weight", "stage4d.rebnconv1d.conv_s1.weight", "side6.weight"):
        step = float(np.abs(full[name].numpy()).max()) * 2 / 255  # one quantization step of that tensor
        assert (weights[name] - full[name]).abs().max() <= step


def another_network(path: Path) -> Path:
    """An ONNX file of some other model: two convolutions."""
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1)).eval()
    return export(other, path, torch.zeros(1, 3, 32, 32))


def with_conv_edited(exported: Path, destination: Path, index: int, edit: Callable[[Any], None]) -> Path:
    """A copy of ``exported`` at ``destination`` whose ``index``-th Conv node was changed by ``edit``."""
    model = onnx.load(str(exported))
    edit([node for node in model.graph.node if node.op_type == "Conv"][index])
    onnx.save(model, destination)
    return destination


def test_other_graphs_are_refused_in_one_line(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"an ONNX graph with 2 convolutions, RMBG-1.4 has 119; expected an ONNX "
                                             r"export of RMBG-1.4 or IS-Net") as caught:
        load_network(another_network(tmp_path / "other.onnx"))
    assert "\n" not in str(caught.value)

    def dilate(conv: Any) -> None:
        next(a for a in conv.attribute if a.name == "dilations").ints[:] = [2, 2]

    with pytest.raises(ModelLoadError, match=r"convolution 5 of the ONNX graph .* does not match RMBG-1.4's "
                                             r"stage1.rebnconv4.conv_s1: dilation \(2, 2\) \(expected \(1, 1\)\)"):
        load_network(with_conv_edited(exported, tmp_path / "dilated.onnx", 5, dilate))


def test_a_malformed_graph_is_refused_in_one_line(exported: Path, tmp_path: Path) -> None:
    def drop_weight(conv: Any) -> None:
        del conv.input[1:]

    with pytest.raises(ModelLoadError, match=r"weightless.onnx: an ONNX graph this loader cannot follow "
                                             r"\(.*\); expected an ONNX export of RMBG-1.4 or IS-Net"):
        load_network(with_conv_edited(exported, tmp_path / "weightless.onnx", 3, drop_weight))


def test_outputs_that_are_not_side1_are_refused(exported: Path, tmp_path: Path) -> None:
    model = onnx.load(str(exported))
    outputs = list(model.graph.output)
    del model.graph.output[:]
    model.graph.output.extend(outputs[6:] + outputs[:6])  # the feature maps first, then the six sides
    onnx.save(model, tmp_path / "features-first.onnx")
    with pytest.raises(ModelLoadError, match=r"its first output '.*' is not side 1 \(the alpha\)"):
        load_network(tmp_path / "features-first.onnx")
    del model.graph.output[:]
    model.graph.output.extend(outputs[1:] + outputs[:1])  # side 2 first: the sides no longer match in order
    onnx.save(model, tmp_path / "side2-first.onnx")
    with pytest.raises(ModelLoadError, match=r"does not match RMBG-1.4's side2: weight \(1, 128, 3, 3\)"):
        load_network(tmp_path / "side2-first.onnx")


@pytest.mark.parametrize("content", [b"", b"not a protobuf at all \xff\xfe" * 10, "truncated"])
def test_unreadable_files_are_refused_in_one_line(content: bytes | str, exported: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(exported.read_bytes()[:5000] if content == "truncated" else content)
    with pytest.raises(ModelLoadError) as caught:
        load_network(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert "expected an ONNX export of RMBG-1.4 or IS-Net" in message


def test_cli_refuses_another_onnx_model_with_status_2(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(picture(40, 60)).save(photo)
    other = another_network(tmp_path / "other.onnx")
    result = run_cli("image", photo, tmp_path / "out.png", "--model", other)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"rmbg-filter image: error: {other}: an ONNX graph with 2 convolutions, "
                                     "RMBG-1.4 has 119; expected an ONNX export of RMBG-1.4 or IS-Net (BRIA's "
                                     "onnx/model.onnx, rembg's isnet-general-use.onnx)")
    assert not (tmp_path / "out.png").exists()


def test_reading_a_graph_runs_nothing_from_it(exported: Path, tmp_path: Path) -> None:
    """The loader imports no runtime: reading weights never hands the graph to an executor."""
    code = (f"import sys; from rmbg_filter.loading import load_network; load_network({str(exported)!r}); "
            "print('onnxruntime' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_state_read_from_a_graph_is_kept_and_a_damaged_one_read_again(
        exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first load keeps the state in the cache, named by the file's sha256; the next loads read it (and give
    the same tensors); a kept state cut short is read from the graph again and kept anew."""
    monkeypatch.setenv("RMBG_CACHE", str(tmp_path / "cache"))
    first = load_network(exported).state_dict()
    kept = list((tmp_path / "cache" / "onnx-weights").iterdir())
    assert [path.suffix for path in kept] == [".safetensors"]
    stamp = kept[0].stat().st_mtime_ns
    again = load_network(exported).state_dict()
    assert kept[0].stat().st_mtime_ns == stamp  # read, not written again
    for name, tensor in first.items():
        assert torch.equal(tensor, again[name]), name
    kept[0].write_bytes(kept[0].read_bytes()[:1000])
    repaired = load_network(exported).state_dict()
    assert kept[0].stat().st_size > 1000
    for name, tensor in first.items():
        assert torch.equal(tensor, repaired[name]), name
