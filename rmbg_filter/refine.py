"""Edge refinement: the fast guided filter (He and Sun, 2015) upsamples a model-size alpha with the
full-resolution frame as its guide, on the frame's device.

On a grid of GUIDE_STEP model-size pixels a cell, the filter fits in each
(2r+1)^2 window of cells a linear model alpha = a . rgb + b (the colour guided
filter of He, Sun and Tang, 2010, regularised by eps); the box means of a and b
are upsampled bilinearly and applied to the full-resolution colours, so the
alpha's edges follow the frame's edges, in colour as well as in brightness,
instead of the model grid's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .filters import box_mean

__all__ = ["GUIDE_STEP", "guided_upsample"]

#: model-size pixels a side of a cell of the grid the linear models are fitted on
GUIDE_STEP = 4


def guided_upsample(alpha: torch.Tensor, views: torch.Tensor, frames: torch.Tensor, radius: int,
                    eps: float) -> torch.Tensor:
    """Upsample ``alpha`` (N,1,h,w) float in [0,1] to the size of ``frames``.

    ``views`` (N,3,h,w) float in [0,1]: the frames at the model size; ``frames`` (N,H,W,C) uint8 (C in
    1, 3, 4). ``radius`` in cells of GUIDE_STEP model-size pixels; ``eps`` the regularisation (larger is
    smoother). Returns (N,1,H,W) float32 in levels, [0,255].
    """
    # the statistics in float64: in float32 the running sums' rounding (about 1e-5 on variances of
    # values in [0,1]) rivals eps, and showed as noise off the edges (0.17 -> 0.07 levels measured)
    guide, target = _cells(views).double(), _cells(alpha).double()
    red, green, blue = guide[:, 0:1], guide[:, 1:2], guide[:, 2:3]
    products = [red * red, red * green, red * blue, green * green, green * blue, blue * blue]
    means = box_mean(torch.cat([guide, target, guide * target, *products], dim=1), radius)
    mean_guide, mean_target = means[:, 0:3], means[:, 3:4]
    covariance = means[:, 4:7] - mean_guide * mean_target
    second = means[:, 7:13]
    rr, rg, rb, gg, gb, bb = (second[:, i:i + 1] for i in range(6))
    mr, mg, mb = mean_guide[:, 0:1], mean_guide[:, 1:2], mean_guide[:, 2:3]
    slope = _solve_symmetric((rr - mr * mr + eps, rg - mr * mg, rb - mr * mb, gg - mg * mg + eps, gb - mg * mb,
                              bb - mb * mb + eps), covariance)
    offset = mean_target - (slope * mean_guide).sum(dim=1, keepdim=True)
    # in levels: alpha*255 = slope . rgb_levels + offset*255, so the full-size colours need no scaling
    coefficients = box_mean(torch.cat([slope, offset * 255.0], dim=1), radius).float()
    upsampled = F.interpolate(coefficients, size=frames.shape[1:3], mode="bilinear", align_corners=False)
    colours = frames[..., :3] if frames.shape[-1] >= 3 else frames.expand(-1, -1, -1, 3)
    rgb = colours.permute(0, 3, 1, 2).float()
    refined = upsampled[:, 3:].addcmul(upsampled[:, 0:1], rgb[:, 0:1])
    return refined.addcmul_(upsampled[:, 1:2], rgb[:, 1:2]).addcmul_(upsampled[:, 2:3], rgb[:, 2:3]).clamp_(0.0, 255.0)


def _cells(maps: torch.Tensor) -> torch.Tensor:
    """Maps (N,C,h,w) averaged over cells of GUIDE_STEP^2 pixels (fewer, larger cells if h or w is not a multiple)."""
    height, width = maps.shape[-2:]
    if height % GUIDE_STEP == 0 and width % GUIDE_STEP == 0:
        return F.avg_pool2d(maps, GUIDE_STEP)
    return F.adaptive_avg_pool2d(maps, (max(1, height // GUIDE_STEP), max(1, width // GUIDE_STEP)))


def _solve_symmetric(matrix: tuple[torch.Tensor, ...], vector: torch.Tensor) -> torch.Tensor:
    """Solve S x = v per pixel for symmetric S given as (s00, s01, s02, s11, s12, s22), each (N,1,h,w),
    and v (N,3,h,w), by the adjugate (S is positive definite: eps > 0 is on its diagonal)."""
    a, b, c, d, e, f = matrix
    inverse = (d * f - e * e, c * e - b * f, b * e - c * d, a * f - c * c, b * c - a * e, a * d - b * b)
    determinant = a * inverse[0] + b * inverse[1] + c * inverse[2]
    i00, i01, i02, i11, i12, i22 = inverse
    v0, v1, v2 = vector[:, 0:1], vector[:, 1:2], vector[:, 2:3]
    return torch.cat([i00 * v0 + i01 * v1 + i02 * v2, i01 * v0 + i11 * v1 + i12 * v2,
                      i02 * v0 + i12 * v1 + i22 * v2], dim=1) / determinant
