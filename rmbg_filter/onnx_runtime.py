"""The network run by ONNX Runtime on the CPU: measured faster than any torch float32 path here.

On this project's 2-core AVX-512 machine, one 1024x1024 frame in float32:
torch eager (channels_last) 2.1 s, torch.compile with freezing 1.85 s,
ONNX Runtime 1.6 s, with the same output to 3e-7. The export is made once
per weights and model size and cached (``onnx_export``).
"""

from __future__ import annotations

import torch

from .network import RMBGNetwork
from .onnx_export import graph_to_run, padded

__all__ = ["OnnxMatte", "available"]


def available() -> bool:
    """Whether ONNX Runtime and the exporter's dependencies are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxMatte:
    """``matte()`` of a RMBGNetwork, exported to ONNX and run by ONNX Runtime's CPU provider; with ``int8``,
    the export quantized to int8 (``int8_graph``)."""

    def __init__(self, network: RMBGNetwork, model_size: tuple[int, int], batch_size: int = 1, *,
                 int8: bool = False) -> None:
        import onnxruntime

        self.batch_size = batch_size
        path = graph_to_run(network, model_size, batch_size, int8=int8)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # the process's CPU share, as torch sees it (OMP_NUM_THREADS, torch.set_num_threads): ONNX Runtime
        # would take every core, and two Ray workers of one CPU each on 2 cores ran 1.5x slower than one
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def matte(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) float32 on the CPU, N <= batch_size -> (N,1,H,W) float32 in [0, 1] (a short batch is padded)."""
        (side,) = self.session.run(None, {"pixel_values": padded(pixel_values, self.batch_size)})
        return torch.from_numpy(side[:pixel_values.shape[0]])
