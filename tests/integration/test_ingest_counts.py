"""N reports in → N points per metric in InfluxDB, values and tags equal; schema."""

from pathlib import Path

import httpx
from conftest import Endpoint
from test_ingest_support import (
    Publisher,
    cabinet_report,
    count_points,
    online_status,
    query,
    running_ingest,
    segment_report,
    telemetry_topic,
    wait_until,
)

from citywatch.local_services import free_port
from telemetry import DeviceInfo, DeviceKind, encode


def test_every_report_becomes_one_point_with_equal_values(
    broker: Endpoint, influx: Endpoint, tmp_path: Path
) -> None:
    db = "counts"
    devices = [f"cab-{n:04d}" for n in range(20)]
    reports = [cabinet_report(d, i) for i in range(100) for d in devices]
    segment_info = DeviceInfo(
        id="seg-0001",
        kind=DeviceKind.CABLE_SEGMENT,
        ward="phuong_ba_dinh",
        street="Phố Đội Cấn",
        lat=21.03,
        lon=105.82,
        route="r-hk-01",  # a tag: decode refuses routes that are not ids
        position=0,
    )
    segments = [segment_report("seg-0001", i) for i in range(50)]
    port = free_port()
    with running_ingest(
        broker.url, influx.url, db, tmp_path, metrics_port=port, self_metrics_interval_s=0.5
    ) as service:
        pub = Publisher(broker.port, "counts-pub")
        pub.publish_all([online_status(segment_info)])
        assert wait_until(lambda: service.registry.get("seg-0001") is not None, timeout=10)
        pub.publish_all([(telemetry_topic(r), encode(r)) for r in reports])
        pub.publish_all([(telemetry_topic(r, "phuong_ba_dinh"), encode(r)) for r in segments])
        pub.close()
        assert wait_until(
            lambda: (
                count_points(influx.url, db, "cabinet", "temp_inside") == len(reports)
                and count_points(influx.url, db, "cable_segment", "strain") == len(segments)
            )
        )
        assert service.stats.rejected == {}
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert f"citywatch_ingest_reports_total {len(reports) + len(segments)}.0" in metrics
        assert "citywatch_ingest_write_latency_seconds_bucket" in metrics
        assert wait_until(
            lambda: any(
                r["reports"] == len(reports) + len(segments)
                for r in query(influx.url, db, "SELECT reports FROM citywatch_ingest")
            )
        )

    for field in ("temp_inside", "humidity", "door_open", "mains_voltage"):
        assert count_points(influx.url, db, "cabinet", field) == len(reports)
    rows = query(influx.url, db, "SELECT * FROM cabinet")
    stored = {(r["device"], r["time"]): r for r in rows}
    assert len(stored) == len(reports)
    for report in reports:
        row = stored[(report.device, report.ts)]
        assert row["ward"] == "phuong_hoan_kiem"
        for name, value in report.metrics.items():
            assert row[name] == value, (name, row)
            assert type(row[name]) is type(value) or isinstance(value, float)
    seg_rows = query(influx.url, db, "SELECT * FROM cable_segment")
    assert {r["route"] for r in seg_rows} == {"r-hk-01"}
    assert sorted(r["strain"] for r in seg_rows) == [100.0 + i for i in range(50)]
    assert all(r["signal"] is True for r in seg_rows)
