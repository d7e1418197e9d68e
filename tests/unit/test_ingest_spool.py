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
