"""A worker that starts beside a busy one gets its share of the partitions, mid-stream,
and the hand-over loses nothing and counts nothing twice; a worker that stops cleanly
leaves the membership at once. Private RabbitMQ node (MQTT plugin), real PostgreSQL and
influxd; ground truth is the simulator's own stream."""

import asyncio
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cluster_harness import (
    checkpointed_state,
    citywatch,
    consumers,
    expected_reports,
    publish_rows,
    queue_depths,
    read_stream,
    reference_state,
    run_async,
    start_worker,
    stop_worker,
    stored_reports,
    wait_until,
)
from conftest import Endpoint

from alerts.engine import make_engine
from alerts.schema import alerts
from citywatch.checkpoints import CheckpointStore
from citywatch.local_services import LocalRabbitMQ
from citywatch.membership import Membership, fair_share, workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PARTITIONS = 8
RATE = 100
"""Messages a second the devices publish: the stream of 7,214 lasts 72 s, and the
second worker starts once the first holds every partition."""


def _sim_args(start: str) -> list[str]:
    return [
        *("--devices", "60", "--seed", "7", "--period", "60"),
        *("--scenario", "sensor_faults", "--start", start, "--no-progress"),
    ]


def _active(rabbit: LocalRabbitMQ) -> Counter[str]:
    """Partitions each worker is the active consumer of."""
    owners: Counter[str] = Counter()
    for row in consumers(rabbit):
        if row["queue_name"].startswith("cw.partition.") and row["active"]:
            owners[row["consumer_tag"].rsplit(".p", 1)[0]] += 1
    return owners


def _rows(store: str, query: sa.Select[tuple[str, ...]]) -> list[tuple[str, ...]]:
    async def read() -> list[tuple[str, ...]]:
        engine = make_engine(store)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in await conn.execute(query)]
        finally:
            await engine.dispose()

    result: list[tuple[str, ...]] = run_async(read())
    return result


def test_a_second_worker_gets_its_share_mid_stream_without_loss(
    rabbit: LocalRabbitMQ, influx: Endpoint, store: str, tmp_path: Path
) -> None:
    hour = int(time.time()) // 3600 * 3600 - 3 * 3600
    start = datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    stream = tmp_path / "stream.jsonl"
    done = citywatch("simulate", "--output", str(stream), *_sim_args(start))
    assert done.returncode == 0, done.stderr
    truth = expected_reports(stream)
    database = f"rebalance_{os.getpid()}_{int(time.time())}"
    assert citywatch("partitions", "apply", "--engine", rabbit.url).returncode == 0

    a = start_worker(rabbit, influx.url, database, store, tmp_path, "a")
    b = None
    rows = [(topic, payload) for topic, payload, _ in read_stream(stream)]
    devices = ThreadPoolExecutor(1)
    published = devices.submit(publish_rows, rabbit.mqtt_port, rows, RATE)
    try:
        # Alone, the first worker is active on every partition and checkpoints them all.
        wait_until(
            lambda: (
                {r.worker for r in checkpointed_state(store)[1]} == {a.worker_id}
                and len(checkpointed_state(store)[1]) == PARTITIONS
            ),
            120,
            "the first worker holding every partition",
        )
        assert _active(rabbit) == {a.worker_id: PARTITIONS}
        b = start_worker(rabbit, influx.url, database, store, tmp_path, "b")
        began = time.monotonic()
        wait_until(
            lambda: _active(rabbit) == {a.worker_id: 4, b.worker_id: 4},
            90,
            "the partitions split 4 / 4",
            every=0.2,
        )
        balanced_s = time.monotonic() - began
        assert not published.done(), "the stream ended before the hand-over: it proves nothing"
        assert published.result(timeout=300) == len(rows)  # every message PUBACKed
        wait_until(
            lambda: sum(v for q, v in queue_depths(rabbit).items() if q.startswith("cw.part")) == 0,
            180,
            "every partition drained",
        )
        # Balanced, it stays so: nobody hands a partition back and forth.
        time.sleep(5)
        assert _active(rabbit) == {a.worker_id: 4, b.worker_id: 4}
        assert len(_rows(store, sa.select(workers.c.worker))) == 2
        stop_worker(b)
        assert b.proc.returncode == 0, b.log_text()[-3000:]
        # A clean stop leaves at once, and the broker hands its partitions back.
        assert _rows(store, sa.select(workers.c.worker)) == [(a.worker_id,)]
        wait_until(lambda: _active(rabbit) == {a.worker_id: PARTITIONS}, 30, "all back on a")
    finally:
        devices.shutdown(wait=True)
        for w in (a, b):
            if w is not None:
                stop_worker(w)
    handed = a.log_text().count("handed over to balance the load")
    print(f"\nrebalance: 4 partitions handed over in {balanced_s:.1f} s ({handed} releases)")
    assert handed == 4

    # Every report stored, exactly once.
    stored = stored_reports(influx.url, database)
    assert len(stored) == len(set(stored))
    assert set(stored) == {(r.device, r.ts) for r, _ in truth}
    # Every series' state equals one detector fed every reading once, in order: the
    # messages a worker held at the hand-over went back to the queue ahead of newer ones.
    state, rows = checkpointed_state(store)
    assert {r.worker for r in rows} == {a.worker_id, b.worker_id}
    reference = reference_state(truth)
    assert state.keys() == reference.keys()
    differ = [k for k in reference if state[k] != reference[k]]
    assert not differ, f"{len(differ)} series differ, e.g. {differ[:3]}"
    keys = _rows(
        store, sa.select(alerts.c.device, alerts.c.metric, alerts.c.type, alerts.c.started_at)
    )
    assert keys, "the scenario's faults raised no alert"
    assert not [k for k, n in Counter(keys).items() if n > 1]


def test_fair_share_counts_the_workers_alive(store: str) -> None:
    """The membership table, against real PostgreSQL: a beat counts the workers seen
    within the lease; one not seen since drops out; leaving is at once."""

    async def scenario() -> list[int]:
        checkpoints = await CheckpointStore.open(store)
        try:
            members = await Membership.open(checkpoints.engine, lease_ms=15_000)
            await Membership.open(checkpoints.engine, lease_ms=15_000)  # idempotent
            seen = [await members.beat("w1", 8, 1_000_000)]
            seen.append(await members.beat("w2", 0, 1_001_000))
            seen.append(await members.beat("w1", 8, 1_002_000))
            seen.append(await members.beat("w1", 4, 1_020_000))  # w2 not seen for 19 s
            await members.leave("w1")
            seen.append(len(await members.alive(1_020_000)))
            return seen
        finally:
            await checkpoints.close()

    assert asyncio.run(scenario()) == [1, 2, 2, 1, 0]
    assert [fair_share(8, n) for n in (1, 2, 3, 0)] == [8, 4, 3, 8]
