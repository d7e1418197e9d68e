"""The receive side: decode, validate, dead-letter, de-duplicate, batch. The hot path.

``Receiver.receive`` runs on the MQTT network thread for every message. It decodes with
the contract, turns reports into line-protocol lines (one per report, with cached series
keys and templates), feeds liveness, and appends to the open batch; a full batch (or one
older than the flush interval, via ``flush_if_stale``) goes to the writer. Nothing here
blocks: backpressure comes from unacknowledged messages (MQTT v5 Receive Maximum).
"""

import logging
import threading
import time
from collections.abc import Callable

from ingest.batch import AckToken, Confirmation, PendingBatch
from ingest.deadletter import make_deadletter
from ingest.device_status import device_status_line
from ingest.gaps import SeqGaps
from ingest.liveness import LivenessChange, LivenessTracker
from ingest.order import Order, OrderTracker
from ingest.registry import DeviceRegistry
from ingest.spans import CableSpans
from ingest.stats import IngestStats
from telemetry import DecodeError, Event, Report, Status, Topic, decode_message
from telemetry.lineproto import ReportTemplates, encode_point, quote_string_field

log = logging.getLogger(__name__)

PublishDeadLetter = Callable[[str, bytes], Confirmation]
"""Publishes (topic, payload) at QoS 1; returns how to wait for the broker's PUBACK."""


class Receiver:
    """Turns MQTT messages into batches; ``emit`` receives each closed batch."""

    def __init__(
        self,
        *,
        emit: Callable[[PendingBatch], None],
        publish_deadletter: PublishDeadLetter,
        registry: DeviceRegistry,
        liveness: LivenessTracker,
        on_liveness: Callable[[LivenessChange], None],
        stats: IngestStats,
        batch_lines: int = 5000,
        flush_interval_s: float = 1.0,
        keep_reports: bool = False,
        dedupe_window: int = 32,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        overloaded: Callable[[], bool] = lambda: False,
    ) -> None:
        self.emit = emit
        self.publish_deadletter = publish_deadletter
        self.registry = registry
        self.liveness = liveness
        self.on_liveness = on_liveness
        self.stats = stats
        self.batch_lines = batch_lines
        self.flush_interval_s = flush_interval_s
        self.keep_reports = keep_reports
        self.clock_ms = clock_ms
        self.overloaded = overloaded
        """True while the writer's backlog is full: QoS 0 messages (which the broker does
        not hold back for us) are then dropped and counted, not queued without bound."""
        self.order = OrderTracker(dedupe_window)
        self.gaps = SeqGaps()
        self.templates = ReportTemplates()
        self.spans = CableSpans(registry.known())
        self.accepting = True
        self._batch = PendingBatch()
        self._lock = threading.Lock()

    def receive(self, topic: str, payload: bytes, ack: AckToken | None) -> None:
        """Handle one message; ``ack`` is None for QoS 0 messages (nothing to acknowledge)."""
        if not self.accepting:  # draining: leave it unacknowledged, the broker keeps it
            return
        stats = self.stats
        stats.received += 1
        if ack is None and self.overloaded():
            # QoS 1 backpressure is the unacknowledged window; QoS 0 has none.
            stats.qos0_dropped += 1
            return
        now_ms = self.clock_ms()
        try:
            parsed, message = decode_message(topic, payload, now_ms=now_ms)
        except DecodeError as error:
            self._reject(topic, payload, error, ack, now_ms)
            return
        if type(message) is Report:
            known = self.registry.get(message.device)
            if known is not None and known.ward != parsed.ward:
                # The broker's ACL binds a device to its id, not to its ward: a report
                # published under another ward's topic would land in that ward's view.
                mismatch = DecodeError(
                    "$topic.ward",
                    "ward_mismatch",
                    f"device {message.device} is registered in {known.ward}, "
                    f"the topic says {parsed.ward}",
                )
                self._reject(topic, payload, mismatch, ack, now_ms)
                return
        stats.decoded += 1
        with self._lock:
            batch = self._batch
            if type(message) is Report:
                self._report(batch, parsed, message, now_ms)
            elif type(message) is Status:
                self._status(batch, parsed, message, now_ms)
            elif type(message) is Event:
                self._event(batch, parsed, message)
            if ack is not None:
                batch.acks.append(ack)
            if len(batch.lines) >= self.batch_lines:
                self._close_locked()

    def _report(self, batch: PendingBatch, topic: Topic, report: Report, now_ms: int) -> None:
        order = self.order.check(report.device, report.ts)
        if order is Order.DUPLICATE:
            self.stats.duplicates += 1
            return
        if order is Order.LATE:
            self.stats.late += 1
        batch.accepted.append((report.device, report.ts))
        self.stats.reports_missing += self.gaps.observe(report.device, report.seq, report.ts)
        self.stats.reports += 1
        series = self.registry.series(report.device, report.kind, topic.ward)
        batch.lines.append(self.templates.line(series, report.metrics, report.ts))
        batch.lags_ms.append(now_ms - report.ts)
        if self.keep_reports:
            batch.reports.append(report)
            batch.wards.append(topic.ward)
        change = self.liveness.on_report(report.device, report.kind, topic.ward, report.ts)
        if change is not None:
            self.on_liveness(change)

    def _status(self, batch: PendingBatch, topic: Topic, status: Status, now_ms: int) -> None:
        self.stats.statuses += 1
        ts_ms = status.ts if status.ts is not None else now_ms
        if status.info is not None:
            self.registry.learn(status.info)
            batch.lines.extend(self.spans.learn(status.info, ts_ms))
        batch.lines.append(
            device_status_line(
                status.device,
                status.kind,
                topic.ward,
                online=status.state == "online",
                reason=status.reason or status.state,
                ts_ms=ts_ms,
                info=self.registry.get(status.device),
            )
        )
        change = self.liveness.on_status(status, topic.ward)
        if change is not None:
            self.on_liveness(change)

    def _event(self, batch: PendingBatch, topic: Topic, event: Event) -> None:
        self.stats.events += 1
        fields: dict[str, str | int] = {"event": event.event.value, "seq": event.seq}
        line = encode_point(
            f"{event.kind.value}_event", {"device": event.device, "ward": topic.ward}, fields
        )
        if event.detail is not None:
            line += f",detail={quote_string_field(event.detail)}"
        batch.lines.append(f"{line} {event.ts}")

    def _reject(
        self, topic: str, payload: bytes, error: DecodeError, ack: AckToken | None, now_ms: int
    ) -> None:
        self.stats.rejected[error.reason] += 1
        log.debug("rejected %s: %s (%s)", topic, error, error.reason)
        dl_topic, dl_payload = make_deadletter(topic, payload, error, now_ms)
        confirmation = self.publish_deadletter(dl_topic, dl_payload)
        self.stats.deadlettered += 1
        with self._lock:
            # Acknowledged with the batch, once the dead letter itself is confirmed.
            self._batch.deadletters.append((ack, confirmation))
            if ack is not None:
                self._batch.acks.append(ack)

    def _close_locked(self) -> None:
        batch, self._batch = self._batch, PendingBatch()
        if not batch.empty:
            self.emit(batch)

    def flush(self) -> None:
        """Close the open batch now (shutdown)."""
        with self._lock:
            self._close_locked()

    def flush_if_stale(self) -> None:
        """Close the open batch if it is older than the flush interval (called by a ticker)."""
        with self._lock:
            if time.monotonic() - self._batch.created_s >= self.flush_interval_s:
                self._close_locked()
