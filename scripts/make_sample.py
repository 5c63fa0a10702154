"""Make a sample for the demo: a lit sphere moving in front of a striped wall.

Usage: python scripts/make_sample.py OUT.png|OUT.mp4 [WIDTHxHEIGHT]
A .png gets one picture; a .mp4 a 2-second H.264 clip at 25 fps.
"""

from __future__ import annotations

import sys

import av
import numpy as np
from PIL import Image


def sample_frame(width: int, height: int, phase: float = 0.0) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a shaded sphere whose place depends on ``phase``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    wall = 0.55 + 0.25 * np.sin(x / 9.0 + phase)[..., None] * np.array([1.0, 0.8, 0.5])
    cx = width * (0.5 + 0.2 * np.sin(phase))
    cy, radius = height * 0.55, min(width, height) * 0.3
    dx, dy = (x - cx) / radius, (y - cy) / radius
    inside = dx**2 + dy**2 < 1
    shade = np.clip(np.sqrt(np.clip(1 - dx**2 - dy**2, 0, 1)) * 0.9 + 0.1 - 0.3 * dx, 0, 1)
    sphere = shade[..., None] * np.array([0.9, 0.3, 0.2])
    image = np.where(inside[..., None], sphere, wall)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_clip(path: str, width: int, height: int, frames: int = 50) -> None:
    """Write ``frames`` frames of the moving sphere as H.264 at 25 fps."""
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(sample_frame(width, height, index * 0.12), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


if __name__ == "__main__":
    size = sys.argv[2] if len(sys.argv) > 2 else "640x480"
    width, height = (int(v) for v in size.split("x"))
    if sys.argv[1].endswith(".mp4"):
        write_clip(sys.argv[1], width, height)
    else:
        Image.fromarray(sample_frame(width, height)).save(sys.argv[1])
