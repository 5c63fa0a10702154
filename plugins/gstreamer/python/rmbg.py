"""GStreamer element ``rmbg``: RMBG-1.4 background removal on raw RGB video.

    GST_PLUGIN_PATH=<repo>/plugins/gstreamer gst-launch-1.0 \\
        videotestsrc num-buffers=30 ! videoconvert ! rmbg model=model.safetensors ! videoconvert ! ...

Sink: raw RGB, BGR, RGBA, BGRA, RGBx or BGRx of any size and rate. Source: RGBA
carrying the alpha (``output=rgba``, the default), GRAY8 (``output=alpha``) or
RGB composited over a background (``green``, ``color:#RRGGBB``, ``blur``,
``image:PATH``), with the input's size, rate and timestamps.

Properties: the model options of ``rmbg_filter.ModelOptions`` (``model``,
``device``, ``dtype``, ``runtime``, ``batch-size``, ``model-size``, ``compile``),
the quality options of ``rmbg_filter.QualityOptions`` (``temporal-radius``,
``normalize``, ``refine``, ``refine-radius``, ``refine-eps``, ``decontaminate``,
``reuse-threshold``), ``output`` and ``qos``. With ``temporal-radius`` R the
output runs R frames behind the input (the latency says so); EOS drains the
last R, a flushing seek starts the window afresh. Frames QoS lets skip the
network skip the window too. Caps are proxied both ways: a size or rate asked for
downstream is asked of upstream, and the source pad offers only the format
``output`` makes.

The element is a thread boundary: buffers and serialized events go into a
bounded queue; a runner thread sends the frames through the core's tagged stream
(batched reading and inference in their own threads), and a pusher thread pushes
everything downstream in arrival order. Upstream decoding and downstream
encoding thus run concurrently with inference. The model loads (torch is
imported) when the element goes from READY to PAUSED, shared with any other
element of the same model options, and one batch is timed there for the latency
the element reports; any failure there fails that change with an element error.
Once frames flow, every batch the network runs is timed; when one takes longer
than the latency reported, a latency message asks the pipeline to ask again.
With ``qos`` (the default), frames that downstream's QoS events say would be
dropped as late get the last alpha instead of a network run, and so, on a live
source, does every frame that comes while the network holds a full batch and
its temporal window: the network runs on the newest frames at its own pace, and
the latency reported (a batch's time for each frame waited for) covers every
frame held. Each re-used alpha posts a QoS message whose stats count the frames
run and reused.
"""

from __future__ import annotations

import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GObject, Gst  # noqa: E402

# the element's code: the package rmbg_gst in plugins/gstreamer, not here (gst-python imports every module here)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from rmbg_gst import RmbgFilter  # noqa: E402
from rmbg_gst.core import IMPORT_ERROR  # noqa: E402

if IMPORT_ERROR is not None:  # said where gst-launch's "no property" error would otherwise stand alone
    sys.stderr.write(f"rmbg: cannot import rmbg_filter ({IMPORT_ERROR}): the element is registered without its "
                     "model and quality properties; activate the venv it is installed in (source "
                     ".venv/bin/activate) or put it on PYTHONPATH\n")

GObject.type_register(RmbgFilter)
__gstelementfactory__ = ("rmbg", Gst.Rank.NONE, RmbgFilter)

__all__ = ["RmbgFilter"]
