"""QoS: which frames downstream would drop as late, and the QoS messages for those that skip the network.

A mixin of ``RmbgFilter``: it works on the element's state that ``RmbgFilter.__init__`` sets
(``_settings``, ``_in_info``, ``_segment``, ``_earliest``, ``_to_run`` and its lock, ``_live``).
On a live source the element also re-uses alphas on its own, so that the frames it holds stay within
the latency it reports.
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

    def _in_flight_cap(self) -> int:
        """The most frames the network may hold at once before a frame re-uses the last alpha: a batch, and
        the R frames after a frame that its temporal window waits for."""
        return self._settings["batch_size"] + self._settings["temporal_radius"]

    def _is_late(self, pts: int) -> bool:
        """Whether a frame of ``pts`` gets the last alpha instead of a network run (with the ``qos`` property on).

        On a live source: whenever the network already holds as many frames as its latency
        covers (``_in_flight_cap``): a frame queued behind them would leave after its deadline,
        so the network runs on the newest frames at its own pace and the frames between leave
        at once with the last alpha. On any source, while the last QoS event from downstream
        said late: a frame of a running time before the earliest it allows (downstream would
        drop it anyway), and any frame while the network is full.
        """
        if not self._settings["qos"] or pts == Gst.CLOCK_TIME_NONE:
            return False
        full = self._to_run >= self._in_flight_cap()
        if self._live and full:
            return True
        earliest = self._earliest
        if earliest == Gst.CLOCK_TIME_NONE:
            return False
        running = self._segment.to_running_time(Gst.Format.TIME, pts)
        return full or (running != Gst.CLOCK_TIME_NONE and running <= earliest)

    def _count_to_run(self, change: int) -> None:
        """Count a frame queued for the network (+1) or out of it (-1, when its alpha is pushed)."""
        with self._to_run_lock:
            self._to_run += change

    def _post_qos(self, frame: Frame, processed: int, reused: int) -> None:
        """Tell the application a frame skipped the network (as GstBaseTransform does for the frames it drops)."""
        running = self._segment.to_running_time(Gst.Format.TIME, frame.pts)
        stream = self._segment.to_stream_time(Gst.Format.TIME, frame.pts)
        message = Gst.Message.new_qos(self, bool(self._live), running, stream, frame.pts, frame.duration)
        message.set_qos_stats(Gst.Format.BUFFERS, processed, reused)
        self.post_message(message)


__all__ = ["QosMixin"]
