"""The durable side: write batches to InfluxDB, or to the spool when it is away; then ack.

One writer thread owns the InfluxDB client and the spool, so MQTT receive never waits on
HTTP. For each batch, in order:

1. Write its gzipped lines to InfluxDB, retrying 5xx/timeouts/connection errors with
   exponential backoff and full jitter for up to ``retry_budget_s``; if InfluxDB is still
   away, append the body to the spool (fsynced) and switch to spool mode, where later
   batches go straight to the spool until a replay succeeds.
2. A 4xx (InfluxDB refused lines: our bug or a field type conflict) is not retried as a
   whole: InfluxDB stored the other points of a partial write, and ``ingest.refusal``
   finds which points it refused and why; those are logged, counted (``points_refused``)
   and kept in ``rejected/*.lp`` next to the spool, and the batch counts as done.
3. Wait for the PUBACKs of the batch's dead letters, then acknowledge its MQTT messages.
4. Hand the batch to the sink thread, which gives its readings to the reading sinks (the
   detector) in the order the batches became durable. The sinks run on their own thread
   so the detector's work overlaps the next batch's HTTP write instead of following it
   (the writer was the drain's bottleneck: write, then score, then write); at most
   ``sink_queue_batches`` wait for it, beyond that the writer waits (bounded memory,
   backpressure through the unacknowledged window as before).

Between batches the spool is replayed oldest first. When the spool is full, the writer
keeps retrying InfluxDB and acknowledges nothing: the broker stops sending once Receive
Maximum messages are unacknowledged (backpressure, no drop).
"""

import gzip
import logging
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np

from ingest.batch import AckToken, PendingBatch
from ingest.refusal import Refused, identify_refused, split_points
from ingest.sinks import BatchSink
from ingest.spool import Spool
from ingest.stats import IngestStats
from telemetry import ReadingBatch
from telemetry.backoff import Backoff
from telemetry.influxdb import InfluxClient, InfluxRejectedError, InfluxUnavailableError

log = logging.getLogger(__name__)

_COUNT: Final = struct.Struct("<I")
_STOP: Final = object()


class DurableWriter:
    """The writer thread; ``submit`` batches, ``stop`` drains and joins."""

    def __init__(
        self,
        *,
        influx: InfluxClient,
        spool: Spool,
        ack: Callable[[list[AckToken]], None],
        stats: IngestStats,
        sinks: Sequence[BatchSink] = (),
        retry_budget_s: float = 5.0,
        backoff: Callable[[], Backoff] = lambda: Backoff(base_s=0.2, cap_s=10.0),
        rejected_dir: Path | None = None,
        deadletter_timeout_s: float = 10.0,
        sink_queue_batches: int = 2,
        on_abandoned: Callable[[PendingBatch], None] = lambda _batch: None,
    ) -> None:
        self.influx = influx
        self.spool = spool
        self.ack = ack
        self.stats = stats
        self.sinks = list(sinks)
        self.retry_budget_s = retry_budget_s
        self.new_backoff = backoff
        self.rejected_dir = rejected_dir or spool.directory / "rejected"
        self.deadletter_timeout_s = deadletter_timeout_s
        self.on_abandoned = on_abandoned
        """Called with a batch left unacknowledged (not made durable): the broker will
        redeliver its messages, which must then not count as duplicates."""
        self.spool_mode = False
        """True while InfluxDB is known to be away: batches go straight to the spool."""
        self._queue: queue.Queue[object] = queue.Queue()
        self._replay_backoff = backoff()
        self._next_replay_s = 0.0
        self._stopping = threading.Event()
        """Set by ``stop()``: give up waiting (retries, a full spool) and leave the rest unacked."""
        self._spool_full_logged = False
        self.disk_error: str | None = None
        """Why the spool's last write failed (a full disk), or None once one succeeds:
        while set, batches that need the spool wait unacknowledged (backpressure)."""
        self._disk_error_from = ""  # "append" or "cursor": which write clears it
        self._disk_backoff = backoff()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._sink_queue: queue.Queue[object] = queue.Queue(maxsize=sink_queue_batches)
        self._sink_thread = (
            threading.Thread(target=self._run_sinks, name="ingest-sinks", daemon=True)
            if self.sinks
            else None
        )

    # -- control -------------------------------------------------------------------

    def start(self) -> None:
        if self._sink_thread is not None:
            self._sink_thread.start()
        self._thread.start()

    def submit(self, batch: PendingBatch) -> None:
        self._queue.put(batch)

    def pending_batches(self) -> int:
        """Batches not yet through: waiting to be written, or for (or in) the sinks."""
        return self._queue.qsize() + self._sink_queue.unfinished_tasks

    def stop(self, timeout_s: float | None = None) -> bool:
        """Write (or spool) every submitted batch, then end the thread; True if it ended.

        Batches that find neither InfluxDB nor room in the spool stay unacknowledged (the
        broker redelivers them to the next session) instead of holding the shutdown.
        """
        self._stopping.set()
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # -- loop ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            wait_s = 0.05 if self.spool.records else 0.5
            try:
                item = self._queue.get(timeout=wait_s)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._drain_queue()  # anything submitted after stop()
                if self._sink_thread is not None and self._sink_thread.is_alive():
                    self._sink_queue.put(_STOP)
                    self._sink_thread.join()
                    self._drain_queue()  # what the sinks wrote meanwhile (score lines)
                return
            if isinstance(item, PendingBatch):
                try:
                    self._handle(item)
                except Exception:  # keep the writer alive; the batch stays unacked
                    log.exception("writing a batch failed; its messages stay unacknowledged")
                    self.stats.batches_abandoned += 1
                    self.on_abandoned(item)
            try:
                self._replay_some()
            except Exception:
                log.exception("spool replay failed")
                self._next_replay_s = time.monotonic() + self._replay_backoff.next_delay()

    def _drain_queue(self) -> None:
        while not self._queue.empty():
            rest = self._queue.get()
            if isinstance(rest, PendingBatch):
                self._handle(rest)

    def _handle(self, batch: PendingBatch) -> None:
        if batch.lines and not self._store(batch):
            # Shutting down with nowhere to put it: leave it to the broker.
            self.stats.batches_abandoned += 1
            self.on_abandoned(batch)
            return
        unconfirmed: set[AckToken] = set()
        for token, confirmed in batch.deadletters:
            if not confirmed(self.deadletter_timeout_s):
                log.warning("dead letter not confirmed by the broker; original stays unacked")
                if token is not None:
                    unconfirmed.add(token)
        # In receive order (MQTT wants PUBACKs in the order the PUBLISHes came).
        acks = [t for t in batch.acks if t not in unconfirmed] if unconfirmed else batch.acks
        if acks:
            self.ack(acks)
            self.stats.acked += len(acks)
        if batch.lags_ms:
            self.stats.broker_lag_s.observe_many(np.asarray(batch.lags_ms, np.float64) / 1000.0)
        if self._sink_thread is not None and batch.reports:
            self._sink_queue.put(batch)  # durable and acknowledged: the sinks may see it

    def _run_sinks(self) -> None:
        """The sink thread: each batch's readings to every sink, in the order of the queue."""
        while True:
            item = self._sink_queue.get()
            try:
                if item is _STOP:
                    return
                if isinstance(item, PendingBatch):
                    self._call_sinks(item)
            finally:
                self._sink_queue.task_done()

    def _call_sinks(self, batch: PendingBatch) -> None:
        try:
            readings = ReadingBatch.from_reports(batch.reports, batch.wards)
        except Exception:
            self.stats.sink_errors += 1
            log.exception("flattening a batch of %d reports for the sinks failed", len(batch))
            return
        for sink in self.sinks:
            try:
                sink.handle(readings)
            except Exception:
                self.stats.sink_errors += 1
                log.exception("sink %r failed on a batch of %d readings", sink, len(readings))

    # -- storing -------------------------------------------------------------------

    def _store(self, batch: PendingBatch) -> bool:
        """Make the batch's lines durable; False only when stopping with no room anywhere."""
        points = len(batch.lines)
        body = self.influx.compress("\n".join(batch.lines).encode())
        if not self.spool_mode and self._write_with_retries(body, points):
            return True
        return self._spool(body, points)

    def _write_with_retries(self, body: bytes, points: int) -> bool:
        backoff = self.new_backoff()
        deadline = time.monotonic() + self.retry_budget_s
        while True:
            started = time.monotonic()
            try:
                self.influx.write_gzipped(body)
            except InfluxRejectedError as exc:
                refused = self._refused(exc, body)
                self.stats.points_written += max(0, points - refused)
                return True
            except InfluxUnavailableError as exc:
                self.stats.write_failures += 1
                delay = backoff.next_delay()
                if self._stopping.is_set() or time.monotonic() + delay > deadline:
                    log.warning("InfluxDB unavailable (%s): spooling", exc)
                    self.spool_mode = True
                    self._next_replay_s = time.monotonic() + self._replay_backoff.next_delay()
                    return False
                log.info("InfluxDB write failed (%s); retrying in %.2f s", exc, delay)
                self._stopping.wait(delay)
                continue
            elapsed = time.monotonic() - started
            self.stats.write_latency_s.observe(elapsed)
            self.stats.batch_points.observe(points)
            self.stats.points_written += points
            self.stats.batches_written += 1
            return True

    def _spool(self, body: bytes, points: int) -> bool:
        record = _COUNT.pack(points) + body
        while not self.spool.has_room(len(record)):
            if not self._spool_full_logged:
                log.error(
                    "spool full (%d bytes, limit %d): holding acknowledgements until "
                    "InfluxDB takes the backlog",
                    self.spool.pending_bytes,
                    self.spool.max_bytes,
                )
                self._spool_full_logged = True
            if self._stopping.wait(max(0.0, self._next_replay_s - time.monotonic())):
                return False
            self._replay_some()
            if not self.spool_mode and self._write_with_retries(body, points):
                return True
        self._spool_full_logged = False
        while not self._append(record):
            # The disk refused (full): hold the batch, unacknowledged, and retry; replay
            # frees room as it empties segments, and InfluxDB may take the batch itself.
            if self._stopping.wait(self._disk_backoff.next_delay()):
                return False
            self._replay_some()
            if not self.spool_mode and self._write_with_retries(body, points):
                self._disk_ok("append")
                return True
        self.stats.points_spooled += points
        self.stats.batches_spooled += 1
        return True

    def _append(self, record: bytes) -> bool:
        """Append to the spool; False (counted, logged once per episode) if the disk
        refused."""
        try:
            self.spool.append(record)
        except OSError as exc:
            self._disk_failed(
                "append",
                f"spool append failed: {exc}; holding acknowledgements until the disk "
                "takes writes again",
            )
            return False
        self._disk_ok("append")
        return True

    def _disk_failed(self, source: str, reason: str) -> None:
        self.stats.spool_write_errors += 1
        if self.disk_error is None:  # once per episode; the counter counts every one
            log.error(
                "%s (%d batches spooled, %d bytes)",
                reason,
                self.spool.records,
                self.spool.pending_bytes,
            )
        self.disk_error = reason
        self._disk_error_from = source

    def _disk_ok(self, source: str) -> None:
        """A write of ``source``'s kind succeeded: it clears an error of that kind (a
        small cursor file may fit where a record does not)."""
        if self.disk_error is not None and source in ("append", self._disk_error_from):
            log.warning("spool disk writable again (after: %s)", self.disk_error)
            self.disk_error = None
        self._disk_backoff.reset()

    def _replay_some(self) -> None:
        """Replay spooled batches, oldest first, until done, failing, or new work waits."""
        while self.spool.records and time.monotonic() >= self._next_replay_s:
            record = self.spool.peek()
            assert record is not None
            (points,) = _COUNT.unpack_from(record)
            body = record[_COUNT.size :]
            try:
                self.influx.write_gzipped(body)
            except InfluxRejectedError as exc:
                refused = self._refused(exc, body)
                self.stats.points_replayed += max(0, points - refused)
            except InfluxUnavailableError as exc:
                self.stats.write_failures += 1
                self.spool_mode = True
                delay = self._replay_backoff.next_delay()
                self._next_replay_s = time.monotonic() + delay
                log.info("replay: InfluxDB still unavailable (%s); next try in %.1f s", exc, delay)
                return
            else:
                self.stats.points_replayed += points
                self.stats.batches_replayed += 1
            if self.spool.advance():
                self._disk_ok("cursor")
            else:  # not fatal: replay goes on; a restart may resend a few (no-op) records
                self._disk_failed(
                    "cursor",
                    f"spool cursor not saved in {self.spool.directory}; replay goes on",
                )
            if self.spool_mode:
                log.info("InfluxDB is back: replaying %d spooled batches", self.spool.records)
            self.spool_mode = False
            self._replay_backoff.reset()
            if not self._queue.empty() and not self._stopping.is_set():
                return

    def _refused(self, exc: InfluxRejectedError, body: bytes) -> int:
        """Find the refused points, keep them in ``rejected/`` with their reasons, say which.

        Returns how many points were refused (the others are stored).
        """
        points = split_points(gzip.decompress(body).decode("utf-8", "replace"))
        refused = identify_refused(points, exc.message, self._write_points)
        self.stats.points_refused += len(refused)
        if not refused:
            log.warning("%s; written again, InfluxDB took every line", exc)
            return 0
        path = self._keep_refused(exc, refused)
        named = "; ".join(f"line {r.index + 1} {r.line[:200]!r}: {r.reason}" for r in refused[:5])
        more = f"; and {len(refused) - 5} more" if len(refused) > 5 else ""
        log.error(
            "InfluxDB refused %d of %d lines (HTTP %d; the others are stored), kept in %s: %s%s",
            len(refused),
            len(points),
            exc.status,
            path,
            named,
            more,
        )
        return len(refused)

    def _write_points(self, points: Sequence[str]) -> None:
        self.influx.write_gzipped(self.influx.compress("\n".join(points).encode()))

    def _keep_refused(self, exc: InfluxRejectedError, refused: list[Refused]) -> Path:
        """Append the refused lines, under ``# refused: <reason>`` comments, to today's file.

        The file is valid line protocol (comments and points), so after fixing the cause
        an operator can write it to InfluxDB as it is.
        """
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        path = self.rejected_dir / f"{time.strftime('%Y%m%d')}.lp"
        out = [_comment(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} HTTP {exc.status}: {exc.message}")]
        reason = None
        for r in refused:
            if r.reason != reason:
                reason = r.reason
                out.append(_comment(f"refused: {reason}"))
            out.append(r.line)
        with path.open("ab") as f:
            f.write("\n".join(out).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        return path


def _comment(text: str) -> str:
    """A one-line comment: a newline inside a reason would start a bogus point."""
    return "# " + " ".join(text.splitlines())
