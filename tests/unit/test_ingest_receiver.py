"""The receiver with fakes: what goes into which batch, and which acks wait for what."""

import logging

import pytest

from ingest.batch import AckToken, Confirmation, PendingBatch
from ingest.liveness import LivenessChange, LivenessTracker
from ingest.receiver import Receiver
from ingest.registry import DeviceRegistry
from ingest.stats import IngestStats
from telemetry import Channel, DeviceKind, Report, Topic, encode

NOW_MS = 1_800_000_000_000
TOPIC = Topic("phuong_hoan_kiem", DeviceKind.CABINET, "cab-1", Channel.TELEMETRY).format()


def _report(i: int) -> bytes:
    report = Report(
        v=1,
        device="cab-1",
        kind=DeviceKind.CABINET,
        ts=NOW_MS - 60_000 + i * 1000,
        seq=i,
        metrics={"temp_inside": 20.0 + i, "humidity": 50.0},
    )
    return encode(report)


class Harness:
    def __init__(self, batch_lines: int) -> None:
        self.batches: list[PendingBatch] = []
        self.deadletters: list[tuple[str, bytes]] = []
        self.changes: list[LivenessChange] = []
        self.stats = IngestStats()
        self.receiver = Receiver(
            emit=self.batches.append,
            publish_deadletter=self.publish,
            registry=DeviceRegistry(None),
            liveness=LivenessTracker(),
            on_liveness=self.changes.append,
            stats=self.stats,
            batch_lines=batch_lines,
            flush_interval_s=3600,
            clock_ms=lambda: NOW_MS,
        )

    def publish(self, topic: str, payload: bytes) -> Confirmation:
        self.deadletters.append((topic, payload))
        return lambda _timeout: True

    def receive(self, payload: bytes, mid: int) -> None:
        token: AckToken = (0, mid)
        self.receiver.receive(TOPIC, payload, token)


def test_acks_ride_with_the_batch_that_closes_after_their_message() -> None:
    h = Harness(batch_lines=2)
    h.receive(_report(0), 1)
    h.receive(b"not json", 2)  # dead letter: acked with the batch, after its PUBACK
    h.receive(_report(1), 3)  # second line: the batch closes
    h.receive(_report(1), 4)  # duplicate of mid 3: no line, acked only after mid 3's batch
    h.receive(_report(2), 5)
    h.receiver.flush()
    first, second = h.batches
    assert first.acks == [(0, 1), (0, 2), (0, 3)]  # receive order
    assert [token for token, _ in first.deadletters] == [(0, 2)]
    assert len(first.lines) == 2
    assert second.acks == [(0, 4), (0, 5)]
    assert len(second.lines) == 1
    assert h.stats.duplicates == 1
    assert h.stats.rejected == {"not_json": 1}
    assert h.deadletters[0][0].startswith("cw/v1/_deadletter/not_json")


def test_draining_receiver_leaves_messages_unacked_and_uncounted() -> None:
    h = Harness(batch_lines=100)
    h.receive(_report(0), 1)
    h.receiver.accepting = False
    h.receive(_report(1), 2)
    h.receiver.flush()
    [batch] = h.batches
    assert batch.acks == [(0, 1)]
    assert h.stats.received == 1


def test_qos0_messages_are_written_without_an_ack() -> None:
    h = Harness(batch_lines=100)
    h.receiver.receive(TOPIC, _report(0), None)
    h.receiver.flush()
    [batch] = h.batches
    assert (len(batch.lines), batch.acks) == (1, [])


def test_empty_batches_are_not_emitted() -> None:
    h = Harness(batch_lines=1)
    h.receiver.flush()
    h.receiver.flush_if_stale()
    assert h.batches == []


def _seq_report(seq: int, ts_offset_s: int) -> bytes:
    report = Report(
        v=1,
        device="cab-1",
        kind=DeviceKind.CABINET,
        ts=NOW_MS - 600_000 + ts_offset_s * 1000,
        seq=seq,
        metrics={"temp_inside": 20.0},
    )
    return encode(report)


def test_reports_lost_before_ingest_are_counted_from_the_device_seq(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broker that drops messages says nothing: the device's counter does."""
    h = Harness(batch_lines=100)
    with caplog.at_level(logging.WARNING, logger="ingest.gaps"):
        for mid, (seq, t) in enumerate([(1, 1), (2, 2), (7, 7), (8, 8)]):
            h.receive(_seq_report(seq, t), mid)
    assert h.stats.reports_missing == 4
    assert "cab-1: 4 report(s) missing before seq 7" in caplog.text
    h.receive(_seq_report(4, 4), 10)  # one of them, delivered late
    assert h.stats.reports_missing == 3
    h.receive(_seq_report(1, 20), 11)  # a newer report counting from 1: a reboot
    h.receive(_seq_report(2, 21), 12)
    assert h.stats.reports_missing == 3


def test_qos0_messages_are_dropped_and_counted_while_the_writer_is_full() -> None:
    """QoS 1 waits in the broker (unacknowledged); QoS 0 has no such brake, so a blocked
    writer queued 100,000 of them in memory. They are dropped and counted instead."""
    h = Harness(batch_lines=1)
    full = [False]
    h.receiver.overloaded = lambda: full[0]
    h.receiver.receive(TOPIC, _report(0), None)  # QoS 0, room: kept
    full[0] = True
    for i in range(1, 6):
        h.receiver.receive(TOPIC, _report(i), None)  # QoS 0, no room: dropped
    h.receive(_report(9), 9)  # QoS 1 is never dropped: the broker holds it back
    assert h.stats.qos0_dropped == 5
    assert [len(b.lines) for b in h.batches] == [1, 1]


def test_a_report_under_another_wards_topic_is_dead_lettered() -> None:
    """The broker's ACL binds a device to its id, not its ward: a report published into
    another ward is refused against the ward the device registered in."""
    from telemetry import DeviceInfo  # noqa: PLC0415

    h = Harness(batch_lines=100)
    h.receiver.registry.learn(
        DeviceInfo("cab-1", DeviceKind.CABINET, "phuong_ba_dinh", "Kim Mã", 21.03, 105.82)
    )
    h.receive(_report(0), 1)  # TOPIC is phuong_hoan_kiem
    h.receiver.flush()
    assert h.stats.rejected == {"ward_mismatch": 1}
    assert h.deadletters[0][0].startswith("cw/v1/_deadletter/ward_mismatch")
    assert sum(len(b.lines) for b in h.batches) == 0
    assert [b.acks for b in h.batches] == [[(0, 1)]], "acknowledged once dead-lettered"
