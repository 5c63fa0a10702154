"""Run a GStreamer pipeline to its end, as gst-launch-1.0 does: for scripts/gst_qos.py and the GStreamer tests.

Both run it in the system Python (the one GStreamer's plugin loader embeds) and import this file by path.
"""

from __future__ import annotations

from collections.abc import Callable

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def play(pipeline: Gst.Pipeline, on_message: Callable[[Gst.Message], None] = lambda message: None,
         at_end: Callable[[], None] = lambda: None, timeout_s: int = 300) -> None:
    """Play ``pipeline`` until EOS, call ``at_end`` (the elements still hold their stats), then stop it.

    QOS and LATENCY messages go to ``on_message``; a LATENCY message first makes the pipeline
    recalculate its latency, as gst-launch-1.0 does. An ERROR, or no message for ``timeout_s``, raises.
    """
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    wanted = Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.QOS | Gst.MessageType.LATENCY
    try:
        while True:
            message = bus.timed_pop_filtered(timeout_s * Gst.SECOND, wanted)
            if message is None:
                raise TimeoutError(f"no message from the pipeline in {timeout_s} s")
            if message.type == Gst.MessageType.ERROR:
                raise RuntimeError(message.parse_error()[0].message)
            if message.type == Gst.MessageType.EOS:
                at_end()
                return
            if message.type == Gst.MessageType.LATENCY:
                pipeline.recalculate_latency()
            on_message(message)
    finally:
        pipeline.set_state(Gst.State.NULL)


def latency(pipeline: Gst.Pipeline) -> int:
    """The pipeline's minimum latency in ns, as a latency query answers it now."""
    query = Gst.Query.new_latency()
    assert pipeline.query(query)
    return query.parse_latency()[1]
