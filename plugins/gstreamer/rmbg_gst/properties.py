"""The element's GObject properties, derived from the core's option specs (``rmbg_filter.options``)."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from gi.repository import GObject, Gst

from .core import IMPORT_ERROR

if IMPORT_ERROR is None:
    from rmbg_filter.errors import Spelling
    from rmbg_filter.options import all_specs

    #: how gst-launch-1.0 users write a property: ``the batch-size property``, ``batch-size=4``
    PROPERTIES = Spelling(name="the {name} property", assignment="{name}={value}", separator="-")

_READY_ONLY = GObject.ParamFlags.READWRITE | Gst.PARAM_MUTABLE_READY


class _EnumValue(ctypes.Structure):
    """GLib's GEnumValue: a value, its name and its nick (the word gst-launch-1.0 takes)."""

    _fields_ = [("value", ctypes.c_int), ("value_name", ctypes.c_char_p), ("value_nick", ctypes.c_char_p)]


#: the value tables of the enum types this process registered: GLib keeps pointers into them for ever
_TABLES: list[Any] = []


def word_enum(option: str, words: tuple[str, ...]) -> type:
    """A GEnum type ``GstRmbg<Option>`` whose nicks are ``words``, value i for words[i]; the Python class of it.

    PyGObject cannot register an enum type of its own, so GLib's ``g_enum_register_static`` is called through
    ctypes (once a process: a type registered before is looked up), and PyGObject wraps the type it made.
    """
    import gi._gi

    name = "GstRmbg" + option.title().replace("_", "")
    try:
        GObject.type_from_name(name)
    except RuntimeError:  # not registered yet in this process
        gobject = ctypes.CDLL(ctypes.util.find_library("gobject-2.0") or "libgobject-2.0.so.0")
        gobject.g_enum_register_static.restype = ctypes.c_size_t
        gobject.g_enum_register_static.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        values = [_EnumValue(index, f"GST_RMBG_{option}_{word}".upper().encode(), word.encode())
                  for index, word in enumerate(words)]
        table = (_EnumValue * (len(words) + 1))(*values)  # ends with a zeroed entry, as GLib wants
        _TABLES.append(table)
        gobject.g_enum_register_static(name.encode(), ctypes.cast(table, ctypes.c_void_p))
    return gi._gi.enum_add(GObject.GType.from_name(name))


def plain(value: Any) -> Any:
    """A property's value as the core takes it: an enum's word (its nick), anything else as it is."""
    return value.value_nick if isinstance(value, GObject.GEnum) else value


def gobject_properties() -> dict[str, tuple[Any, ...]]:
    """The element's GObject properties: one per ModelOptions and QualityOptions field, then ``output`` and ``qos``.

    Keyed by the property name (``batch-size``); each value is PyGObject's ``__gproperties__`` tuple:
    (type, nick, blurb, minimum, maximum, default, flags) for int and float, (type, nick, blurb,
    default, flags) for bool, str and the options with choices (a GEnum of their words, ``word_enum``),
    so the default is always the second last item. Without the core, only ``output`` and ``qos``.
    """
    properties: dict[str, tuple[Any, ...]] = {}
    for spec in all_specs() if IMPORT_ERROR is None else ():
        name, nick = spec.name.replace("_", "-"), spec.name.replace("_", " ").capitalize()
        if spec.type in (int, float):
            properties[name] = (spec.type, nick, spec.help, spec.minimum, spec.maximum, spec.default, _READY_ONLY)
        elif spec.type is bool:
            properties[name] = (bool, nick, spec.help, spec.default, _READY_ONLY)
        elif spec.choices:  # a GEnum: gst-inspect-1.0 lists the words, gst-launch-1.0 refuses a typo at once
            words = word_enum(spec.name, spec.choices)
            properties[name] = (words, nick, spec.help, words(spec.choices.index(spec.default)), _READY_ONLY)
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


__all__ = ["PROPERTIES", "gobject_properties", "plain", "word_enum"]
