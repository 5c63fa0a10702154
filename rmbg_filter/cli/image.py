"""``rmbg-filter image``: one picture in, its cut-out (or mask, or composite) out."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from ..compositing import OutputMode, composite, read_rgb
from ..errors import InputError
from ..memory import check_frames
from ..options import QualityOptions
from .safe_output import atomic_output, check_destination

if TYPE_CHECKING:
    from ..engine import BackgroundRemover

__all__ = ["remove_background_from_image"]


def remove_background_from_image(
    load_remover: Callable[[], BackgroundRemover], source: Path, destination: Path, mode: OutputMode,
    quality: QualityOptions, *, overwrite: bool, batch_size: int = 1,
) -> tuple[int, int]:
    """Write ``destination`` (format by its suffix) for ``source``; returns (width, height).

    ``quality``: a picture is a stream of one frame, so its temporal window holds it alone.

    Every check (input, background, output format, existing output, the memory the picture
    needs with ``batch_size`` and ``quality``) is made before ``load_remover`` is called to load the model.
    """
    image_format = _writable_format(destination, mode)
    check_destination(destination, overwrite=overwrite)
    frame = read_rgb(source, check=lambda width, height: check_frames(width, height, batch_size, quality,
                                                                      host_finishing=False, frames=1))
    height, width = frame.shape[:2]
    background = read_rgb(mode.image, (width, height)) if mode.image is not None else None
    remover = load_remover()
    with atomic_output(destination, overwrite=overwrite) as temporary:
        result = composite(frame, remover(frame, quality), mode, background, decontaminate=quality.decontaminate)
        Image.fromarray(result).save(temporary, format=image_format)
    return width, height


def _writable_format(destination: Path, mode: OutputMode) -> str:
    """Pillow's format for the destination's suffix, if it can hold what ``mode`` makes.

    Raises InputError for an unknown suffix or a format without the needed
    channels (an RGBA JPEG), found by saving a 1x1 picture to memory.
    """
    registered = Image.registered_extensions()
    image_format = registered.get(destination.suffix.lower())
    if image_format is None:
        raise InputError(f"cannot tell the image format of {destination}; end it in .png (or .jpg for composites)")
    picture_mode = {4: "RGBA", 1: "L", 3: "RGB"}[mode.channels]
    try:
        Image.new(picture_mode, (1, 1)).save(io.BytesIO(), format=image_format)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"cannot write {destination} with --output {mode.kind} ({error}); "
                         "use .png for rgba and alpha") from error
    return image_format
