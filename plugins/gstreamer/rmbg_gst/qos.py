"""QoS: which frames downstream would drop as late, and the QoS messages for those that skip the network.

A mixin of ``RmbgFilter``: it works on the element's state that ``RmbgFilter.__init__`` sets
(``_settings``, ``_in_info``, ``_segment``, ``_earliest``, ``_to_run`` and its lock, ``_live``).
"""

from __future__ import annotations

from gi.repository import Gst

from .frames import Frame


class QosMixin:
    """Reads downstream's QoS events and decides, per frame, whether it gets the last alpha instead of a network run."""

    def _src_event(self, pad: Gst.Pad, parent: Gst.Object, event: Gst.Event) -> bool:
        if event.type == Gst.EventType.QOS:
            _kind, _proportion, diff, timestamp = event.parse_qos()
            info = self._in_info
            if diff > 0:  # late: the lateness grows while we catch up, so expect twice it (as GstBaseTransform)
                duration = info.fps_d * Gst.SECOND // info.fps_n if info is not None and info.fps_n else 0
                self._earliest = timestamp + 2 * diff + duration
            else:
                self._earliest = Gst.CLOCK_TIME_NONE
        return Gst.Pad.event_default(pad, parent, event)

    def _is_late(self, pts: int) -> bool:
        """Whether QoS says a frame of ``pts`` would come too late downstream (it is dropped there anyway).

        While the last QoS event said late: a frame of a running time before the earliest it
        allows, and any frame while another already waits for the network (it would wait
        behind that one and come later still). The network then runs on the newest frames
        at its own pace, and the frames between get the last alpha.
        """
        earliest = self._earliest
        if not self._settings["qos"] or earliest == Gst.CLOCK_TIME_NONE or pts == Gst.CLOCK_TIME_NONE:
            return False
        running = self._segment.to_running_time(Gst.Format.TIME, pts)
        return self._to_run > 0 or (running != Gst.CLOCK_TIME_NONE and running <= earliest)

    def _count_to_run(self, change: int) -> None:
        """Count a frame queued for the network (+1, the streaming thread) or taken by the worker (-1)."""
        with self._to_run_lock:
            self._to_run += change

    def _post_qos(self, frame: Frame, processed: int, reused: int) -> None:
        """Tell the application a frame skipped the network (as GstBaseTransform does for the frames it drops)."""
        running = self._segment.to_running_time(Gst.Format.TIME, frame.pts)
        stream = self._segment.to_stream_time(Gst.Format.TIME, frame.pts)
        message = Gst.Message.new_qos(self, self._live, running, stream, frame.pts, frame.duration)
        message.set_qos_stats(Gst.Format.BUFFERS, processed, reused)
        self.post_message(message)


__all__ = ["QosMixin"]
