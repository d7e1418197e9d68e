"""``cable_span`` points: every segment joined to the one before it on its route, whatever
order the segments announce themselves in, so a map can draw each route as a line."""

from ingest.batch import AckToken, Confirmation, PendingBatch
from ingest.liveness import LivenessTracker
from ingest.receiver import Receiver
from ingest.registry import DeviceRegistry
from ingest.spans import CableSpans
from ingest.stats import IngestStats
from telemetry import Channel, DeviceInfo, DeviceKind, Status, Topic, encode

NOW_MS = 1_800_000_000_000
WARD = "phuong_dinh_cong"


def _segment(n: int, position: int | None, route: str | None = "r-1") -> DeviceInfo:
    return DeviceInfo(
        id=f"seg-{n}",
        kind=DeviceKind.CABLE_SEGMENT,
        ward=WARD,
        street="Phố Định Công",
        lat=20.98 + n / 1000,
        lon=105.83 + n / 1000,
        route=route,
        position=position,
    )


def _spans(lines: list[str]) -> dict[str, str]:
    """device → upstream of each ``cable_span`` line."""
    found = {}
    for line in lines:
        assert line.startswith("cable_span,"), line
        tags, fields, _ = line.split(" ")
        device = dict(t.split("=") for t in tags.split(",")[1:])["device"]
        found[device] = dict(f.split("=") for f in fields.split(","))["upstream"].strip('"')
    return found


def test_segments_in_any_order_give_every_span_once_both_ends_are_known() -> None:
    spans = CableSpans()
    assert spans.learn(_segment(2, 2), NOW_MS) == []  # nothing to join yet
    assert _spans(spans.learn(_segment(0, 0), NOW_MS)) == {}
    # seg-1 joins both: its own span from seg-0, and seg-2's span from it
    assert _spans(spans.learn(_segment(1, 1), NOW_MS)) == {"seg-1": "seg-0", "seg-2": "seg-1"}
    line = spans.learn(_segment(3, 3), NOW_MS)[0]
    assert line == (
        f'cable_span,device=seg-3,route=r-1,ward={WARD} upstream="seg-2",up_lat=20.982,'
        f"up_lon=105.832,lat=20.983,lon=105.833,position=3i {NOW_MS}"
    )
    # another route's position 2 is not this route's
    assert spans.learn(_segment(9, 2, route="r-2"), NOW_MS) == []
    # a cabinet, or a segment that left its route, is no end of any span
    moved = _segment(3, None, route=None)
    assert spans.learn(moved, NOW_MS) == []
    assert _spans(spans.learn(_segment(4, 4), NOW_MS)) == {}  # position 3 is empty now


def test_the_receiver_writes_spans_beside_the_status_and_remembers_the_registry() -> None:
    batches: list[PendingBatch] = []

    def deadletter(_topic: str, _payload: bytes) -> Confirmation:
        return lambda _timeout: True

    registry = DeviceRegistry(None)
    registry.learn(_segment(0, 0))  # known before a restart (the saved registry)
    receiver = Receiver(
        emit=batches.append,
        publish_deadletter=deadletter,
        registry=registry,
        liveness=LivenessTracker(),
        on_liveness=lambda _change: None,
        stats=IngestStats(),
        flush_interval_s=3600,
        clock_ms=lambda: NOW_MS,
    )
    for mid, n in enumerate((2, 1)):
        info = _segment(n, n)
        status = Status(v=1, device=info.id, kind=info.kind, state="online", ts=NOW_MS, info=info)
        topic = Topic(WARD, DeviceKind.CABLE_SEGMENT, info.id, Channel.STATUS).format()
        token: AckToken = (0, mid)
        receiver.receive(topic, encode(status), token)
    receiver.flush()
    lines = [line for batch in batches for line in batch.lines]
    assert _spans([line for line in lines if line.startswith("cable_span")]) == {
        "seg-1": "seg-0",
        "seg-2": "seg-1",
    }
    assert sum(line.startswith("device_status") for line in lines) == 2
