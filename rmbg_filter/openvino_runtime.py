"""The network run by OpenVINO on the CPU: bfloat16 where the CPU computes it, float32, and the int8 graph.

OpenVINO reads the same ONNX export as ONNX Runtime (``onnx_export``), and for int8 the same QDQ
graph (``int8_graph``), which it runs with integer kernels. One 1024x1024 frame of IS-Net on this
project's 2-core Xeon with AMX: bfloat16 0.21 s (torch's bfloat16 0.53 s), int8 0.14 s (ONNX
Runtime's 0.43 s), float32 1.06 s (ONNX Runtime's 1.04 s); ``make bench`` measures it per CPU.
Where the CPU has no native bfloat16, OpenVINO runs a bfloat16 request in float32 (not emulated).

OpenVINO picks its kernels by the CPU's flags. ``ONEDNN_MAX_CPU_ISA`` together with
``OV_CPU_MAX_ISA`` (both, before the process starts) caps them, as ``ONEDNN_MAX_CPU_ISA`` does
torch's (openvinotoolkit/openvino pull request 36980).
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import Mention, OptionError, first_line
from .network import RMBGNetwork
from .onnx_export import graph_to_run, padded

__all__ = ["OpenVinoMatte", "available"]

#: ModelOptions' dtype words -> OpenVINO's INFERENCE_PRECISION_HINT (int8: what stays float runs in float32)
_HINTS = {"float32": "f32", "bfloat16": "bf16", "int8": "f32"}


def available() -> bool:
    """Whether OpenVINO and the exporter's dependency are installed."""
    try:
        import onnx  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoMatte:
    """``matte()`` of a RMBGNetwork, exported to ONNX and compiled by OpenVINO for the CPU in ``precision``
    (``float32``, ``bfloat16`` or ``int8``: the export quantized by ``int8_graph``)."""

    def __init__(self, network: RMBGNetwork, model_size: tuple[int, int], batch_size: int = 1, *,
                 precision: str = "float32") -> None:
        import openvino

        self.batch_size = batch_size
        path = graph_to_run(network, model_size, batch_size, int8=precision == "int8")
        core = openvino.Core()
        # the process's CPU share, as torch sees it (as ONNX Runtime's: see onnx_runtime)
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": _HINTS[precision]}
        try:
            self._request = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
        except RuntimeError as error:  # e.g. at model size 32 its MaxPool finds a 1-pixel map smaller than its window
            reason = next((line.strip() for line in str(error).splitlines() if "wasn't" in line), first_line(error))
            raise OptionError("runtime", Mention("runtime", "openvino"), f" cannot run the network at "
                              f"{model_size[0]}x{model_size[1]} (OpenVINO: {reason}); use a larger ",
                              Mention("model_size"), " or ", Mention("runtime", "onnxruntime")) from None

    def matte(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) float32 on the CPU, N <= batch_size -> (N,1,H,W) float32 in [0, 1] (a short batch is padded)."""
        result = self._request.infer({"pixel_values": padded(pixel_values, self.batch_size)})
        return torch.from_numpy(np.array(result[0][:pixel_values.shape[0]]))  # a copy: the request reuses its output
