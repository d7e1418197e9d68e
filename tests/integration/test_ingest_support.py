"""Helpers for the ingest integration tests (no tests here): reports, publishing, queries."""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ingest import IngestService, load_settings
from telemetry import Channel, DeviceInfo, DeviceKind, Report, Status, Topic, encode

T0_MS = (time.time_ns() // 1_000_000 // 60_000) * 60_000 - 3_600_000
"""Report timestamps start an hour ago (inside the decoder's past limit)."""


def cabinet_report(device: str, i: int, *, ts_ms: int | None = None) -> Report:
    """A deterministic cabinet report number ``i`` of ``device``."""
    return Report(
        v=1,
        device=device,
        kind=DeviceKind.CABINET,
        ts=T0_MS + i * 1000 if ts_ms is None else ts_ms,
        seq=i,
        metrics={
            "temp_inside": 20.0 + (i % 50) * 0.5,
            "humidity": float(i % 100),
            "door_open": i % 7 == 0,
            "mains_voltage": 230.0 - (i % 13),
        },
    )


def segment_report(device: str, i: int) -> Report:
    return Report(
        v=1,
        device=device,
        kind=DeviceKind.CABLE_SEGMENT,
        ts=T0_MS + i * 1000,
        seq=i,
        metrics={"temp": 25.0 + i % 10, "strain": 100.0 + i, "signal": True},
    )


def telemetry_topic(report: Report, ward: str = "phuong_hoan_kiem") -> str:
    return Topic(ward, report.kind, report.device, Channel.TELEMETRY).format()


def online_status(info: DeviceInfo) -> tuple[str, bytes]:
    status = Status(v=1, device=info.id, kind=info.kind, state="online", ts=T0_MS, info=info)
    return Topic(info.ward, info.kind, info.id, Channel.STATUS).format(), encode(status)


class Publisher:
    """A QoS 1 publisher that waits for every PUBACK."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish_all(
        self, messages: Sequence[tuple[str, bytes]], *, retain: bool = False, timeout: float = 60
    ) -> None:
        infos = [self.client.publish(t, p, qos=1, retain=retain) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def query(url: str, database: str, q: str) -> list[dict[str, Any]]:
    """Rows of an InfluxQL query as dicts (all series concatenated, tags merged in)."""
    data = httpx.get(
        f"{url}/query", params={"db": database, "q": q, "epoch": "ms"}, timeout=30
    ).json()
    rows: list[dict[str, Any]] = []
    for result in data.get("results", []):
        assert "error" not in result, result
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                rows.append(row)
    return rows


def count_points(url: str, database: str, measurement: str, field: str) -> int:
    try:
        rows = query(url, database, f'SELECT count("{field}") FROM "{measurement}"')
    except (httpx.HTTPError, AssertionError):
        return -1
    return int(rows[0]["count"]) if rows else 0


def wait_until(
    condition: Callable[[], bool], timeout: float = 60, *, interval: float = 0.1
) -> bool:
    """Poll ``condition`` until true or the deadline; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@contextmanager
def running_ingest(
    broker_url: str, influx_url: str, database: str, spool_dir: Path, **settings: Any
) -> Iterator[IngestService]:
    """An in-process ingest service, drained and stopped on exit."""
    values: dict[str, Any] = {
        "metrics_port": 0,
        "client_id": f"ingest-{database}",
        "retry_budget_s": 1.0,
        "flush_interval_s": 0.2,
        "self_metrics_interval_s": 60.0,
    }
    values.update(settings)
    service = IngestService(
        load_settings(
            broker=broker_url,
            influx=influx_url,
            database=database,
            spool_dir=spool_dir,
            **values,
        )
    )
    service.start()
    assert service.source.subscribed.wait(10), "ingest did not subscribe"
    try:
        yield service
    finally:
        service.stop()
