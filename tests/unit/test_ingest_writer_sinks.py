"""Sinks run on their own thread, yet each batch reaches them after it is written and
acknowledged, in order; what a sink writes back while ingest stops is still written."""

import gzip
import threading
import time
from pathlib import Path

from ingest.batch import PendingBatch
from ingest.spool import Spool
from ingest.stats import IngestStats
from ingest.writer import DurableWriter
from telemetry import DeviceKind, ReadingBatch, Report
from telemetry.influxdb import InfluxClient

T0 = 1_764_300_000_000


class LoggingInflux(InfluxClient):
    def __init__(self, log: list[tuple[str, object]]) -> None:
        super().__init__("http://influx.invalid:8086", "db")
        self.log = log

    def write_gzipped(self, body: bytes) -> None:
        self.log.append(("write", gzip.decompress(body).decode().split("\n")))


class SlowSink:
    """Records batches (by their first timestamp) and writes a line back per batch."""

    def __init__(self, log: list[tuple[str, object]]) -> None:
        self.log = log
        self.writer: DurableWriter | None = None
        self.thread: set[str] = set()

    def handle(self, batch: ReadingBatch) -> None:
        self.thread.add(threading.current_thread().name)
        time.sleep(0.02)  # slower than the writer: batches wait for it at stop()
        first = int(batch.ts_ms[0])
        self.log.append(("sink", first))
        assert self.writer is not None
        self.writer.submit(PendingBatch(lines=[f"score v=1 {first}"]))


def batch(k: int) -> PendingBatch:
    reports = [
        Report(
            v=1,
            device=f"d{i}",
            kind=DeviceKind.CABINET,
            ts=T0 + k * 1000 + i,
            seq=k,
            metrics={"temp_inside": 30.0, "door_open": False},
        )
        for i in range(3)
    ]
    return PendingBatch(
        lines=[f"cabinet,device={r.device} temp_inside=30.0 {r.ts}" for r in reports],
        reports=reports,
        wards=["w"] * len(reports),
        acks=[(0, k * 10 + i) for i in range(3)],
    )


def test_sinks_see_durable_batches_in_order_and_their_writes_survive_stop(
    tmp_path: Path,
) -> None:
    log: list[tuple[str, object]] = []
    sink = SlowSink(log)
    writer = DurableWriter(
        influx=LoggingInflux(log),
        spool=Spool(tmp_path / "spool", fsync=False),
        ack=lambda tokens: log.append(("ack", list(tokens))),
        stats=IngestStats(),
        sinks=[sink],
    )
    sink.writer = writer
    writer.start()
    n = 12
    for k in range(n):
        writer.submit(batch(k))
    assert writer.stop(30)
    assert writer.pending_batches() == 0
    assert sink.thread == {"ingest-sinks"}

    seen = [entry for kind, entry in log if kind == "sink"]
    assert seen == [T0 + k * 1000 for k in range(n)]
    for k in range(n):
        first = T0 + k * 1000
        at_sink = log.index(("sink", first))
        written = next(
            i
            for i, (kind, lines) in enumerate(log)
            if kind == "write" and isinstance(lines, list) and str(first) in lines[0]
        )
        acked = log.index(("ack", [(0, k * 10 + i) for i in range(3)]))
        assert written < acked < at_sink
    score_lines = [
        line
        for kind, lines in log
        if kind == "write" and isinstance(lines, list)
        for line in lines
        if line.startswith("score ")
    ]
    assert sorted(score_lines) == sorted(f"score v=1 {T0 + k * 1000}" for k in range(n))
