"""The shortcuts change nothing: the registry's slot look-up by runs of device ids equals
one ``slot`` per reading, and DetectorSink's cached score series keys give the same
``citywatch_score`` lines as one ``score_line`` (``encode_point``) per flagged reading."""

import numpy as np

from anomaly import Detection, Detector, SeriesRegistry
from citywatch.detector_sink import DataClock, DetectorSink
from telemetry import DeviceKind, ReadingBatch, Report
from telemetry.lineproto import score_line

T0 = 1_764_300_000_000
CABINET_METRICS = ("temp_inside", "humidity", "door_open", "mains_voltage", "on_battery")
SEGMENT_METRICS = ("signal", "temp", "moisture")


def batches(seed: int, rounds: int) -> list[ReadingBatch]:
    """Reports of a small fleet: devices appear late, metric sets and orders vary, spikes."""
    rng = np.random.default_rng(seed)
    out = []
    for r in range(rounds):
        reports, wards = [], []
        for d in range(int(rng.integers(3, 12))):
            kind = DeviceKind.CABINET if d % 4 else DeviceKind.CABLE_SEGMENT
            pool = CABINET_METRICS if kind is DeviceKind.CABINET else SEGMENT_METRICS
            names = rng.permutation(pool)[: int(rng.integers(1, len(pool) + 1))]
            metrics: dict[str, float | bool] = {}
            for name in names:
                if name in ("door_open", "on_battery", "signal"):
                    metrics[str(name)] = bool(rng.random() < 0.2)
                else:
                    spike = 40.0 if rng.random() < 0.05 else 0.0
                    metrics[str(name)] = float(30 + rng.normal() + spike)
            reports.append(
                Report(
                    v=1,
                    device=f"dev-{d}",
                    kind=kind,
                    ts=T0 + r * 60_000 + d,
                    seq=r,
                    metrics=metrics,
                )
            )
            wards.append(f"w{d % 3}")
        out.append(ReadingBatch.from_reports(reports, wards))
    return out


def test_sink_equals_plain_update_and_encode_point() -> None:
    events: list[Detection] = []
    lines: list[str] = []
    sink = DetectorSink(Detector(), DataClock(), emit=events.extend, score_floor=0.3)
    sink.write = lines.extend
    reference = Detector()
    want_events: list[Detection] = []
    want_lines: list[str] = []
    for batch in batches(seed=7, rounds=80):
        update = reference.update(batch)
        want_events += update.events
        flagged = np.flatnonzero(update.scores >= 0.3)
        want_lines += [
            score_line(
                str(batch.device[i]),
                str(batch.ward[i]),
                int(batch.metric[i]),
                int(batch.ts_ms[i]),
                float(batch.value[i]),
                float(update.scores[i]),
            )
            for i in flagged
        ]
        sink.handle(batch)
    assert reference.registry.devices == sink.detector.registry.devices
    np.testing.assert_array_equal(
        reference.registry.metric[: reference.registry.size],
        sink.detector.registry.metric[: sink.detector.registry.size],
    )
    assert want_lines, "the stream should flag some readings"
    assert lines == want_lines
    assert events == want_events


def test_slots_by_runs_of_devices_equal_one_slot_per_reading() -> None:
    """New devices and metrics appear from batch to batch, wards repeat: the same
    slots and the same registration order as ``slot`` called row by row."""
    fast, plain = SeriesRegistry(capacity=4), SeriesRegistry(capacity=4)
    for batch in batches(seed=11, rounds=60):
        got = fast.slots(batch.device, batch.metric, batch.ward)
        want = [
            plain.slot(str(d), int(m), str(w))
            for d, m, w in zip(batch.device, batch.metric, batch.ward, strict=True)
        ]
        np.testing.assert_array_equal(got, want)
    assert fast.devices == plain.devices
    assert fast.wards == plain.wards
    np.testing.assert_array_equal(fast.device_ward, plain.device_ward)
