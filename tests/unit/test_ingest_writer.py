"""The durable writer's decisions with a scripted fake InfluxDB: write, spool, refuse, ack."""

import gzip
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.batch import AckToken, PendingBatch
from ingest.order import Order, OrderTracker
from ingest.spool import Spool
from ingest.stats import IngestStats
from ingest.writer import DurableWriter
from telemetry.backoff import Backoff
from telemetry.influxdb import InfluxClient, InfluxRejectedError, InfluxUnavailableError

Log = list[tuple[str, object]]


class ScriptedInflux(InfluxClient):
    """Answers writes from a script ("ok", "down", or a 4xx message); "ok" once it runs out.

    Every attempt and its outcome goes to the shared ``log`` so tests can check that an
    ack never comes before the write (or spool) of its batch and of every earlier batch.
    """

    def __init__(self, log: Log, script: list[str] | None = None) -> None:
        super().__init__("http://influx.invalid:8086", "db")
        self.log = log
        self.script = list(script or [])
        self.stored: list[str] = []

    def write_gzipped(self, body: bytes) -> None:
        lines = gzip.decompress(body).decode().split("\n")
        outcome = self.script.pop(0) if self.script else "ok"
        if outcome == "down":
            self.log.append(("down", lines))
            raise InfluxUnavailableError("fake: connection refused")
        if outcome != "ok":
            self.log.append(("refused", lines))
            raise InfluxRejectedError(400, outcome)
        self.log.append(("write", lines))
        self.stored.extend(lines)


def _writer(
    tmp_path: Path,
    log: Log,
    script: list[str] | None = None,
    *,
    spool_max_bytes: int = 1 << 20,
    retry_budget_s: float = 1.0,
) -> tuple[DurableWriter, ScriptedInflux, IngestStats]:
    influx = ScriptedInflux(log, script)
    stats = IngestStats()
    spool = Spool(tmp_path / "spool", max_bytes=spool_max_bytes, fsync=False)
    writer = DurableWriter(
        influx=influx,
        spool=spool,
        ack=lambda tokens: log.append(("ack", list(tokens))),
        stats=stats,
        retry_budget_s=retry_budget_s,
        backoff=lambda: Backoff(base_s=0.001, cap_s=0.002),
    )
    original_append = spool.append

    def logged_append(payload: bytes) -> None:
        original_append(payload)
        log.append(("spool", gzip.decompress(payload[4:]).decode().split("\n")))

    spool.append = logged_append  # type: ignore[method-assign]
    return writer, influx, stats


def _batch(n: int, first_mid: int, *, lines: bool = True) -> PendingBatch:
    tokens: list[AckToken] = [(0, first_mid + i) for i in range(n)]
    return PendingBatch(
        lines=[f"m,mid={mid} v=1 {mid}" for _, mid in tokens] if lines else [], acks=tokens
    )


def _check_acks_follow_storage(log: Log) -> list[int]:
    """The acked mids, in order; each one's line (if it had one) was stored before its ack."""
    stored: set[str] = set()
    tried: set[str] = set()
    acked: list[int] = []
    for what, payload in log:
        assert isinstance(payload, list)
        if what in ("write", "spool"):
            stored.update(payload)
        if what != "ack":
            tried.update(payload)
            continue
        for _, mid in payload:
            line = f"m,mid={mid} v=1 {mid}"
            assert line in stored or line not in tried, f"ack of {mid} before its write"
            acked.append(mid)
    assert acked == sorted(acked), "an ack overtook an earlier message"
    return acked


def _stop(writer: DurableWriter) -> None:
    assert writer.stop(10)


def test_acks_follow_the_write_even_through_retries(tmp_path: Path) -> None:
    log: Log = []
    writer, _, stats = _writer(tmp_path, log, ["ok", "down", "down", "ok"])
    writer.start()
    writer.submit(_batch(3, 0))
    writer.submit(_batch(3, 3))  # fails twice, then written within the retry budget
    writer.submit(_batch(2, 6, lines=False))  # duplicates only: acked after batch 2's write
    assert _wait(lambda: stats.acked == 8)
    _stop(writer)
    kinds = [what for what, _ in log]
    assert kinds == ["write", "ack", "down", "down", "write", "ack", "ack"]
    assert _check_acks_follow_storage(log) == list(range(8))
    assert (stats.points_written, stats.write_failures, stats.acked) == (6, 2, 8)


def test_influx_away_spools_then_acks_and_replays_in_order(tmp_path: Path) -> None:
    log: Log = []
    writer, _, stats = _writer(tmp_path, log, ["down"] * 3, retry_budget_s=0.0)
    writer.start()
    writer.submit(_batch(2, 0))  # down → spooled
    writer.submit(_batch(2, 2))  # spool mode → spooled without a try (or replayed first)
    _stop(writer)
    assert log[0][0] == "down"
    assert log[1] == ("spool", ["m,mid=0 v=1 0", "m,mid=1 v=1 1"])
    assert _check_acks_follow_storage(log) == [0, 1, 2, 3]
    assert stats.points_spooled + stats.points_written == 4
    # InfluxDB back: a new writer on the same spool replays everything, oldest first.
    log2: Log = []
    again, influx2, stats2 = _writer(tmp_path, log2)
    again.start()
    assert _wait(lambda: len(again.spool) == 0)
    _stop(again)
    spooled = [line for what, lines in log if what == "spool" for line in _lines(lines)]
    assert influx2.stored == spooled
    assert stats2.points_replayed == stats.points_spooled


def test_refused_batch_is_acked_and_counted_not_retried(tmp_path: Path) -> None:
    log: Log = []
    message = "unable to parse 'm,mid=1 v=1 1': bad\nunable to parse 'm,mid=2 v=1 2': bad"
    writer, _, stats = _writer(tmp_path, log, [f"partial write: {message} dropped=0"])
    writer.start()
    writer.submit(_batch(3, 0))
    _stop(writer)
    assert [what for what, _ in log] == ["refused", "write", "ack"]  # the rest written again
    assert log[1][1] == ["m,mid=0 v=1 0"]
    assert stats.points_refused == 2
    assert stats.points_written == 1
    kept = (tmp_path / "spool" / "rejected").glob("*.lp")
    text = "".join(p.read_text() for p in kept)
    assert "# refused: unparsable: bad\nm,mid=1 v=1 1\nm,mid=2 v=1 2\n" in text


def test_unconfirmed_dead_letter_keeps_its_message_unacked(tmp_path: Path) -> None:
    log: Log = []
    writer, _, stats = _writer(tmp_path, log)
    batch = _batch(1, 0)
    batch.acks += [(0, 1), (0, 2), (0, 3)]
    batch.deadletters = [((0, 1), lambda _timeout: True), ((0, 2), lambda _timeout: False)]
    writer.start()
    writer.submit(batch)
    _stop(writer)
    assert log[-1] == ("ack", [(0, 0), (0, 1), (0, 3)])  # in order, without the unconfirmed
    assert stats.acked == 3


def test_stop_with_a_full_spool_and_influx_away_returns_leaving_the_batch_unacked(
    tmp_path: Path,
) -> None:
    log: Log = []
    writer, _, stats = _writer(
        tmp_path, log, ["down"] * 10_000, spool_max_bytes=120, retry_budget_s=0.0
    )
    writer.start()
    writer.submit(_batch(1, 0))  # fits in the spool
    writer.submit(_batch(20, 1))  # does not: the writer waits for InfluxDB
    assert _wait(lambda: stats.acked == 1 and stats.write_failures >= 3)
    _stop(writer)  # returns although InfluxDB never came back
    assert _check_acks_follow_storage(log) == [0]
    assert stats.points_spooled == 1


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=1, max_size=8),
    st.lists(st.sampled_from(["ok", "ok", "down"]), max_size=12),
    st.booleans(),
)
def test_acks_never_overtake_a_write(
    batches: list[tuple[int, bool]], script: list[str], tight_budget: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log: Log = []
        writer, _, _ = _writer(Path(tmp), log, script, retry_budget_s=0.0 if tight_budget else 0.5)
        writer.start()
        mid = 0
        for size, with_lines in batches:
            writer.submit(_batch(size, mid, lines=with_lines))
            mid += size
        _stop(writer)
        assert _check_acks_follow_storage(log) == list(range(mid))


def _lines(payload: object) -> list[str]:
    assert isinstance(payload, list)
    return [str(line) for line in payload]


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll until true or the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class _FullDisk(Spool):
    """A spool on a disk that refuses every write as ENOSPC would, until ``free()``."""

    full = True

    def append(self, payload: bytes) -> None:
        if self.full:
            raise OSError(28, "No space left on device")
        super().append(payload)

    def _write_cursor(self) -> None:
        if self.full:
            raise OSError(28, "No space left on device")
        super()._write_cursor()


def test_a_batch_the_full_disk_refused_is_not_a_duplicate_when_redelivered(
    tmp_path: Path,
) -> None:
    """InfluxDB down and the spool's disk full: the batch is held unacked, and when the
    writer stops it is left to the broker, whose redelivery of its reports is written
    when InfluxDB is back, not dropped as a duplicate (the duplicate window had
    remembered reports that were never written)."""
    log: Log = []
    order = OrderTracker()
    influx = ScriptedInflux(log, ["down"] * 500)
    stats = IngestStats()
    acked: list[AckToken] = []
    writer = DurableWriter(
        influx=influx,
        spool=_FullDisk(tmp_path / "spool", max_bytes=1 << 20, fsync=False),
        ack=acked.extend,
        stats=stats,
        retry_budget_s=0.05,
        backoff=lambda: Backoff(base_s=0.01, cap_s=0.01),
        on_abandoned=lambda batch: order.forget(batch.accepted),
    )
    writer.start()
    try:
        assert order.check("cab-1", 1_000) is Order.NEW
        batch = PendingBatch(lines=["cabinet,device=cab-1 temp_inside=30 1000"], acks=[(1, 7)])
        batch.accepted.append(("cab-1", 1_000))
        writer.submit(batch)
        assert _wait(lambda: stats.spool_write_errors >= 2)
        assert writer.disk_error is not None
        assert "No space left" in writer.disk_error
        assert stats.batches_abandoned == 0  # held, not dropped: backpressure
    finally:
        assert writer.stop(5)
    assert stats.batches_abandoned == 1
    assert acked == []
    # The broker redelivers the report: accepted (late), not dropped as a duplicate.
    assert order.check("cab-1", 1_000) is Order.LATE
    assert order.check("cab-1", 1_000) is Order.DUPLICATE  # a real duplicate still is


def test_a_full_disk_holds_the_batch_until_room_returns(tmp_path: Path) -> None:
    """The full disk is a loud, counted, recoverable state: the batch waits unacked
    (no ack without a durable copy), and is spooled and acked once the disk has room."""
    log: Log = []
    influx = ScriptedInflux(log, ["down"] * 10_000)
    stats = IngestStats()
    acked: list[AckToken] = []
    spool = _FullDisk(tmp_path / "spool", max_bytes=1 << 20, fsync=False)
    writer = DurableWriter(
        influx=influx,
        spool=spool,
        ack=acked.extend,
        stats=stats,
        retry_budget_s=0.0,
        backoff=lambda: Backoff(base_s=0.01, cap_s=0.02),
    )
    writer.start()
    try:
        writer.submit(_batch(3, 0))
        assert _wait(lambda: stats.spool_write_errors >= 3)
        assert acked == []
        assert writer.disk_error is not None
        spool.full = False
        assert _wait(lambda: len(acked) == 3)
        assert _wait(lambda: writer.disk_error is None)  # the state clears by itself
        assert (stats.batches_spooled, stats.batches_abandoned) == (1, 0)
    finally:
        _stop(writer)


def test_replay_on_a_full_disk_does_not_crawl(tmp_path: Path) -> None:
    """Replay writes the cursor after each record; on a full disk that write fails.
    That used to back replay off (up to 10 s) after every record; now replay goes on
    at full speed, counting the failures (a restart may resend a few records, which
    InfluxDB takes as no-ops)."""
    log: Log = []
    spool = _FullDisk(tmp_path / "spool", max_bytes=1 << 20, fsync=False)
    spool.full = False
    for n in range(20):
        spool.append(struct.pack("<I", 1) + gzip.compress(f"m,mid={n} v=1 {n}".encode()))
    spool.full = True  # the disk filled up while InfluxDB was away
    influx = ScriptedInflux(log)
    stats = IngestStats()
    writer = DurableWriter(
        influx=influx,
        spool=spool,
        ack=lambda _tokens: None,
        stats=stats,
        # A slow replay backoff: one backoff per record would take minutes.
        backoff=lambda: Backoff(base_s=30.0, cap_s=30.0),
    )
    writer.start()
    try:
        assert _wait(lambda: stats.batches_replayed == 20)
        assert influx.stored == [f"m,mid={n} v=1 {n}" for n in range(20)]
        assert stats.spool_write_errors == 19  # the last record empties the spool: no cursor
        assert len(spool) == 0
        # An empty spool needs no cursor: the state cleared with the last record.
        assert _wait(lambda: writer.disk_error is None)
    finally:
        _stop(writer)
