"""The full detector: batch == sequential (property), faults raise scores, clean data
stays quiet, warm-up, registry growth, checkpoint/restore, contract batches."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly import DetectionKind, Detector, DetectorConfig, Severity
from anomaly.registry import SeriesRegistry
from telemetry.batch import ReadingBatch
from telemetry.catalogue import metric_id

MINUTE = 60_000
T0 = 1_750_000_000_000 - (1_750_000_000_000 % (24 * 3_600_000))  # a UTC midnight
TEMP = metric_id("cabinet", "temp_inside")
HUMIDITY = metric_id("cabinet", "humidity")


def _clean(rng: np.random.Generator, n: int, level: float = 30.0, noise: float = 0.5) -> np.ndarray:
    t = np.arange(n)
    return level + 3.0 * np.sin(2 * np.pi * t / 1440.0) + rng.normal(0, noise, n)


@st.composite
def _batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_series = draw(st.integers(1, 4))
    n = draw(st.integers(1, 60))
    slots = np.array(draw(st.lists(st.integers(0, n_series - 1), min_size=n, max_size=n)))
    steps = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    ts = T0 + np.array(steps, dtype=np.int64) * 20 * MINUTE // 10 + np.arange(n) * 7_000
    vals = draw(
        st.lists(
            st.one_of(st.floats(-100, 100, allow_nan=False), st.sampled_from([0.0, 5.0, np.nan])),
            min_size=n,
            max_size=n,
        )
    )
    perm = np.array(draw(st.permutations(list(range(n)))), dtype=np.int64)
    return slots[perm], ts[perm], np.array(vals)[perm]


def _fresh(warmup: int = 3) -> Detector:
    det = Detector(DetectorConfig(warmup=warmup, tod_min_days=0.0, tod_min_count=1), capacity=1)
    for i in range(4):
        det.registry.slot(f"dev-{i}", TEMP if i % 2 else 0, ward="w")
    return det


@settings(max_examples=30, deadline=None)
@given(_batches(), st.integers(1, 3))
def test_batch_equals_sequential(data: tuple[np.ndarray, np.ndarray, np.ndarray], cut: int) -> None:
    slots, ts, x = data
    # A warmed-up history first, so every sub-detector is live in the property.
    rng = np.random.default_rng(0)
    hist_ts = np.tile(T0 - (np.arange(30, 0, -1) * MINUTE), 4)
    hist_slots = np.repeat(np.arange(4), 30)
    hist_x = 20 + rng.normal(0, 1, 120)

    def prime(det: Detector) -> None:
        det.update_arrays(hist_slots, hist_ts, hist_x)

    batch_det = _fresh()
    prime(batch_det)
    # The batch, itself split into `cut` chunks: any split gives the same result.
    chunks = np.array_split(np.arange(len(x)), cut)
    ordered = np.lexsort((np.arange(len(x)), ts, slots))
    # Chunks must respect time order per series to equal the sequential feed.
    got = np.empty(len(x))
    if cut == 1:
        got = batch_det.update_arrays(slots, ts, x).scores
    else:
        for part in np.array_split(ordered, cut):
            got[part] = batch_det.update_arrays(slots[part], ts[part], x[part]).scores
    assert len(chunks) == cut

    seq_det = _fresh()
    prime(seq_det)
    want = np.empty(len(x))
    for i in ordered:
        want[i] = seq_det.update_arrays(slots[i : i + 1], ts[i : i + 1], x[i : i + 1]).scores[0]
    np.testing.assert_array_equal(got, want)
    assert np.all((got >= 0) & (got <= 1))
    for name in batch_det.store:
        np.testing.assert_array_equal(batch_det.store[name], seq_det.store[name], err_msg=name)


def _run(
    det: Detector,
    key: tuple[str, int],
    x: np.ndarray,
    period: int = MINUTE,
    ts: np.ndarray | None = None,
):
    slot = det.registry.slot(key[0], key[1], ward="hoan_kiem")
    stamps = T0 + np.arange(len(x), dtype=np.int64) * period if ts is None else ts
    return det.update_arrays(np.full(len(x), slot), stamps, x, components=True)


def test_clean_data_stays_quiet() -> None:
    rng = np.random.default_rng(7)
    det = Detector()
    res = _run(det, ("cab-1", TEMP), _clean(rng, 1440))
    warm = det.config.warmup
    assert res.scores[warm:].max() < det.config.score_on
    assert [e for e in res.events if e.kind is not DetectionKind.LIMIT] == []


@pytest.mark.parametrize(
    ("fault", "component", "kind"),
    [
        ("spike", "baseline", DetectionKind.BASELINE),
        ("limit", "limits", DetectionKind.LIMIT),
        ("shift", "level_shift", DetectionKind.LEVEL_SHIFT),
        ("stuck", "flatline", DetectionKind.FLATLINE),
        ("gap", "dropout", DetectionKind.DROPOUT),
    ],
)
def test_each_fault_raises_its_detector(fault: str, component: str, kind: DetectionKind) -> None:
    rng = np.random.default_rng(3)
    n, at = 600, 400
    x = _clean(rng, n)
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE
    if fault == "spike":
        x[at] += 8.0
    elif fault == "limit":
        x[at:] = 58.3
    elif fault == "shift":
        x[at:] += 2.0  # 4 noise sigmas: too small for the baseline, clear for the CUSUM
    elif fault == "stuck":
        x[at:] = x[at]
    else:
        ts[at:] += 30 * MINUTE
    det = Detector()
    res = _run(det, ("cab-9", TEMP), x, ts=ts)
    part = res.components[component]
    assert part[:at].max() < 0.5, f"{component} false alarm before the fault"
    assert part[at:].max() >= det.config.score_on
    started = [e for e in res.events if e.kind is kind and e.active]
    assert started, f"no {kind} event"
    assert started[0].ts_ms >= ts[at]
    assert started[0].explanation
    if fault == "limit":
        assert started[0].severity is Severity.CRITICAL
        assert "58.3 °C" in started[0].explanation


def test_time_of_day_sees_a_normal_value_at_the_wrong_hour() -> None:
    rng = np.random.default_rng(5)
    period = 15 * MINUTE
    n = 96 * 8
    hours = (np.arange(n) * 15 / 60.0 + 7.0) % 24  # local time
    x = 20 + 10 * (hours >= 12) + rng.normal(0, 0.3, n)  # low mornings, high afternoons
    night = np.flatnonzero((hours >= 2) & (hours < 3))
    at = night[night > 96 * 6][0]
    x[at] = 30.0  # an afternoon value at 02:00
    det = Detector(DetectorConfig(detectors=("time_of_day",)))
    res = _run(det, ("gen", 0), x, period=period)
    assert res.scores[at] >= det.config.score_on
    assert res.scores[96 * 4 : at].max() < det.config.score_on
    [event] = [e for e in res.events if e.active]
    assert "usual for 02:00" in event.explanation


def test_tick_reports_silent_series_once() -> None:
    det = Detector()
    rng = np.random.default_rng(1)
    _run(det, ("cab-2", HUMIDITY), 60 + rng.normal(0, 1, 100))
    last = T0 + 99 * MINUTE
    assert det.tick(last + 2 * MINUTE) == []
    [event] = det.tick(last + 5 * MINUTE)
    assert event.kind is DetectionKind.DROPOUT
    assert event.active
    assert event.device == "cab-2"
    assert "no humidity reading for 5 min" in event.explanation
    assert det.tick(last + 9 * MINUTE) == []  # already reported
    slot = det.registry.slot("cab-2", HUMIDITY)
    res = det.update_arrays([slot], [last + 10 * MINUTE], [60.0])
    assert [(e.kind, e.active) for e in res.events] == [(DetectionKind.DROPOUT, False)]


def test_warmup_no_statistical_score_or_event() -> None:
    det = Detector(DetectorConfig(warmup=50))
    x = np.r_[np.full(10, 30.0) + np.arange(10) * 0.1, 90.0, np.full(30, 30.0)]
    res = _run(det, ("cab-3", 0), x)
    assert res.scores[:50].max() == 0.0
    assert res.events == []


def test_registry_grows_by_doubling_and_keeps_state() -> None:
    det = Detector(capacity=2)
    rng = np.random.default_rng(2)
    _run(det, ("a", TEMP), _clean(rng, 80))
    level = det.store["base_level"][0]
    for i in range(9):
        det.registry.slot(f"d{i}", TEMP)
    assert det.registry.capacity == 16
    _run(det, ("d8", TEMP), _clean(rng, 5))
    assert det.store["base_level"].shape == (16,)
    assert det.store["base_level"][0] == level
    assert det.registry.key(9) == ("d8", TEMP)


def test_registry_rejects_bad_metric() -> None:
    with pytest.raises(ValueError, match="metric id"):
        SeriesRegistry().slot("x", 99)


def test_unregistered_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="not registered"):
        Detector().update_arrays([0], [T0], [1.0])


@pytest.mark.parametrize("bad", [-1, 4, 1 << 40])
@pytest.mark.parametrize(
    ("slots", "registered"),
    [
        ([0, 1, 2, "bad"], 4),  # already grouped: packed as it is
        ([2, 0, "bad", 1], 4),  # a counting sort
        ([2, "bad", 0], 40),  # few readings of many series: a radix sort
    ],
    ids=["grouped", "counting", "radix"],
)
def test_an_unregistered_slot_anywhere_in_a_batch_is_refused_and_nothing_learnt(
    slots: list[int | str], registered: int, bad: int
) -> None:
    det, reference = _fresh(), _fresh()
    for d in (det, reference):
        for i in range(4, registered):
            d.registry.slot(f"dev-{i}", TEMP, ward="w")
    bad_slot = bad if bad != 4 else registered  # one past the last registered slot
    batch = [bad_slot if s == "bad" else int(s) for s in slots]
    ts = T0 + np.arange(len(batch)) * MINUTE
    with pytest.raises(ValueError, match="slot not registered"):
        det.update_arrays(batch, ts, np.full(len(batch), 20.0))
    good = [s for s in batch if s != bad_slot]
    later = T0 + 10 * MINUTE + np.arange(len(good)) * MINUTE
    got = det.update_arrays(good, later, np.full(len(good), 25.0))
    want = reference.update_arrays(good, later, np.full(len(good), 25.0))
    assert np.array_equal(got.scores, want.scores)
    assert np.array_equal(det.state.f64, reference.state.f64, equal_nan=True)


def test_checkpoint_restore_equals_uninterrupted(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    x = _clean(rng, 900)
    x[700] += 9
    whole = Detector()
    want = _run(whole, ("cab-5", TEMP), x)
    first = Detector()
    _run(first, ("cab-5", TEMP), x[:500])
    first.save(tmp_path / "state.npz")
    restored = Detector.load(tmp_path / "state.npz")
    slot = restored.registry.slot("cab-5", TEMP)
    ts = T0 + np.arange(500, 900, dtype=np.int64) * MINUTE
    got = restored.update_arrays(np.full(400, slot), ts, x[500:])
    np.testing.assert_array_equal(got.scores, want.scores[500:])
    assert [repr(e) for e in got.events] == [repr(e) for e in want.events if e.ts_ms >= ts[0]]
    assert restored.bytes_per_series() == whole.bytes_per_series() > 0


def test_a_checkpoint_written_by_savez_compressed_still_loads() -> None:
    """Checkpoints are a zip of .npy members at zlib level 1 now; those written before,
    by ``np.savez_compressed`` (level 6), restore to the same detector."""
    rng = np.random.default_rng(12)
    x = _clean(rng, 300)
    det = Detector()
    _run(det, ("cab-6", TEMP), x)
    with np.load(io.BytesIO(det.to_bytes())) as members:
        arrays = {name: members[name] for name in members.files}
    old = io.BytesIO()
    np.savez_compressed(old, **arrays)  # type: ignore[arg-type]
    restored = Detector.from_bytes(old.getvalue())
    assert restored.registry.key(0) == ("cab-6", TEMP)
    np.testing.assert_array_equal(restored.state.f64[:1], det.state.f64[:1])
    np.testing.assert_array_equal(restored.state.f32[:1], det.state.f32[:1])


def test_contract_batch_is_scored() -> None:
    rng = np.random.default_rng(4)
    n = 200
    dev = np.array(["cab-7"] * n, dtype=object)
    batch = ReadingBatch(
        device=dev,
        ward=np.array(["ba_dinh"] * n, dtype=object),
        metric=np.full(n, TEMP, dtype=np.int16),
        ts_ms=T0 + np.arange(n, dtype=np.int64) * MINUTE,
        value=_clean(rng, n),
    )
    det = Detector()
    res = det.update(batch)
    assert res.scores.shape == (n,)
    assert det.registry.ward_of_slot(0) == "ba_dinh"
    assert det.update(ReadingBatch.empty()).scores.shape == (0,)


def test_config_round_trips_and_refuses_nonsense() -> None:
    cfg = DetectorConfig(warmup=7)
    assert DetectorConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown sub-detector"):
        DetectorConfig(detectors=("nope",))
    with pytest.raises(ValueError, match="score_off"):
        DetectorConfig(score_on=0.3, score_off=0.5)
    with pytest.raises(ValueError, match="unknown detector setting"):
        DetectorConfig.from_json('{"wamup": 3}')


def test_a_value_at_its_physical_bound_is_a_state_not_a_frozen_sensor() -> None:
    """A fan at 0 rpm for an hour is off; the same fan frozen at 1,480 rpm is stuck."""
    det = Detector(DetectorConfig(warmup=20))
    fan = metric_id("cabinet", "fan_rpm")
    off, stuck = det.registry.slot("cab-off", fan), det.registry.slot("cab-stuck", fan)
    rng = np.random.default_rng(3)
    running = 1_500 + rng.normal(0, 40, 60)
    quiet = np.r_[running, np.zeros(60)]  # the fan stops: exactly 0 rpm
    frozen = np.r_[running, np.full(60, 1_480.0)]  # the reading stops changing
    ts = np.arange(120, dtype=np.int64) * 60_000
    parts = det.update_arrays(
        np.r_[np.full(120, off), np.full(120, stuck)],
        np.r_[ts, ts],
        np.r_[quiet, frozen],
        components=True,
    ).components["flatline"]
    assert parts[:120].max() == 0.0
    assert parts[120:].max() > 0.9


def test_repeated_timestamps_do_not_teach_a_zero_period() -> None:
    """A generic series that sends two readings per timestamp reports every minute: its
    learned period is a minute, not 0 (which made every reading an infinite dropout)."""
    det = Detector(DetectorConfig(warmup=5))
    slot = det.registry.slot("dup", 0)
    ts = T0 + np.repeat(np.arange(100, dtype=np.int64), 2) * MINUTE
    x = _clean(np.random.default_rng(3), len(ts))
    with np.errstate(all="raise"):
        res = det.update_arrays(np.full(len(ts), slot), ts, x, components=True)
        assert det.tick(int(ts[-1]) + 2 * MINUTE) == []
    assert det.store["core_period"][slot] == pytest.approx(MINUTE, rel=0.05)
    assert res.components["dropout"].max() < 0.5
    assert not [e for e in res.events if e.kind is DetectionKind.DROPOUT]


def test_a_change_within_the_sensors_accuracy_is_not_an_anomaly() -> None:
    """Duct moisture read to ±2 % and very steady for hours: a 3-point rise after rain is
    within what the sensor can tell, so the baseline stays quiet; water ingress that
    lifts it by 15 points is not."""
    moisture = metric_id("cable_segment", "moisture")
    rng = np.random.default_rng(11)
    steady = 20.0 + 0.05 * rng.normal(size=400)
    rain = np.r_[steady, 23.0 + 0.05 * rng.normal(size=60)]
    res = _run(Detector(), ("seg-1", moisture), rain)
    assert res.components["baseline"][400:].max() < 0.5
    assert not [e for e in res.events if e.kind is DetectionKind.BASELINE]
    ingress = np.r_[steady, np.linspace(20.0, 35.0, 30)]
    res = _run(Detector(), ("seg-2", moisture), ingress)
    assert [e for e in res.events if e.kind is DetectionKind.BASELINE and e.active]


def test_a_level_the_baseline_accepted_stays_an_anomaly_while_it_lasts() -> None:
    """A series steps 12 sigmas up for two hours, then back: the baseline accepts the new
    level after a run of outliers, yet its event holds (judged against the level before)
    until the series is back."""
    rng = np.random.default_rng(8)
    n, up, down = 600, 300, 420
    x = 20.0 + rng.normal(0.0, 0.5, n)
    x[up:down] += 6.0
    res = _run(Detector(), ("gen-1", 0), x)
    baseline = [e for e in res.events if e.kind is DetectionKind.BASELINE]
    assert [e.active for e in baseline] == [True, False]
    start, end = baseline
    assert start.ts_ms == T0 + up * MINUTE
    assert end.ts_ms >= T0 + down * MINUTE, "held until the series came back"
    assert end.ts_ms <= T0 + (down + 5) * MINUTE


def test_an_old_checkpoint_is_refused_with_what_happens_next(tmp_path: Path) -> None:
    det = Detector()
    _run(det, ("cab-5", TEMP), _clean(np.random.default_rng(1), 60))
    det.save(tmp_path / "state.npz")
    with np.load(tmp_path / "state.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["meta_version"] = np.array(3)
    np.savez(tmp_path / "v3.npz", **arrays)
    with pytest.raises(ValueError, match=r"version 3.*re-learns its baseline"):
        Detector.load(tmp_path / "v3.npz")
