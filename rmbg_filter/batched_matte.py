"""The network run by the backend's runtime in batches, halved when memory runs out.

``BatchedMatte`` runs views through torch (eager or ``torch.compile``d), ONNX
Runtime or OpenVINO in parts of at most ``batch_size`` frames. On running out of memory
(the torch runtime's: CUDA's, MPS's or the CPU allocator's), ``batch_size`` is
halved and the batch run again in parts, down to single frames. ONNX Runtime's
and OpenVINO's own allocation failures are raised as they are.
"""

from __future__ import annotations

import torch

from . import onnx_runtime, openvino_runtime
from .backend import Backend
from .compiled import compiled_matte
from .network import RMBGNetwork
from .transforms import network_input

__all__ = ["BatchedMatte"]


class BatchedMatte:
    """Called with views (N,3,h,w) float32 in [0,1], returns the network's outputs (N,1,h,w) float32 in [0,1]
    (side 1) of ``network`` (on ``backend``'s device, in its dtype, its input made in ``input_dtype``).

    One caller at a time (the engine calls it under its lock): running out of memory changes
    ``batch_size`` and, for a compiled graph, the graph.
    """

    def __init__(self, network: RMBGNetwork, backend: Backend, *, input_dtype: torch.dtype, model_size: tuple[int, int],
                 batch_size: int, compile: bool) -> None:
        self.network = network
        self.device = backend.device
        self.input_dtype = input_dtype
        self.compile = compile
        #: the most frames the network runs at a time: the batch size asked for, until memory runs out
        self.batch_size = batch_size
        #: the batch size asked for, when running out of memory has lowered ``batch_size``
        self.asked_batch_size: int | None = None
        if backend.runtime == "onnxruntime":
            self._matte = onnx_runtime.OnnxMatte(network, model_size, batch_size, int8=backend.int8).matte
        elif backend.runtime == "openvino":
            self._matte = openvino_runtime.OpenVinoMatte(network, model_size, batch_size,
                                                         precision=backend.precision).matte
        elif compile:
            self._matte = compiled_matte(network, batch_size, backend.device)
        else:
            self._matte = network.matte

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        while True:
            try:
                if views.shape[0] <= self.batch_size:
                    return self._matte(network_input(views, self.input_dtype)).float()
                return torch.cat([self._matte(network_input(part, self.input_dtype)).float()
                                  for part in views.split(self.batch_size)])
            except RuntimeError as error:
                ran = min(views.shape[0], self.batch_size)  # a compiled graph runs batch_size, padded
                if not _out_of_memory(error) or (self.batch_size if self.compile else ran) == 1:
                    raise
                if self.asked_batch_size is None:
                    self.asked_batch_size = self.batch_size
                if not self.compile:
                    self.batch_size = ran  # halved below, once the failed try's tensors are freed
            self._halve_batch()

    def _halve_batch(self) -> None:
        """Run the network on half as many frames at a time from now on (after running out of memory).

        A compiled graph is compiled again for the new size; the old one's memory stays with
        torch.compile's caches (resetting them would drop other engines' graphs too).
        """
        self.batch_size //= 2
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # the failed try's blocks, so the smaller batch finds them
        if self.compile:  # its graph was made for the old batch size
            self._matte = compiled_matte(self.network, self.batch_size, self.device)


def _out_of_memory(error: RuntimeError) -> bool:
    """Whether ``error`` is an allocation that failed: torch's OutOfMemoryError (CUDA), or a RuntimeError
    that says so (MPS: "MPS backend out of memory"; the CPU allocator: "can't allocate memory")."""
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text
