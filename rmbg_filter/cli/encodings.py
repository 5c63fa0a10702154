"""Which encoder and pixel format a video output gets, from its file name and ``--output`` mode.

With alpha (``rgba``): ``.mov`` ProRes 4444 (yuva444p10le), ``.webm`` VP9
(yuva420p), ``.mkv`` FFV1 (lossless; the source's own chroma layout plus
alpha), an image pattern such as ``out_%05d.png`` RGBA PNGs. The mask
(``alpha``) and the composites use what each container plays best.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..compositing import OutputMode
from ..errors import InputError
from .safe_output import is_pattern

__all__ = ["Encoding", "choose_encoding"]


@dataclass(frozen=True)
class Encoding:
    """An encoder, the pixel format it is fed, and its private options."""

    codec: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)


_X264 = Encoding("libx264", "yuv420p", {"crf": "18", "preset": "medium"})
_VP9 = Encoding("libvpx-vp9", "yuv420p", {"crf": "20", "b": "0", "row-mt": "1"})
#: the encoders that take --crf, with the options they get when chosen with --codec
_TUNED = {tuned.codec: tuned.options for tuned in (_X264, _VP9)}
#: suffix -> {"rgba" | "alpha" | "rgb": Encoding}
CONTAINERS: dict[str, dict[str, Encoding]] = {
    ".mov": {"rgba": Encoding("prores_ks", "yuva444p10le", {"profile": "4444"}),
             "alpha": Encoding("prores_ks", "yuv444p10le", {"profile": "4444"}), "rgb": _X264},
    ".webm": {"rgba": replace(_VP9, pix_fmt="yuva420p"), "alpha": _VP9, "rgb": _VP9},
    ".mkv": {"rgba": Encoding("ffv1", "yuva444p", {"level": "3"}), "alpha": Encoding("ffv1", "gray", {"level": "3"}),
             "rgb": _X264},
    ".mp4": {"alpha": replace(_X264, pix_fmt="gray"), "rgb": _X264},
    ".png": {"rgba": Encoding("png", "rgba"), "alpha": Encoding("png", "gray"), "rgb": Encoding("png", "rgb24")},
}
#: a YUV source's pixel format -> the same layout with alpha, for lossless FFV1
_WITH_ALPHA = {f"yuv{layout}p{depth}": f"yuva{layout}p{depth}"
               for layout in ("420", "422", "444") for depth in ("", "10le", "16le")}


def choose_encoding(destination: Path, mode: OutputMode, source_pix_fmt: str, size: tuple[int, int], *,
                    codec: str | None = None, pix_fmt: str | None = None, crf: int | None = None) -> Encoding:
    """The encoding for ``destination``; ``codec``/``pix_fmt``/``crf`` override the choice.

    Raises InputError for a container that cannot hold what ``mode`` makes.
    """
    suffix = destination.suffix.lower()
    if suffix == ".png" and not is_pattern(destination):
        raise InputError(f"{destination}: a PNG output must be a numbered pattern such as out_%05d.png")
    kind = {"rgba": "rgba", "alpha": "alpha"}.get(mode.kind, "rgb")
    table = CONTAINERS.get(suffix)
    if table is None:
        raise InputError(f"{destination}: unknown output container {suffix or '(none)'}; "
                         f"use {', '.join(s for s in CONTAINERS if s != '.png')} or out_%05d.png")
    if kind not in table:
        raise InputError(f"{destination}: {suffix} cannot carry an alpha channel; use .mov, .webm or .mkv, "
                         "or --output alpha or a composite such as --output green")
    encoding = table[kind]
    if encoding.codec == "ffv1" and kind == "rgba":
        encoding = replace(encoding, pix_fmt=_WITH_ALPHA.get(source_pix_fmt, "yuva444p"))
    odd = size[0] % 2 or size[1] % 2
    if encoding.pix_fmt == "yuv420p" and encoding.codec == "libx264" and odd:
        encoding = replace(encoding, pix_fmt="yuv444p")  # x264 needs even sides for 4:2:0
    chosen = codec or encoding.codec
    options = dict(encoding.options if chosen == encoding.codec else _TUNED.get(chosen, {}))
    if crf is not None:
        if "crf" not in options:
            raise InputError(f"--crf does not apply to {chosen}; it is for {' and '.join(_TUNED)}")
        options["crf"] = str(crf)
    return Encoding(chosen, pix_fmt or encoding.pix_fmt, options)
