"""Colour decontamination: the subject's own colours where the alpha is soft, in torch on any device.

Blur-Fusion (Germer, Uelwer, Conrad and Harmeling, "Fast Multi-Level Foreground
Estimation", ICPR 2020): foreground and background colours are estimated as
alpha-weighted box means, and the foreground is corrected so that
alpha*F + (1-alpha)*B reproduces the frame; a coarse pass (radius 90) then a
fine one (radius 6), as published. Composited over a new background, the cut-out
then carries no rim of the old background's colour.
"""

from __future__ import annotations

import numpy as np
import torch

from .filters import box_mean
from .transforms import as_frame_batch

__all__ = ["decontaminated", "foreground"]

#: the published pass radii, coarse then fine (pixels of the full-resolution frame)
RADII = (90, 6)
_EPS = 1e-5


def foreground(image: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The foreground colours (N,3,H,W) float in [0,1] of ``image`` (N,3,H,W) float in [0,1] under
    ``alpha`` (N,1,H,W) float in [0,1]."""
    estimate, behind = image, image
    for radius in RADII:
        estimate, behind = _blur_fusion(image, estimate, behind, alpha, radius)
    return estimate


def _blur_fusion(image: torch.Tensor, estimate: torch.Tensor, behind: torch.Tensor, alpha: torch.Tensor,
                 radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One Blur-Fusion pass: the corrected foreground and the blurred background, both (N,3,H,W)."""
    mean_alpha = box_mean(alpha, radius)
    blurred_front = box_mean(estimate * alpha, radius) / (mean_alpha + _EPS)
    blurred_back = box_mean(behind * (1.0 - alpha), radius) / ((1.0 - mean_alpha) + _EPS)
    corrected = blurred_front + alpha * (image - alpha * blurred_front - (1.0 - alpha) * blurred_back)
    return corrected.clamp_(0.0, 1.0), blurred_back


def decontaminated(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``frame`` (H,W,3) uint8 RGB with its colours decontaminated under ``alpha`` (H,W) uint8: (H,W,3) uint8."""
    pixels, _ = as_frame_batch(frame, name="frame")  # (1,H,W,3); copies a read-only array only
    weights, _ = as_frame_batch(alpha, name="alpha")  # (1,H,W,1)
    image = pixels.permute(0, 3, 1, 2).float() / 255.0
    weight = weights.permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        colours = foreground(image, weight)
    return (colours[0].permute(1, 2, 0) * 255.0).round_().to(torch.uint8).numpy()
