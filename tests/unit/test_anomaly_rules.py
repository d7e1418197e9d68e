"""Device-level and area-level rules, fed through contract batches."""

from __future__ import annotations

import numpy as np

from anomaly import Detection, DetectionKind, Detector, Severity
from anomaly.config import DetectorConfig
from anomaly.events import Reference
from anomaly.rule_conditions import CUT, HEAT, SCORES, TRENDS, Judged, judge, thresholds
from anomaly.rules import _METRIC_IDS, M
from telemetry.batch import ReadingBatch
from telemetry.catalogue import metric_id

MINUTE = 60_000
HOUR = 60 * MINUTE
T0 = 1_750_000_000_000 - (1_750_000_000_000 % (24 * HOUR))  # UTC midnight = 07:00 Hanoi


def _feed(
    det: Detector, kind: str, device: str, ward: str, ts: np.ndarray, metrics: dict[str, np.ndarray]
) -> list[Detection]:
    """Feed a device's readings minute by minute (one batch per minute, like ingest)."""
    events: list[Detection] = []
    names = list(metrics)
    ids = np.array([metric_id(kind, m) for m in names], dtype=np.int16)
    for i, t in enumerate(ts):
        batch = ReadingBatch(
            device=np.array([device] * len(names), dtype=object),
            ward=np.array([ward] * len(names), dtype=object),
            metric=ids,
            ts_ms=np.full(len(names), t, dtype=np.int64),
            value=np.array([float(metrics[m][i]) for m in names]),
        )
        events.extend(det.update(batch).events)
    return events


def _kinds(events: list[Detection], kind: DetectionKind) -> list[Detection]:
    return [e for e in events if e.kind is kind]


def test_overheating_with_fans_running() -> None:
    n = 240
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE
    temp = np.r_[np.full(60, 35.0), 35.0 + np.arange(n - 60) * 4.0 / 60]  # +4 °C/h
    fan = np.full(n, 4200.0)
    events = _feed(Detector(), "cabinet", "cab-1", "w", ts, {"temp_inside": temp, "fan_rpm": fan})
    [start] = [e for e in _kinds(events, DetectionKind.OVERHEATING) if e.active]
    assert start.device == "cab-1"
    assert "rpm" in start.explanation
    # Its figures: the inside temperature it judged, against what this cabinet usually
    # reads (35 °C before the heating began), so a crew reads "5 °C above its usual".
    assert (start.value_metric, start.value) == ("temp_inside", 40.0)
    assert start.reference_kind is Reference.BASELINE
    assert start.reference is not None
    assert abs(start.reference - 35.0) < 0.5
    assert start.metric == "", "a device rule's alert key has no metric"
    # A fan stopped while the inside is this warm has failed: the rule says so at once.
    stopped = _feed(
        Detector(), "cabinet", "cab-1", "w", ts, {"temp_inside": temp, "fan_rpm": fan * 0}
    )
    [start] = [e for e in _kinds(stopped, DetectionKind.OVERHEATING) if e.active]
    assert start.ts_ms == T0
    assert "fan stopped" in start.explanation


def test_a_fan_switched_off_in_the_cool_night_is_a_state_not_a_fault() -> None:
    # A day's inside temperature (32.5 °C at 16:00, 27.5 °C at 04:00) and a proportional
    # fan controller: 520 rpm per K above 30 °C, stopped below its 600 rpm stall. The fan
    # stops in the evening and restarts in the morning: no detection of any kind.
    rng = np.random.default_rng(5)
    n = 36 * 60
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE
    hour = (ts - T0) / HOUR + 7.0  # Hanoi time
    temp = 30.0 + 2.5 * np.cos(2 * np.pi * (hour - 16.0) / 24.0) + 0.05 * rng.normal(size=n)
    rpm = (temp - 30.0) * 520.0
    fan = np.where(rpm >= 600.0, rpm + 25.0 * rng.normal(size=n), 0.0)
    assert 0.2 < np.mean(fan == 0.0) < 0.8  # it does stop and start
    events = _feed(Detector(), "cabinet", "cab-1", "w", ts, {"temp_inside": temp, "fan_rpm": fan})
    noisy = [
        (e.kind.value, e.metric, e.explanation)
        for e in events
        if e.active and e.kind is not DetectionKind.LEVEL_SHIFT
    ]
    assert noisy == [], noisy


def test_power_loss_then_area_outage_once_per_ward() -> None:
    det = Detector()
    n = 60
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE
    lost_at = 30
    events: list[Detection] = []
    on_b, soc_id = metric_id("cabinet", "on_battery"), metric_id("cabinet", "battery_soc")
    for i, t in enumerate(ts):  # one batch per minute with every cabinet, like ingest
        lost = [c < 3 and i >= lost_at for c in range(5)]  # three of five lose mains
        batch = ReadingBatch(
            device=np.array([f"cab-{c}" for c in range(5) for _ in (0, 1)], dtype=object),
            ward=np.array(["ba_dinh"] * 10, dtype=object),
            metric=np.array([on_b, soc_id] * 5, dtype=np.int16),
            ts_ms=np.full(10, t, dtype=np.int64),
            value=np.array(
                [
                    v
                    for c in range(5)
                    for v in (float(lost[c]), 100.0 - lost[c] * (i - lost_at) * 0.5)
                ]
            ),
        )
        events += det.update(batch).events
    power = [e for e in _kinds(events, DetectionKind.POWER_LOSS) if e.active]
    assert sorted(e.device for e in power) == ["cab-0", "cab-1", "cab-2"]
    area = _kinds(events, DetectionKind.AREA_OUTAGE)
    assert len(area) == 1
    assert area[0].active
    assert area[0].ward == "ba_dinh"
    assert area[0].severity is Severity.CRITICAL
    assert "3 of 5 cabinets" in area[0].explanation
    assert (area[0].value, area[0].reference, area[0].reference_kind) == (3, 5, Reference.TOTAL)
    for event in power:  # the charge left; its fall has only begun: no rate measured yet
        assert event.value_metric == "battery_soc"
        assert event.value in (100.0, 99.5)
        assert (event.reference, event.reference_kind) == (None, None)
    battery_limits = [e for e in _kinds(events, DetectionKind.LIMIT) if e.metric == "on_battery"]
    assert battery_limits == [], "on_battery is the power rule's, not a limit"


def test_door_open_at_night_only() -> None:
    ts_day = T0 + 3 * HOUR + np.arange(10, dtype=np.int64) * MINUTE  # 10:00 Hanoi
    ts_night = T0 + 16 * HOUR + np.arange(10, dtype=np.int64) * MINUTE  # 23:00 Hanoi
    door = np.ones(10)
    assert (
        _kinds(
            _feed(Detector(), "cabinet", "c", "w", ts_day, {"door_open": door}),
            DetectionKind.INTRUSION,
        )
        == []
    )
    [ev] = _kinds(
        _feed(Detector(), "cabinet", "c", "w", ts_night, {"door_open": door}),
        DetectionKind.INTRUSION,
    )
    assert "23:00" in ev.explanation


def test_flooding_and_cable_cut() -> None:
    ts = T0 + np.arange(20, dtype=np.int64) * MINUTE
    water = np.r_[np.zeros(10), np.full(10, 120.0)]
    [flood] = _kinds(
        _feed(Detector(), "cabinet", "c", "w", ts, {"water_level": water}), DetectionKind.FLOODING
    )
    assert flood.severity is Severity.CRITICAL
    assert (flood.value_metric, flood.value) == ("water_level", 120.0)
    assert (flood.reference, flood.reference_kind) == (100.0, Reference.LIMIT)
    signal = np.r_[np.ones(10), np.zeros(10)]
    strain = np.r_[np.full(10, 300.0), np.full(10, 2600.0)]
    events = _feed(
        Detector(), "cable_segment", "seg", "w", ts, {"signal": signal, "strain": strain}
    )
    [cut] = _kinds(events, DetectionKind.CABLE_CUT)
    assert cut.severity is Severity.CRITICAL
    assert cut.ts_ms == ts[10]
    assert (cut.value_metric, cut.value, cut.reference) == ("strain", 2600.0, 1500.0)
    assert cut.reference_kind is Reference.LIMIT


def test_fibre_degradation_creep() -> None:
    n = 12 * 60
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE
    rng = np.random.default_rng(0)
    loss = 1.0 + rng.normal(0, 0.01, n)
    flat = _feed(
        Detector(), "cable_segment", "s", "w", ts, {"optical_loss": loss, "signal": np.ones(n)}
    )
    assert _kinds(flat, DetectionKind.FIBRE_DEGRADATION) == []
    creep = loss + np.arange(n) * (0.1 / 60)  # 0.1 dB/h
    events = _feed(
        Detector(), "cable_segment", "s", "w", ts, {"optical_loss": creep, "signal": np.ones(n)}
    )
    [start, *_] = _kinds(events, DetectionKind.FIBRE_DEGRADATION)
    assert start.active
    assert (start.value_metric, start.reference_kind) == ("optical_loss", Reference.TREND)
    assert start.reference is not None
    assert 0.05 < start.reference < 0.15  # dB an hour


def test_a_trend_still_settling_is_no_creep() -> None:
    """A new segment's trend is noisy until it has settled (its first hour or so, up to
    0.03 dB/h on 2,000 clean segments): the creep rule waits for two trend time
    constants of readings, so a city coming up raises no fibre degradation."""
    det, n_seg, minutes = Detector(), 2000, 100
    rng = np.random.default_rng(2)
    devices = np.array([f"seg-{i}" for i in range(n_seg)] * 2, dtype=object)
    names = ("optical_loss", "signal")
    metrics = np.repeat(np.array([metric_id("cable_segment", m) for m in names], np.int16), n_seg)
    wards = np.array(["w"] * 2 * n_seg, dtype=object)
    events: list[Detection] = []
    for minute in range(minutes):
        loss = 1.0 + rng.normal(0, 0.01, n_seg)
        batch = ReadingBatch(
            device=devices,
            ward=wards,
            metric=metrics,
            ts_ms=np.full(2 * n_seg, T0 + minute * MINUTE, dtype=np.int64),
            value=np.r_[loss, np.ones(n_seg)],
        )
        events.extend(det.update(batch).events)
    assert _kinds(events, DetectionKind.FIBRE_DEGRADATION) == []


def test_water_ingress_is_flooding_before_the_flood_limit_and_rain_is_not() -> None:
    """Duct moisture climbing 40 points in 40 minutes is water coming in, long before the
    60 % flood limit; it holds while the water stays, and ends when it is gone. Rain
    lifting the same duct 6 points over half an hour is not a flood."""
    n = 300
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE
    rng = np.random.default_rng(4)
    base = 15.0 + 0.4 * rng.normal(size=n)
    rise = np.clip((np.arange(n) - 100) / 40.0, 0.0, 1.0)  # 0 -> 1 over 40 min
    fall = np.clip((np.arange(n) - 200) / 40.0, 0.0, 1.0)
    flood = base + 40.0 * (rise - fall)  # peaks at 55 %, under the 60 % limit
    events = _kinds(
        _feed(Detector(), "cable_segment", "seg-1", "w", ts, {"moisture": flood}),
        DetectionKind.FLOODING,
    )
    [start, end] = events
    assert start.active
    assert T0 + 100 * MINUTE < start.ts_ms < T0 + 140 * MINUTE
    assert "water ingress" in start.explanation
    assert start.value_metric == "moisture"
    assert start.value is not None
    assert 25 < start.value < 60
    assert start.reference_kind is Reference.BASELINE  # under the limit: against its usual
    assert start.reference is not None
    assert abs(start.reference - 15.0) < 1.0
    assert not end.active
    assert end.ts_ms > T0 + 200 * MINUTE, "held while the water stayed"
    rain = base + 6.0 * np.clip((np.arange(n) - 100) / 30.0, 0.0, 1.0)
    quiet = _feed(Detector(), "cable_segment", "seg-2", "w", ts, {"moisture": rain})
    assert _kinds(quiet, DetectionKind.FLOODING) == []


def test_the_compiled_pass_reads_what_the_state_holds() -> None:
    """The rules' inputs read in the compiled pass equal the state's own columns, with
    NaN / 0 for metrics a device lacks (a cable segment has none of a cabinet's)."""
    det = Detector()
    reg = det.registry
    temp = reg.slot("cab-1", M["temp_inside"])
    fan = reg.slot("cab-1", M["fan_rpm"])
    optical = reg.slot("seg-1", M["optical_loss"])
    for i in range(40):
        det.update_arrays(
            [temp, fan, optical], [i * 60_000] * 3, [30.0 + 0.1 * i, 2400.0, 1.0 + 0.01 * i]
        )
    devs = np.array([reg.device[optical], reg.device[temp]], dtype=np.int64)
    st = det.state
    rules = det.rules
    got = judge(
        reg.device_slots,
        _METRIC_IDS,
        devs,
        st.f64,
        st.f32,
        thresholds(DetectorConfig()),
        rules.active,
        rules.flood_from,
        night=False,
        keep=True,
    ).inputs
    names = list(M)
    assert got.value[names.index("optical_loss"), 0] == st["core_last_x"][optical]
    assert got.value[names.index("temp_inside"), 1] == st["core_last_x"][temp]
    assert got.value[names.index("fan_rpm"), 1] == 2400.0
    assert np.isnan(got.value[names.index("temp_inside"), 0])  # a segment has no inside
    assert np.isnan(got.value[names.index("optical_loss"), 1])
    row = TRENDS.index("temp_inside")
    assert got.trend[row, 1] == np.float64(st["core_trend"][temp]) != 0.0
    assert got.learned[row, 1] == st["core_n"][temp] > 0
    assert got.trend[row, 0] == 0.0
    assert got.learned[row, 0] == 0.0
    assert got.score[SCORES.index("optical_loss"), 0] == np.float64(st["core_last_score"][optical])


def test_the_compiled_conditions_judge_missing_series_as_false() -> None:
    """A device with none of a rule's series (NaN values, zero trends) holds no rule, as
    numpy's comparisons with NaN would have it; a rule that holds and is not yet active
    is a change, one already active is not; only the devices that changed come back
    unless every device's rules are asked for."""
    det = Detector()
    reg = det.registry
    temp = reg.slot("cab-1", M["temp_inside"])  # no fan, no trend learned yet: no rule
    signal = reg.slot("seg-1", M["signal"])
    strain = reg.slot("seg-1", M["strain"])
    det.update_arrays([temp, signal, strain], [0, 0, 0], [30.0, 0.0, 2000.0])  # no light
    devs = np.array([reg.device[temp], reg.device[signal]], dtype=np.int64)
    active = np.zeros((2, 6), dtype=bool)
    flood_from = np.full(2, np.nan)
    th = thresholds(DetectorConfig())
    st = det.state

    def judged(keep: bool) -> Judged:
        return judge(
            reg.device_slots,
            _METRIC_IDS,
            devs,
            st.f64,
            st.f32,
            th,
            active,
            flood_from,
            night=True,
            keep=keep,
        )

    got = judged(keep=True)
    assert not got.on[0].any()
    assert got.on[1].tolist() == [i == CUT for i in range(6)]
    assert got.critical[1, CUT]
    assert not got.on[:, HEAT].any()
    assert got.moved.tolist() == [1]
    assert judged(keep=False).moved.tolist() == [1]
    assert judged(keep=False).on.shape == (0, 6)  # nothing per device asked for
    active[reg.device[signal], CUT] = True
    assert judged(keep=True).moved.tolist() == []
