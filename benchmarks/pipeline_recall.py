"""Every faulted device gets a *raised* alert, through the whole platform (run by hand).

A simulated city plays a scenario through a private Mosquitto and influxd, ingest, the
detector, the alert store and the API, on the wall clock at ``--speed``; then the API is
asked, per device of the ground truth, which alerts reached a crew (``raised_at`` set:
not dropped while pending): ``citywatch.scorecard`` (faults caught, missed, median time
to alert, false alarms), as ``citywatch demo`` ends.

    python benchmarks/pipeline_recall.py [--devices 300] [--seed 11] [--period 10]
        [--speed 120] [--scenario monsoon_evening]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from alerts.store import AlertStore
from citywatch.background import BackgroundPipeline
from citywatch.local_services import LocalInfluxd, LocalMosquitto, free_port
from citywatch.pipeline import PipelineConfig
from citywatch.scorecard import crew_cards, score
from simulators.fleet import build_fleet
from simulators.publisher import MqttSink
from simulators.runner import run
from simulators.scenario import load_scenario
from simulators.simulation import Simulation
from simulators.wards import load_wards


def _key(store_url: str) -> str:
    async def make() -> str:
        store = await AlertStore.open(store_url)
        try:
            return (await store.create_api_key("noc", [], name="recall"))[1]
        finally:
            await store.close()

    return asyncio.run(make())


def _alerts(api: str, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = httpx.get(
            f"{api}/alerts",
            params={"skip": len(out), "limit": 200},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).json()
        out += page["data"]
        if len(out) >= page["count"] or not page["data"]:
            return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=300)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--period", type=float, default=10.0)
    ap.add_argument("--speed", type=float, default=120.0)
    ap.add_argument("--scenario", default="monsoon_evening")
    ap.add_argument(
        "--then-stop",
        type=float,
        default=0.0,
        metavar="S",
        help="then stop the whole fleet and count the crew cards again after S seconds",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, LocalMosquitto() as broker, LocalInfluxd() as db:
        root = Path(tmp)
        store_url = f"sqlite+aiosqlite:///{root / 'alerts.db'}"
        config = PipelineConfig(
            broker=broker.url,
            influx=db.url,
            database="recall",
            store_url=store_url,
            data_dir=root,
            api_port=free_port(),
            metrics_port=0,
        )
        key = _key(store_url)
        background = BackgroundPipeline(config)
        try:
            wards = load_wards()
            story = load_scenario(args.scenario, {w.codename for w in wards})
            length = story.duration or 7200.0
            start_ms = (int(time.time()) - int(length) - 600) * 1000
            fleet = build_fleet(args.devices, args.seed, wards)
            sim = Simulation(
                fleet,
                story,
                start_ms=start_ms,
                duration_s=length,
                period_s=args.period,
                seed=args.seed,
            )
            sink = MqttSink(broker.url, fleet)
            sink.connect()
            summary = run(sim, sink, speed=args.speed, progress=True)
            background.wait_idle()
            time.sleep(3 * config.tick_s)
            background.wait_idle()
            alerts = _alerts(background.pipeline.api_url, key)
            stopped: list[dict[str, Any]] = []
            if args.then_stop > 0:
                sink.close()  # every device falls silent at once
                time.sleep(args.then_stop)
                background.wait_idle()
                stopped = _alerts(background.pipeline.api_url, key)
        finally:
            background.close()
    card = score(sim.labels(), alerts)
    print(
        f"{args.scenario}: {args.devices} devices, seed {args.seed}, period {args.period} s, "
        f"speed {args.speed}; {summary.sent} messages; {len(alerts)} alerts"
    )
    for line in card.lines():
        print(line)
    print("after the scenario:", crew_cards(alerts).line())
    if stopped:
        offline = sum(1 for a in stopped if a["type"] == "offline" and a["state"] != "cleared")
        print(
            f"{args.then_stop:g} s after the whole fleet stopped ({offline} offline alerts):",
            crew_cards(stopped).line(),
        )
    return 1 if card.missed else 0


if __name__ == "__main__":
    sys.exit(main())
