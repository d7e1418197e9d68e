"""Spool: framing, order, cursor across restarts, torn tails, bounds."""

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.spool import Spool, SpoolFullError, scan_valid_length


def _drain(spool: Spool) -> list[bytes]:
    out = []
    while (record := spool.peek()) is not None:
        out.append(record)
        spool.advance()
    return out


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=100)
    records = [bytes([n]) * (n * 7 % 60 + 1) for n in range(40)]
    for record in records:
        spool.append(record)
    assert len(list(tmp_path.glob("*.seg"))) > 3
    assert _drain(spool) == records
    assert spool.peek() is None
    assert list(tmp_path.glob("*.seg")) == []


def test_reopen_resumes_after_the_replayed_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=64)
    for n in range(10):
        spool.append(f"record {n}".encode())
    for _ in range(4):
        assert spool.peek() is not None
        spool.advance()
    spool.close()
    reopened = Spool(tmp_path, segment_bytes=64)
    assert len(reopened) == 6
    reopened.append(b"record 10")
    assert _drain(reopened) == [f"record {n}".encode() for n in range(4, 11)]


@settings(max_examples=30, deadline=None)
@given(cut=st.integers(min_value=1, max_value=40), garbage=st.binary(max_size=12))
def test_torn_tail_is_cut_and_earlier_records_survive(
    tmp_path_factory: pytest.TempPathFactory, cut: int, garbage: bytes
) -> None:
    directory = tmp_path_factory.mktemp("torn")
    spool = Spool(directory)
    for n in range(5):
        spool.append(f"acked {n}".encode() * 3)
    spool.append(b"the record being written when the process died")
    spool.close()
    segment = next(directory.glob("*.seg"))
    size = segment.stat().st_size
    with segment.open("r+b") as f:  # a kill -9 in mid-write: the tail is short or garbled
        f.truncate(size - cut)
        f.seek(0, os.SEEK_END)
        f.write(garbage[: cut - 1])
    reopened = Spool(directory)
    assert reopened.truncated_bytes > 0
    assert _drain(reopened) == [f"acked {n}".encode() * 3 for n in range(5)]


def test_flipped_bit_is_detected_by_the_crc(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(b"first")
    spool.append(b"second")
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0x01
    segment.write_bytes(bytes(data))
    assert scan_valid_length(segment) == (8 + 5, 1)
    assert _drain(Spool(tmp_path)) == [b"first"]


def test_full_spool_refuses_instead_of_dropping(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    spool.append(b"x" * 50)
    assert not spool.has_room(50)
    with pytest.raises(SpoolFullError, match="limit is 100"):
        spool.append(b"y" * 50)
    assert _drain(spool) == [b"x" * 50]
    spool.append(b"y" * 50)
    assert len(spool) == 1


@pytest.mark.parametrize("damaged", [0, 1, 4, 9])
def test_a_flipped_byte_costs_its_record_not_the_rest_of_the_segment(
    tmp_path: Path, damaged: int
) -> None:
    """A flipped byte in record 2 of 10 once left 1 record: now the scan resynchronises
    on the next intact frame, keeps the other 9 and quarantines the bad bytes."""
    spool = Spool(tmp_path)
    records = [f"record {n} ".encode() * (n + 3) for n in range(10)]
    for record in records:
        spool.append(record)
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    offset = sum(8 + len(r) for r in records[:damaged])
    data[offset + 8 + 3] ^= 0x40  # inside the damaged record's payload
    segment.write_bytes(bytes(data))
    reopened = Spool(tmp_path)
    assert _drain(reopened) == [r for n, r in enumerate(records) if n != damaged]
    assert reopened.quarantined_spans == 1
    [kept] = (tmp_path / "quarantine").iterdir()
    assert kept.read_bytes() == bytes(data[offset : offset + 8 + len(records[damaged])])
    assert Spool(tmp_path).quarantined_spans == 0, "the segment was rewritten clean"


def test_damage_before_the_replay_cursor_keeps_the_cursor_on_its_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    records = [f"batch {n}".encode() * 4 for n in range(6)]
    for record in records:
        spool.append(record)
    for _ in range(3):  # three replayed: the cursor sits on record 3
        assert spool.peek() is not None
        spool.advance()
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[8 + len(records[0]) + 8 + 1] ^= 0x01  # record 1, already replayed
    segment.write_bytes(bytes(data))
    assert _drain(Spool(tmp_path)) == records[3:]


def test_a_write_the_full_disk_cut_short_leaves_no_partial_record(tmp_path: Path) -> None:
    """ENOSPC in the middle of a record: the segment is cut back to its last whole
    record, so the next append lands where the reader expects it and nothing is
    quarantined at the next open."""
    spool = Spool(tmp_path, fsync=False)
    spool.append(b"first record")
    spool.close()  # the next append opens the segment again
    real_open = Path.open

    class HalfWriter:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def write(self, data: bytes) -> int:
            self.inner.write(data[: len(data) // 2])  # type: ignore[attr-defined]
            self.inner.flush()  # type: ignore[attr-defined]
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    def failing_open(path: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        handle = real_open(path, mode, *args, **kwargs)  # type: ignore[call-overload]
        return HalfWriter(handle) if mode == "ab" else handle

    Path.open = failing_open  # type: ignore[method-assign, assignment]
    try:
        with pytest.raises(OSError, match="No space"):
            spool.append(b"second record, cut short")
    finally:
        Path.open = real_open  # type: ignore[method-assign]
    spool.append(b"third record")
    assert _drain(spool) == [b"first record", b"third record"]
    spool.append(b"fourth")
    spool.close()
    reopened = Spool(tmp_path, fsync=False)
    assert reopened.truncated_bytes == 0
    assert _drain(reopened) == [b"fourth"]
