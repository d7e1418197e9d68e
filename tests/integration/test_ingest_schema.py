"""Everything ingest writes follows the storage schema of the contract
(telemetry.storage.SCHEMA), and devices land on the map: ``device_status`` carries the
location from the retained status and follows the Last Will."""

from pathlib import Path

from conftest import Endpoint
from test_ingest_support import (
    Publisher,
    cabinet_report,
    online_status,
    query,
    running_ingest,
    telemetry_topic,
    wait_until,
)

from telemetry import Channel, DeviceInfo, DeviceKind, Event, EventType, Status, Topic, encode
from telemetry.storage import SCHEMA


def test_written_measurements_tags_and_fields_are_in_the_schema(
    broker: Endpoint, influx: Endpoint, tmp_path: Path
) -> None:
    db = "schema"
    info = DeviceInfo(
        id="cab-0042",
        kind=DeviceKind.CABINET,
        ward="phuong_hoan_kiem",
        street="Tràng Tiền",
        lat=21.0245,
        lon=105.8570,
    )
    segment = DeviceInfo(
        id="seg-r0001-00",
        kind=DeviceKind.CABLE_SEGMENT,
        ward="phuong_hoan_kiem",
        street="Hàng Bài",
        lat=21.0230,
        lon=105.8520,
        route="r0001",
        position=0,
    )
    after = DeviceInfo(
        id="seg-r0001-01",
        kind=DeviceKind.CABLE_SEGMENT,
        ward="phuong_hoan_kiem",
        street="Hàng Bài",
        lat=21.0245,
        lon=105.8525,
        route="r0001",
        position=1,
    )
    with running_ingest(broker.url, influx.url, db, tmp_path, self_metrics_interval_s=0.3):
        pub = Publisher(broker.port, "schema-pub")
        pub.publish_all([online_status(info), online_status(after), online_status(segment)])
        report = cabinet_report("cab-0042", 1)
        event = Event(
            v=1,
            device="cab-0042",
            kind=DeviceKind.CABINET,
            ts=report.ts,
            seq=2,
            event=EventType.DOOR_OPENED,
            detail="contact 1",
        )
        topic = Topic("phuong_hoan_kiem", DeviceKind.CABINET, "cab-0042", Channel.EVENT)
        will = Status(
            v=1, device="cab-0042", kind=DeviceKind.CABINET, state="offline", reason="lwt"
        )
        pub.publish_all(
            [(telemetry_topic(report), encode(report)), (topic.format(), encode(event))]
        )
        pub.publish_all([(topic.with_channel(Channel.STATUS).format(), encode(will))])
        pub.close()

        def offline_on_map() -> bool:
            rows = query(
                influx.url,
                db,
                'SELECT last("online") FROM "device_status" WHERE "device" = \'cab-0042\'',
            )
            return bool(rows) and rows[0]["last"] is False

        assert wait_until(offline_on_map, timeout=20)
        assert wait_until(
            lambda: bool(query(influx.url, db, 'SELECT * FROM "citywatch_ingest" LIMIT 1')),
            timeout=20,
        )

    located = query(
        influx.url,
        db,
        'SELECT "lat", "lon", "street", "online" FROM "device_status" '
        "WHERE \"device\" = 'cab-0042'",
    )
    assert located[0]["lat"] == 21.0245
    assert located[0]["street"] == "Tràng Tiền"
    assert located[0]["online"] is True
    seg = query(
        influx.url,
        db,
        'SELECT "position", "route" FROM "device_status" WHERE "device" = \'seg-r0001-00\'',
    )
    assert seg[0]["route"] == "r0001"
    assert seg[0]["position"] == 0
    # The span from the first segment to the second (announced in the other order).
    span = query(
        influx.url,
        db,
        'SELECT "upstream", "up_lat", "lat", "position", "route" FROM "cable_span" '
        "WHERE \"device\" = 'seg-r0001-01'",
    )
    assert [(r["upstream"], r["up_lat"], r["lat"], r["position"]) for r in span] == [
        ("seg-r0001-00", 21.0230, 21.0245, 1)
    ]

    measurements = {r["name"] for r in query(influx.url, db, "SHOW MEASUREMENTS")}
    expected = {"cabinet", "device_status", "cabinet_event", "citywatch_ingest", "cable_span"}
    assert expected <= measurements
    for name in measurements:
        assert name in SCHEMA, f"ingest writes {name}, which the schema does not list"
        fields = {r["fieldKey"] for r in query(influx.url, db, f'SHOW FIELD KEYS FROM "{name}"')}
        tags = {r["tagKey"] for r in query(influx.url, db, f'SHOW TAG KEYS FROM "{name}"')}
        assert fields <= SCHEMA[name].fields, (name, fields - SCHEMA[name].fields)
        assert tags <= SCHEMA[name].tags, (name, tags - SCHEMA[name].tags)
