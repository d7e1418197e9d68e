"""Devices from a real InfluxDB (+ open alerts from the store), and the service probes."""

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from api_harness import (
    STORE_KINDS,
    client_for,
    detection,
    keys,
    open_store,
    problem,
    raise_alert,
    settings,
    store_url,
)

from alerts.store import AlertStore
from anomaly.events import DetectionKind
from api import create_app
from citywatch.local_services import free_port
from ingest.device_status import device_status_line
from telemetry import DeviceInfo, DeviceKind

MINUTE_MS = 60_000


@dataclass
class Api:
    client: httpx.AsyncClient
    store: AlertStore
    keys: dict[str, str]
    now_ms: int
    """When the fleet was written: its readings are placed relative to it, and the API
    judges silence by the real clock (fixed at import, a slow run saw devices go silent)."""

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def _write(influx_url: str, database: str, lines: list[str]) -> None:
    httpx.post(f"{influx_url}/query", params={"q": f'CREATE DATABASE "{database}"'})
    httpx.post(
        f"{influx_url}/write",
        params={"db": database, "precision": "ms"},
        content="\n".join(lines).encode(),
    ).raise_for_status()


def _status(
    device: str, *, online: bool, at: int, where: tuple[str, float, float] | None = None
) -> str:
    """A status point exactly as ingest writes it (a Last Will carries no location)."""
    info = None
    if where is not None:
        street, lat, lon = where
        info = DeviceInfo(device, DeviceKind.CABINET, "ward_a", street, lat, lon)
    reason = "status" if online else "last_will"
    return device_status_line(
        device, DeviceKind.CABINET, "ward_a", online=online, reason=reason, ts_ms=at, info=info
    )


def _fleet(now: int) -> list[str]:
    """The fleet's records, placed in time relative to ``now`` (ms)."""
    return [
        # cab-a1: reporting every minute, with a retained online status carrying its location.
        *(
            f"cabinet,device=cab-a1,ward=ward_a temp_inside={30 + i}.5,door_open=false,"
            f"mains_voltage=229.0 {now - (9 - i) * MINUTE_MS}"
            for i in range(10)
        ),
        _status(
            "cab-a1", online=True, at=now - 20 * MINUTE_MS, where=("Hàng Bạc", 21.034, 105.852)
        ),
        # seg-a2: a cable segment that fell silent 30 minutes ago (no status record).
        "cable_segment,device=seg-a2,route=r1,ward=ward_a optical_loss=1.25,signal=true "
        f"{now - 30 * MINUTE_MS}",
        # cab-a3: announced itself with its location, then its Last Will (no location) said
        # offline after its last reading.
        _status("cab-a3", online=True, at=now - 30 * MINUTE_MS, where=("Lò Đúc", 21.012, 105.858)),
        f"cabinet,device=cab-a3,ward=ward_a temp_inside=28 {now - 5 * MINUTE_MS}",
        _status("cab-a3", online=False, at=now - 4 * MINUTE_MS),
        # cab-b1: another ward.
        f"cabinet,device=cab-b1,ward=ward_b temp_inside=33 {now - MINUTE_MS}",
    ]


@pytest.fixture(params=STORE_KINDS)
async def api(request: pytest.FixtureRequest, tmp_path, influx) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    store = await open_store(store_url(request.param, tmp_path, request))
    database = f"dev_{uuid.uuid4().hex[:10]}"
    now_ms = int(time.time() * 1000)
    _write(influx.url, database, _fleet(now_ms))
    try:
        config = settings("sqlite+aiosqlite:///unused.db", influx.url, influx_database=database)
        async with client_for(create_app(config, store=store)) as client:
            yield Api(client, store, await keys(store), now_ms)
    finally:
        await store.close()


async def test_device_list_has_location_status_and_open_alerts(api: Api) -> None:
    await raise_alert(api.store, "ward_a", "cab-a1")
    await raise_alert(api.store, "ward_a", "cab-a1", kind=DetectionKind.FLOODING)
    response = await api.client.get("/devices", headers=api.auth("noc"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 4
    devices = {d["id"]: d for d in body["data"]}
    assert list(devices) == ["cab-a1", "cab-a3", "cab-b1", "seg-a2"]

    a1 = devices["cab-a1"]
    assert (a1["kind"], a1["ward"], a1["street"]) == ("cabinet", "ward_a", "Hàng Bạc")
    assert (a1["lat"], a1["lon"]) == (21.034, 105.852)
    assert a1["status"] == "online"
    assert a1["last_seen"] == api.now_ms
    assert a1["open_alerts"] == 2

    seg = devices["seg-a2"]
    assert (seg["kind"], seg["route"], seg["lat"]) == ("cable_segment", "r1", None)
    assert seg["status"] == "offline"  # silent for longer than 3 periods + grace
    a3 = devices["cab-a3"]
    assert a3["status"] == "offline"  # its Last Will came after its last report
    assert (a3["street"], a3["lat"], a3["lon"]) == ("Lò Đúc", 21.012, 105.858)
    assert devices["cab-b1"]["open_alerts"] == 0

    offline = await api.client.get(
        "/devices", params={"status": "offline"}, headers=api.auth("noc")
    )
    assert [d["id"] for d in offline.json()["data"]] == ["cab-a3", "seg-a2"]
    segments = await api.client.get(
        "/devices", params={"kind": "cable_segment"}, headers=api.auth("noc")
    )
    assert segments.json()["count"] == 1
    paged = await api.client.get(
        "/devices", params={"skip": 1, "limit": 2}, headers=api.auth("noc")
    )
    assert [d["id"] for d in paged.json()["data"]] == ["cab-a3", "cab-b1"]
    assert paged.json()["count"] == 4


async def test_crew_lists_only_its_wards_devices(api: Api) -> None:
    crew = api.auth("crew_b")
    body = (await api.client.get("/devices", headers=crew)).json()
    assert [d["id"] for d in body["data"]] == ["cab-b1"]
    assert (await api.client.get("/devices/cab-a1", headers=crew)).status_code == 404
    assert (await api.client.get("/devices/cab-b1", headers=crew)).status_code == 200


async def test_an_active_offline_alert_marks_the_device_offline(api: Api) -> None:
    offline = detection("ward_a", "cab-a1", kind=DetectionKind.OFFLINE, explanation="offline")
    changes = await api.store.apply_detection(offline, now_ms=api.now_ms - 10 * MINUTE_MS)
    await api.store.tick(now_ms=api.now_ms)  # past the offline pending period
    assert changes
    device = (await api.client.get("/devices/cab-a1", headers=api.auth("noc"))).json()
    assert device["status"] == "offline"
    assert device["open_alerts"] == 1


async def test_one_device_with_latest_readings_and_window(api: Api) -> None:
    asked_ms = int(time.time() * 1000)
    response = await api.client.get(
        "/devices/cab-a1", params={"window_s": 300}, headers=api.auth("noc")
    )
    answered_ms = int(time.time() * 1000)
    assert response.status_code == 200, response.text
    device = response.json()
    readings = {r["metric"]: (r["value"], r["unit"]) for r in device["readings"]}
    assert readings == {
        "temp_inside": (39.5, "°C"),
        "door_open": (False, "bool"),
        "mains_voltage": (229.0, "V"),
    }
    assert device["window_s"] == 300
    # Readings of the last 5 minutes, oldest first. The window is the server's "now", some
    # moment between asking and the answer (the data was written when the module loaded).
    times = [p["ts"] for p in device["window"]]
    assert times == sorted(times)
    written = [api.now_ms - (9 - i) * MINUTE_MS for i in range(10)]
    assert set(times) <= set(written)
    most = sum(t >= asked_ms - 300_000 for t in written)
    least = sum(t >= answered_ms - 300_000 for t in written)
    assert least <= len(times) <= most
    assert least >= 1
    assert device["window"][-1]["metrics"]["temp_inside"] == 39.5

    segment = (await api.client.get("/devices/seg-a2", headers=api.auth("noc"))).json()
    assert segment["readings"] == [
        {"metric": "optical_loss", "value": 1.25, "unit": "dB"},
        {"metric": "signal", "value": True, "unit": "bool"},
    ]
    assert segment["window"] == [
        {"ts": api.now_ms - 30 * MINUTE_MS, "metrics": {"optical_loss": 1.25, "signal": True}}
    ]

    assert (await api.client.get("/devices/nope", headers=api.auth("noc"))).status_code == 404
    bad = await api.client.get("/devices/DROP%20x", headers=api.auth("noc"))
    assert bad.status_code == 422
    short = await api.client.get("/devices/cab-a1", params={"window_s": 5}, headers=api.auth("noc"))
    assert short.status_code == 422


async def test_health_ready_and_metrics(api: Api) -> None:
    assert (await api.client.get("/health")).json() == {"status": "ok"}
    ready = await api.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "store": True, "influx": True}
    await api.client.get("/alerts", headers=api.auth("noc"))
    metrics = (await api.client.get("/metrics")).text
    assert 'citywatch_api_requests_total{method="GET",route="/alerts",status="200"} 1.0' in metrics
    assert "citywatch_api_sse_clients 0.0" in metrics


async def test_not_ready_and_503_when_influx_is_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        nowhere = f"http://127.0.0.1:{free_port()}"
        config = settings("sqlite+aiosqlite:///unused.db", nowhere, influx_timeout_s=1.0)
        async with client_for(create_app(config, store=store)) as client:
            ready = await client.get("/ready")
            body = problem(ready, 503, "not ready: InfluxDB unreachable")
            assert (body["store"], body["influx"]) == (True, False)
            _, key = await store.create_api_key("noc", name="noc")
            devices = await client.get("/devices", headers={"Authorization": f"Bearer {key}"})
            assert problem(devices, 503)["detail"].startswith("InfluxDB unreachable")
    finally:
        await store.close()
