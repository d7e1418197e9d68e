"""The ingest service: MQTT source → receiver (decode, batch) → durable writer → sinks.

``IngestService`` builds the parts from ``IngestSettings``, runs a ticker thread (flush
stale batches, liveness timeouts, self-metrics, registry saves), serves ``/metrics``, and
``stop()`` drains: stop taking messages, write or spool everything received, send the
acks, disconnect (the broker keeps the session and queues what comes next), and write
the final self-metrics straight to InfluxDB (best effort).
"""

import logging
import threading
import time
from collections.abc import Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from ingest.batch import PendingBatch
from ingest.config import IngestSettings
from ingest.device_status import liveness_lines
from ingest.liveness import LivenessChange, LivenessTracker
from ingest.receiver import Receiver
from ingest.registry import DeviceRegistry
from ingest.sinks import BatchSink, LivenessSink
from ingest.source import MqttSource
from ingest.spool import Spool
from ingest.stats import IngestCollector, IngestStats, self_metric_lines
from ingest.writer import DurableWriter
from telemetry.backoff import Backoff
from telemetry.influxdb import InfluxClient, InfluxError

log = logging.getLogger(__name__)


class IngestService:
    """One running ingest; ``start()``, then ``stop()`` (SIGTERM) drains and flushes."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        sinks: Sequence[BatchSink] = (),
        liveness_sinks: Sequence[LivenessSink] = (),
    ) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self.liveness_sinks = list(liveness_sinks)
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(settings.spool_dir / "segments", max_bytes=settings.spool_max_bytes)
        self.registry = DeviceRegistry(settings.spool_dir / "devices.json")
        self.liveness = LivenessTracker(
            misses=settings.liveness_misses, grace_s=settings.liveness_grace_s
        )
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        self.influx = InfluxClient(
            settings.influx, settings.database, token=token, timeout_s=settings.write_timeout_s
        )
        self.source = MqttSource(
            settings.broker,
            client_id=settings.client_id,
            on_message=self._on_message,
            session_expiry_s=settings.session_expiry_s,
            receive_maximum=settings.receive_maximum,
        )
        self.writer = DurableWriter(
            influx=self.influx,
            spool=self.spool,
            ack=self.source.ack,
            stats=self.stats,
            sinks=sinks,
            retry_budget_s=settings.retry_budget_s,
            backoff=lambda: Backoff(
                base_s=min(0.2, settings.backoff_cap_s), cap_s=settings.backoff_cap_s
            ),
            rejected_dir=settings.spool_dir / "rejected",
            on_abandoned=lambda batch: self.receiver.order.forget(batch.accepted),
        )
        self.receiver = Receiver(
            emit=self.writer.submit,
            publish_deadletter=self.source.publish,
            registry=self.registry,
            liveness=self.liveness,
            on_liveness=self._on_liveness,
            stats=self.stats,
            batch_lines=settings.batch_lines,
            flush_interval_s=settings.flush_interval_s,
            keep_reports=bool(sinks),
            dedupe_window=settings.dedupe_window,
            overloaded=lambda: self.writer.pending_batches() >= settings.max_pending_batches,
        )
        self.prometheus = CollectorRegistry()
        self.prometheus.register(IngestCollector(self.stats, self.gauges))
        self._liveness_lock = threading.Lock()
        self._liveness_pending: list[LivenessChange] = []
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="ingest-ticker", daemon=True)
        self._http: WSGIServer | None = None
        self.metrics_port: int | None = None

    def _on_message(self, topic: str, payload: bytes, ack: tuple[int, int] | None) -> None:
        self.receiver.receive(topic, payload, ack)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        try:
            self.influx.create_database()
        except InfluxError as exc:  # not fatal: writes spool until InfluxDB is there
            log.warning("could not create database %r yet: %s", self.settings.database, exc)
        if self.settings.metrics_port:
            self._http, _ = start_http_server(
                self.settings.metrics_port, self.settings.metrics_host, registry=self.prometheus
            )
            self.metrics_port = self._http.server_port
            log.info("serving /metrics on %s:%d", self.settings.metrics_host, self.metrics_port)
        self.writer.start()
        self._ticker.start()
        self.source.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Drain: stop taking messages, write/spool what was taken, ack it, disconnect."""
        log.info("draining: %d batches waiting", self.writer.pending_batches())
        self.receiver.accepting = False
        self._stop.set()
        self._ticker.join(5)
        self.receiver.flush()
        self._emit_liveness()
        if not self.writer.stop(timeout_s):
            log.error("writer did not finish within %.0f s", timeout_s)
        self.source.stop()
        self._write_final_self_metrics()
        self.registry.save()
        self.spool.close()
        self.influx.close()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        log.info(
            "stopped: %d received, %d points written, %d spooled, %d acked",
            self.stats.received,
            self.stats.points_written,
            self.stats.points_spooled,
            self.stats.acked,
        )

    # -- periodic work -------------------------------------------------------------

    def _tick_loop(self) -> None:
        next_liveness = next_metrics = next_save = time.monotonic()
        while not self._stop.wait(0.1):
            now = time.monotonic()
            try:
                self.receiver.flush_if_stale()
                if now >= next_liveness:
                    for change in self.liveness.check():
                        self._on_liveness(change)
                    self._emit_liveness()
                    next_liveness = now + 1.0
                if now >= next_metrics:
                    self._write_self_metrics()
                    next_metrics = now + self.settings.self_metrics_interval_s
                if now >= next_save:
                    self.registry.save()
                    next_save = now + 5.0
            except Exception:
                log.exception("ingest ticker failed; continuing")

    def gauges(self) -> dict[str, float]:
        return {
            "spool_bytes": float(self.spool.pending_bytes),
            "spool_batches": float(len(self.spool)),
            "spool_quarantined_bytes": float(self.spool.truncated_bytes),
            "pending_batches": float(self.writer.pending_batches()),
            "devices_known": float(len(self.registry)),
            "devices_online": float(self.liveness.online_count()),
            "influx_unavailable": float(self.writer.spool_mode),
            "spool_disk_error": float(self.writer.disk_error is not None),
        }

    def _write_self_metrics(self) -> None:
        now_ms = time.time_ns() // 1_000_000
        lines = self_metric_lines(self.stats, self.gauges(), self.settings.instance, now_ms)
        self.writer.submit(PendingBatch(lines=lines))

    def _write_final_self_metrics(self) -> None:
        """The figures at exit (acks included), so the board shows how the run ended."""
        now_ms = time.time_ns() // 1_000_000
        lines = self_metric_lines(self.stats, self.gauges(), self.settings.instance, now_ms)
        try:
            self.influx.write_gzipped(self.influx.compress("\n".join(lines).encode()))
        except InfluxError as exc:  # best effort: InfluxDB may be the reason we stop
            log.warning("final self-metrics not written: %s", exc)

    def _on_liveness(self, change: LivenessChange) -> None:
        self.stats.liveness_changes += 1
        with self._liveness_lock:
            self._liveness_pending.append(change)

    def _emit_liveness(self) -> None:
        with self._liveness_lock:
            changes, self._liveness_pending = self._liveness_pending, []
        if not changes:
            return
        lines = liveness_lines(changes, self.registry.get)
        self.writer.submit(PendingBatch(lines=lines))
        for sink in self.liveness_sinks:
            try:
                sink.handle_liveness(changes)
            except Exception:
                self.stats.sink_errors += 1
                log.exception("liveness sink %r failed", sink)
