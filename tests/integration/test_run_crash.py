"""``kill -9`` of ``citywatch run`` while alerts are being raised loses no alert change:
after a restart every change in the store's feed is in InfluxDB exactly once, and every
change to notify reached the webhook at least once, all its deliveries carrying one
``Idempotency-Key`` and one body (issue 13, item 5).

Real servers throughout: the session's Mosquitto and influxd, PostgreSQL on
127.0.0.1:5432, a local webhook receiver; cabinets publish water levels that flood and
drain every few minutes of device time, so alerts raise, clear and flap while the
process dies.
"""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from conftest import Endpoint
from paho.mqtt.enums import CallbackAPIVersion

from alerts.schema import alert_events, feed_cursors, metadata
from alerts.store import AlertStore
from citywatch.local_services import free_port

CITYWATCH = str(Path(sys.executable).parent / "citywatch")
WARD = "phuong_hoan_kiem"
CABINETS = 16
ROUNDS = 36
KILL_AFTER = 14
"""Rounds published before the kill; the rest go to the broker while the run is dead
and after its restart."""


@dataclass
class Hooks:
    """What the webhook receiver got: per change id, the keys and bodies it was sent."""

    url: str = ""
    keys: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    bodies: dict[int, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    holding: threading.Event = field(default_factory=threading.Event)
    """While set, answers wait (up to 30 s): deliveries are surely in flight at the kill."""


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    """A slowish receiver that answers 503 to every fifth request: deliveries are in
    flight and being retried when the run is killed."""
    state = Hooks()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.requests += 1
                busy = state.requests % 5 == 0
                if not busy:
                    change_id = json.loads(body)["id"]
                    state.keys[change_id].add(self.headers["Idempotency-Key"])
                    state.bodies[change_id].add(body)
            time.sleep(0.02)
            deadline = time.monotonic() + 30
            while state.holding.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.send_response(503 if busy else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):  # the kill cuts requests
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


class Cabinets:
    """``CABINETS`` cabinets reporting their water level, one round per minute of device
    time (ending near now); each floods for three minutes out of six, staggered."""

    def __init__(self, broker: Endpoint) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="crash-test-cabinets")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.start_ms = int(time.time() * 1000) - (ROUNDS + 5) * 60_000
        self.sent = 0

    def publish(self, round_no: int) -> None:
        for i in range(CABINETS):
            device = f"cab_crash_{i:02d}"
            wet = (round_no + i) % 6 < 3
            report = {
                "v": 1,
                "device": device,
                "kind": "cabinet",
                "ts": self.start_ms + round_no * 60_000,
                "seq": round_no + 1,
                "metrics": {"water_level": 120.0 if wet else 0.0},
            }
            info = self.client.publish(
                f"cw/v1/{WARD}/cabinet/{device}/telemetry", json.dumps(report), qos=1
            )
            info.wait_for_publish(10)
            self.sent += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def start_run(args: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    proc = subprocess.Popen(
        [CITYWATCH, "run", *args, "--api-port", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"citywatch run did not serve /health:\n{log.read_text()}")


def feed_state(store_url: str) -> tuple[int, dict[str, int], list[int], list[int]]:
    """(head, cursors, all change ids, the ids of changes to notify)."""

    async def read() -> tuple[int, dict[str, int], list[int], list[int]]:
        store = await AlertStore.open(store_url, migrate=False)
        try:
            async with store.engine.connect() as conn:
                rows = list(await conn.execute(sa.select(alert_events.c.id, alert_events.c.notify)))
                cursors = dict(
                    list(
                        await conn.execute(
                            sa.select(feed_cursors.c.consumer, feed_cursors.c.change_id)
                        )
                    )
                )
            ids = sorted(i for i, _ in rows)
            return (ids[-1] if ids else 0), cursors, ids, sorted(i for i, n in rows if n)
        finally:
            await store.close()

    return asyncio.run(read())


def clear_store(store_url: str) -> None:
    async def clear() -> None:
        store = await AlertStore.open(store_url)
        try:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            async with store.engine.begin() as conn:
                await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        finally:
            await store.close()

    asyncio.run(clear())


def exported(influx: Endpoint, db: str) -> list[int]:
    response = httpx.get(
        f"{influx.url}/query",
        params={"db": db, "q": 'SELECT "change_id" FROM "citywatch_alert"'},
        timeout=30,
    )
    response.raise_for_status()
    series = response.json()["results"][0].get("series", [])
    return [int(row[1]) for s in series for row in s["values"]]


def test_kill_9_while_alerts_are_raised_loses_no_export_and_no_notification(
    broker: Endpoint, influx: Endpoint, postgres_url: str, hooks: Hooks, tmp_path: Path
) -> None:
    clear_store(postgres_url)
    db = f"crash_{secrets.token_hex(4)}"
    args = [
        "--broker",
        broker.url,
        "--influx",
        influx.url,
        "--database",
        db,
        "--store",
        postgres_url,
        "--webhook-url",
        hooks.url,
        "--webhook-secret",
        secrets.token_hex(16),
        "--metrics-port",
        "0",
        "--data-dir",
        str(tmp_path / "run"),
    ]
    log = tmp_path / "run.log"
    cabinets = Cabinets(broker)
    proc = start_run(args, free_port(), log)
    try:
        # Webhook deliveries are held in flight from the start, so its cursor is behind
        # the head at the kill whatever the machine's speed (held only once the rounds
        # were published, a fast run had delivered every change by then: CI saw all
        # cursors at the head, 131 of 131).
        hooks.holding.set()
        for round_no in range(KILL_AFTER):
            cabinets.publish(round_no)
            time.sleep(0.25)
        # Until alerts are flowing, then kill -9 mid-stream.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            head, cursors, _, _ = feed_state(postgres_url)
            if head >= 40 and min(cursors.values(), default=head) < head:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        hooks.holding.clear()
        head_at_kill, cursors_at_kill, _, _ = feed_state(postgres_url)
        for round_no in range(KILL_AFTER, KILL_AFTER + 6):  # to the broker, while dead
            cabinets.publish(round_no)
        proc = start_run(args, free_port(), log)
        for round_no in range(KILL_AFTER + 6, ROUNDS):
            cabinets.publish(round_no)
            time.sleep(0.1)
        # Until every consumer has reached the head and it stays there.
        deadline, settled_since = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            head, cursors, _, _ = feed_state(postgres_url)
            if len(cursors) == 3 and all(c == head for c in cursors.values()):
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > 3:
                    break
            else:
                settled_since = None
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        cabinets.close()
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert proc.returncode == 0, text
    head, cursors, ids, notify_ids = feed_state(postgres_url)
    print(
        f"\n{cabinets.sent} reports; at the kill: head {head_at_kill}, cursors "
        f"{cursors_at_kill}; at the end: {len(ids)} changes ({len(notify_ids)} to notify), "
        f"head {head}, cursors {cursors}; webhook requests {hooks.requests}"
    )
    # The kill came while work was pending: some consumer was behind the head.
    assert head_at_kill >= 40
    assert min(cursors_at_kill.values(), default=0) < head_at_kill
    assert set(cursors) == {
        f"export:influx:{db}",
        f"notify:webhook:{hooks.url}",
        f"notify:mqtt:{broker.host}:{broker.port}",
    }
    assert all(c == head for c in cursors.values()), cursors
    # Every change exported exactly once.
    points = exported(influx, db)
    assert sorted(points) == ids
    # Every change to notify delivered at least once, each with one key and one body.
    assert sorted(hooks.keys) == notify_ids
    assert all(keys == {f"citywatch-{i}"} for i, keys in hooks.keys.items())
    assert all(len(bodies) == 1 for bodies in hooks.bodies.values())
    assert all(msgspec.json.decode(next(iter(b)))["id"] == i for i, b in hooks.bodies.items())
