"""The seed's pre- and postprocess, as batched tensor operations on any device.

preprocess:  uint8 frames (N,H,W,C) -> float (N,3,h,w): bilinear resize to the
             model size (align_corners=False), /255, minus 0.5 (std 1.0), in two
             steps: ``view`` (resize, /255: the frame as the network sees it, which the
             temporal and refinement steps also read) and ``network_input`` (-0.5).
postprocess: side 1 (N,1,h,w) in [0,1] -> uint8 alpha (N,H,W): bilinear resize
             back, per-frame min-max stretch (``normalise``; or none), *255, truncation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["as_frame_batch", "network_input", "normalise", "postprocess", "to_uint8", "view"]

#: Below this spread (max - min) a side map counts as constant: it is not
#: stretched (that would divide by zero) but used as it is.
FLAT_SPREAD = 1e-6


def as_frame_batch(frames: Any, name: str = "frames") -> tuple[torch.Tensor, bool]:
    """Check one frame or a batch of frames and view it as (N,H,W,C) uint8.

    Accepts numpy arrays or torch tensors of dtype uint8, shaped as one frame
    (H,W), (H,W,3), (H,W,4), or a batch (N,H,W,C) with C in 1, 3, 4. Returns
    the tensor (sharing memory when it can) and whether the input was a
    batch. Raises TypeError/ValueError naming ``name`` for anything else.
    """
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8:
            raise TypeError(f"{name} must be uint8, got {frames.dtype}")
        # torch cannot wrap a read-only array (e.g. one from a decoder): copy it
        tensor = torch.from_numpy(np.ascontiguousarray(frames) if frames.flags.writeable else frames.copy())
    elif isinstance(frames, torch.Tensor):
        if frames.dtype != torch.uint8:
            raise TypeError(f"{name} must be uint8, got {frames.dtype}")
        tensor = frames
    else:
        raise TypeError(
            f"{name} must be a numpy array or torch tensor of uint8, got {type(frames).__name__}"
        )
    if tensor.ndim == 2:
        tensor, batched = tensor[None, :, :, None], False
    elif tensor.ndim == 3 and tensor.shape[-1] in (3, 4):
        tensor, batched = tensor[None], False
    elif tensor.ndim == 4 and tensor.shape[-1] in (1, 3, 4):
        batched = True
    else:
        raise ValueError(
            f"{name} must be shaped (H,W), (H,W,3), (H,W,4) or a batch (N,H,W,C) "
            f"with C in 1, 3, 4; got {tuple(tensor.shape)}"
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0 or tensor.shape[2] == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(tensor.shape)}")
    return tensor, batched


def view(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Frames (N,H,W,C) uint8, C in 1/3/4, as the network sees them: (N,3,size[0],size[1]) float32 in [0,1].

    Gray is replicated to three channels; a fourth (alpha) channel is dropped. Bilinear
    resize (align_corners=False) of the float pixels, then /255, in the seed's order.
    """
    rgb = frames[..., :3] if frames.shape[-1] >= 3 else frames.expand(-1, -1, -1, 3)
    pixels = rgb.permute(0, 3, 1, 2).float()
    resized = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
    return resized / 255.0


def network_input(views: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Views (N,3,h,w) float32 in [0,1] -> the network input: minus 0.5, ``dtype``, channels_last."""
    return (views - 0.5).to(dtype=dtype, memory_format=torch.channels_last)


def postprocess(side: torch.Tensor, size: tuple[int, int], normalize: str = "minmax") -> torch.Tensor:
    """Turn the network's side 1 (N,1,h,w), values in [0,1], into uint8 alpha (N,H,W).

    Bilinear resize to ``size`` (H,W) in float32, then (``normalize`` "minmax", the
    seed's rule) per frame ``(x - min) / (max - min)``, *255, truncated to uint8;
    "none" skips the stretch.
    """
    resized = F.interpolate(side.float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    return to_uint8(normalise(resized, normalize))


def normalise(maps: torch.Tensor, how: str) -> torch.Tensor:
    """Maps (N,...) float in [0,1], stretched per map to [0,1] ("minmax") or as they are ("none").

    A map whose spread (max - min) is below FLAT_SPREAD (a blank frame) is not stretched.
    """
    if how == "none":
        return maps
    low, high = torch.aminmax(maps.flatten(1), dim=1)
    shape = (-1,) + (1,) * (maps.ndim - 1)
    low = low.view(shape)
    spread = high.view(shape) - low
    flat_map = spread < FLAT_SPREAD
    return (maps - torch.where(flat_map, 0.0, low)) / torch.where(flat_map, 1.0, spread)


def to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Float values in [0,1] (any shape) -> uint8 levels: *255, clamped, truncated (the seed's astype)."""
    return (values * 255).clamp_(0, 255).to(torch.uint8)
