"""Caps: the formats the element takes and makes, and the caps it derives, proxies and answers with.

The element takes packed 8-bit RGB (``RGB_ORDER``) and 8-bit YUV 4:2:0 (``YUV_FORMATS``), and makes RGBA, GRAY8
or RGB by the number of channels of its output (``OUT_FORMAT``), at any size (1 to 16384 pixels a side) and rate.
"""

from __future__ import annotations

from collections.abc import Iterable

from gi.repository import Gst

from .core import IMPORT_ERROR

if IMPORT_ERROR is None:
    from rmbg_filter.compositing import parse_output

#: Sink formats and the positions of R, G, B in their pixels.
RGB_ORDER = {"RGB": (0, 1, 2), "BGR": (2, 1, 0), "RGBA": (0, 1, 2), "BGRA": (2, 1, 0),
             "RGBx": (0, 1, 2), "BGRx": (2, 1, 0)}
#: Sink formats of 8-bit YUV 4:2:0, converted to RGB on the network's device (rmbg_filter.yuv)
YUV_FORMATS = ("I420", "NV12")
#: every sink format
SINK_FORMATS = (*RGB_ORDER, *YUV_FORMATS)
#: Output caps format by the channels of a composite (rmbg_filter.compositing.OutputMode.channels).
OUT_FORMAT = {4: "RGBA", 1: "GRAY8", 3: "RGB"}


def raw_caps(formats: Iterable[str]) -> Gst.Caps:
    """video/x-raw caps of ``formats`` at any size and rate."""
    listed = ", ".join(formats)
    return Gst.Caps.from_string(f"video/x-raw, format=(string){{ {listed} }}, width=(int)[1, 16384], "
                                "height=(int)[1, 16384], framerate=(fraction)[0/1, 2147483647/1]")


def answer_caps(query: Gst.Query, caps: Gst.Caps) -> bool:
    """Answer a CAPS query with ``caps``, narrowed to the query's filter when it has one."""
    wanted = query.parse_caps()
    query.set_caps_result(caps.intersect(wanted) if wanted else caps)
    return True


def any_format(caps: Gst.Caps) -> Gst.Caps:
    """``caps`` with the format (and the format's colorimetry and chroma siting) left open, for proxying."""
    if caps.is_any():
        return caps
    out = Gst.Caps.new_empty()
    for index in range(caps.get_size()):
        structure = caps.get_structure(index).copy()
        for field in ("format", "colorimetry", "chroma-site"):
            structure.remove_field(field)
        out.append_structure(structure)
    return out


def derived_caps(caps: Gst.Caps, channels: int) -> Gst.Caps:
    """The input caps with the output format of ``channels`` (1, 3 or 4): same size, rate and pixel aspect."""
    out = caps.copy()
    out.set_value("format", OUT_FORMAT[channels])
    for field in ("colorimetry", "chroma-site"):
        out.get_structure(0).remove_field(field)
    return out


def output_template(output: str, template: Gst.Caps) -> Gst.Caps:
    """The source pad's caps as the ``output`` setting allows: only the format it produces.

    ``template``, the source pad template's caps, when the setting cannot be read or the core is missing.
    """
    try:
        channels = parse_output(output).channels if IMPORT_ERROR is None else None
    except ValueError:
        channels = None
    return template if channels is None else raw_caps([OUT_FORMAT[channels]])


__all__ = ["OUT_FORMAT", "RGB_ORDER", "SINK_FORMATS", "YUV_FORMATS", "answer_caps", "any_format", "derived_caps",
           "output_template", "raw_caps"]
