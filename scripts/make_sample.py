"""Make samples: a lit sphere moving in front of a striped wall, or a slow pan across a real photo.

Usage: python scripts/make_sample.py OUT.png|OUT.mp4 [WIDTHxHEIGHT] [--photo NAME]
A .png gets one picture; a .mp4 a 2-second H.264 clip at 25 fps. ``--photo NAME`` (a scikit-image
photo, e.g. motorcycle_left) pans a WIDTHxHEIGHT window across that photo instead of the sphere.
"""

from __future__ import annotations

import argparse

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


def panned_frame(picture: np.ndarray, width: int, height: int, progress: float) -> np.ndarray:
    """(height, width, 3) uint8: the window of ``picture`` (H,W,3) at ``progress`` (0..1) of a diagonal pan.

    The photo is first scaled so that the window fits inside it."""
    scale = max(width / picture.shape[1], height / picture.shape[0]) * 1.15
    size = (round(picture.shape[1] * scale), round(picture.shape[0] * scale))
    scaled = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.BICUBIC))
    left = round((size[0] - width) * progress)
    top = round((size[1] - height) * progress)
    return np.ascontiguousarray(scaled[top:top + height, left:left + width])


def write_clip(path: str, width: int, height: int, frames: int = 50, photo_name: str | None = None, *,
               options: dict[str, str] | None = None, distinct: int | None = None) -> None:
    """Write ``frames`` frames of the moving sphere (or of a pan across a photo) as H.264 at 25 fps, with
    libx264's ``options``; ``distinct``: make that many pictures once and cycle through them (faster)."""
    picture = None
    if photo_name is not None:
        from real_network import photo

        picture = photo(photo_name)
    cycle = min(frames, distinct or frames)

    def frame(index: int) -> np.ndarray:
        return (sample_frame(width, height, index * 0.12) if picture is None
                else panned_frame(picture, width, height, index / max(cycle - 1, 1)))

    pictures = [frame(index) for index in range(cycle)] if distinct else None
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=25, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            pixels = pictures[index % cycle] if pictures is not None else frame(index)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="OUT.png (one picture) or OUT.mp4 (a 2-second clip)")
    parser.add_argument("size", nargs="?", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--photo", help="pan across this scikit-image photo instead of the sphere")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if args.out.endswith(".mp4"):
        write_clip(args.out, width, height, photo_name=args.photo)
    else:
        Image.fromarray(sample_frame(width, height)).save(args.out)


if __name__ == "__main__":
    main()
