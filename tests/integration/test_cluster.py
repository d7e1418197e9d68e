"""Cluster mode against a private RabbitMQ node (MQTT plugin), real PostgreSQL and influxd:
two workers share 8 partitions, one is killed with SIGKILL mid-stream; a broker restart;
bad input dead-lettered. Ground truth is the simulator's own stream (``--output``, same
seed and start)."""

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from cluster_harness import (
    CITYWATCH,
    checkpointed_state,
    citywatch,
    consumers,
    expected_reports,
    queue_depths,
    reference_state,
    run_async,
    start_worker,
    stop_worker,
    stored_reports,
    wait_until,
)
from conftest import Endpoint
from paho.mqtt.enums import CallbackAPIVersion

from alerts.engine import make_engine
from alerts.schema import alerts
from citywatch import partition_state
from citywatch.local_services import LocalRabbitMQ
from citywatch.partitions import DEADLETTER_QUEUE, partition_of
from ingest.deadletter import decode_deadletter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DEVICES = "60"
SEED = "5"


def _start_iso(hours_ago: int = 3) -> str:
    now = int(time.time()) // 3600 * 3600 - hours_ago * 3600
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _sim_args(start: str) -> list[str]:
    return [
        "--devices",
        DEVICES,
        "--seed",
        SEED,
        "--period",
        "60",
        "--scenario",
        "sensor_faults",
        "--start",
        start,
        "--no-progress",
    ]


def _ground_truth(tmp_path: Path, start: str) -> Path:
    stream = tmp_path / "stream.jsonl"
    done = citywatch("simulate", "--output", str(stream), *_sim_args(start))
    assert done.returncode == 0, done.stderr
    return stream


def _active_by_queue(rabbit: LocalRabbitMQ) -> dict[str, list[str]]:
    active: dict[str, list[str]] = {}
    for row in consumers(rabbit):
        if row["queue_name"].startswith("cw.partition.") and row["active"]:
            active.setdefault(row["queue_name"], []).append(row["consumer_tag"])
    return active


def _alert_keys(store: str) -> list[tuple[str, str, str, int]]:
    async def read() -> list[tuple[str, str, str, int]]:
        engine = make_engine(store)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(alerts.c.device, alerts.c.metric, alerts.c.type, alerts.c.started_at)
                )
                return [tuple(r) for r in rows]  # type: ignore[misc]
        finally:
            await engine.dispose()

    result: list[tuple[str, str, str, int]] = run_async(read())
    return result


def test_two_workers_fail_over_without_loss_or_double_count(
    rabbit: LocalRabbitMQ, influx: Endpoint, store: str, tmp_path: Path
) -> None:
    start = _start_iso()
    truth = expected_reports(_ground_truth(tmp_path, start))
    database = f"cluster_{os.getpid()}_{int(time.time())}"
    applied = citywatch("partitions", "apply", "--engine", rabbit.url)
    assert applied.returncode == 0, applied.stderr

    a = start_worker(rabbit, influx.url, database, store, tmp_path, "a")
    b = start_worker(rabbit, influx.url, database, store, tmp_path, "b")
    try:
        wait_until(
            lambda: (
                sum(r["queue_name"].startswith("cw.partition.") for r in consumers(rabbit)) == 16
            ),
            90,
            "both workers consuming all 8 partitions",
        )
        active = _active_by_queue(rabbit)
        assert sorted(active) == [f"cw.partition.{p:03d}" for p in range(8)]
        assert all(len(tags) == 1 for tags in active.values()), active
        owner = {q: tags[0].rsplit(".p", 1)[0] for q, tags in active.items()}
        # Kill a worker that is active somewhere (the first to subscribe is active
        # everywhere until the workers balance themselves).
        victim, survivor = (a, b) if a.worker_id in owner.values() else (b, a)
        victim_queues = sorted(q for q, w in owner.items() if w == victim.worker_id)
        assert victim_queues

        sim = subprocess.Popen(
            [
                CITYWATCH,
                "simulate",
                "--broker",
                rabbit.mqtt_url,
                "--mode",
                "pooled",
                "--speed",
                "400",
                *_sim_args(start),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Mid-stream: a third of the partitions' first checkpoints are in.
        wait_until(
            lambda: len(checkpointed_state(store)[1]) >= 3, 120, "first checkpoints", every=0.2
        )
        time.sleep(3)
        assert sim.poll() is None, "the simulation ended before the kill"
        victim.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.proc.wait()

        def taken_over() -> bool:
            active = _active_by_queue(rabbit)
            return all(active.get(q, [""])[0].startswith(survivor.worker_id) for q in victim_queues)

        wait_until(taken_over, 60, "the survivor active on the victim's partitions", every=0.05)
        broker_failover = time.monotonic() - killed_at
        versions_at_kill = {r.partition: r.version for r in checkpointed_state(store)[1]}

        def survivor_saved() -> bool:
            rows = {r.partition: r for r in checkpointed_state(store)[1]}
            return all(
                rows[int(q[-3:])].worker == survivor.worker_id
                and rows[int(q[-3:])].version > versions_at_kill.get(int(q[-3:]), 0)
                for q in victim_queues
            )

        wait_until(survivor_saved, 120, "the survivor's first checkpoints", every=0.05)
        resumed = time.monotonic() - killed_at
        print(
            f"\nfail-over: broker moved {len(victim_queues)} partitions in "
            f"{broker_failover:.2f} s; survivor's first checkpoint on all of them after "
            f"{resumed:.2f} s"
        )

        out, err = sim.communicate(timeout=300)
        assert sim.returncode == 0, err
        # RabbitMQ 3.10 refuses MQTT 5: the simulator fell back to 3.1.1 by itself.
        assert "failed 0" in out + err, out + err
        wait_until(
            lambda: sum(v for q, v in queue_depths(rabbit).items() if q.startswith("cw.part")) == 0,
            180,
            "every partition drained",
        )
        stop_worker(survivor)
        assert survivor.proc.returncode == 0, survivor.log_text()[-3000:]
    finally:
        for w in (a, b):
            stop_worker(w)

    # Every report stored, exactly once (a point is unique by series and time).
    stored = stored_reports(influx.url, database)
    want = {(r.device, r.ts) for r, _ in truth}
    assert len(stored) == len(set(stored))
    assert set(stored) == want

    # The survivor continued the victim's baselines: every series' state equals one
    # detector fed every reading once (no reading lost, none counted twice).
    state, rows = checkpointed_state(store)
    assert {r.worker for r in rows} == {survivor.worker_id}
    reference = reference_state(truth)
    assert state.keys() == reference.keys()
    differ = [k for k in reference if state[k] != reference[k]]
    assert not differ, f"{len(differ)} series differ, e.g. {differ[:3]}"
    # Every ward's series live in its partition's checkpoint.
    for row in rows:
        det = partition_state.detector_of(row, None)
        wards = {det.registry.ward_of_slot(s) for s in range(det.registry.size)}
        assert all(partition_of(w, 8) == row.partition for w in wards)

    # No detection made two alerts.
    keys = _alert_keys(store)
    assert keys, "the scenario's faults raised no alert"
    repeated = [k for k, n in Counter(keys).items() if n > 1]
    assert not repeated, repeated


def test_broker_restart_loses_nothing_acknowledged(
    rabbit: LocalRabbitMQ, influx: Endpoint, store: str, tmp_path: Path
) -> None:
    start = _start_iso(4)
    truth = expected_reports(_ground_truth(tmp_path, start))
    database = f"restart_{os.getpid()}_{int(time.time())}"
    assert citywatch("partitions", "apply", "--engine", rabbit.url).returncode == 0
    sim = subprocess.Popen(
        [
            CITYWATCH,
            "simulate",
            "--broker",
            rabbit.mqtt_url,
            "--mode",
            "pooled",
            "--speed",
            "300",
            *_sim_args(start),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(
        lambda: sum(v for q, v in queue_depths(rabbit).items() if q.startswith("cw.part")) > 500,
        120,
        "reports queued",
    )
    rabbit.stop(kill=True)  # no goodbye: what was PUBACKed must be on disk
    time.sleep(1)
    rabbit.start()
    out, err = sim.communicate(timeout=300)
    assert sim.returncode == 0, err
    summary = out + err
    sent = int(summary.split("sent ")[1].split(",")[0])
    failed = int(summary.split("failed ")[1].split()[0])
    want = {(r.device, r.ts) for r, _ in truth}

    def drained() -> bool:
        # All 8 partition queues back (recovering after the restart, a queue is briefly
        # not listed, which summed to 0) and empty, and what they held is stored.
        depths = [v for q, v in queue_depths(rabbit).items() if q.startswith("cw.part")]
        if len(depths) < 8 or sum(depths) != 0:
            return False
        return len(want - set(stored_reports(influx.url, database))) <= failed

    worker = start_worker(rabbit, influx.url, database, store, tmp_path, "w")
    try:
        wait_until(drained, 180, "every partition drained into InfluxDB")
    finally:
        stop_worker(worker)
    stored = set(stored_reports(influx.url, database))
    missing = want - stored
    print(f"\nbroker killed and restarted: {sent} PUBACKed, {failed} not, {len(missing)} missing")
    # The simulator resends what was not acknowledged; nothing acknowledged is lost.
    assert len(missing) <= failed
    assert stored <= want


def test_bad_input_is_dead_lettered_with_its_reason(
    rabbit: LocalRabbitMQ, influx: Endpoint, store: str, tmp_path: Path
) -> None:
    database = f"badinput_{os.getpid()}"
    worker = start_worker(rabbit, influx.url, database, store, tmp_path, "w")
    try:
        wait_until(lambda: len(consumers(rabbit)) >= 8, 90, "the worker consuming")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.connect("127.0.0.1", rabbit.mqtt_port)
        client.loop_start()
        topic = "cw/v1/phuong_hoan_kiem/cabinet/cab-000001/telemetry"
        client.publish(topic, b"not json", qos=1).wait_for_publish(10)
        client.publish(topic, b'{"v": 1, "device": "cab-000001"}', qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()

        async def letters() -> list[tuple[str, str]]:
            connection = await aio_pika.connect(rabbit.url)
            got: list[tuple[str, str]] = []
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(DEADLETTER_QUEUE)
                deadline = time.monotonic() + 60
                while len(got) < 2 and time.monotonic() < deadline:
                    message = await queue.get(fail=False)
                    if message is None:
                        await asyncio.sleep(0.2)
                        continue
                    letter = decode_deadletter(message.body)
                    got.append((message.routing_key or "", letter.reason))
                    await message.ack()
            return got

        got = run_async(letters())
    finally:
        stop_worker(worker)
    assert len(got) == 2, got
    for routing_key, reason in got:
        assert routing_key == f"cw.v1._deadletter.{reason}"
    assert got[0][1] != got[1][1] or got[0][1]
