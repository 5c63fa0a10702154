"""The network's ``matte`` exported to ONNX once per weights and input shape, and cached: what ONNX Runtime
and OpenVINO run (``onnx_runtime``, ``openvino_runtime``), and what ``int8_graph`` quantizes.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import Mention, OptionError, system_reason
from .int8_graph import int8_graph
from .network import RMBGNetwork

__all__ = ["cache_folder", "export_matte", "graph_to_run", "padded"]


def cache_folder() -> Path:
    """Where exports are kept: ``$RMBG_CACHE``, else ``$XDG_CACHE_HOME/rmbg-filter``, else ``~/.cache/rmbg-filter``."""
    if os.environ.get("RMBG_CACHE"):
        return Path(os.environ["RMBG_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rmbg-filter"


class _Matte(torch.nn.Module):
    """Side 1 alone, for export: (N,3,H,W) float32 -> (N,1,H,W) float32 in [0, 1]."""

    def __init__(self, network: RMBGNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.network.matte(pixel_values)


def export_matte(network: RMBGNetwork, shape: tuple[int, int, int, int]) -> Path:
    """``network.matte`` exported to ONNX for inputs of ``shape`` (N,3,H,W) float32 (input ``pixel_values``,
    output ``matte`` (N,1,H,W) in [0, 1]); once per (weights, shape, torch version), later loads reuse the file.
    An OptionError naming ``runtime`` when the cache cannot be written."""
    digest = hashlib.sha256(f"{shape}{torch.__version__}".encode())
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    folder = cache_folder() / digest.hexdigest()[:24]
    path = folder / "matte.onnx"
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="partial-", dir=folder) as partial:
            _write(network, shape, Path(partial) / path.name)
            for written in sorted(Path(partial).iterdir(), key=lambda p: p.name == path.name):  # graph last
                os.replace(written, folder / written.name)
    except OSError as error:
        raise OptionError("runtime", f"cannot write the ONNX export cache {folder} ({system_reason(error)}); "
                          "set RMBG_CACHE to a writable folder, or use ", Mention("runtime", "torch")) from error
    return path

def _write(network: RMBGNetwork, shape: tuple[int, int, int, int], destination: Path) -> None:
    """Export ``matte`` for inputs of ``shape`` to ``destination`` (plus any data files beside it)."""
    example = torch.zeros(shape)
    # it may talk on stdout, which can be a pipe of frames
    with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a copy: this exporter folds batch norms into the convolutions' weights in place
        torch.onnx.export(_Matte(copy.deepcopy(network)), (example,), str(destination), dynamo=False,
                          opset_version=18, input_names=["pixel_values"], output_names=["matte"])


def padded(pixel_values: torch.Tensor, batch_size: int) -> np.ndarray:
    """Inputs (N,3,H,W), N <= batch_size, as the exported graph's fixed batch: (batch_size,3,H,W) float32,
    zeros after the N frames (static shapes let the runtimes plan their memory: 4% faster here than a
    dynamic batch with ONNX Runtime)."""
    pixels = np.zeros((batch_size, *pixel_values.shape[1:]), np.float32)
    pixels[:pixel_values.shape[0]] = pixel_values.float().numpy()
    return pixels


def graph_to_run(network: RMBGNetwork, model_size: tuple[int, int], batch_size: int, *, int8: bool = False) -> Path:
    """The graph ONNX Runtime or OpenVINO runs for ``network`` (taken as float32) on batches of ``batch_size`` at
    ``model_size``: its export, or with ``int8`` that export quantized (``int8_graph``); both cached."""
    shape = (batch_size, 3, *model_size)
    path = export_matte(network.float().eval(), shape)
    return int8_graph(path, shape) if int8 else path
