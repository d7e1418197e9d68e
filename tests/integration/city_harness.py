"""A whole simulated city through the real platform, for end-to-end and board tests (no
tests here): private Mosquitto and influxd, ``citywatch.pipeline.Pipeline`` (ingest,
detector, alert store, API) on a background event loop, and the simulators publishing a
scenario time-compressed over MQTT."""

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from alerts.store import AlertStore
from citywatch.background import BackgroundPipeline
from citywatch.local_services import LocalInfluxd, LocalMosquitto, free_port
from citywatch.pipeline import PipelineConfig
from simulators.fleet import build_fleet
from simulators.labels import Label
from simulators.publisher import MqttSink
from simulators.runner import RunSummary, run
from simulators.scenario import load_scenario
from simulators.simulation import Simulation
from simulators.wards import load_wards

HANOI_UTC_OFFSET_S = 7 * 3600
EVENING_LOCAL_H = 17


def evening_start_ms(length_s: float, now_s: float | None = None) -> int:
    """The latest 17:00 Hanoi time whose run of ``length_s`` has ended by now.

    The physics follows the local time of day (fans stop as evenings cool), so a city run
    pinned to the hour its scenario is written for gives the same story whenever the
    tests run; still recent enough for the contract's age limit on timestamps."""
    now = time.time() if now_s is None else now_s
    local_midnight = (now + HANOI_UTC_OFFSET_S) // 86400 * 86400 - HANOI_UTC_OFFSET_S
    start = local_midnight + EVENING_LOCAL_H * 3600
    while start + length_s > now:
        start -= 86400
    return int(start) * 1000


@dataclass
class City:
    """A finished run: where to look and what was injected."""

    api: str
    influx: str
    database: str
    noc_key: str
    devices: list[str]
    labels: list[Label]
    summary: RunSummary
    start_ms: int
    end_ms: int

    def get(self, path: str, **params: object) -> httpx.Response:
        return httpx.get(
            f"{self.api}{path}",
            params=params,  # type: ignore[arg-type]
            headers={"Authorization": f"Bearer {self.noc_key}"},
            timeout=30,
        )


def _noc_key(store_url: str) -> str:
    async def make() -> str:
        store = await AlertStore.open(store_url)
        try:
            _, secret = await store.create_api_key("noc", [], name="e2e")
        finally:
            await store.close()
        return secret

    return asyncio.run(make())


def _publish_garbage(port: int) -> None:
    """A few malformed messages, as a real city always has (dead-letter and board data)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    topic = "cw/v1/phuong_hoan_kiem/cabinet/cab-999999/telemetry"
    for payload in (b"not json", b'{"v": 1}', b'{"v": 9, "device": "cab-999999"}'):
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


@contextmanager
def city_run(
    root: Path, *, scenario: str, devices: int, seed: int, duration_s: float | None = None
) -> Iterator[City]:
    """Play ``scenario`` on a fleet of ``devices`` through a fresh platform."""
    with LocalMosquitto() as broker, LocalInfluxd() as influx:
        store_url = f"sqlite+aiosqlite:///{root / 'alerts.db'}"
        config = PipelineConfig(
            broker=broker.url,
            influx=influx.url,
            database="city",
            store_url=store_url,
            data_dir=root,
            api_port=free_port(),
            metrics_port=0,
            self_metrics_s=1.0,
        )
        noc_key = _noc_key(store_url)
        background = BackgroundPipeline(config)
        try:
            wards = load_wards()
            story = load_scenario(scenario, {w.codename for w in wards})
            length = duration_s or story.duration or 7200.0
            start_ms = evening_start_ms(length)
            fleet = build_fleet(devices, seed, wards)
            sim = Simulation(
                fleet, story, start_ms=start_ms, duration_s=length, period_s=60.0, seed=seed
            )
            sink = MqttSink(broker.url, fleet)
            sink.connect()
            summary = run(sim, sink, speed=0, progress=False)
            _publish_garbage(broker.port)
            background.wait_idle()
            # Device time has reached the end of the scenario; let the alert layer's timers
            # (pending, keep-firing) see one more tick.
            time.sleep(2 * config.tick_s)
            background.wait_idle()
            yield City(
                api=background.pipeline.api_url,
                influx=influx.url,
                database=config.database,
                noc_key=noc_key,
                devices=[d.id for d in fleet.devices],
                labels=sim.labels(),
                summary=summary,
                start_ms=start_ms,
                end_ms=start_ms + int(length * 1000),
            )
        finally:
            background.close()
