"""``citywatch detect``: run the streaming detector offline over files.

Input: a CSV ``timestamp,value`` (one series), a directory in NAB layout
(``<category>/<name>.csv``, mirrored in the output), or a simulator JSON-lines file
(``{"topic": …, "payload": {…}}`` per line). CSVs come out as
``timestamp,value,anomaly_score``; JSON lines as one line per reading (``"type":
"reading"``) and per detection (``"type": "detection"``). Each score uses only the rows
before it: the detector is the live one, fed in time order.

A CSV's ``anomaly_score`` is the detector's onset score (``Update.onset``: calibrated
per series, high where an anomaly starts; what NAB scores). A JSON-lines reading carries
both ``anomaly_score`` (``Update.scores``, the sub-detectors' max, what the live
pipeline charts) and ``onset_score``.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt
import typer
from rich.progress import Progress

from anomaly import Detector, DetectorConfig
from anomaly.offline import score_series
from citywatch import kernel_ready
from telemetry.batch import ReadingBatch
from telemetry.catalogue import METRICS_BY_ID
from telemetry.errors import DecodeError
from telemetry.payload import Report, decode_message

log = logging.getLogger(__name__)

_JSONL_BATCH = 2_000


class InputError(ValueError):
    """A bad input file or row, named precisely."""


def read_series_csv(path: Path) -> tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Timestamps (as written), epoch ms and values of a ``timestamp,value`` CSV.

    Timestamps are ISO-8601 (``2014-04-10 07:15:00``) or epoch seconds/milliseconds;
    an empty or ``nan`` value is kept and scored 0; anything else unreadable is an error
    naming the line.
    """
    texts: list[str] = []
    values: list[float] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            raise InputError(f"{path}: needs a header with columns timestamp,value")
        for line, row in enumerate(reader, start=2):
            texts.append(row["timestamp"] or "")
            raw = (row["value"] or "").strip()
            try:
                values.append(float(raw) if raw else math.nan)
            except ValueError:
                raise InputError(f"{path}:{line}: value {raw!r} is not a number") from None
    return texts, _parse_times(path, texts), np.array(values, dtype=np.float64)


def _parse_times(path: Path, texts: list[str]) -> npt.NDArray[np.int64]:
    out = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        t = text.strip()
        try:
            number = float(t)
        except ValueError:
            try:
                out[i] = np.datetime64(t.replace("Z", ""), "ms").astype(np.int64)
            except ValueError:
                raise InputError(f"{path}:{i + 2}: timestamp {text!r} is not a date") from None
            continue
        out[i] = int(number if number > 1e11 else number * 1000)  # ms or seconds
    return out


def write_scored_csv(
    path: Path, texts: list[str], values: npt.NDArray[np.float64], scores: npt.NDArray[np.float64]
) -> None:
    """``timestamp,value,anomaly_score`` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["timestamp", "value", "anomaly_score"])
        for t, v, s in zip(texts, values.tolist(), scores.tolist(), strict=True):
            out.writerow([t, repr(v) if not math.isnan(v) else "", f"{s:.6f}"])


def detect_csvs(inputs: list[Path], root: Path, output: Path, config: DetectorConfig) -> int:
    """Score CSV series together (one slot each) and mirror them under ``output``."""
    loaded = [read_series_csv(p) for p in inputs]
    scores = score_series([(ts, x) for _, ts, x in loaded], config)
    for path, (texts, _, values), sc in zip(inputs, loaded, scores, strict=True):
        target = output / path.relative_to(root) if root != path else output
        write_scored_csv(target, texts, values, sc)
    return sum(len(x) for _, _, x in loaded)


class _Line(msgspec.Struct):
    topic: str
    payload: msgspec.Raw


class _Peek(msgspec.Struct):
    ts: int | None = None


def iter_jsonl_batches(
    source: Path, on_reject: Callable[[int, str], None], batch_reports: int = _JSONL_BATCH
) -> Iterator[ReadingBatch]:
    """Telemetry of a simulator JSON-lines file as contract batches, in file order.

    Each payload is validated as ingest does (against its own timestamp: offline there is
    no clock); a bad line goes to ``on_reject(line_number, reason)``, never silently.
    Events and statuses are skipped (liveness is not the detector's).
    """
    line_dec = msgspec.json.Decoder(_Line)
    peek = msgspec.json.Decoder(_Peek)
    reports: list[Report] = []
    wards: list[str] = []
    with source.open("rb") as src:
        for number, raw in enumerate(src, start=1):
            if not raw.strip():
                continue
            try:
                line = line_dec.decode(raw)
                payload = bytes(line.payload)
                now = peek.decode(payload).ts or 0
                topic, message = decode_message(line.topic, payload, now_ms=now)
            except (msgspec.DecodeError, DecodeError) as exc:
                on_reject(number, str(exc))
                continue
            if isinstance(message, Report):
                reports.append(message)
                wards.append(topic.ward)
                if len(reports) >= batch_reports:
                    yield ReadingBatch.from_reports(reports, wards)
                    reports, wards = [], []
    if reports:
        yield ReadingBatch.from_reports(reports, wards)


def detect_jsonl(source: Path, output: Path, config: DetectorConfig) -> tuple[int, int]:
    """Score a simulator JSON-lines stream; rejected lines go to ``<output>.rejected.jsonl``
    with the reason. Returns (readings scored, lines rejected)."""
    det = Detector(config)
    enc = msgspec.json.Encoder()
    rejected_path = output.with_name(output.name + ".rejected.jsonl")
    scored = rejected = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as out, rejected_path.open("wb") as bad:

        def reject(number: int, reason: str) -> None:
            nonlocal rejected
            rejected += 1
            bad.write(enc.encode({"line": number, "reason": reason}) + b"\n")

        for batch in iter_jsonl_batches(source, reject):
            res = det.update(batch)
            events = [*res.events, *det.tick(int(batch.ts_ms.max()))]
            metric_names = [METRICS_BY_ID[int(m)].name for m in batch.metric.tolist()]
            for i in range(len(batch)):
                record = {
                    "type": "reading",
                    "ts": int(batch.ts_ms[i]),
                    "ward": batch.ward[i],
                    "device": batch.device[i],
                    "metric": metric_names[i],
                    "value": float(batch.value[i]),
                    "anomaly_score": round(float(res.scores[i]), 6),
                    "onset_score": round(float(res.onset[i]), 6),
                }
                out.write(enc.encode(record) + b"\n")
            for ev in events:
                out.write(enc.encode({"type": "detection", **msgspec.to_builtins(ev)}) + b"\n")
            scored += len(batch)
    if rejected == 0:
        rejected_path.unlink()
    return scored, rejected


def detect(
    input_path: Annotated[
        Path, typer.Option("--input", help="CSV timestamp,value; NAB-layout dir; or .jsonl")
    ],
    output: Annotated[Path, typer.Option("--output", help="Output file or directory.")],
) -> None:
    """Score every row with the streaming detector (each score uses only the past)."""
    config = DetectorConfig()  # the live pipeline's configuration
    kernel_ready.prepare()
    try:
        if input_path.is_dir():
            files = sorted(p for p in input_path.rglob("*.csv") if p.is_file())
            if not files:
                raise InputError(f"{input_path}: no .csv files below it")
            with Progress(transient=True) as progress:
                progress.add_task(f"scoring {len(files)} series", total=None)
                rows = detect_csvs(files, input_path, output, config)
            log.info("scored %d rows of %d series into %s", rows, len(files), output)
        elif input_path.suffix in (".jsonl", ".ndjson", ".json"):
            with Progress(transient=True) as progress:
                progress.add_task("scoring the stream", total=None)
                n, bad = detect_jsonl(input_path, output, config)
            log.info("scored %d readings into %s; %d lines rejected", n, output, bad)
        elif input_path.is_file():
            rows = detect_csvs([input_path], input_path, output, config)
            log.info("scored %d rows into %s", rows, output)
        else:
            raise InputError(f"{input_path}: no such file or directory")
    except (InputError, OSError) as exc:
        log.error("%s", exc)
        raise typer.Exit(2) from None
