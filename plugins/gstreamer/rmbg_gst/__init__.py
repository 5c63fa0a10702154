"""The GStreamer element ``rmbg``'s helpers; ``plugins/gstreamer/python/rmbg.py`` is the element.

The parts, each importing only the core (``rmbg_filter``) and gi, never the command line:

- ``core``: finds the core (PYTHONPATH, or the venv ``VIRTUAL_ENV`` names), else keeps the ImportError;
- ``properties``: the GObject properties, from the core's option specs;
- ``caps``: the formats taken and made, and the caps derived, proxied and answered;
- ``frames``: buffers to (H,W,3) uint8 RGB frames and output pictures back to buffers.

This folder is not the plugin folder (``plugins/gstreamer/python``): gst-python's loader imports every
module there as a plugin.
"""

from __future__ import annotations

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")

__all__: list[str] = []
