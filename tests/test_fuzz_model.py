"""Fuzzing the ``model`` argument: the words that name a model, and the files they name.

Every case goes through the real loader (``loading.load_network``, which every adapter
calls): a case ends in a network, or in a ModelLoadError of one line; never another
exception, a hang, or memory beyond the file's own size. Files are the real IS-Net
small ONNX (the npm package's), truncated anywhere or with bytes changed; ONNX graphs
of the wrong shape, made here; and the deterministic checkpoint as safetensors and as
a pickle, cut short or changed.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import fuzzing
import numpy as np
import onnx
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from rmbg_filter import ModelLoadError
from rmbg_filter.loading import load_network
from rmbg_filter.network import RMBGNetwork

#: what the loader takes for a Hub repo id (such words would go to the network, which a test must not)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class _Files(dict):
    """Suffix -> a file's bytes, whose repr is short: hypothesis prints a failing case's arguments, and 300 MB of
    bytes in a report broke pytest-xdist's channel (reports must stay under 2 GB)."""

    def __repr__(self) -> str:
        return f"<the bytes of {', '.join(self)} files>"


@pytest.fixture(scope="module")
def originals(isnet_small: Path, checkpoints: dict[str, Path]) -> dict[str, bytes]:
    """The bytes of a real ONNX and of the checkpoint's safetensors and pickle files."""
    return _Files({".onnx": isnet_small.read_bytes(), ".safetensors": checkpoints["safetensors"].read_bytes(),
                   ".pth": checkpoints["pth"].read_bytes()})


def load(path: Path | str) -> RMBGNetwork | None:
    """The property: ``load_network(path)`` gives RMBG-1.4, or one line of ModelLoadError (then None), in
    bounded time."""
    with fuzzing.at_most(120):
        try:
            network = load_network(path)
        except ModelLoadError as error:
            assert "\n" not in str(error) and str(error), repr(error)
            return None
    assert isinstance(network, RMBGNetwork)
    return network


@fuzzing.cases(full=600, slice=12)
@given(suffix=st.sampled_from([".onnx", ".safetensors", ".pth"]), data=st.data())
def test_damaged_weights_files(suffix: str, data: st.DataObject, originals: dict[str, bytes], tmp_path: Path) -> None:
    """A real weights file cut short anywhere, or with a few bytes changed, or both."""
    content = bytearray(originals[suffix])
    header = data.draw(st.booleans())  # the first 64 KB hold the headers and the graph's structure
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, min(len(content), 65536) - 1 if header else len(content) - 1))
        content[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        content = content[:data.draw(st.integers(0, len(content)))]
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    load(path)


def _conv(index: int, inputs: str, weight: np.ndarray, strides: list[int]) -> tuple[onnx.NodeProto, onnx.TensorProto]:
    """A Conv node reading ``inputs`` with ``weight`` (O,I,kH,kW) float32, and its initializer."""
    name = f"w{index}"
    node = helper.make_node("Conv", [inputs, name], [f"c{index}"], strides=strides, pads=[1, 1, 1, 1])
    return node, numpy_helper.from_array(weight, name)


@st.composite
def wrong_graphs(draw: st.DrawFn) -> onnx.ModelProto:
    """A valid ONNX model that is not RMBG-1.4: convolutions of any count and shape, chains of Identity
    (deep enough to break a recursive walk), shapes that disagree, data stored outside the file."""
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    previous = "input"
    for index in range(draw(st.integers(0, 8))):
        shape = draw(st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)))
        node, weight = _conv(index, previous, np.ones(shape, np.float32), draw(st.sampled_from([[1, 1], [2, 2]])))
        nodes.append(node)
        initializers.append(weight)
        previous = node.output[0]
    for index in range(draw(st.sampled_from([0, 3, 2000]))):
        nodes.append(helper.make_node("Identity", [previous], [f"i{index}"]))
        previous = f"i{index}"
    if draw(st.booleans()) and initializers:  # a weight said to live in a file beside the model
        tensor = initializers[0]
        tensor.data_location = TensorProto.EXTERNAL
        location = draw(st.sampled_from(["missing.bin", "../outside.bin", "/dev/zero", "weights.bin"]))
        tensor.external_data.add(key="location", value=location)
        tensor.ClearField("raw_data")
    graph = helper.make_graph(nodes, "wrong", [helper.make_tensor_value_info("input", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info(previous, TensorProto.FLOAT, None)], initializers)
    return helper.make_model(graph)


@fuzzing.cases(full=300, slice=10)
@given(model=wrong_graphs())
def test_onnx_graphs_of_another_network(model: onnx.ModelProto, tmp_path: Path) -> None:
    """A well-formed ONNX file whose graph is not RMBG-1.4 is refused in one line."""
    path = tmp_path / "other.onnx"
    path.write_bytes(model.SerializeToString())
    (tmp_path / "weights.bin").write_bytes(b"\x00" * 7)
    assert load(path) is None


@fuzzing.cases(full=500, slice=15)
@given(word=st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", ".", "..", "/", "~", "/dev/zero", "/dev/null", "/proc/self/mem", "model.onnx",
                     "a" * 300 + ".onnx", "x\x00y.onnx", "FIFO.safetensors", "dir", "dir.onnx", "notes.txt"]),
))
@example(word="FIFO.safetensors")  # each bug the full run found, in every slice too
@example(word="~nosuchuser0/model.onnx")
@example(word="a" * 300 + ".onnx")
@example(word="x\x00y.onnx")
@example(word="two\nlines.onnx")
@example(word="")
def test_model_words(word: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Any word as ``model``, relative to a folder that holds a FIFO, folders and a text file."""
    root = tmp_path_factory.mktemp("words")
    (root / "dir").mkdir()
    (root / "dir.onnx").mkdir()
    (root / "notes.txt").write_text("not weights")
    os.mkfifo(root / "FIFO.safetensors")
    assume(not HUB_ID.match(word))
    try:
        load(word if word.startswith(("/", "~")) or not word else str(root / word))
    finally:
        shutil.rmtree(root)
