"""Loading: every way to name a model, and one clear ModelLoadError for every way it can fail."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recipe import PUBLISHED_CONFIG
from safetensors.torch import save_file

from rmbg_filter import ModelLoadError
from rmbg_filter.loading import DEFAULT_MODEL, load_network, resolve_model


def test_default_model_is_the_hub_id_unless_the_environment_names_one(
    monkeypatch: pytest.MonkeyPatch, checkpoints: dict[str, Path]
) -> None:
    monkeypatch.delenv("RMBG_MODEL", raising=False)
    assert resolve_model(None) == DEFAULT_MODEL
    monkeypatch.setenv("RMBG_MODEL", str(checkpoints["safetensors"]))
    assert resolve_model(None) == checkpoints["safetensors"]
    assert load_network(None).conv_in.weight.dtype == torch.float32


def test_missing_path_says_how_to_pass_one(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model not found: .*nothing\.safetensors.*with model=PATH") as caught:
        load_network(tmp_path / "nothing.safetensors")
    assert caught.value.option == "model"
    with pytest.raises(ModelLoadError, match=r"model not found: ./weights.*RMBG_MODEL=PATH"):
        load_network("./weights")


def _load_in_subprocess(model: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Load ``model`` in a fresh Python whose environment the Hub client reads at import."""
    script = ("import sys, torch; from rmbg_filter.loading import load_network\n"
              "from rmbg_filter import ModelLoadError\n"
              "try:\n    net = load_network(sys.argv[1])\n"
              "except ModelLoadError as e:\n    print(e, file=sys.stderr); sys.exit(2)\n"
              "print(sum(float(t.double().sum()) for t in net.state_dict().values()))\n")
    return subprocess.run([sys.executable, "-c", script, model], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_hub_id_without_network_or_cache_says_how_to_pass_a_local_path(tmp_path: Path) -> None:
    done = _load_in_subprocess("briaai/RMBG-1.4", {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "briaai/RMBG-1.4" in lines[0] and "with model=PATH or RMBG_MODEL=PATH" in lines[0]


def test_hub_id_is_served_from_the_cache_when_offline(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    """A repo id resolves through huggingface_hub's cache layout, with no network."""
    snapshot = tmp_path / "hub" / "models--briaai--RMBG-1.4" / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoints["published"], snapshot)
    refs = snapshot.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("0" * 40)
    done = _load_in_subprocess("briaai/RMBG-1.4", {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert done.returncode == 0, done.stderr
    expected = sum(float(t.double().sum()) for t in load_network(checkpoints["safetensors"]).state_dict().values())
    assert float(done.stdout) == pytest.approx(expected, rel=1e-12)


def test_corrupt_files_are_refused_in_one_line(tmp_path: Path) -> None:
    for name in ("model.safetensors", "model.pth", "pytorch_model.bin"):
        broken = tmp_path / name
        broken.write_bytes(b"\x00not weights at all" * 100)
        with pytest.raises(ModelLoadError, match=r"not a readable weights file") as caught:
            load_network(broken)
        assert "\n" not in str(caught.value)


def test_foreign_checkpoint_names_first_missing_and_unexpected_tensor(tmp_path: Path) -> None:
    foreign = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2), "head.bias": torch.zeros(2)}, foreign)
    expected = r"missing conv_in\.bias and 685 more; unexpected encoder\.weight and 1 more"
    with pytest.raises(ModelLoadError, match=expected):
        load_network(foreign)


def test_wrong_shapes_are_refused(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    state = torch.load(checkpoints["pth"], weights_only=True)
    state["side1.weight"] = torch.zeros(1, 32, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ModelLoadError, match=r"side1\.weight has shape \[1, 32, 3, 3\], RMBG-1.4 has \[1, 64, 3, 3\]"):
        load_network(bad)


def test_missing_tensor_in_a_hub_directory_is_named(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    state = torch.load(checkpoints["pth"], weights_only=True)
    del state["stage3.rebnconv2.bn_s1.running_var"]
    directory = tmp_path / "partial"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(PUBLISHED_CONFIG))
    save_file(state, directory / "model.safetensors")
    with pytest.raises(ModelLoadError, match=r"missing stage3\.rebnconv2\.bn_s1\.running_var"):
        load_network(directory)


class _WritesMarker:
    """A pickle payload that would create a file if unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pth"
    with evil.open("wb") as handle:
        pickle.dump({"conv_in.weight": _WritesMarker(marker)}, handle)
    with pytest.raises(ModelLoadError, match="not a readable weights file"):
        load_network(evil)
    assert not marker.exists()


def test_remote_code_named_by_auto_map_is_never_imported(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    directory = tmp_path / "repo"
    shutil.copytree(checkpoints["published"], directory)
    marker = tmp_path / "remote-code-ran"
    code = f"open({str(marker)!r}, 'w').close()\n"
    for module in ("briarmbg.py", "MyConfig.py", "MyPipe.py"):
        (directory / module).write_text(code)
    network = load_network(directory)
    assert type(network).__module__ == "rmbg_filter.network"
    assert not marker.exists()


def test_directory_without_weights_and_odd_suffix_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError,
                       match=r"holds none of model\.safetensors, pytorch_model\.bin, model\.pth; point model= at"):
        load_network(tmp_path / "empty")
    odd = tmp_path / "weights.txt"
    odd.write_text("hello")
    with pytest.raises(ModelLoadError, match=r"unsupported weights file type \.txt"):
        load_network(odd)


@pytest.mark.parametrize("with_config", [False, True])
def test_directory_of_model_pth_loads_with_or_without_config(with_config: bool, tmp_path: Path,
                                                             checkpoints: dict[str, Path]) -> None:
    """model.pth is not a transformers name: a config.json beside it must not make the directory refused."""
    directory = tmp_path / "bare"
    directory.mkdir()
    shutil.copy(checkpoints["pth"], directory / "model.pth")
    if with_config:
        (directory / "config.json").write_text(json.dumps(PUBLISHED_CONFIG))
    expected = load_network(checkpoints["pth"]).state_dict()
    for name, tensor in load_network(directory).state_dict().items():
        assert torch.equal(tensor, expected[name]), name


@pytest.mark.parametrize(("config", "message"), [
    ("{not json", r"not a usable RMBG-1.4 checkpoint \(config\.json: Expecting property name"),
    (json.dumps({**PUBLISHED_CONFIG, "in_ch": 4}),
     r"not an RMBG-1.4 checkpoint: its config\.json is not RMBG-1\.4's \(it has \{'in_ch': 4, 'out_ch': 1\}"),
    ("[3, 1]", r"its config\.json is not RMBG-1\.4's \(it has list, RMBG-1\.4 has \{'in_ch': 3, 'out_ch': 1\}\)"),
])
def test_a_hub_directory_whose_config_is_not_rmbg14_is_refused_in_one_line(
        config: str, message: str, tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    directory = tmp_path / "repo"
    shutil.copytree(checkpoints["published"], directory)
    (directory / "config.json").write_text(config)
    with pytest.raises(ModelLoadError, match=message) as caught:
        load_network(directory)
    assert "\n" not in str(caught.value)
