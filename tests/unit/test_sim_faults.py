"""Each fault kind changes the data where and when its label says, and nowhere else.

Every fault run is compared with the same seeded run without faults: sensor noise comes
from its own generator, so any difference between the two runs is the fault's doing.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.fleet import Fleet, build_fleet
from simulators.labels import Label, parse_iso_utc
from simulators.scenario import QUIET, Scenario, parse_scenario
from simulators.simulation import Simulation
from simulators.wards import load_wards
from telemetry import DeviceKind, decode_message

START = parse_iso_utc("2026-07-15T10:00:00Z")  # 17:00 in Hanoi
DURATION_S = 2 * 3600
MIN = 60_000
FLEET = build_fleet(80, 2, load_wards())
CABINETS = [d.id for d in FLEET.cabinets]
HEAD_SEGMENT = next(
    d
    for d in FLEET.segments
    if d.position == 0 and any(s.route == d.route and s.position == 2 for s in FLEET.segments)
)
OTHER_SEGMENT = next(d for d in FLEET.segments if d.route != HEAD_SEGMENT.route)
# After a thermal fault's label ends, what is left must be below sensor-noise level.
LINGER_TOLERANCE = {"temp_inside": 0.3, "humidity": 0.5, "fan_rpm": 120.0, "battery_voltage": 0.05}


@dataclass
class Run:
    sim: Simulation
    reports: dict[tuple[str, int], tuple[int, dict[str, float]]] = field(default_factory=dict)
    """(device, due ms) -> (payload ts, metrics)."""
    events: list[tuple[str, int, str]] = field(default_factory=list)
    statuses: list[tuple[str, int, dict[str, object]]] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


def play(scenario: Scenario, fleet: Fleet = FLEET) -> Run:
    sim = Simulation(fleet, scenario, start_ms=START, duration_s=DURATION_S, seed=9)
    run = Run(sim)
    for message in sim:
        decode_message(message.topic, message.payload, now_ms=message.due_ms)
        body = msgspec.json.decode(message.payload)
        channel = message.topic.rsplit("/", 1)[1]
        if channel == "telemetry":
            metrics = {k: float(v) for k, v in body["metrics"].items()}
            run.reports[(body["device"], message.due_ms)] = (body["ts"], metrics)
        elif channel == "event":
            run.events.append((body["device"], message.due_ms, body["event"]))
        else:
            run.statuses.append((body["device"], message.due_ms, body))
    run.labels = sim.labels()
    return run


@pytest.fixture(scope="module")
def baseline() -> Run:
    return play(QUIET)


def story(
    kind: str, targets: str, at: str = "40m", duration: str = "30m", extra: str = ""
) -> Scenario:
    text = f'name = "t"\n[[faults]]\nkind = "{kind}"\nat = "{at}"\nduration = "{duration}"\n'
    return parse_scenario(text + targets + "\n" + extra, f"{kind}.toml")


def _ids(*ids: str) -> str:
    return "devices = [" + ", ".join(f'"{i}"' for i in ids) + "]"


def covered(labels: list[Label], device: str, metric: str, ts: int) -> bool:
    return any(label.covers(device, metric, ts) for label in labels)


def check_nowhere_else(base: Run, run: Run) -> set[tuple[str, str]]:
    """Assert every difference is labelled; return the (device, metric) pairs that differ."""
    changed: set[tuple[str, str]] = set()
    for key, (ts, metrics) in base.reports.items():
        device, due = key
        got = run.reports.get(key)
        if got is None:
            assert covered(run.labels, device, "*", due), f"{device} missing at {due} unlabelled"
            changed.add((device, "*"))
            continue
        if got[0] != ts:
            assert covered(run.labels, device, "*", due), f"{device} ts shifted, unlabelled"
            changed.add((device, "*"))
        for metric, value in metrics.items():
            diff = abs(got[1][metric] - value)
            if diff == 0:
                continue
            if not covered(run.labels, device, metric, due):
                assert diff <= LINGER_TOLERANCE.get(metric, 0.0), (
                    f"{device}.{metric} differs by {diff} at {due}, outside every label"
                )
                continue
            changed.add((device, metric))
    assert set(run.reports) <= set(base.reports), "a fault never adds reports"
    for device, due, event in run.events:
        assert any(
            lb.device == device and lb.start_ms <= due <= lb.end_ms + MIN for lb in run.labels
        ), f"event {event} of {device} at {due} is not under a label"
    return changed


def check_labels_show(run: Run, changed: set[tuple[str, str]]) -> None:
    """Every label points at data that really changed."""
    assert run.labels, "the fault was placed"
    last_tick = START + DURATION_S * 1000 - MIN
    for label in run.labels:
        if label.start_ms >= last_tick:  # a fault in the final period: no report is due
            continue
        if label.metric == "*" and label.fault == "mains_outage":
            continue  # a death may fall between two reports; _outage checks its Last Will
        assert (label.device, label.metric) in changed, f"{label} left the data untouched"


def series(run: Run, device: str, metric: str, lo: int, hi: int) -> list[float]:
    return [
        m[metric]
        for (d, due), (_, m) in sorted(run.reports.items())
        if d == device and lo <= due < hi
    ]


def test_quiet_run_has_no_labels_and_no_events(baseline: Run) -> None:
    assert baseline.labels == []
    assert baseline.events == []
    assert len(baseline.reports) == len(FLEET) * DURATION_S // 60


Check = Callable[[Run, Run], None]


def _fan(base: Run, run: Run) -> None:
    cab = CABINETS[0]
    hot = max(series(run, cab, "temp_inside", START + 40 * MIN, START + 70 * MIN))
    usual = max(series(base, cab, "temp_inside", START + 40 * MIN, START + 70 * MIN))
    assert hot > usual + 5
    assert set(series(run, cab, "fan_rpm", START + 41 * MIN, START + 70 * MIN)) == {0.0}


def _outage(base: Run, run: Run) -> None:
    window = (START + 31 * MIN, START + 110 * MIN)
    on_battery = [
        m["on_battery"]
        for (d, due), (_, m) in run.reports.items()
        if window[0] <= due < window[1] and "on_battery" in m
    ]
    assert on_battery
    assert all(on_battery)
    died = {d for d, _, e in run.events if e == "battery_empty"}
    assert died, "the weakest batteries run flat in 90 minutes"
    wills = [(d, s) for d, _, s in run.statuses if s["state"] == "offline"]
    assert {d for d, _ in wills} == died
    assert all("ts" not in s or s["ts"] is None for _, s in wills)
    onlines: dict[str, int] = {}
    for d, _, st_ in run.statuses:
        if st_["state"] == "online":
            onlines[d] = onlines.get(d, 0) + 1
    assert set(onlines) == {d.id for d in FLEET.devices}, "every device announces itself"
    reborn = {d for d, n in onlines.items() if n == 2}
    assert reborn == died, "dead cabinets boot when the mains return"
    for device in died:
        after = [
            m
            for (d, due), (_, m) in sorted(run.reports.items())
            if d == device and due > START + 110 * MIN
        ]
        assert after[0]["battery_soc"] < 10
        assert after[-1]["battery_soc"] > after[0]["battery_soc"]


def _flood(base: Run, run: Run) -> None:
    levels = [m["water_level"] for (d, due), (_, m) in run.reports.items() if "water_level" in m]
    assert max(levels) > 30
    wet = series(run, HEAD_SEGMENT.id, "moisture", START + 50 * MIN, START + 60 * MIN)
    dry = series(base, HEAD_SEGMENT.id, "moisture", START + 50 * MIN, START + 60 * MIN)
    assert min(wet) > max(dry) + 15


def _door(base: Run, run: Run) -> None:
    cab = CABINETS[1]
    opened = [due for (d, due), (_, m) in run.reports.items() if d == cab and m["door_open"]]
    assert min(opened) >= START + 40 * MIN
    assert max(opened) < START + 70 * MIN
    assert [e for d, _, e in run.events if d == cab] == ["door_opened", "door_closed"]


def _cut(base: Run, run: Run) -> None:
    window = (START + 40 * MIN, START + 70 * MIN)
    route = [s.id for s in FLEET.segments if s.route == HEAD_SEGMENT.route]
    for seg in route:
        assert set(series(run, seg, "signal", *window)) == {0.0}
    assert max(series(run, HEAD_SEGMENT.id, "strain", *window)) > 3000
    assert min(series(run, HEAD_SEGMENT.id, "optical_loss", *window)) > 40
    assert set(series(run, OTHER_SEGMENT.id, "signal", *window)) == {1.0}


def _fibre(base: Run, run: Run) -> None:
    rose = series(run, HEAD_SEGMENT.id, "optical_loss", START + 65 * MIN, START + 70 * MIN)
    usual = series(base, HEAD_SEGMENT.id, "optical_loss", START + 65 * MIN, START + 70 * MIN)
    assert np.mean(rose) > np.mean(usual) + 3


def _stuck(base: Run, run: Run) -> None:
    assert (
        len(set(series(run, CABINETS[2], "temp_inside", START + 40 * MIN, START + 70 * MIN))) == 1
    )


def _spikes(base: Run, run: Run) -> None:
    got = series(run, CABINETS[2], "battery_voltage", START + 40 * MIN, START + 70 * MIN)
    usual = series(base, CABINETS[2], "battery_voltage", START + 40 * MIN, START + 70 * MIN)
    jumps = [abs(a - b) for a, b in zip(got, usual, strict=True)]
    assert sum(j > 7.9 for j in jumps) >= 3
    assert sum(j == 0 for j in jumps) >= 3


def _noise(base: Run, run: Run) -> None:
    got = series(run, HEAD_SEGMENT.id, "optical_loss", START + 40 * MIN, START + 70 * MIN)
    usual = series(base, HEAD_SEGMENT.id, "optical_loss", START + 40 * MIN, START + 70 * MIN)
    assert np.std(np.subtract(got, usual)) > 0.4


def _dropout(base: Run, run: Run) -> None:
    got = series(run, CABINETS[3], "power_draw", START + 40 * MIN, START + 70 * MIN)
    assert 3 <= len(got) <= 27


def _skew(base: Run, run: Run) -> None:
    shifts = {ts - due for (d, due), (ts, _) in run.reports.items() if d == CABINETS[3]}
    assert shifts == {0, -10 * MIN}


def _silent(base: Run, run: Run) -> None:
    dues = [due for (d, due) in run.reports if d == CABINETS[3]]
    assert not [t for t in dues if START + 40 * MIN <= t < START + 70 * MIN]
    assert len(dues) == DURATION_S // 60 - 30


CASES: list[tuple[Scenario, Check]] = [
    (story("fan_failure", _ids(CABINETS[0])), _fan),
    (story("mains_outage", "share = 1.0", at="30m", duration="80m"), _outage),
    (
        story(
            "flooding",
            f'wards = ["{HEAD_SEGMENT.ward}", "{FLEET.devices[0].ward}"]',
            extra="peak_mm = 200",
        ),
        _flood,
    ),
    (story("door_intrusion", _ids(CABINETS[1])), _door),
    (story("cable_cut", _ids(HEAD_SEGMENT.id)), _cut),
    (story("fibre_degradation", _ids(HEAD_SEGMENT.id), extra="rise_db = 5"), _fibre),
    (story("stuck_sensor", _ids(CABINETS[2]), extra='metric = "temp_inside"'), _stuck),
    (
        story(
            "spikes",
            _ids(CABINETS[2]),
            extra='metric = "battery_voltage"\nmagnitude = 8\nprobability = 0.3',
        ),
        _spikes,
    ),
    (
        story(
            "noise",
            _ids(HEAD_SEGMENT.id),
            extra='device_kind = "cable_segment"\nmetric = "optical_loss"\nsigma = 1.0',
        ),
        _noise,
    ),
    (story("dropout", _ids(CABINETS[3])), _dropout),
    (story("clock_skew", _ids(CABINETS[3]), extra='offset = "-10m"'), _skew),
    (story("silent", _ids(CABINETS[3])), _silent),
]


@pytest.mark.parametrize(("scenario", "check"), CASES, ids=[s.faults[0].fault for s, _ in CASES])
def test_fault_shows_where_labelled_and_nowhere_else(
    baseline: Run, scenario: Scenario, check: Check
) -> None:
    run = play(scenario)
    changed = check_nowhere_else(baseline, run)
    check_labels_show(run, changed)
    check(baseline, run)
    fault = scenario.faults[0]
    assert {label.fault for label in run.labels} == {fault.fault}
    static = [lb for lb in run.labels if lb.metric != "*" or fault.fault != "mains_outage"]
    assert all(lb.start_ms == START + round(fault.at * 1000) for lb in static)


def test_fault_windows_after_the_end_are_dropped_and_labels_clipped() -> None:
    late = story("silent", _ids(CABINETS[0]), at="3h")
    assert play(late).labels == []
    tail = play(story("silent", _ids(CABINETS[0]), at="110m", duration="1h"))
    assert [lb.end_ms for lb in tail.labels] == [START + DURATION_S * 1000]


def test_fault_placement_is_seeded_and_scales_with_the_fleet() -> None:
    spec = (
        'name = "t"\n[[faults]]\nkind = "fan_failure"\nshare = 0.1\nat = "40m"\nduration = "10m"\n'
    )
    scenario = parse_scenario(spec, "t.toml")
    small = Simulation(FLEET, scenario, start_ms=START, duration_s=3600, seed=1)
    again = Simulation(FLEET, scenario, start_ms=START, duration_s=3600, seed=1)
    big = Simulation(
        build_fleet(800, 2, load_wards()), scenario, start_ms=START, duration_s=3600, seed=1
    )
    assert small.labels() == again.labels()
    per_device = len(scenario.faults[0].metrics(DeviceKind.CABINET))
    assert len(small.labels()) == per_device * round(0.1 * len(FLEET.cabinets))
    assert len(big.labels()) == per_device * round(0.1 * len(big.fleet.cabinets))


FAULT_KINDS = {
    "fan_failure": "",
    "mains_outage": "",
    "flooding": "peak_mm = 900",
    "door_intrusion": "",
    "cable_cut": "",
    "fibre_degradation": "rise_db = 40",
    "stuck_sensor": 'metric = "battery_voltage"',
    "spikes": 'metric = "water_level"\nmagnitude = 5000\nprobability = 1.0',
    "noise": 'metric = "temp_inside"\nsigma = 500',
    "dropout": "",
    "clock_skew": 'offset = "-1h"',
    "silent": "",
}


@settings(max_examples=15, deadline=None)
@given(
    faults=st.lists(
        st.tuples(
            st.sampled_from(sorted(FAULT_KINDS)),
            st.integers(0, 50),
            st.integers(1, 60),
            st.floats(0.05, 1.0),
        ),
        min_size=1,
        max_size=6,
    ),
    seed=st.integers(0, 1000),
)
def test_any_mix_of_faults_keeps_every_message_decodable(
    faults: list[tuple[str, int, int, float]], seed: int
) -> None:
    text = 'name = "mix"\n'
    for kind, at, duration, share in faults:
        text += f'[[faults]]\nkind = "{kind}"\nat = "{at}m"\nduration = "{duration}m"\n'
        text += f"share = {share}\n{FAULT_KINDS[kind]}\n"
    scenario = parse_scenario(text, "mix.toml")
    sim = Simulation(FLEET, scenario, start_ms=START, duration_s=3600, period_s=120, seed=seed)
    for message in sim:
        decode_message(message.topic, message.payload, now_ms=message.due_ms)
    assert all(lb.start_ms <= lb.end_ms <= sim.end_ms for lb in sim.labels())


def test_a_fan_failure_is_labelled_only_where_the_fan_would_have_run() -> None:
    """A failed fan shows only once its controller wants it. On a cool December night
    some cabinets' fans run (a heavy load) and some never do: a failure of the first is
    labelled, of the second not at all (a label there would count as missed what no
    sensor can see). The planned labels stand until the run has simulated the window."""
    night = parse_iso_utc("2026-12-06T20:00:00Z")  # 03:00 in Hanoi, about 15 °C outside
    window = (night + 40 * MIN, night + 70 * MIN)
    quiet_fans: dict[str, float] = {}
    for message in Simulation(FLEET, QUIET, start_ms=night, duration_s=DURATION_S, seed=9):
        if not message.topic.endswith("/telemetry"):
            continue
        body = msgspec.json.decode(message.payload)
        if "fan_rpm" in body["metrics"] and window[0] <= message.due_ms < window[1]:
            rpm = body["metrics"]["fan_rpm"]
            quiet_fans[body["device"]] = max(quiet_fans.get(body["device"], 0.0), rpm)
    idle = next(c for c in CABINETS if quiet_fans[c] == 0.0)
    busy = next(c for c in CABINETS if quiet_fans[c] > 0.0)
    scenario = story("fan_failure", _ids(idle, busy))
    sim = Simulation(FLEET, scenario, start_ms=night, duration_s=DURATION_S, seed=9)
    assert {lb.device for lb in sim.labels()} == {idle, busy}  # planned
    list(sim.batches())
    labels = sim.labels()
    assert {lb.device for lb in labels} == {busy}
    assert {lb.metric for lb in labels} == {"fan_rpm", "temp_inside", "humidity", "battery_voltage"}
    assert all(window[0] <= lb.start_ms < window[1] for lb in labels)
    hot = Simulation(FLEET, scenario, start_ms=START, duration_s=DURATION_S, seed=9)
    list(hot.batches())  # a July afternoon: both fans run from the fault's start
    assert {(lb.device, lb.start_ms) for lb in hot.labels()} == {
        (idle, START + 40 * MIN),
        (busy, START + 40 * MIN),
    }
