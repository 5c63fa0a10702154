"""From the network's output to the alpha: normalisation, then bilinear or guided upsampling.

The one place every adapter turns network outputs into alphas, so the same
frames give the same alphas whether they come from ``video``, ``pipe``,
VapourSynth or GStreamer. With QualityOptions' defaults this is the seed's
postprocess exactly. The temporal step (``temporal.stabilise``) comes before it.
"""

from __future__ import annotations

import torch

from .options import QualityOptions
from .refine import guided_upsample
from .transforms import normalise, postprocess

__all__ = ["finish", "upsampled"]


def finish(frames: torch.Tensor, views: torch.Tensor, mattes: torch.Tensor, quality: QualityOptions) -> torch.Tensor:
    """Alphas (N,H,W) uint8 of frames (N,H,W,C) uint8 from their views (N,3,h,w) float32 in [0,1] and their
    (stabilised) network outputs (N,1,h,w) float in [0,1], on the frames' device.

    ``refine`` "none": the seed's postprocess (bilinear resize, then ``normalize``). "guided":
    ``normalize`` at the model size, then the guided filter up to the frame's size, for frames of
    more pixels than the model's input (``upsampled``); smaller ones are resized as with "none".
    The guided filter follows the frame's own edges, and so its noise too: measured on a noisy
    still shot, it trades the edges' sharpness for flicker (README, Video quality).
    """
    size = (frames.shape[1], frames.shape[2])
    if quality.refine == "none" or not upsampled(size, (mattes.shape[-2], mattes.shape[-1])):
        return postprocess(mattes, size, quality.normalize)
    alphas = normalise(mattes.float(), quality.normalize)
    levels = guided_upsample(alphas, views, frames, quality.refine_radius, quality.refine_eps)
    return levels[:, 0].to(torch.uint8)  # truncation, as to_uint8


def upsampled(size: tuple[int, int], model_size: tuple[int, int]) -> bool:
    """Whether frames of ``size`` (H,W) have more pixels than the model's input of ``model_size`` (h,w):
    only then has the guided filter detail to add."""
    return size[0] * size[1] > model_size[0] * model_size[1]
