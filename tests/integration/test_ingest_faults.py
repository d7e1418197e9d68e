"""Faults: InfluxDB away and back, ingest killed with SIGKILL, broker restarted."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import Endpoint
from test_ingest_support import (
    Publisher,
    cabinet_report,
    count_points,
    query,
    running_ingest,
    telemetry_topic,
    wait_until,
)

from citywatch.local_services import LocalInfluxd, LocalMosquitto
from telemetry import encode

CITYWATCH = str(Path(sys.executable).parent / "citywatch")


def _messages(first: int, last: int, devices: int = 10) -> list[tuple[str, bytes]]:
    reports = [
        cabinet_report(f"cab-{d:03d}", i) for i in range(first, last) for d in range(devices)
    ]
    return [(telemetry_topic(r), encode(r)) for r in reports]


def _assert_exactly_once(url: str, db: str, n_reports: int, devices: int = 10) -> None:
    rows = query(url, db, "SELECT temp_inside, humidity, device FROM cabinet")
    keys = [(r["device"], r["time"]) for r in rows]
    assert len(keys) == len(set(keys)) == n_reports * devices
    for row in rows:
        i = (row["time"] - cabinet_report("x", 0).ts) // 1000
        assert row["humidity"] == float(i % 100)


def test_influxd_stopped_mid_stream_every_reading_once(
    broker: Endpoint, own_influx: LocalInfluxd, tmp_path: Path
) -> None:
    db = "influx_down"
    pub = Publisher(broker.port, "influx-down-pub")
    with running_ingest(broker.url, own_influx.url, db, tmp_path, retry_budget_s=0.3) as service:
        pub.publish_all(_messages(0, 50))
        assert wait_until(lambda: count_points(own_influx.url, db, "cabinet", "humidity") == 500)
        own_influx.stop(kill=True)
        pub.publish_all(_messages(50, 150))
        assert wait_until(
            lambda: service.stats.points_spooled >= 1000 and service.stats.acked >= 1500
        )
        assert len(service.spool) > 0
        own_influx.start()
        pub.publish_all(_messages(150, 200))
        assert wait_until(lambda: count_points(own_influx.url, db, "cabinet", "humidity") == 2000)
        assert wait_until(lambda: len(service.spool) == 0)
        assert service.stats.points_replayed >= 1000
    pub.close()
    _assert_exactly_once(own_influx.url, db, 200)


def test_ingest_killed_mid_stream_every_reading_present(
    broker: Endpoint, influx: Endpoint, tmp_path: Path
) -> None:
    db = "ingest_killed"
    command = [
        CITYWATCH, "ingest", "--broker", broker.url, "--influx", influx.url, "--database", db,
        "--spool-dir", str(tmp_path / "spool"), "--metrics-port", "0",
        "--client-id", "killed-ingest",
    ]  # fmt: skip
    env = {**os.environ, "CITYWATCH_FLUSH_INTERVAL_S": "0.2", "CITYWATCH_BATCH_LINES": "200"}
    log = (tmp_path / "ingest.log").open("ab")
    first = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    pub = Publisher(broker.port, "killed-pub")
    try:
        # The session exists once a first batch is stored (re-publishing is idempotent:
        # same device and timestamp); then kill ingest mid-stream.
        for _ in range(20):
            pub.publish_all(_messages(0, 20))
            if wait_until(lambda: count_points(influx.url, db, "cabinet", "humidity") > 0, 3):
                break
        else:
            raise AssertionError("ingest never stored anything")
        pub.publish_all(_messages(20, 300))
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        pub.publish_all(_messages(300, 400))  # queued by the broker for the dead session
        second = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            assert wait_until(
                lambda: count_points(influx.url, db, "cabinet", "humidity") == 4000, timeout=90
            )
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
        pub.close()
        log.close()
    _assert_exactly_once(influx.url, db, 400)


def test_broker_restart_ingest_reconnects_and_continues(
    own_broker: LocalMosquitto, influx: Endpoint, tmp_path: Path
) -> None:
    db = "broker_restart"
    with running_ingest(own_broker.url, influx.url, db, tmp_path) as service:
        pub = Publisher(own_broker.port, "restart-pub")
        pub.publish_all(_messages(0, 50))
        assert wait_until(lambda: count_points(influx.url, db, "cabinet", "humidity") == 500)
        pub.close()
        own_broker.stop()
        assert wait_until(lambda: not service.source.connected.is_set(), timeout=10)
        own_broker.start()
        assert service.source.connected.wait(40), "ingest did not reconnect"
        pub = Publisher(own_broker.port, "restart-pub")
        pub.publish_all(_messages(50, 100))
        pub.close()
        assert wait_until(lambda: count_points(influx.url, db, "cabinet", "humidity") == 1000)
    _assert_exactly_once(influx.url, db, 100)
