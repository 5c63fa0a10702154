"""The network run by ONNX Runtime on the CPU: measured faster than any torch float32 path here.

On this project's 2-core AVX-512 machine, one 1024x1024 frame in float32:
torch eager (channels_last) 2.1 s, torch.compile with freezing 1.85 s,
ONNX Runtime 1.6 s, with the same output to 3e-7. The export is made once
per weights and model size and cached.
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
from .network import BriaRMBG

__all__ = ["OnnxMatte", "available", "cache_folder"]


def available() -> bool:
    """Whether ONNX Runtime and the exporter's dependencies are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_folder() -> Path:
    """Where exports are kept: ``$RMBG_CACHE``, else ``$XDG_CACHE_HOME/rmbg-filter``, else ``~/.cache/rmbg-filter``."""
    if os.environ.get("RMBG_CACHE"):
        return Path(os.environ["RMBG_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rmbg-filter"


class _Matte(torch.nn.Module):
    """Side 1 alone, for export: (N,3,H,W) float32 -> (N,1,H,W) float32 in [0, 1]."""

    def __init__(self, network: BriaRMBG) -> None:
        super().__init__()
        self.network = network

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.network.matte(pixel_values)


class OnnxMatte:
    """``matte()`` of a BriaRMBG, exported to ONNX and run by ONNX Runtime's CPU provider."""

    def __init__(self, network: BriaRMBG, model_size: tuple[int, int], batch_size: int = 1) -> None:
        import onnxruntime

        self.batch_size = batch_size
        path = self._export(network.float().eval(), (batch_size, 3, *model_size))
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # the process's CPU share, as torch sees it (OMP_NUM_THREADS, torch.set_num_threads): ONNX Runtime
        # would take every core, and two Ray workers of one CPU each on 2 cores ran 1.5x slower than one
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def matte(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) float32 on the CPU, N <= batch_size -> (N,1,H,W) float32 in [0, 1].

        The graph has a fixed batch (static shapes let ONNX Runtime plan its
        memory: 4% faster here than a dynamic batch); a short batch is padded.
        """
        count = pixel_values.shape[0]
        pixels = np.zeros((self.batch_size, *pixel_values.shape[1:]), np.float32)
        pixels[:count] = pixel_values.float().numpy()
        (side,) = self.session.run(None, {"pixel_values": pixels})
        return torch.from_numpy(side[:count])

    @staticmethod
    def _export(network: BriaRMBG, shape: tuple[int, int, int, int]) -> Path:
        """Export once per (weights, input shape (N,3,H,W), torch version); later loads reuse the file."""
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
                OnnxMatte._write(network, shape, Path(partial) / path.name)
                for written in sorted(Path(partial).iterdir(), key=lambda p: p.name == path.name):  # graph last
                    os.replace(written, folder / written.name)
        except OSError as error:
            raise OptionError("runtime", f"cannot write the ONNX export cache {folder} ({system_reason(error)}); "
                              "set RMBG_CACHE to a writable folder, or use ", Mention("runtime", "torch")) from error
        return path

    @staticmethod
    def _write(network: BriaRMBG, shape: tuple[int, int, int, int], destination: Path) -> None:
        """Export ``matte`` for inputs of ``shape`` to ``destination`` (plus any data files beside it)."""
        example = torch.zeros(shape)
        # it may talk on stdout, which can be a pipe of frames
        with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # a copy: this exporter folds batch norms into the convolutions' weights in place
            torch.onnx.export(_Matte(copy.deepcopy(network)), (example,), str(destination), dynamo=False,
                              opset_version=18, input_names=["pixel_values"], output_names=["matte"])
