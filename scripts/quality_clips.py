"""Clips with a known alpha, made from scikit-image's real photos and textures, for ``make quality`` and tests.

A subject's silhouette is the network's own alpha of the photo, thresholded at half (a sharp edge),
or feathered where a soft edge is wanted; the subject is laid by it over a texture, so the truth of
every frame is known exactly. Every clip is deterministic (seeded noise).

Clips: ``still`` (a still, noisy shot), ``moving`` (the subject crossing a textured background),
``cut`` (a hard cut between two shots), ``empty`` (frames with nobody in them), ``sharp`` (a
sharp-edged subject at a given resolution), ``green`` (a soft-edged subject on chroma-key green).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from real_network import photo
from scipy import ndimage

#: what finds a photo's alpha: (H,W,3) uint8 -> (H,W) uint8 (the network under test)
Matter = Callable[[np.ndarray], np.ndarray]
GREEN = np.array([0, 177, 64], np.uint8)


@dataclass
class Clip:
    """Frames (H,W,3) uint8 and their true alphas (H,W) uint8; ``backgrounds`` what lies behind each."""

    name: str
    frames: list[np.ndarray]
    truths: list[np.ndarray]
    backgrounds: list[np.ndarray] = field(default_factory=list)
    subjects: list[np.ndarray] = field(default_factory=list)


def resized(picture: np.ndarray, size: tuple[int, int], resample: Image.Resampling = Image.Resampling.BICUBIC
            ) -> np.ndarray:
    """``picture`` (H,W[,C]) uint8 resized to ``size`` (width, height)."""
    return np.asarray(Image.fromarray(picture).resize(size, resample))


def silhouette(matter: Matter, name: str, size: tuple[int, int], feather: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Photo ``name`` at ``size`` (width, height) and its true alpha (H,W) float32 in [0,1]: the network's
    alpha of the photo, upsampled smoothly, cut at half (sharp), then blurred by ``feather`` pixels."""
    picture = photo(name)
    soft = matter(picture).astype(np.float32) / 255.0
    smooth = np.asarray(Image.fromarray(soft).resize(size, Image.Resampling.BILINEAR))
    sharp = (smooth >= 0.5).astype(np.float32)
    alpha = ndimage.gaussian_filter(sharp, feather) if feather else sharp
    return resized(picture, size), alpha


def laid(subject: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``subject`` (H,W,3) uint8 laid by ``alpha`` (H,W) float in [0,1] over ``background``: (H,W,3) uint8."""
    weight = alpha[..., None]
    return np.rint(subject * weight + background * (1.0 - weight)).astype(np.uint8)


def noisy(frame: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``frame`` with Gaussian sensor noise of ``sigma`` levels, clipped to uint8."""
    return np.clip(frame + rng.normal(0.0, sigma, frame.shape), 0, 255).astype(np.uint8)


def texture(name: str, size: tuple[int, int]) -> np.ndarray:
    """Texture (or photo) ``name`` filling ``size`` (width, height): (H,W,3) uint8."""
    return resized(photo(name), size)


def placed(subject: np.ndarray, alpha: np.ndarray, size: tuple[int, int], left: int, top: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """``subject`` and ``alpha`` put at (left, top) of a canvas of ``size`` (width, height), zero elsewhere."""
    canvas = np.zeros((size[1], size[0], 3), np.uint8)
    mask = np.zeros((size[1], size[0]), np.float32)
    height, width = alpha.shape
    canvas[top:top + height, left:left + width] = subject
    mask[top:top + height, left:left + width] = alpha
    return canvas, mask


def still(matter: Matter, frames: int = 10, size: tuple[int, int] = (640, 360), sigma: float = 6.0) -> Clip:
    """The subject (coffee) standing over grass, each frame with fresh sensor noise of ``sigma`` levels."""
    rng = np.random.default_rng(1)
    width, height = size
    box = (width * 9 // 16, height * 2 // 3)
    subject, alpha = silhouette(matter, "coffee", box)
    canvas, mask = placed(subject, alpha, size, (width - box[0]) // 2, height // 6)
    clean = laid(canvas, mask, texture("grass", size))
    truth = np.rint(mask * 255).astype(np.uint8)
    return Clip("still", [noisy(clean, sigma, rng) for _ in range(frames)], [truth] * frames)


def moving(matter: Matter, frames: int = 10, size: tuple[int, int] = (640, 360), step: int = 12) -> Clip:
    """The subject (coffee) crossing gravel from left to right, ``step`` pixels a frame, light noise."""
    rng = np.random.default_rng(2)
    subject, alpha = silhouette(matter, "coffee", (300, 200))
    background = texture("gravel", size)
    clip = Clip("moving", [], [])
    for index in range(frames):
        canvas, mask = placed(subject, alpha, size, 40 + step * index, 90)
        clip.frames.append(noisy(laid(canvas, mask, background), 2.0, rng))
        clip.truths.append(np.rint(mask * 255).astype(np.uint8))
    return clip


def cut(matter: Matter, frames: int = 6, size: tuple[int, int] = (640, 360)) -> Clip:
    """``frames`` of one shot (coffee over grass), then a hard cut to ``frames`` of another (rocket over gravel)."""
    rng = np.random.default_rng(3)
    clip = Clip("cut", [], [])
    for name, box, left, top, behind in (("coffee", (360, 240), 140, 60, "grass"),
                                         ("rocket", (160, 320), 300, 20, "gravel")):
        subject, alpha = silhouette(matter, name, box)
        canvas, mask = placed(subject, alpha, size, left, top)
        clean = laid(canvas, mask, texture(behind, size))
        clip.frames += [noisy(clean, 3.0, rng) for _ in range(frames)]
        clip.truths += [np.rint(mask * 255).astype(np.uint8)] * frames
    return clip


def empty(size: tuple[int, int] = (640, 360)) -> Clip:
    """Frames with nobody in them: grass, gravel, and a gray wall with noise."""
    rng = np.random.default_rng(4)
    frames = [noisy(texture("grass", size), 2.0, rng), noisy(texture("gravel", size), 2.0, rng),
              noisy(np.full((size[1], size[0], 3), 128, np.uint8), 4.0, rng)]
    return Clip("empty", frames, [np.zeros((size[1], size[0]), np.uint8)] * len(frames))


def sharp(matter: Matter, size: tuple[int, int]) -> Clip:
    """A sharp-edged subject (coffee) at ``size`` (1920x1080, 3840x2160) over grass."""
    width, height = size
    subject, alpha = silhouette(matter, "coffee", (height * 3 // 2, height))
    canvas, mask = placed(subject, alpha, size, (width - height * 3 // 2) // 2, 0)
    frame = laid(canvas, mask, texture("grass", size))
    return Clip(f"sharp {height}p", [frame], [np.rint(mask * 255).astype(np.uint8)])


def green(matter: Matter, size: tuple[int, int] = (960, 640)) -> Clip:
    """A soft-edged subject (coffee, 3-pixel feather) on chroma-key green; ``subjects`` holds its own colours
    and ``backgrounds`` the new background (gravel) the cut-out is laid on."""
    subject, alpha = silhouette(matter, "coffee", size, feather=3.0)
    frame = laid(subject, alpha, np.broadcast_to(GREEN, subject.shape))
    return Clip("green", [frame], [np.rint(alpha * 255).astype(np.uint8)], [texture("gravel", size)], [subject])


def edge_band(truth: np.ndarray, radius: int) -> np.ndarray:
    """Pixels (H,W) bool within ``radius`` of the edge of ``truth`` (H,W) uint8 (where it crosses half)."""
    inside = truth >= 128
    return ndimage.binary_dilation(inside, iterations=radius) & ~ndimage.binary_erosion(inside, iterations=radius)
