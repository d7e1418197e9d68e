"""Helpers for the cluster tests (no tests here): a private RabbitMQ node, workers as
processes, the simulator's stream as ground truth, and readers of InfluxDB, the
checkpoints and the broker's consumers."""

import asyncio
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from anomaly import Detector
from anomaly.layout import LAST_TS, N
from citywatch import partition_state
from citywatch.checkpoints import CheckpointStore
from citywatch.local_services import LocalRabbitMQ
from telemetry import DecodeError, ReadingBatch, Report, Topic, decode_message

CITYWATCH = str(Path(sys.executable).with_name("citywatch"))
SeriesState = dict[tuple[str, int], tuple[float, float]]


def run_async(coro: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def citywatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CITYWATCH, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def worker_id(self) -> str:
        return f"{os.uname().nodename}-{self.proc.pid}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(
    rabbit: LocalRabbitMQ,
    influx: str,
    database: str,
    store: str,
    folder: Path,
    name: str,
    partitions: int = 8,
    env: dict[str, str] | None = None,
) -> WorkerProc:
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                CITYWATCH,
                "worker",
                "--engine",
                rabbit.url,
                "--influx",
                influx,
                "--database",
                database,
                "--store",
                store,
                "--partitions",
                str(partitions),
                "--data-dir",
                str(folder / name),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
    return WorkerProc(proc, log)


def stop_worker(worker: WorkerProc, timeout: float = 60) -> None:
    if worker.proc.poll() is None:
        worker.proc.terminate()
        try:
            worker.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()


def consumers(rabbit: LocalRabbitMQ) -> list[dict[str, Any]]:
    """Every consumer on the node: queue, consumer tag, whether it is the active one."""
    out = rabbit.ctl(
        "list_consumers", "queue_name", "consumer_tag", "active", "--formatter", "json", "-q"
    )
    rows: list[dict[str, Any]] = json.loads(out or "[]")
    return rows


def queue_depths(rabbit: LocalRabbitMQ) -> dict[str, int]:
    """Messages (ready + unacknowledged) per queue."""
    out = rabbit.ctl("list_queues", "name", "messages", "--formatter", "json", "-q")
    return {row["name"]: int(row["messages"]) for row in json.loads(out or "[]")}


def wait_until(check: Any, timeout: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def expected_reports(stream: Path) -> list[tuple[Report, str]]:
    """The reports of a simulator's ``--output`` stream that the contract accepts, in
    publish order, with their wards."""
    now_ms = time.time_ns() // 1_000_000
    out = []
    for line in stream.read_text().splitlines():
        row = json.loads(line)
        payload = json.dumps(row["payload"]).encode()
        try:
            topic, message = decode_message(row["topic"], payload, now_ms=now_ms)
        except DecodeError:
            continue
        if isinstance(message, Report) and isinstance(topic, Topic):
            out.append((message, topic.ward))
    return out


def reference_state(
    reports: list[tuple[Report, str]],
) -> dict[tuple[str, int], tuple[float, float]]:
    """Per series (device, metric id): (readings learned, last time) of one detector fed
    every report once, with the worker's rule (a reading not newer than its series'
    last one is not fed)."""
    last: dict[tuple[str, str], int] = {}
    kept: list[Report] = []
    wards: list[str] = []
    for report, ward in reports:
        fresh = {}
        for metric, value in report.metrics.items():
            key = (report.device, metric)
            if report.ts > last.get(key, -1):
                last[key] = report.ts
                fresh[metric] = value
        if fresh:
            kept.append(Report(report.v, report.device, report.kind, report.ts, report.seq, fresh))
            wards.append(ward)
    det = Detector()
    det.update(ReadingBatch.from_reports(kept, wards))
    return series_state(det)


def series_state(det: Detector) -> SeriesState:
    out = {}
    for slot in range(det.registry.size):
        out[det.registry.key(slot)] = (
            float(det.state.f64[slot, N]),
            float(det.state.f64[slot, LAST_TS]),
        )
    return out


def checkpointed_state(
    store_url: str,
) -> tuple[dict[tuple[str, int], tuple[float, float]], list[Any]]:
    """The union of every partition's checkpointed detector, and the checkpoint rows."""

    async def read() -> list[Any]:
        store = await CheckpointStore.open(store_url)
        try:
            return await store.all()
        finally:
            await store.close()

    rows = run_async(read())
    state: SeriesState = {}
    for row in rows:
        state.update(series_state(partition_state.detector_of(row, None)))
    return state, rows


def stored_reports(influx: str, database: str) -> list[tuple[str, int]]:
    """(device, time ms) of every report point in InfluxDB (cabinets and segments)."""
    out = []
    for measurement in ("cabinet", "cable_segment"):
        body = httpx.get(
            f"{influx}/query",
            params={"db": database, "epoch": "ms", "q": f'SELECT * FROM "{measurement}"'},
            timeout=60,
        ).json()
        for series in body["results"][0].get("series", []):
            at, device = series["columns"].index("time"), series["columns"].index("device")
            out.extend((row[device], int(row[at])) for row in series["values"])
    return out


def read_stream(stream: Path) -> list[tuple[str, bytes, int]]:
    """A simulator's ``--output`` stream: (topic, payload, device time ms) per message, in
    publish order."""
    out = []
    for line in stream.read_text().splitlines():
        row = json.loads(line)
        payload = row["payload"]
        out.append((row["topic"], json.dumps(payload).encode(), int(payload.get("ts") or 0)))
    return out


def publish_rows(port: int, rows: list[tuple[str, bytes]], rate: float | None) -> int:
    """QoS 1 over MQTT 3.1.1 in order, waiting for the broker's PUBACK of each; at
    ``rate`` messages per second, else as fast as the broker takes them. How many were
    PUBACKed."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(200)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        began = time.monotonic()
        pending = []
        acked = 0
        for i, (topic, payload) in enumerate(rows):
            pending.append(client.publish(topic, payload, qos=1))
            if rate is not None and i % 10 == 9:
                ahead = began + (i + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if len(pending) >= 150:
                for info in pending:
                    info.wait_for_publish(30)
                    acked += info.is_published()
                pending = []
        for info in pending:
            info.wait_for_publish(30)
            acked += info.is_published()
        return acked
    finally:
        client.disconnect()
        client.loop_stop()
