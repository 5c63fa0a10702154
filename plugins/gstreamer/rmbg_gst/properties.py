"""The element's GObject properties, derived from the core's option specs (``rmbg_filter.options``)."""

from __future__ import annotations

from typing import Any

from gi.repository import GObject, Gst

from .core import IMPORT_ERROR

if IMPORT_ERROR is None:
    from rmbg_filter.errors import Spelling
    from rmbg_filter.options import all_specs

    #: how gst-launch-1.0 users write a property: ``the batch-size property``, ``batch-size=4``
    PROPERTIES = Spelling(name="the {name} property", assignment="{name}={value}", separator="-")

_READY_ONLY = GObject.ParamFlags.READWRITE | Gst.PARAM_MUTABLE_READY


def gobject_properties() -> dict[str, tuple[Any, ...]]:
    """The element's GObject properties: one per ModelOptions and QualityOptions field, then ``output`` and ``qos``.

    Keyed by the property name (``batch-size``); each value is PyGObject's ``__gproperties__`` tuple:
    (type, nick, blurb, minimum, maximum, default, flags) for int and float, (type, nick, blurb,
    default, flags) for bool and str, so the default is always the second last item. Without the
    core, only ``output`` and ``qos``.
    """
    properties: dict[str, tuple[Any, ...]] = {}
    for spec in all_specs() if IMPORT_ERROR is None else ():
        name, nick = spec.name.replace("_", "-"), spec.name.replace("_", " ").capitalize()
        if spec.type in (int, float):
            properties[name] = (spec.type, nick, spec.help, spec.minimum, spec.maximum, spec.default, _READY_ONLY)
        elif spec.type is bool:
            properties[name] = (bool, nick, spec.help, spec.default, _READY_ONLY)
        else:
            default = "" if spec.default is None else spec.default
            blurb = spec.help + (f"; one of {', '.join(spec.choices)}" if spec.choices else "")
            properties[name] = (str, nick, blurb + ("; empty: the default" if spec.default is None else ""),
                                default, _READY_ONLY)
    properties["output"] = (str, "Output", "rgba (RGBA with the alpha), alpha (GRAY8), green, color:#RRGGBB, "
                            "blur or image:PATH (RGB composite)", "rgba", _READY_ONLY)
    properties["qos"] = (bool, "QoS", "when downstream reports late buffers, give the frames that would be "
                         "dropped the last alpha instead of running the network on them",
                         True, GObject.ParamFlags.READWRITE)
    return properties


__all__ = ["PROPERTIES", "gobject_properties"]
