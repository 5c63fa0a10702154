"""The network: checkpoint names and shapes, the recipe, parity with the published reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from recipe import FIXTURES, recipe_state_dict

from rmbg_filter import BriaRMBG, RMBGConfig
from rmbg_filter.loading import load_network


def test_state_dict_names_and_shapes_match_the_published_checkpoint() -> None:
    published = json.loads((FIXTURES / "rmbg14_state_dict.json").read_text())["tensors"]
    ours = {name: list(tensor.shape) for name, tensor in BriaRMBG(RMBGConfig()).state_dict().items()}
    assert ours == published
    assert sum(t.numel() for t in BriaRMBG(RMBGConfig()).parameters()) == 44_046_790


def test_recipe_matches_its_published_check_values() -> None:
    checks = json.loads((FIXTURES / "rmbg14_state_dict.json").read_text())["recipe_check"]
    state = recipe_state_dict()
    for name, check in checks.items():
        values = state[name].flatten()
        np.testing.assert_allclose(values[:4].numpy(), check["first4"], atol=1e-6)
        assert float(values.double().sum()) == pytest.approx(check["sum"], abs=1e-4)


@pytest.mark.parametrize("layout", ["hub", "published", "safetensors", "pth", "bin"])
def test_side_outputs_match_the_reference_for_every_checkpoint_layout(
    layout: str, checkpoints: dict[str, Path], parity: dict[str, np.ndarray]
) -> None:
    network = load_network(checkpoints[layout])
    with torch.inference_mode():
        sides, features = network(torch.from_numpy(parity["input_256"]))
    assert len(sides) == 6 and len(features) == 6
    for index, side in enumerate(sides, start=1):
        assert side.shape == (1, 1, 256, 256)
        worst = np.abs(side[0, 0].numpy() - parity[f"side{index}_256"]).max()
        assert worst < 1e-4, f"side{index} differs by {worst}"


def test_matte_is_side_one(checkpoints: dict[str, Path], parity: dict[str, np.ndarray]) -> None:
    network = load_network(checkpoints["safetensors"])
    pixels = torch.from_numpy(parity["input_256"][:, :, :96, :160])  # not square, not a power of 2
    with torch.inference_mode():
        sides, _ = network(pixels)
        torch.testing.assert_close(network.matte(pixels), sides[0])
    assert sides[0].shape == (1, 1, 96, 160)


def test_the_transformers_class_is_the_same_network_and_loads_the_published_directory(
    checkpoints: dict[str, Path], parity: dict[str, np.ndarray]
) -> None:
    """BriaRMBG (transformers' from_pretrained, the Hub class's drop-in) and the engine's RMBGNetwork (loaded
    without transformers) hold the same tensors and give the same outputs."""
    from transformers import PreTrainedModel

    hub = BriaRMBG.from_pretrained(checkpoints["published"]).eval()
    assert isinstance(hub, PreTrainedModel)
    ours = load_network(checkpoints["published"])
    assert type(ours).__name__ == "RMBGNetwork"
    expected = ours.state_dict()
    assert list(hub.state_dict()) == list(expected)
    for name, tensor in hub.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    pixels = torch.from_numpy(parity["input_256"])
    with torch.inference_mode():
        torch.testing.assert_close(hub(pixels)[0][0], ours(pixels)[0][0], rtol=0, atol=0)
