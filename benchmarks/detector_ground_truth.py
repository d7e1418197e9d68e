"""The detector against the simulators' ground truth (run by hand).

For each shipped scenario with faults: simulate a quiet lead-in (the same seeded fleet,
``--lead-hours`` before the scenario, so baselines are learned past the warm-up as in
a running city), then the scenario with its labels; stream both through one detector
in time order with ``tick`` after each batch, exactly as ``citywatch detect`` does.

A detection (an event starting, ``active``) is *true* when a label of its device
(any metric for device rules and dropouts, the same metric otherwise; for the area
rule any label of its ward) covers its time, with ``--grace-min`` of slack after the
label ends. Per fault kind: recall (labels with at least one true detection), median
delay from the label start to its first detection, and precision over the detection
kinds that found that fault (true ones / all of those kinds, over the whole run).
False detections during the quiet lead-in are counted too (clean data should stay quiet).

The lead-in and the scenario are two simulator runs: the physics restarts at the seam
(fans, temperatures jump), so detections in the first ``--settle-min`` minutes of the
scenario are left out of both precision and recall (the shipped faults start later).

    python benchmarks/detector_ground_truth.py [--devices 300] [--lead-hours 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anomaly import Detection, Detector, DetectorConfig
from citywatch.cli import app
from citywatch.cmd_detect import iter_jsonl_batches
from simulators.labels import Label, iso_utc, read_labels

START_MS = (
    1_784_127_600_000  # 2026-07-15T15:00:00Z = 22:00 in Hanoi (the door fault is a night one)
)
SCENARIOS = ("monsoon_evening", "sensor_faults")


def simulate(
    out: Path, scenario: str, start_ms: int, seconds: float, devices: int, labels: Path | None
) -> None:
    args = [
        "simulate",
        "--output",
        str(out),
        "--devices",
        str(devices),
        "--speed",
        "0",
        "--seed",
        "1",
        "--scenario",
        scenario,
        "--start",
        iso_utc(start_ms).replace(".000", ""),
        "--duration",
        str(seconds),
    ]
    if labels is not None:
        args += ["--labels", str(labels)]
    app(args, standalone_mode=False)


def run_stream(det: Detector, path: Path) -> list[Detection]:
    events: list[Detection] = []

    def reject(line: int, reason: str) -> None:
        print(f"  rejected line {line}: {reason}", file=sys.stderr)

    for batch in iter_jsonl_batches(path, reject):
        events.extend(det.update(batch).events)
        events.extend(det.tick(int(batch.ts_ms.max())))
    return [e for e in events if e.active]


def matches(ev: Detection, label: Label, grace_ms: int) -> bool:
    if not label.start_ms <= ev.ts_ms <= label.end_ms + grace_ms:
        return False
    if not ev.device:
        return ev.ward == label.ward
    if ev.device != label.device:
        return False
    return label.metric == "*" or not ev.metric or ev.metric == label.metric


def evaluate(events: Sequence[Detection], labels: Sequence[Label], grace_ms: int) -> None:
    true = [any(matches(e, lab, grace_ms) for lab in labels) for e in events]
    by_fault: dict[str, list[Label]] = defaultdict(list)
    for lab in labels:
        by_fault[lab.fault].append(lab)
    header = (
        f"  {'fault':<18}{'labels':>7}{'found':>7}{'recall':>8}{'precision':>10}{'F1':>6}"
        "  median delay  found by"
    )
    print(header)
    for fault, labs in sorted(by_fault.items()):
        delays, kinds = [], set()
        for lab in labs:
            hits = [e for e in events if matches(e, lab, grace_ms)]
            if hits:
                delays.append(max(0, min(e.ts_ms for e in hits) - lab.start_ms) / 60_000)
                kinds |= {e.kind for e in hits}
        recall = len(delays) / len(labs)
        pool = [t for e, t in zip(events, true, strict=True) if e.kind in kinds]
        precision = sum(pool) / len(pool) if pool else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if pool and precision + recall else 0.0
        delay = f"{statistics.median(delays):8.1f} min" if delays else "         n/a"
        print(
            f"  {fault:<18}{len(labs):>7}{len(delays):>7}{recall:>8.2f}{precision:>10.2f}"
            f"{f1:>6.2f}  {delay}  {','.join(sorted(k.value for k in kinds)) or '-'}"
        )
    n_true = sum(true)
    found = sum(any(matches(e, lab, grace_ms) for e in events) for lab in labels)
    p = n_true / len(events) if events else float("nan")
    r = found / len(labels) if labels else float("nan")
    f1 = 2 * p * r / (p + r) if events and labels and p + r else 0.0
    print(f"  overall: {len(events)} detections, precision {p:.2f}, recall {r:.2f}, F1 {f1:.2f}")
    false_kinds: dict[str, int] = defaultdict(int)
    for e, t in zip(events, true, strict=True):
        if not t:
            false_kinds[e.kind.value] += 1
    if false_kinds:
        print(
            "  false detections by kind: "
            + ", ".join(f"{k} {v}" for k, v in sorted(false_kinds.items()))
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--lead-hours", type=float, default=6.0)
    parser.add_argument("--grace-min", type=float, default=10.0)
    parser.add_argument("--settle-min", type=float, default=30.0)
    parser.add_argument(
        "--scenario", action="append", help="default: every shipped one with faults"
    )
    args = parser.parse_args(argv)
    grace_ms = round(args.grace_min * 60_000)
    for scenario in args.scenario or SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            lead_s = args.lead_hours * 3600
            simulate(
                folder / "lead.jsonl",
                "quiet_day",
                START_MS - round(lead_s * 1000),
                lead_s,
                args.devices,
                None,
            )
            simulate(
                folder / "run.jsonl",
                scenario,
                START_MS,
                2 * 3600,
                args.devices,
                folder / "labels.csv",
            )
            det = Detector(DetectorConfig())
            quiet = run_stream(det, folder / "lead.jsonl")
            settle = START_MS + round(args.settle_min * 60_000)
            events = [e for e in run_stream(det, folder / "run.jsonl") if e.ts_ms >= settle]
            labels = read_labels(folder / "labels.csv")
        hours = args.devices * args.lead_hours
        print(
            f"{scenario}: {args.devices} devices, {len(labels)} labels; quiet lead-in "
            f"{args.lead_hours:g} h: {len(quiet)} detections "
            f"({len(quiet) / hours:.4f} per device-hour)"
        )
        evaluate(events, labels, grace_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
