"""The network through ``torch.compile``: opt-in, for long runs that repay the compile.

Shapes stay static (the batch is padded to ``batch_size``), so one compile
serves the whole stream, last short batch included. On the CPU inductor
freezes the weights into the graph (constant folding, fused conv/bn/relu);
on CUDA the compiled graph is captured as a CUDA graph ("reduce-overhead"),
which removes the per-kernel launch cost. Inductor's on-disk caches
(``TORCHINDUCTOR_CACHE_DIR``, default under /tmp) let a later process with the
same shapes skip most of the compile.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .network import RMBGNetwork

__all__ = ["compiled_matte"]


def compiled_matte(network: RMBGNetwork, batch_size: int,
                   device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network.matte`` compiled for (batch_size,3,h,w) inputs.

    The returned function takes (N,3,h,w) with N <= batch_size in the network's
    dtype and returns side 1, (N,1,h,w) in [0, 1]; the first call compiles.
    """
    cuda = device.type == "cuda"
    compiled = torch.compile(network.matte, dynamic=False, mode="reduce-overhead" if cuda else None,
                             options=None if cuda else {"freezing": True})

    def matte(pixel_values: torch.Tensor) -> torch.Tensor:
        count = pixel_values.shape[0]
        if count < batch_size:
            padding = pixel_values.new_zeros((batch_size - count, *pixel_values.shape[1:]))
            pixel_values = torch.cat([pixel_values, padding])
        if cuda:
            torch.compiler.cudagraph_mark_step_begin()  # the previous replay's output is no longer read
        return compiled(pixel_values)[:count]

    return matte
