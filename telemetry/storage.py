"""The InfluxDB storage schema: every measurement citywatch writes, with its tags and fields.

Writers (ingest, the detector sink, the alert layer) and readers (Grafana boards, the API)
meet here; tests check both sides against it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from telemetry.catalogue import CATALOGUE
from telemetry.kinds import DeviceKind


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measurement: its tag keys and field keys."""

    name: str
    tags: frozenset[str]
    fields: frozenset[str]
    description: str


def _m(name: str, tags: str, fields: str, description: str) -> Measurement:
    return Measurement(name, frozenset(tags.split()), frozenset(fields.split()), description)


_INGEST_COUNTERS = (
    "received decoded reports events statuses duplicates late reports_missing qos0_dropped "
    "deadlettered "
    "points_written "
    "batches_written points_spooled batches_spooled batches_abandoned points_replayed "
    "batches_replayed "
    "points_refused write_failures spool_write_errors acked sink_errors liveness_changes "
    "rejected "
    "batch_points_mean write_latency_s_mean broker_lag_s_mean spool_bytes spool_batches "
    "spool_quarantined_bytes "
    "pending_batches devices_known devices_online influx_unavailable spool_disk_error"
)

_ALL = (
    Measurement(
        DeviceKind.CABINET.value,
        frozenset({"ward", "device"}),
        frozenset(CATALOGUE[DeviceKind.CABINET]),
        "one point per cabinet report, one field per catalogue metric",
    ),
    Measurement(
        DeviceKind.CABLE_SEGMENT.value,
        frozenset({"ward", "device", "route"}),
        frozenset(CATALOGUE[DeviceKind.CABLE_SEGMENT]),
        "one point per cable-segment report, one field per catalogue metric",
    ),
    _m(
        "device_status",
        "ward device kind route",
        "online reason street lat lon position",
        "a device's status and location, on every status message and liveness change",
    ),
    _m(
        "cable_span",
        "ward route device",
        "upstream up_lat up_lon lat lon position",
        "a cable segment joined to the one before it on its route (the map draws the span)",
    ),
    *(
        _m(f"{kind.value}_event", "ward device", "event seq detail", "device events as they come")
        for kind in DeviceKind
    ),
    _m(
        "citywatch_liveness",
        "ward device kind",
        "online reason",
        "online/offline transitions from Last Will, status and inactivity",
    ),
    _m("citywatch_ingest", "instance", _INGEST_COUNTERS, "ingest self-metrics (cumulative)"),
    _m("citywatch_ingest_rejected", "instance reason", "count", "rejections by reason"),
    _m(
        "citywatch_detector",
        "instance",
        "readings events series readings_per_s bytes_per_series",
        "detector self-metrics",
    ),
    _m(
        "citywatch_score",
        "ward device metric kind",
        "score value",
        "detector scores of flagged readings (score above the reporting floor)",
    ),
    _m(
        "citywatch_alert",
        "ward device type severity state transition",
        "alert_id explanation score acknowledged incident_root incident detail ack_after_s "
        "resolve_after_s",
        "one point per alert transition (Grafana annotations and tables)",
    ),
)

SCHEMA: Mapping[str, Measurement] = MappingProxyType({m.name: m for m in _ALL})
"""Measurements by name."""
