"""The GStreamer element ``rmbg`` in parts; ``plugins/gstreamer/python/rmbg.py`` registers it.

The parts, each importing only the core (``rmbg_filter``) and gi, never the command line:

- ``core``: finds the core (PYTHONPATH, or the venv ``VIRTUAL_ENV`` names), else keeps the ImportError;
- ``properties``: the GObject properties, from the core's option specs;
- ``caps``: the formats taken and made, and the caps derived, proxied and answered;
- ``frames``: buffers to (H,W,3) uint8 RGB frames and output pictures back to buffers;
- ``worker``, ``qos``, ``latency``: the worker thread, QoS and latency, mixins of the element;
- ``element``: ``RmbgFilter`` itself, its pads and state changes.

This folder is not the plugin folder (``plugins/gstreamer/python``): gst-python's loader imports every
module there as a plugin.
"""

from __future__ import annotations

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")

from .element import RmbgFilter  # noqa: E402

__all__ = ["RmbgFilter"]
