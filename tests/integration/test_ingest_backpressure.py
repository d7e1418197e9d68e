"""A full spool means backpressure on the broker, never a drop."""

from pathlib import Path

from test_ingest_faults import _assert_exactly_once, _messages
from test_ingest_support import Publisher, count_points, running_ingest, wait_until

from citywatch.local_services import LocalInfluxd, LocalMosquitto

RECEIVE_MAXIMUM = 5


def test_full_spool_stops_acks_broker_keeps_the_rest_then_all_arrive_once(
    own_broker: LocalMosquitto, own_influx: LocalInfluxd, tmp_path: Path
) -> None:
    db = "backpressure"
    devices, reports = 10, 200
    published = devices * reports
    with running_ingest(
        own_broker.url,
        own_influx.url,
        db,
        tmp_path,
        spool_max_bytes=2048,  # a handful of 10-line batches
        receive_maximum=RECEIVE_MAXIMUM,
        batch_lines=10,
        retry_budget_s=0.05,
        backoff_cap_s=0.5,
    ) as service:
        pub = Publisher(own_broker.port, "backpressure-pub")
        pub.publish_all(_messages(0, 1))
        assert wait_until(
            lambda: count_points(own_influx.url, db, "cabinet", "humidity") == devices
        )
        # The devices' first "online" points too (written by ingest's ticker, without an
        # ack): spooled after the kill they would count among the spooled points below.
        assert wait_until(
            lambda: count_points(own_influx.url, db, "device_status", "online") == devices
        )
        own_influx.stop(kill=True)

        pub.publish_all(_messages(1, reports))  # the broker takes them all (PUBACKs)
        stats = service.stats
        # The spool fills, then the writer holds the acks and the broker stops sending:
        # the rest stays queued in the persistent session.
        assert wait_until(
            lambda: stats.points_spooled > 0 and not service.spool.has_room(1024), timeout=30
        ), (stats, service.spool.pending_bytes)
        for _ in range(2):  # the broker's last deliveries land while the writer retries
            failures = stats.write_failures
            assert wait_until(lambda: stats.write_failures >= failures + 3, timeout=30)  # noqa: B023
        acked, received, failures = stats.acked, stats.received, stats.write_failures
        assert wait_until(lambda: stats.write_failures >= failures + 3, timeout=30)
        assert stats.acked == acked  # nothing acknowledged while InfluxDB is away
        assert stats.received == received  # and the broker sent nothing more
        assert received < published
        # Mosquitto 2.0.11 lets Receive Maximum more messages through per PUBACK (not one):
        # the window is bounded by the acks sent before the spool filled, not by RM alone.
        assert received - acked <= RECEIVE_MAXIMUM * (acked + 1)
        assert service.spool.pending_bytes <= 2048
        assert stats.points_spooled == acked - devices  # every acked report is in the spool
        assert stats.points_refused == stats.duplicates == 0

        own_influx.start()
        assert wait_until(
            lambda: count_points(own_influx.url, db, "cabinet", "humidity") == published,
            timeout=60,
        )
        assert wait_until(lambda: stats.acked == published and len(service.spool) == 0)
        assert stats.received == published
        assert stats.duplicates == 0
        pub.close()
    _assert_exactly_once(own_influx.url, db, reports)
