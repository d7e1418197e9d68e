"""Duplicates and out-of-order reports, per device.

Policy (what ingest does, and why):

- A report whose device timestamp equals one of the device's last ``window`` accepted
  reports is a **duplicate** (MQTT QoS 1 redelivery after a reconnect, or a device
  resending): it is not written again and not handed to the detector, only counted and
  acknowledged (after the batch holding the original is durable). The first copy wins.
- A report older than the device's newest accepted report, not seen before, is **late**
  (a device flushing its buffer after an outage, or messages redelivered out of order): it
  is accepted, written at its own timestamp (InfluxDB stores points by time, so a late
  point fills its gap), passed to the sinks, and counted. Liveness only moves forward.
- After an ingest restart the window is empty; reports redelivered then are written a
  second time, which InfluxDB treats as an overwrite of the identical point.
- A batch that could not be made durable (the spool's disk full, a shutdown with nowhere
  to put it) stays unacknowledged, and its reports are **forgotten** here: the broker's
  redelivery is then new, not a duplicate to drop (which acked 3,192 of 7,500 reports
  that were never written).
"""

import threading
from collections import deque
from collections.abc import Iterable
from enum import IntEnum


class Order(IntEnum):
    """Where a report stands relative to the device's accepted reports."""

    NEW = 0
    """Newer than every accepted report."""
    LATE = 1
    """Older than the newest accepted report, not seen before: written."""
    DUPLICATE = 2
    """Seen before: dropped."""


class _Track:
    __slots__ = ("newest", "recent", "seen")

    def __init__(self, window: int) -> None:
        self.newest = -1
        self.recent: deque[int] = deque(maxlen=window)
        self.seen: set[int] = set()


class OrderTracker:
    """Classifies each report as new, late or duplicate (the receive loop), and forgets
    the reports of a batch that was not made durable (the writer)."""

    def __init__(self, window: int = 32) -> None:
        if window < 1:
            raise ValueError("the duplicate window needs at least one report")
        self.window = window
        self._tracks: dict[str, _Track] = {}
        self._lock = threading.Lock()

    def check(self, device: str, ts_ms: int) -> Order:
        """Classify and remember a report."""
        with self._lock:
            return self._check(device, ts_ms)

    def forget(self, reports: Iterable[tuple[str, int]]) -> None:
        """Unremember (device, timestamp) pairs that were not written: their redelivery
        must be accepted. (Which one is the newest stays: only the late count notices.)"""
        with self._lock:
            for device, ts_ms in reports:
                track = self._tracks.get(device)
                if track is None or ts_ms not in track.seen:
                    continue
                track.seen.discard(ts_ms)
                track.recent.remove(ts_ms)

    def _check(self, device: str, ts_ms: int) -> Order:
        track = self._tracks.get(device)
        if track is None:
            track = self._tracks[device] = _Track(self.window)
        if ts_ms in track.seen:
            return Order.DUPLICATE
        if len(track.recent) == self.window:
            track.seen.discard(track.recent[0])
        track.recent.append(ts_ms)
        track.seen.add(ts_ms)
        if ts_ms > track.newest:
            track.newest = ts_ms
            return Order.NEW
        return Order.LATE
