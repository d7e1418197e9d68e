"""Delta checkpoints: a full checkpoint and the deltas after it, applied in order, give the
detector that saved them, every table bit for bit (NaN included)."""

import io

import numpy as np
import numpy.typing as npt
import pytest

from anomaly import Detector, DetectorConfig, npz
from telemetry import ReadingBatch
from telemetry.catalogue import metric_id
from telemetry.kinds import DeviceKind

pytestmark = pytest.mark.unit

T0 = 1_764_300_000_000  # 2025-11-28 03:20 UTC: 10:20 in Hanoi
MINUTE = 60_000
CABINET = [
    metric_id(DeviceKind.CABINET, m)
    for m in ("temp_inside", "humidity", "door_open", "mains_voltage", "on_battery")
]


def _batch(rng: np.random.Generator, step: int) -> ReadingBatch:
    """One minute of a city that grows by a few devices a minute (20 .. 140 devices, in
    two wards; from minute 40 the devices of ward ``w1`` lose mains, and some reports
    lack metrics, so later reports bring new series of known devices)."""
    rows: list[tuple[str, str, int, float]] = []
    for d in range(min(20 + 3 * step, 140)):
        if rng.random() < 0.2:
            continue  # some devices skip a minute (dropouts for tick)
        ward = f"w{d % 2}"
        outage = step >= 40 and ward == "w1"
        values = {
            CABINET[0]: 30 + rng.normal(0, 0.3) + (15 if d == 7 and step > 30 else 0),
            CABINET[1]: 60 + rng.normal(0, 1),
            CABINET[2]: float(d == 5 and step > 25),
            CABINET[3]: 0.0 if outage else 228 + rng.normal(0, 1),
            CABINET[4]: float(outage),
        }
        for metric, value in values.items():
            if step < 10 and metric == CABINET[1] and d % 3:
                continue
            rows.append((f"cab-{d:03d}", ward, metric, value))
    n = len(rows)
    ts = T0 + step * MINUTE + rng.integers(0, 1000, n)
    return ReadingBatch(
        np.array([r[0] for r in rows], dtype=object),
        np.array([r[1] for r in rows], dtype=object),
        np.array([r[2] for r in rows], dtype=np.int16),
        ts.astype(np.int64),
        np.array([r[3] for r in rows]),
    )


def _tables(det: Detector) -> dict[str, npt.NDArray[np.generic]]:
    """Every array of the detector's full checkpoint."""
    return npz.read(io.BytesIO(det.to_bytes()))


def _assert_same(got: Detector, want: Detector) -> None:
    a, b = _tables(got), _tables(want)
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name].dtype, a[name].shape) == (b[name].dtype, b[name].shape), name
        assert a[name].tobytes() == b[name].tobytes(), name


def _restore(full: bytes, deltas: list[bytes], config: DetectorConfig) -> Detector:
    det = Detector.from_bytes(full, config)
    for data in deltas:
        det.apply_delta(data)
    return det


def test_full_plus_deltas_is_the_saved_detector_bit_for_bit() -> None:
    cfg = DetectorConfig(warmup=5)
    rng = np.random.default_rng(15)
    live = Detector(cfg, capacity=16)  # grows by doubling on the way
    full, deltas = b"", list[bytes]()
    events = 0
    for step in range(60):
        events += len(live.update(_batch(rng, step)).events)
        if step % 9 == 4:  # time passes: dropouts of the devices that skipped a minute
            events += len(live.tick(T0 + step * MINUTE + 5 * MINUTE))
        if step in (0, 33):  # the first save, and a full snapshot in the middle
            full, deltas = live.to_bytes(), []
        else:
            deltas.append(live.delta_bytes())
        live.checkpoint_saved()
        if step % 8 == 7 or step == 59:
            _assert_same(_restore(full, deltas, cfg), live)
    # What the chain carried: growth past capacities, rule and area state, dropouts.
    assert live.registry.size > 16 * 16
    assert live.rules.active.any()
    assert live.rules.area_active.any()
    assert (live.state["ev_active_5"] != 0).any()
    assert events > 0

    # A taken-over detector goes on exactly as the one that saved.
    taken = _restore(full, deltas, cfg)
    batch = _batch(rng, 60)
    want, got = live.update(batch), taken.update(batch)
    assert want.scores.tobytes() == got.scores.tobytes()
    assert want.events == got.events
    _assert_same(taken, live)


def test_a_delta_with_nothing_changed_is_small_and_applies() -> None:
    det = Detector(DetectorConfig(warmup=5))
    det.update(_batch(np.random.default_rng(1), 0))
    full = det.to_bytes()
    det.checkpoint_saved()
    empty = det.delta_bytes()
    assert len(empty) < len(full) / 2
    _assert_same(_restore(full, [empty], det.config), det)


def test_a_delta_refuses_a_state_it_does_not_follow() -> None:
    rng = np.random.default_rng(2)
    det = Detector(DetectorConfig(warmup=5))
    det.update(_batch(rng, 0))
    old = det.to_bytes()
    det.checkpoint_saved()
    det.update(_batch(rng, 10))  # new devices
    det.checkpoint_saved()
    det.update(_batch(rng, 11))
    later = det.delta_bytes()
    with pytest.raises(ValueError, match="delta follows"):
        Detector.from_bytes(old).apply_delta(later)
    with pytest.raises(ValueError, match="detector delta"):
        Detector.from_bytes(old).apply_delta(old)
