"""Read the weights of an ONNX export of RMBG-1.4 / IS-Net into this project's network, as data.

Such files come from BRIA (``onnx/model.onnx``, ``model_fp16.onnx``,
``model_quantized.onnx``), rembg (``isnet-general-use.onnx``) and IMG.LY
(``@imgly/background-removal-data``). Their exporters fold every batch norm
into the convolution before it, so the graph holds 119 convolutions and no
batch norm. Those convolutions, taken in graph order, are RMBGNetwork's in the
order its forward pass runs them (the six side heads, which a quantizer may move up, are put
last in the order of the outputs they feed); each is checked (weight and bias shape,
stride, padding, dilation, groups) before its tensors are taken, the batch
norms become exact identities (``running_var = 1 - eps``), and the graph's
first output must come from ``side1``. Weights stored as float16 are widened
to float32 exactly; uint8 weights of a dynamically quantized graph
(``ConvInteger``) are dequantized exactly, ``(q - zero_point) * scale``.

Nothing in the file is run: the graph is only read, with ``onnx``'s protobuf
parser, and constants are evaluated here by the few rules below.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .digests import sha256_of
from .errors import ModelLoadError, first_line
from .network import meta_network

__all__ = ["kept_onnx_state", "read_onnx_state"]

#: The operators whose result on constant inputs is evaluated here (what exporters put between a weight and its Conv).
_FOLDABLE = frozenset({"Constant", "Identity", "Cast", "Reshape", "DequantizeLinear"})
_NOT_ISNET = "expected an ONNX export of RMBG-1.4 or IS-Net (BRIA's onnx/model.onnx, rembg's isnet-general-use.onnx)"


@dataclass(frozen=True)
class _Conv:
    """One convolution read from the graph: float32 weight (O,I,kh,kw), bias (O,) and its geometry."""

    node_name: str
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    end: str  # the tensor that carries the convolution's float result (after bias) onward


#: bumped when reading a graph's state changes: the states kept under the old value are not read again
_KEPT_VERSION = 1


def kept_onnx_state(path: Path) -> dict[str, torch.Tensor]:
    """``read_onnx_state``, kept in the export cache (``onnx_export.cache_folder``) as safetensors named by the
    file's sha256: following a graph's convolutions takes seconds (about 2 s for IS-Net small here), reading the
    kept state a tenth of that. A kept state that cannot be read is read again from the graph; one that cannot be
    written is not kept (loading does not need it)."""
    from safetensors.torch import load_file, save_file

    from .onnx_export import cache_folder

    try:
        digest = sha256_of(path)
    except OSError:
        return read_onnx_state(path)  # which says what is wrong with the file
    kept = cache_folder() / "onnx-weights" / f"{digest[:24]}-v{_KEPT_VERSION}.safetensors"
    if kept.is_file():
        with contextlib.suppress(Exception):  # damaged or cut short: each reader fails its own way
            return load_file(kept, device="cpu")
    state = read_onnx_state(path)
    with contextlib.suppress(OSError):  # written beside itself and renamed, as the exports are
        kept.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="partial-", dir=kept.parent) as partial:
            written = Path(partial) / kept.name
            save_file({name: tensor.contiguous() for name, tensor in state.items()}, written)
            os.replace(written, kept)
    return state


def read_onnx_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict (float32 on the CPU, published tensor names) of the network an ONNX file holds.

    Raises ModelLoadError, one line, when the file is unreadable or is not an export of this architecture.
    """
    model = _load_model(path)
    try:
        return _state_of(model, path)
    except ModelLoadError:  # a ValueError too: said already, in one line
        raise
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as error:  # a malformed graph
        raise ModelLoadError(f"{path}: an ONNX graph this loader cannot follow ({first_line(error)}); "
                             f"{_NOT_ISNET}") from error


def _state_of(model: Any, path: Path) -> dict[str, torch.Tensor]:
    """``read_onnx_state`` on a parsed ModelProto."""
    graph = _Graph(model, path)
    convs = graph.convolutions()
    modules = _convolutions_in_forward_order()
    if len(convs) != len(modules):
        raise ModelLoadError(f"{path}: an ONNX graph with {len(convs)} convolutions, RMBG-1.4 has {len(modules)}; "
                             f"{_NOT_ISNET}")
    state: dict[str, torch.Tensor] = {}
    for index, (conv, (name, module)) in enumerate(zip(convs, modules, strict=True)):
        _check_conv(path, index, conv, name, module)
        state[f"{name}.weight"] = torch.from_numpy(conv.weight)
        state[f"{name}.bias"] = torch.from_numpy(conv.bias)
    graph.check_first_output_is(convs[[name for name, _ in modules].index("side1")])
    state.update(_identity_batch_norms())
    return state


def _load_model(path: Path) -> Any:
    """The parsed ModelProto (external data read from beside the file); nothing in it is executed."""
    try:
        import onnx
    except ImportError as error:
        raise ModelLoadError(f"{path}: reading ONNX weights needs the onnx package; pip install onnx") from error
    try:
        return onnx.load(str(path))
    except Exception as error:  # protobuf's DecodeError, a missing external-data file, ...
        raise ModelLoadError(f"{path}: not a readable ONNX file ({first_line(error)}); {_NOT_ISNET}") from error


class _Graph:
    """The nodes, constants and consumers of an ONNX graph, with constant evaluation by a few rules."""

    def __init__(self, model: Any, path: Path) -> None:
        from onnx import numpy_helper

        self.path = path
        self.graph = model.graph
        self._to_array = numpy_helper.to_array
        self.initializers = {tensor.name: tensor for tensor in self.graph.initializer}
        self.producer = {output: node for node in self.graph.node for output in node.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self._constants: dict[str, np.ndarray | None] = {}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of tensor ``name`` if it is a constant (initializer or constant subgraph), else None."""
        if name not in self._constants:
            self._constants[name] = self._evaluate(name)
        return self._constants[name]

    def _evaluate(self, name: str) -> np.ndarray | None:
        from onnx import helper

        if name in self.initializers:
            return self._to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type not in _FOLDABLE:
            return None
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            return self._to_array(attributes["value"]) if "value" in attributes else None
        inputs = [self.constant(i) if i else None for i in node.input]
        if not inputs or inputs[0] is None:
            return None
        if node.op_type == "Identity":
            return inputs[0]
        if node.op_type == "Cast":
            return inputs[0].astype(helper.tensor_dtype_to_np_dtype(attributes["to"]))
        if node.op_type == "Reshape" and len(inputs) > 1 and inputs[1] is not None:
            return inputs[0].reshape(inputs[1])
        if node.op_type == "DequantizeLinear" and len(inputs) > 1 and inputs[1] is not None:
            return _dequantize(inputs[0], inputs[2] if len(inputs) > 2 else None, inputs[1],
                               attributes.get("axis", 1))
        return None

    def convolutions(self) -> list[_Conv]:
        """Every Conv and ConvInteger node with its weights as float32, in forward order.

        That is graph order for the body, then the side convolutions (one output channel, read by a
        graph output with no convolution between) in the order of the outputs they feed: exporters
        write nodes as the forward pass runs them, but a quantizer may move the side heads up.
        """
        convs = self._graph_order()
        outputs = {output.name: index for index, output in enumerate(self.graph.output)}
        feeds = {conv.end: self._first_output_fed(conv.end, outputs) for conv in convs}
        sides = sorted((c for c in convs if c.weight.shape[0] == 1 and feeds[c.end] is not None),
                       key=lambda c: feeds[c.end])
        return [c for c in convs if c not in sides] + sides

    def _first_output_fed(self, name: str, outputs: dict[str, int]) -> int | None:
        """The index of the first graph output that ``name`` reaches without passing a convolution."""
        reached, pending, seen = [], [name], set()
        while pending:
            tensor = pending.pop()
            if tensor in seen:
                continue
            seen.add(tensor)
            if tensor in outputs:
                reached.append(outputs[tensor])
            for node in self.consumers.get(tensor, []):
                if node.op_type not in ("Conv", "ConvInteger", "DynamicQuantizeLinear"):
                    pending.extend(node.output)
        return min(reached, default=None)

    def _graph_order(self) -> list[_Conv]:
        """Every Conv and ConvInteger node, in graph order."""
        convs = []
        for node in self.graph.node:
            if node.op_type == "Conv":
                convs.append(self._conv(node))
            elif node.op_type == "ConvInteger":
                convs.append(self._conv_integer(node))
            elif node.op_type == "BatchNormalization":
                raise ModelLoadError(f"{self.path}: its graph keeps batch norms unfolded ({node.name}); export it "
                                     "in eval mode, which folds them, or load the PyTorch weights instead")
        return convs

    def _conv(self, node: Any) -> _Conv:
        weight = self._weight(node, node.input[1])
        bias = self.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        return _geometry(node, weight.astype(np.float32), _float_or_none(bias), node.output[0])

    def _conv_integer(self, node: Any) -> _Conv:
        """A convolution quantized dynamically (onnxruntime's quantize_dynamic): ConvInteger -> Cast ->
        Mul(input scale x weight scale) -> Add(bias). The weight scale and the bias are read from that chain."""
        quantized = self._weight(node, node.input[1])
        zero_point = self.constant(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        cast = self._only_consumer(node.output[0], "Cast", node)
        scaled = self._only_consumer(cast.output[0], "Mul", node)
        product = self.producer.get(next(i for i in scaled.input if i != cast.output[0]))
        scales = [self.constant(i) for i in product.input] if product is not None and product.op_type == "Mul" else []
        weight_scales = [s for s in scales if s is not None]
        if len(weight_scales) != 1:
            raise ModelLoadError(f"{self.path}: cannot find the weight scale of {node.name or node.output[0]}; "
                                 "this quantized graph cannot be dequantized exactly; use the float32 or float16 "
                                 "export of the same model")
        weight = _dequantize(quantized, zero_point, weight_scales[0], axis=0)
        end, bias = scaled.output[0], None
        adds = self.consumers.get(end, [])
        if len(adds) == 1 and adds[0].op_type == "Add":
            bias = next((self.constant(i) for i in adds[0].input if i != end and self.constant(i) is not None), None)
            end = adds[0].output[0] if bias is not None else end
        return _geometry(node, weight, _float_or_none(bias), end)

    def _weight(self, node: Any, name: str) -> np.ndarray:
        weight = self.constant(name)
        if weight is None:
            raise ModelLoadError(f"{self.path}: the weight of {node.name or node.output[0]} is not a constant; "
                                 f"{_NOT_ISNET}")
        return weight

    def _only_consumer(self, name: str, op_type: str, conv: Any) -> Any:
        consumers = self.consumers.get(name, [])
        if len(consumers) != 1 or consumers[0].op_type != op_type:
            raise ModelLoadError(f"{self.path}: {conv.name or conv.output[0]} is not followed by {op_type} as "
                                 "onnxruntime's dynamic quantization writes it; this quantized graph cannot be "
                                 "dequantized exactly; use the float32 or float16 export of the same model")
        return consumers[0]

    def check_first_output_is(self, side1: _Conv) -> None:
        """Refuse unless the graph's first output is computed from ``side1`` (through resize and sigmoid)."""
        if not self.graph.output:
            raise ModelLoadError(f"{self.path}: the ONNX graph has no output; {_NOT_ISNET}")
        name: str | None = self.graph.output[0].name
        for _ in range(len(self.graph.node)):
            if name is None or name == side1.end:
                break
            node = self.producer.get(name)
            name = next((i for i in node.input if i and self.constant(i) is None), None) if node else None
        if name != side1.end:
            raise ModelLoadError(f"{self.path}: its first output '{self.graph.output[0].name}' is not side 1 "
                                 f"(the alpha) of the network; {_NOT_ISNET}")


def _dequantize(quantized: np.ndarray, zero_point: np.ndarray | None, scale: np.ndarray, axis: int) -> np.ndarray:
    """``(q - zero_point) * scale`` in float32, per tensor or per ``axis`` (exact: q - zp fits float32)."""
    values = quantized.astype(np.float32) - (0.0 if zero_point is None else _along(zero_point, quantized, axis))
    return (values * _along(scale.astype(np.float32), quantized, axis)).astype(np.float32)


def _along(values: np.ndarray, like: np.ndarray, axis: int) -> np.ndarray:
    """A scalar as it is; a vector shaped to broadcast along ``axis`` of ``like``."""
    if values.size == 1:
        return values.reshape(()).astype(np.float32)
    shape = [1] * like.ndim
    shape[axis] = values.size
    return values.reshape(shape).astype(np.float32)


def _float_or_none(bias: np.ndarray | None) -> np.ndarray | None:
    return None if bias is None else bias.astype(np.float32).reshape(-1)


def _geometry(node: Any, weight: np.ndarray, bias: np.ndarray | None, end: str) -> _Conv:
    """A _Conv from ``node``'s attributes (ONNX defaults where absent)."""
    from onnx import helper

    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    spatial = weight.ndim - 2
    pads = tuple(attributes.get("pads", [0] * 2 * spatial))
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    padding = pads[:spatial] if pads[:spatial] == pads[spatial:] and auto_pad in (b"NOTSET", "NOTSET") else (-1,)
    return _Conv(node.name or node.output[0], weight, bias, tuple(attributes.get("strides", [1] * spatial)),
                 padding, tuple(attributes.get("dilations", [1] * spatial)), int(attributes.get("group", 1)), end)


def _check_conv(path: Path, index: int, conv: _Conv, name: str, module: nn.Conv2d) -> None:
    """Refuse, naming both sides, unless the graph's ``index``-th convolution is ``module``'s twin."""
    found = (tuple(conv.weight.shape), None if conv.bias is None else conv.bias.shape[0], conv.stride,
             conv.padding, conv.dilation, conv.groups)
    expected = (tuple(module.weight.shape), module.out_channels, module.stride, module.padding,
                module.dilation, module.groups)
    if found != expected:
        words = ("weight", "bias", "stride", "padding", "dilation", "groups")
        differences = ", ".join(f"{word} {got} (expected {want})"
                                for word, got, want in zip(words, found, expected, strict=True) if got != want)
        raise ModelLoadError(f"{path}: convolution {index} of the ONNX graph ({conv.node_name}) does not match "
                             f"RMBG-1.4's {name}: {differences}; {_NOT_ISNET}")


@functools.cache
def _meta_network() -> tuple[dict[str, nn.Module], tuple[str, ...]]:
    """An RMBGNetwork on the meta device (shapes, no data): its modules by name, and the names of its
    convolutions in the order its forward pass runs them (found once, by hooks on a meta-tensor pass)."""
    network = meta_network()
    order: list[str] = []
    for name, module in network.named_modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(lambda *_, name=name: order.append(name))
    with torch.no_grad():
        network(torch.zeros(1, 3, 64, 64, device="meta"))
    return dict(network.named_modules()), tuple(order)


def _convolutions_in_forward_order() -> list[tuple[str, nn.Conv2d]]:
    """(name, module) of RMBGNetwork's convolutions, in forward order (for their shapes and geometry)."""
    modules, order = _meta_network()
    return [(name, modules[name]) for name in order]


def _identity_batch_norms() -> dict[str, torch.Tensor]:
    """Batch-norm tensors that make every batch norm an exact identity in eval mode.

    ``running_var = 1 - eps`` makes ``var + eps`` exactly 1.0 in float32, so ``x`` passes unchanged.
    """
    state = {}
    for name, module in _meta_network()[0].items():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            state[f"{name}.weight"] = torch.ones(channels)
            state[f"{name}.bias"] = torch.zeros(channels)
            state[f"{name}.running_mean"] = torch.zeros(channels)
            state[f"{name}.running_var"] = torch.full((channels,), 1.0 - module.eps)
            state[f"{name}.num_batches_tracked"] = torch.zeros((), dtype=torch.int64)
    return state
