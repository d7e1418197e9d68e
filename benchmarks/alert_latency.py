"""End-to-end alert latency: fault injected → alert on the SSE stream, at a stated load.

The platform (``citywatch.pipeline``: ingest, detector, alert store, API) runs in this
process against a private Mosquitto and influxd; the simulator runs as a second process
(``citywatch simulate``, real time, ``--period`` seconds per report) and plays
``benchmarks/scenarios/latency.toml``: step faults (cable cuts, a flood, a mains outage)
two minutes in, after the detectors' warm-up. An SSE client records when each alert is
raised. Printed per fault kind and overall:

- fault → alert: SSE arrival minus the fault's start in the ground-truth labels (what a
  crew experiences; includes the type's pending period: power loss waits a minute by
  policy, so a flickering feed does not page anyone);
- condition → alert: SSE arrival minus the device time of the first reading in which the
  detector saw the condition (the alert's ``started_at``): the platform's own latency —
  MQTT, ingest batching, InfluxDB write, detector, store, API — plus any pending period.
  Split at the store's commit (the change's ``at_ms``, platform time, which follows the
  devices' clocks and so wall time at ``--speed 1``): condition → stored, stored → client.

Usage: ``.venv/bin/python benchmarks/alert_latency.py --devices 10000 --period 1``
(10,000 reports/s). Bounded: the run lasts the scenario (4 min) plus a drain.
"""

import argparse
import asyncio
import csv
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from alerts.store import AlertStore
from citywatch.background import BackgroundPipeline
from citywatch.local_services import LocalInfluxd, LocalMosquitto, free_port
from citywatch.pipeline import PipelineConfig

SCENARIO = Path(__file__).parent / "scenarios" / "latency.toml"
IMMEDIATE = {"cable_cut", "flooding"}
"""Fault kinds whose alert types raise at once (no pending period)."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class SseRecorder(threading.Thread):
    """Records (arrival ms, change) of every SSE event until stopped."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Last-Event-ID": "0"}
        try:
            with httpx.stream("GET", self.url, headers=headers, timeout=None) as stream:
                for line in stream.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("data:"):
                        data = json.loads(line[5:])
                        if "alert_id" in data:
                            self.events.append((time.time_ns() // 1_000_000, data))
        except httpx.HTTPError:
            if not self.stop.is_set():  # the API going away at the end is expected
                raise


def noc_key(store_url: str) -> str:
    async def make() -> str:
        store = await AlertStore.open(store_url)
        try:
            return (await store.create_api_key("noc", [], name="latency bench"))[1]
        finally:
            await store.close()

    return asyncio.run(make())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--period", type=float, default=1.0, help="seconds between reports")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for chatty in ("httpx", "httpcore", "uvicorn.error"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if args.devices < 1 or args.period <= 0:
        parser.error("--devices must be >= 1 and --period > 0")
    load = args.devices / args.period
    citywatch = Path(sys.executable).parent / "citywatch"
    with tempfile.TemporaryDirectory() as tmp, LocalMosquitto() as broker, LocalInfluxd() as db:
        root = Path(tmp)
        store_url = f"sqlite+aiosqlite:///{root / 'alerts.db'}"
        key = noc_key(store_url)
        config = PipelineConfig(
            broker=broker.url,
            influx=db.url,
            store_url=store_url,
            data_dir=root,
            api_port=free_port(),
            metrics_port=0,
        )
        platform = BackgroundPipeline(config)
        recorder = SseRecorder(f"{platform.pipeline.api_url}/alerts/stream", key)
        recorder.start()
        labels_path = root / "labels.csv"
        print(f"load: {args.devices} devices every {args.period:g} s = {load:,.0f} reports/s")
        started = time.monotonic()
        sim = subprocess.run(
            [
                str(citywatch),
                "simulate",
                "--broker",
                broker.url,
                "--devices",
                str(args.devices),
                "--period",
                str(args.period),
                "--speed",
                "1",
                "--seed",
                str(args.seed),
                "--scenario",
                str(args.scenario),
                "--labels",
                str(labels_path),
                "--mode",
                "pooled",
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
        print(*sim.stderr.strip().splitlines()[-3:], sep="\n")
        platform.wait_idle(timeout_s=600)
        ingest = platform.pipeline.ingest
        assert ingest is not None
        received = ingest.stats.received
        time.sleep(2)
        recorder.stop.set()
        platform.close()
        fault_start: dict[str, tuple[str, int]] = {}
        with labels_path.open() as f:
            for row in csv.DictReader(f):
                start = int(datetime.fromisoformat(row["start"]).timestamp() * 1000)
                if row["device"] not in fault_start or start < fault_start[row["device"]][1]:
                    fault_start[row["device"]] = (row["fault"], start)

    first_alert: dict[str, int] = {}
    first_type: dict[str, Counter[str]] = defaultdict(Counter)
    reading_lat: dict[str, list[float]] = defaultdict(list)
    to_store: list[float] = []  # condition -> committed in the store (platform time)
    to_client: list[float] = []  # committed -> on the SSE client
    for arrived, change in recorder.events:
        alert = change.get("alert") or {}
        if change["kind"] != "raised" or not alert.get("device"):
            continue
        device = alert["device"]
        if (
            device in fault_start
            and device not in first_alert
            and arrived >= fault_start[device][1]
        ):
            first_alert[device] = arrived
            first_type[fault_start[device][0]][alert["type"]] += 1
            reading_lat[fault_start[device][0]].append((arrived - alert["started_at"]) / 1000)
            if fault_start[device][0] in IMMEDIATE:
                to_store.append((change["at_ms"] - alert["started_at"]) / 1000)
                to_client.append((arrived - change["at_ms"]) / 1000)

    print(
        f"\nran {wall:.0f} s wall; ingest received {received:,} messages "
        f"({received / wall:,.0f}/s sustained)"
    )
    print(
        f"{'fault kind':<14}{'faulted':>8}{'alerted':>8}"
        f"{'fault→alert p50':>17}{'p99':>8}{'condition→alert p50':>21}{'p99':>8}"
    )
    overall: list[float] = []
    overall_reading: list[float] = []
    by_kind: dict[str, list[float]] = defaultdict(list)
    faulted: dict[str, int] = defaultdict(int)
    for device, (kind, start) in fault_start.items():
        faulted[kind] += 1
        if device in first_alert:
            by_kind[kind].append((first_alert[device] - start) / 1000)
    for kind in sorted(faulted):
        lat, rd = by_kind[kind], reading_lat[kind]
        if kind in IMMEDIATE:
            overall += lat
            overall_reading += rd
        cells = (
            f"{percentile(lat, 0.5):>17.2f}{percentile(lat, 0.99):>8.2f}"
            if lat
            else f"{'—':>17}{'—':>8}"
        )
        cells += (
            f"{percentile(rd, 0.5):>21.2f}{percentile(rd, 0.99):>8.2f}"
            if rd
            else f"{'—':>21}{'—':>8}"
        )
        print(f"{kind:<14}{faulted[kind]:>8}{len(lat):>8}{cells}")
    for kind, types in sorted(first_type.items()):
        print(f"  {kind}: first alert raised: " + ", ".join(f"{t} {n}" for t, n in types.items()))
    if overall:
        print(
            f"\nimmediate-policy faults at {load:,.0f} reports/s: fault→alert "
            f"p50 {statistics.median(overall):.2f} s, p99 {percentile(overall, 0.99):.2f} s; "
            f"condition→alert p50 {statistics.median(overall_reading):.2f} s, "
            f"p99 {percentile(overall_reading, 0.99):.2f} s (goal: p99 < 2 s at 10,000/s)"
        )
        print(
            f"  of which condition → stored p50 {statistics.median(to_store):.2f} s, "
            f"p99 {percentile(to_store, 0.99):.2f} s (MQTT, ingest batch, InfluxDB, detector, "
            f"store); stored → SSE client p50 {statistics.median(to_client):.2f} s, "
            f"p99 {percentile(to_client, 0.99):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
