"""InfluxDB refuses part of a batch (HTTP 400, partial write): keep the refused, lose nothing."""

import logging
from pathlib import Path

import httpx
import pytest
from conftest import Endpoint
from test_ingest_support import (
    T0_MS,
    Publisher,
    cabinet_report,
    count_points,
    query,
    running_ingest,
    segment_report,
    telemetry_topic,
    wait_until,
)

from ingest.refusal import split_points
from telemetry import encode


def _fresh_database(url: str, db: str) -> None:
    for q in (f'DROP DATABASE "{db}"', f'CREATE DATABASE "{db}"'):
        httpx.post(f"{url}/query", params={"q": q}, timeout=30).raise_for_status()


def test_field_type_conflict_keeps_refused_lines_writes_the_rest_and_acks(
    broker: Endpoint, influx: Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = "refused_partial"
    _fresh_database(influx.url, db)
    # A string temp_inside where ingest writes floats: InfluxDB 1.x fixes a field's type
    # per measurement (and shard), so it refuses every cabinet point of the batch.
    conflicting = f'cabinet,device=cab-000,ward=phuong_hoan_kiem temp_inside="hot" {T0_MS}'
    httpx.post(
        f"{influx.url}/write", params={"db": db, "precision": "ms"}, content=conflicting
    ).raise_for_status()
    cabinets = [cabinet_report(f"cab-{d:03d}", i) for i in range(4) for d in range(5)]
    segments = [segment_report(f"seg-{d:03d}", i) for i in range(6) for d in range(5)]
    messages = [(telemetry_topic(r), encode(r)) for r in [*cabinets, *segments]]
    spool = tmp_path / "spool"
    caplog.set_level(logging.ERROR, logger="ingest.writer")
    with running_ingest(
        broker.url, influx.url, db, spool, batch_lines=len(messages), flush_interval_s=30
    ) as service:
        pub = Publisher(broker.port, "refused-pub")
        pub.publish_all(messages)  # exactly one batch of 50 lines
        assert wait_until(lambda: service.stats.acked == len(messages), timeout=30)
        stats = service.stats
        assert stats.points_refused == len(cabinets)
        # The stored part of the batch counts as written (plus ingest's own liveness and
        # self-metrics points, at most 2 per device and one self-metrics point here).
        assert len(segments) <= stats.points_written <= len(segments) + 2 * 10 + 1
        assert stats.write_failures == 0  # a 4xx is not retried as a whole
        assert stats.batches_spooled == 0
        assert count_points(influx.url, db, "cable_segment", "strain") == len(segments)
        assert count_points(influx.url, db, "cabinet", "humidity") == 0
        assert query(influx.url, db, "SELECT temp_inside FROM cabinet")[0]["temp_inside"] == "hot"

        # The refused lines are kept, under their reason, as re-playable line protocol.
        [kept] = list((spool / "rejected").glob("*.lp"))
        text = kept.read_text()
        assert text.startswith("# ")
        assert "HTTP 400: partial write: field type conflict" in text
        assert (
            '# refused: field type conflict: field "temp_inside" of measurement "cabinet" '
            "is string in InfluxDB, the line has float"
        ) in text
        lines = split_points(text)
        assert len(lines) == len(cabinets)
        assert {(line.split(",")[1], int(line.rsplit(" ", 1)[1])) for line in lines} == {
            (f"device={r.device}", r.ts) for r in cabinets
        }

        # The error names the refused lines and why.
        [record] = [r for r in caplog.records if "refused" in r.getMessage()]
        message = record.getMessage()
        assert f"refused {len(cabinets)} of {len(messages)} lines (HTTP 400" in message
        assert "line 1 'cabinet,device=cab-000,ward=phuong_hoan_kiem " in message
        assert "field type conflict" in message
        assert f"and {len(cabinets) - 5} more" in message

        # Alive: the next batch is written as usual.
        more = [
            segment_report(f"seg-{d:03d}", i) for i in range(6, 16) for d in range(5)
        ]  # one batch
        pub.publish_all([(telemetry_topic(r), encode(r)) for r in more])
        pub.close()
        assert wait_until(
            lambda: count_points(influx.url, db, "cable_segment", "strain") == 80, timeout=30
        )
        assert service.stats.acked == len(messages) + len(more)
        assert service.stats.points_refused == len(cabinets)
