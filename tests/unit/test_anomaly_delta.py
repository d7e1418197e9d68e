"""Delta checkpoints: a full checkpoint and the deltas after it, applied in order, give the
detector that saved them, every table bit for bit (NaN included)."""

import io

import numpy as np
import numpy.typing as npt
import pytest
from growing_city import MINUTE, T0, city_minute

from anomaly import Detector, DetectorConfig, npz

pytestmark = pytest.mark.unit


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
        events += len(live.update(city_minute(rng, step)).events)
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
    batch = city_minute(rng, 60)
    want, got = live.update(batch), taken.update(batch)
    assert want.scores.tobytes() == got.scores.tobytes()
    assert want.events == got.events
    _assert_same(taken, live)


def test_a_delta_with_nothing_changed_is_small_and_applies() -> None:
    det = Detector(DetectorConfig(warmup=5))
    det.update(city_minute(np.random.default_rng(1), 0))
    full = det.to_bytes()
    det.checkpoint_saved()
    empty = det.delta_bytes()
    assert len(empty) < len(full) / 2
    _assert_same(_restore(full, [empty], det.config), det)


def test_a_delta_refuses_a_state_it_does_not_follow() -> None:
    rng = np.random.default_rng(2)
    det = Detector(DetectorConfig(warmup=5))
    det.update(city_minute(rng, 0))
    old = det.to_bytes()
    det.checkpoint_saved()
    det.update(city_minute(rng, 10))  # new devices
    det.checkpoint_saved()
    det.update(city_minute(rng, 11))
    later = det.delta_bytes()
    with pytest.raises(ValueError, match="delta follows"):
        Detector.from_bytes(old).apply_delta(later)
    with pytest.raises(ValueError, match="detector delta"):
        Detector.from_bytes(old).apply_delta(old)
