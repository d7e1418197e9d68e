"""SIGTERM mid-stream: ``citywatch ingest`` drains, flushes, exits 0; a restart gets the rest."""

import os
import signal
import subprocess
import threading
from pathlib import Path

from conftest import Endpoint
from test_ingest_faults import CITYWATCH, _assert_exactly_once, _messages
from test_ingest_support import (
    Publisher,
    count_points,
    query,
    segment_report,
    telemetry_topic,
    wait_until,
)

from telemetry import encode

DEVICES, REPORTS = 10, 400


def _stored(url: str, db: str) -> int:
    """Points of every report stored so far (probe segments and cabinets)."""
    return max(0, count_points(url, db, "cable_segment", "strain")) + max(
        0, count_points(url, db, "cabinet", "humidity")
    )


def _final_figures(url: str, db: str, instance: str) -> dict[str, int]:
    [row] = query(
        url,
        db,
        f"SELECT last(acked) AS acked, last(received) AS received FROM citywatch_ingest "
        f"WHERE instance = '{instance}'",
    )
    return {"acked": int(row["acked"]), "received": int(row["received"])}


def test_sigterm_drains_every_acked_message_and_restart_delivers_the_rest(
    broker: Endpoint, influx: Endpoint, tmp_path: Path
) -> None:
    db = "sigterm_drain"
    command = [
        CITYWATCH, "ingest", "--broker", broker.url, "--influx", influx.url, "--database", db,
        "--spool-dir", str(tmp_path / "spool"), "--metrics-port", "0",
        "--client-id", "sigterm-ingest",
    ]  # fmt: skip
    env = {**os.environ, "CITYWATCH_FLUSH_INTERVAL_S": "0.2", "CITYWATCH_BATCH_LINES": "100"}
    log = (tmp_path / "ingest.log").open("ab")
    first = subprocess.Popen(
        command, env={**env, "CITYWATCH_INSTANCE": "first"}, stdout=log, stderr=log
    )
    second: subprocess.Popen[bytes] | None = None
    pub = Publisher(broker.port, "sigterm-pub")
    streaming = threading.Thread(
        target=lambda: [pub.publish_all(_messages(i, i + 10)) for i in range(0, REPORTS, 10)]
    )
    try:
        # The session exists once a probe is stored (each probe a distinct point).
        for probe in range(60):
            report = segment_report("probe-0", probe)
            pub.publish_all([(telemetry_topic(report), encode(report))])
            if wait_until(lambda: _stored(influx.url, db) > 0, 1):
                break
        else:
            raise AssertionError("ingest never stored anything")
        streaming.start()
        assert wait_until(lambda: count_points(influx.url, db, "cabinet", "humidity") > 0)
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0
        stored_at_exit = _stored(influx.url, db)
        figures = _final_figures(influx.url, db, "first")
        # Everything acknowledged is stored, everything received was acknowledged.
        assert stored_at_exit == figures["acked"] == figures["received"]
        streaming.join(120)
        assert not streaming.is_alive()
        cabinets_at_exit = count_points(influx.url, db, "cabinet", "humidity")
        assert cabinets_at_exit < DEVICES * REPORTS  # SIGTERM came mid-stream

        second = subprocess.Popen(
            command, env={**env, "CITYWATCH_INSTANCE": "second"}, stdout=log, stderr=log
        )
        try:
            assert wait_until(
                lambda: count_points(influx.url, db, "cabinet", "humidity") == DEVICES * REPORTS,
                timeout=90,
            )
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0
        rest = _final_figures(influx.url, db, "second")
        assert rest["acked"] == rest["received"] >= DEVICES * REPORTS - cabinets_at_exit
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
        pub.close()
        log.close()
    _assert_exactly_once(influx.url, db, REPORTS)
