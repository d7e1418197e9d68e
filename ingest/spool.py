"""The on-disk spool: batches that could not reach InfluxDB wait here, in order.

Layout: a directory of append-only segment files ``000000000001.seg``, ... Each record
is ``<u32 length><u32 crc32><payload>`` (little endian); the payload is one gzipped
request body. A ``cursor`` file remembers how far replay got.

Durability and fsync policy: ``append`` flushes and ``fsync``s the segment before it
returns (and the directory when it creates a segment), so a record whose MQTT messages
were acknowledged survives a kill -9 or a power cut. The cursor is written without
fsync: after a crash replay may resend a few records, which is harmless because an
InfluxDB point is keyed by (measurement, tags, timestamp) and rewriting it is a no-op.

Recovery: on open every segment is scanned record by record. Where a record's header is
short, its length implausible or its CRC wrong, the scan resynchronises on the next
position that holds a whole, CRC-valid frame: the bytes in between are damage (a flipped
byte on disk) or a torn tail (the record being written when the process died, never
acknowledged). They are moved to ``quarantine/`` beside the segments and counted, and
the segment is rewritten with every intact record, so one bad byte costs one record,
not the rest of its segment (it once cost 9 of 10).
"""

import contextlib
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Final

log = logging.getLogger(__name__)

_HEADER: Final = struct.Struct("<II")
MAX_RECORD_BYTES: Final = 256 * 1024 * 1024
_SUFFIX: Final = ".seg"


class SpoolFullError(RuntimeError):
    """The spool has no room for a record; the caller must wait (backpressure)."""


def _segment_name(number: int) -> str:
    return f"{number:012d}{_SUFFIX}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _frame_end(data: memoryview, pos: int) -> int:
    """The end of the whole, CRC-valid record at ``pos``, or -1."""
    if pos + _HEADER.size > len(data):
        return -1
    length, crc = _HEADER.unpack_from(data, pos)
    end = pos + _HEADER.size + length
    if length > MAX_RECORD_BYTES or end > len(data):
        return -1
    return end if zlib.crc32(data[pos + _HEADER.size : end]) == crc else -1


def scan_records(data: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(intact record spans, damaged spans) of a segment's bytes, as (start, end).

    After a damaged record the scan resumes at the next position holding a valid frame
    (a false match needs a plausible length and a 32-bit CRC match)."""
    view = memoryview(data)
    records: list[tuple[int, int]] = []
    damaged: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        end = _frame_end(view, pos)
        if end >= 0:
            records.append((pos, end))
            pos = end
            continue
        resume = pos + 1
        while resume < len(data) and _frame_end(view, resume) < 0:
            resume += 1
        damaged.append((pos, resume))
        pos = resume
    return records, damaged


def scan_valid_length(path: Path) -> tuple[int, int]:
    """(bytes of the intact records of ``path``, number of them)."""
    records, _ = scan_records(path.read_bytes())
    return sum(end - start for start, end in records), len(records)


class Spool:
    """A bounded FIFO of byte records on disk; single-threaded use (ingest's writer)."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        fsync: bool = True,
    ) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("spool max_bytes and segment_bytes must be positive")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.truncated_bytes = 0
        """Bytes cut off at open (torn tails, damaged records), kept in ``quarantine/``."""
        self.quarantined_spans = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._cursor_path = directory / "cursor"
        self._segments: list[int] = []
        self._sizes: dict[int, int] = {}
        self._read_segment = 0
        self._read_offset = 0
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self._reader_segment = -1
        self._peeked: tuple[int, bytes] | None = None
        self.records = 0
        """Records waiting for replay."""
        self._recover()

    # -- opening -------------------------------------------------------------------

    def _recover(self) -> None:
        paths = self.directory.glob(f"*{_SUFFIX}")
        numbers = sorted(int(p.stem) for p in paths if p.stem.isdigit())
        cursor_segment, cursor_offset = self._read_cursor()
        for number in numbers:
            path = self.directory / _segment_name(number)
            if number < cursor_segment:
                path.unlink()
                continue
            valid, count, cursor_offset = self._repair(path, number, cursor_segment, cursor_offset)
            self._segments.append(number)
            self._sizes[number] = valid
            self.records += count
        if self._segments and cursor_segment == self._segments[0]:
            offset = min(cursor_offset, self._sizes[cursor_segment])
            self.records -= self._count_records(cursor_segment, offset)
            self._read_offset = offset
        self._read_segment = self._segments[0] if self._segments else 0
        if self.records:
            log.info("spool %s: %d records waiting for replay", self.directory, self.records)

    def _repair(
        self, path: Path, number: int, cursor_segment: int, cursor_offset: int
    ) -> tuple[int, int, int]:
        """Quarantine a segment's damaged spans and keep its intact records; returns
        (bytes kept, records kept, the cursor offset in the rewritten segment)."""
        data = path.read_bytes()
        records, damaged = scan_records(data)
        kept = sum(end - start for start, end in records)
        if not damaged:
            return kept, len(records), cursor_offset
        quarantine = self.directory / "quarantine"
        quarantine.mkdir(exist_ok=True)
        for start, end in damaged:
            (quarantine / f"{number:012d}-{start:012d}.bin").write_bytes(data[start:end])
            self.truncated_bytes += end - start
            self.quarantined_spans += 1
        log.error(
            "spool %s: %d damaged byte(s) in %d span(s) moved to %s; %d intact record(s) kept",
            path,
            sum(end - start for start, end in damaged),
            len(damaged),
            quarantine,
            len(records),
        )
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            for start, end in records:
                f.write(data[start:end])
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        if self.fsync:
            _fsync_dir(self.directory)
        if number == cursor_segment:  # the replayed records' bytes, in the new layout
            cursor_offset = sum(end - start for start, end in records if end <= cursor_offset)
        return kept, len(records), cursor_offset

    def _count_records(self, number: int, upto: int) -> int:
        count = 0
        offset = 0
        with (self.directory / _segment_name(number)).open("rb") as f:
            while offset < upto:
                length, _ = _HEADER.unpack(f.read(_HEADER.size))
                f.seek(length, os.SEEK_CUR)
                offset += _HEADER.size + length
                count += 1
        return count

    def _read_cursor(self) -> tuple[int, int]:
        try:
            segment, offset = self._cursor_path.read_text().split()
            return int(segment), int(offset)
        except (OSError, ValueError):
            return 0, 0

    def _write_cursor(self) -> None:
        tmp = self._cursor_path.with_suffix(".tmp")
        tmp.write_text(f"{self._read_segment} {self._read_offset}\n")
        tmp.replace(self._cursor_path)

    # -- size ----------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet replayed."""
        return sum(self._sizes.values()) - (self._read_offset if self._segments else 0)

    def __len__(self) -> int:
        return self.records

    def has_room(self, payload_bytes: int) -> bool:
        return self.pending_bytes + _HEADER.size + payload_bytes <= self.max_bytes

    # -- writing -------------------------------------------------------------------

    def append(self, payload: bytes) -> None:
        """Add a record durably (see the fsync policy above); ``SpoolFullError`` if no room."""
        if not self.has_room(len(payload)):
            raise SpoolFullError(
                f"spool {self.directory} holds {self.pending_bytes} bytes, "
                f"the limit is {self.max_bytes}"
            )
        if len(payload) > MAX_RECORD_BYTES:
            raise ValueError(f"a spool record is at most {MAX_RECORD_BYTES} bytes")
        number = self._active_segment_for(len(payload))
        writer = self._writer
        assert writer is not None
        try:
            writer.write(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
            writer.flush()
            if self.fsync:
                os.fsync(writer.fileno())
        except OSError:
            self._undo_append(number)
            raise
        self._sizes[number] += _HEADER.size + len(payload)
        self.records += 1

    def _undo_append(self, number: int) -> None:
        """A write that failed (a full disk) may have left part of the record: cut the
        segment back to its last whole record, so the next append lands where the
        reader expects it."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(OSError):  # flushing the rest fails again: discard it
                writer.close()
        try:
            os.truncate(self.directory / _segment_name(number), self._sizes[number])
        except OSError:  # left to the CRC scan at the next open, which quarantines it
            log.exception("could not cut a partial spool record from segment %d", number)

    def _active_segment_for(self, payload_bytes: int) -> int:
        if self._segments:
            number = self._segments[-1]
            if self._sizes[number] + payload_bytes <= self.segment_bytes or not self._sizes[number]:
                if self._writer is None:
                    self._writer = (self.directory / _segment_name(number)).open("ab")
                return number
        number = self._segments[-1] + 1 if self._segments else self._read_segment + 1
        self._close_writer()
        self._writer = (self.directory / _segment_name(number)).open("ab")
        if self.fsync:
            _fsync_dir(self.directory)
        if not self._segments:
            self._read_segment, self._read_offset = number, 0
        self._segments.append(number)
        self._sizes[number] = 0
        return number

    # -- replay --------------------------------------------------------------------

    def peek(self) -> bytes | None:
        """The oldest record not yet replayed, or None; stays until ``advance``."""
        if self._peeked is not None:
            return self._peeked[1]
        if not self.records:
            return None
        while self._read_offset >= self._sizes[self._read_segment]:
            self._drop_first_segment()
        if self._reader_segment != self._read_segment:
            if self._reader is not None:
                self._reader.close()
            self._reader = (self.directory / _segment_name(self._read_segment)).open("rb")
            self._reader_segment = self._read_segment
        reader = self._reader
        assert reader is not None
        reader.seek(self._read_offset)
        length, crc = _HEADER.unpack(reader.read(_HEADER.size))
        payload = reader.read(length)
        if zlib.crc32(payload) != crc:  # checked at open; this would be live disk damage
            raise OSError(f"spool record at {self._read_segment}:{self._read_offset} is damaged")
        self._peeked = (_HEADER.size + length, payload)
        return payload

    def advance(self) -> bool:
        """Mark the record returned by ``peek`` as replayed; False if the cursor file
        could not be saved (a full disk). Replay goes on regardless: the cursor only
        spares a restart from re-sending records, which InfluxDB takes as no-ops."""
        if self._peeked is None:
            raise RuntimeError("advance() without a peek()")
        self._read_offset += self._peeked[0]
        self._peeked = None
        self.records -= 1
        if self.records == 0:
            # Everything replayed: drop all segments and start afresh.
            while self._segments:
                self._drop_first_segment()
            self._read_offset = 0
            self._cursor_path.unlink(missing_ok=True)
            return True
        try:
            self._write_cursor()
        except OSError:
            return False
        return True

    def _drop_first_segment(self) -> None:
        number = self._segments.pop(0)
        del self._sizes[number]
        if self._reader_segment == number and self._reader is not None:
            self._reader.close()
            self._reader, self._reader_segment = None, -1
        if not self._segments:
            self._close_writer()
        (self.directory / _segment_name(number)).unlink(missing_ok=True)
        self._read_segment = self._segments[0] if self._segments else number
        self._read_offset = 0

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        self._close_writer()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
