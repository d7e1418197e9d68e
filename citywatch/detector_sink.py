"""The detector plugged into ingest: platform time, and the sink that scores each batch.

Ingest calls the sink on its sink thread with each batch once it is durable and
acknowledged; the detections cross to the alert layer through ``emit``.
"""

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from anomaly import Detection, Detector
from anomaly.area_silence import AreaSilence
from anomaly.explain import liveness_detection
from ingest.liveness import LivenessChange
from telemetry import ReadingBatch
from telemetry.lineproto import ScoreLines, encode_point


class DataClock:
    """Platform time follows the devices' clocks.

    The newest device timestamp seen, advanced by wall time since it was seen. With real
    devices this is wall time; in a time-compressed simulation (``--speed 60``) alert
    timings — pending periods, keep-firing, escalation, dropout — play at the
    simulation's pace instead of lagging an hour behind it. Never runs backwards.
    """

    def __init__(self, wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._wall_ms = wall_ms
        self._lock = threading.Lock()
        self._device_ms: int | None = None
        self._seen_at_wall_ms = 0

    def observe(self, device_ms: int) -> None:
        """A device timestamp was accepted."""
        with self._lock:
            if self._device_ms is None or device_ms > self._now_locked():
                self._device_ms = device_ms
                self._seen_at_wall_ms = self._wall_ms()

    @property
    def known(self) -> bool:
        """Whether a device timestamp has been seen (before it, ``now_ms`` is wall time,
        which a simulation replaying yesterday is far from)."""
        with self._lock:
            return self._device_ms is not None

    def now_ms(self) -> int:
        with self._lock:
            return self._now_locked()

    def reading(self) -> tuple[int, int] | None:
        """``(now_ms, wall ms)`` read together, for :meth:`resume`; None before a device
        timestamp was seen."""
        with self._lock:
            if self._device_ms is None:
                return None
            return self._now_locked(), self._wall_ms()

    def resume(self, now_ms: int, at_wall_ms: int) -> None:
        """Continue a clock that read ``now_ms`` at wall time ``at_wall_ms`` (another
        process's, from a checkpoint): it has advanced by the wall time since. Never
        runs backwards."""
        elapsed = max(0, self._wall_ms() - at_wall_ms)
        self.observe(now_ms + elapsed)

    def _now_locked(self) -> int:
        wall = self._wall_ms()
        if self._device_ms is None:
            return wall
        return self._device_ms + (wall - self._seen_at_wall_ms)


class DetectorSink:
    """The detector as an ingest sink: scores each durable batch, writes the scores worth
    charting to InfluxDB (``citywatch_score``), and hands detections to the alert layer.

    Also the liveness sink: a device going offline is a detection like any other.
    Thread-safe: ingest calls it from its sink thread, the pipeline's ticker from the
    event loop's executor.
    """

    def __init__(
        self,
        detector: Detector,
        clock: DataClock,
        emit: Callable[[list[Detection]], None],
        *,
        score_floor: float = 0.5,
    ) -> None:
        self.detector = detector
        self.clock = clock
        self.emit = emit
        self.score_floor = score_floor
        self.write: Callable[[list[str]], None] = lambda _lines: None
        self.readings = 0
        self.events = 0
        self._lock = threading.Lock()
        self._rate_readings = 0
        self._scores = ScoreLines()
        self.area_silence = AreaSilence(detector.config)

    def handle(self, batch: ReadingBatch) -> None:
        if len(batch) == 0:
            return
        with self._lock:
            update = self.detector.update(batch)
            # Under the lock: a tick between the two would judge these series' silence
            # on a clock that has not seen their time yet.
            self.clock.observe(int(batch.ts_ms.max()))
        self.readings += len(batch)
        self._rate_readings += len(batch)
        flagged = np.flatnonzero(update.scores >= self.score_floor)
        if flagged.size:
            self.write(
                self._scores.lines(
                    batch.device[flagged].tolist(),
                    batch.ward[flagged].tolist(),
                    batch.metric[flagged].tolist(),
                    batch.ts_ms[flagged].tolist(),
                    batch.value[flagged].tolist(),
                    update.scores[flagged].tolist(),
                )
            )
        if update.events:
            self.events += len(update.events)
            self.emit(update.events)

    def handle_liveness(self, changes: Sequence[LivenessChange]) -> None:
        now = self.clock.now_ms()
        detections: list[Detection] = []
        with self._lock:
            per_ward = self.detector.registry.devices_per_ward()
        for c in changes:
            if c.online and c.previous is None:  # first sight of a device: nothing to clear
                continue
            detections.append(
                liveness_detection(
                    c.kind, c.device, c.ward, online=c.online, reason=c.reason, now_ms=now
                )
            )
            # Many of a ward's devices going silent together: one area outage.
            detections += self.area_silence.change(
                c.device, c.ward, online=c.online, now_ms=now, ward_devices=per_ward.get(c.ward, 0)
            )
        if detections:
            self.emit(detections)

    def tick(self) -> None:
        """Look for series that fell silent (dropouts), on platform time; nothing is
        judged before the clock has seen a device's time."""
        if not self.clock.known:
            return
        with self._lock:
            events = self.detector.tick(self.clock.now_ms())
        if events:
            self.events += len(events)
            self.emit(events)

    def self_metric_lines(self, instance: str, interval_s: float) -> list[str]:
        rate = self._rate_readings / interval_s
        self._rate_readings = 0
        return [
            encode_point(
                "citywatch_detector",
                {"instance": instance},
                {
                    "readings": self.readings,
                    "events": self.events,
                    "series": self.detector.registry.size,
                    "readings_per_s": rate,
                    "bytes_per_series": self.detector.bytes_per_series(),
                },
                time.time_ns() // 1_000_000,
            )
        ]

    def save(self, path: Path) -> None:
        """Checkpoint the detector (atomically: a crash mid-save keeps the last one)."""
        with self._lock:
            tmp = path.with_suffix(".tmp")
            self.detector.save(tmp)
            tmp.replace(path)
