"""Ingest's own counters, exposed to Prometheus and written to InfluxDB.

The hot path increments plain ints (each counter has one writing thread, so no lock is
needed and no per-message cost of a prometheus ``Counter``); ``IngestCollector`` turns them
into Prometheus families at scrape time and ``self_metric_lines`` into ``citywatch_*``
points for the Grafana pipeline board.
"""

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from telemetry.lineproto import encode_point


class BucketHistogram:
    """A cumulative histogram with fixed upper bounds; bulk observation via numpy."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = np.asarray(sorted(bounds), dtype=np.float64)
        self.counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)  # last: +Inf
        self.sum = 0.0

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def observe(self, value: float) -> None:
        self.counts[int(np.searchsorted(self.bounds, value, side="left"))] += 1
        self.sum += value

    def observe_many(self, values: npt.ArrayLike) -> None:
        array = np.asarray(values, dtype=np.float64)
        if array.size:
            slots = np.searchsorted(self.bounds, array, side="left")
            self.counts += np.bincount(slots, minlength=len(self.counts))
            self.sum += float(array.sum())

    def buckets(self) -> list[tuple[str, float]]:
        """Prometheus cumulative buckets, ``+Inf`` last."""
        cumulative = np.cumsum(self.counts)
        labels = [f"{b:g}" for b in self.bounds] + ["+Inf"]
        return [(label, float(c)) for label, c in zip(labels, cumulative, strict=True)]

    def mean(self) -> float:
        count = self.count
        return self.sum / count if count else 0.0


@dataclass
class IngestStats:
    """Every figure the pipeline board shows; see ``IngestCollector`` for their meaning."""

    received: int = 0
    decoded: int = 0
    reports: int = 0
    events: int = 0
    statuses: int = 0
    duplicates: int = 0
    late: int = 0
    reports_missing: int = 0
    qos0_dropped: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    deadlettered: int = 0
    points_written: int = 0
    batches_written: int = 0
    points_spooled: int = 0
    batches_spooled: int = 0
    batches_abandoned: int = 0
    points_replayed: int = 0
    batches_replayed: int = 0
    points_refused: int = 0
    write_failures: int = 0
    spool_write_errors: int = 0
    acked: int = 0
    sink_errors: int = 0
    liveness_changes: int = 0
    batch_points: BucketHistogram = field(
        default_factory=lambda: BucketHistogram([1, 10, 100, 500, 1000, 2000, 5000, 10000])
    )
    write_latency_s: BucketHistogram = field(
        default_factory=lambda: BucketHistogram(
            [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
        )
    )
    broker_lag_s: BucketHistogram = field(
        default_factory=lambda: BucketHistogram(
            [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 3600, 86400]
        )
    )


Gauges = Callable[[], dict[str, float]]
"""Current values read at collection time (spool bytes, pending messages, devices online)."""

_COUNTERS: tuple[tuple[str, str], ...] = (
    ("received", "MQTT messages received"),
    ("decoded", "messages that passed decoding and validation"),
    ("reports", "telemetry reports accepted"),
    ("events", "device events accepted"),
    ("statuses", "status messages accepted"),
    ("duplicates", "reports dropped as duplicates of an accepted report"),
    ("late", "reports older than the device's newest accepted report (still written)"),
    ("reports_missing", "reports devices numbered (seq) that never arrived"),
    ("qos0_dropped", "QoS 0 messages dropped while the writer's backlog was full"),
    ("deadlettered", "rejected messages published to the dead-letter topic"),
    ("points_written", "points written to InfluxDB directly"),
    ("batches_written", "batches written to InfluxDB directly"),
    ("points_spooled", "points written to the on-disk spool"),
    ("batches_spooled", "batches written to the on-disk spool"),
    ("batches_abandoned", "batches neither written nor spooled: left unacked for redelivery"),
    ("points_replayed", "spooled points replayed to InfluxDB"),
    ("batches_replayed", "spooled batches replayed to InfluxDB"),
    ("points_refused", "points InfluxDB refused (kept in the spool's rejected/ files)"),
    ("write_failures", "InfluxDB write attempts that failed and were retried or spooled"),
    ("spool_write_errors", "spool writes the disk refused (full): batches held unacked"),
    ("acked", "MQTT messages acknowledged"),
    ("sink_errors", "exceptions raised by reading sinks (the detector)"),
    ("liveness_changes", "device online/offline transitions"),
)


class IngestCollector(Collector):
    """Prometheus view of ``IngestStats`` (names ``citywatch_ingest_*``)."""

    def __init__(self, stats: IngestStats, gauges: Gauges | None = None) -> None:
        self.stats = stats
        self.gauges = gauges

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        s = self.stats
        for name, doc in _COUNTERS:
            yield CounterMetricFamily(f"citywatch_ingest_{name}", doc, value=getattr(s, name))
        rejected = CounterMetricFamily(
            "citywatch_ingest_rejected", "messages rejected at decode, by reason", labels=["reason"]
        )
        for reason, count in sorted(s.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        for name, hist, doc in (
            ("batch_points", s.batch_points, "points per InfluxDB write"),
            ("write_latency_seconds", s.write_latency_s, "InfluxDB write latency"),
            ("broker_lag_seconds", s.broker_lag_s, "arrival time minus device timestamp"),
        ):
            yield HistogramMetricFamily(
                f"citywatch_ingest_{name}", doc, buckets=hist.buckets(), sum_value=hist.sum
            )
        if self.gauges is not None:
            for name, value in self.gauges().items():
                yield GaugeMetricFamily(f"citywatch_ingest_{name}", name, value=value)


def self_metric_lines(
    stats: IngestStats, gauges: dict[str, float], instance: str, ts_ms: int
) -> list[str]:
    """The same figures as line protocol: ``citywatch_ingest`` + one per rejection reason."""
    tags = {"instance": instance}
    fields: dict[str, float | int] = {name: int(getattr(stats, name)) for name, _ in _COUNTERS}
    fields["rejected"] = sum(stats.rejected.values())
    fields["batch_points_mean"] = stats.batch_points.mean()
    fields["write_latency_s_mean"] = stats.write_latency_s.mean()
    fields["broker_lag_s_mean"] = stats.broker_lag_s.mean()
    fields.update({name: float(value) for name, value in gauges.items()})
    lines = [encode_point("citywatch_ingest", tags, fields, ts_ms)]
    lines.extend(
        encode_point(
            "citywatch_ingest_rejected", {**tags, "reason": reason}, {"count": int(count)}, ts_ms
        )
        for reason, count in sorted(stats.rejected.items())
    )
    return lines
