"""The message stream: time order, schedule counts, sequence numbers, the JSON-lines sink."""

import itertools
from pathlib import Path

import msgspec
import numpy as np

from simulators.climate import Climate
from simulators.fleet import build_fleet
from simulators.labels import parse_iso_utc
from simulators.runner import run
from simulators.scenario import parse_scenario
from simulators.simulation import Simulation
from simulators.sinks import FileSink, read_jsonl
from simulators.wards import load_wards
from telemetry import Report, Status, decode_message

FLEET = build_fleet(40, 5, load_wards())
START = parse_iso_utc("2026-04-01T00:00:00Z")


def test_stream_is_in_time_order_and_on_schedule() -> None:
    sim = Simulation(FLEET, start_ms=START, duration_s=600, period_s=30, seed=2)
    messages = list(sim)
    dues = [m.due_ms for m in messages]
    assert dues == sorted(dues)
    statuses = [m for m in messages if m.topic.endswith("/status")]
    reports = [m for m in messages if m.topic.endswith("/telemetry")]
    assert len(statuses) == len(FLEET)
    assert all(s.retain for s in statuses)
    assert len(reports) == len(FLEET) * 20
    assert all(START <= m.due_ms < START + 600_000 for m in reports)


def test_each_device_counts_its_reports_and_keeps_its_period() -> None:
    sim = Simulation(FLEET, start_ms=START, duration_s=300, period_s=10, seed=2)
    by_device: dict[str, list[Report]] = {}
    for message in sim:
        _, decoded = decode_message(message.topic, message.payload, now_ms=message.due_ms)
        if isinstance(decoded, Report):
            by_device.setdefault(decoded.device, []).append(decoded)
        else:
            assert isinstance(decoded, Status)
            assert decoded.info is not None
            assert decoded.info == FLEET.devices[FLEET.by_id[decoded.device]]
    for reports in by_device.values():
        assert [r.seq for r in reports] == list(range(30))
        gaps = {b.ts - a.ts for a, b in itertools.pairwise(reports)}
        assert gaps == {10_000}


def test_file_sink_writes_the_same_stream_as_json_lines(tmp_path: Path) -> None:
    sim = Simulation(FLEET, start_ms=START, duration_s=120, period_s=60, seed=2)
    expected = [(m.topic, msgspec.json.decode(m.payload)) for m in sim]
    path = tmp_path / "out.jsonl"
    again = Simulation(FLEET, start_ms=START, duration_s=120, period_s=60, seed=2)
    summary = run(again, FileSink(path), speed=0, progress=False)
    assert summary.sent == summary.generated == len(expected)
    assert summary.failed == 0
    lines = path.read_bytes().splitlines()
    assert all(line.startswith(b'{"topic":"cw/v1/') for line in lines)
    got = [(topic, msgspec.json.decode(payload)) for topic, payload in read_jsonl(path)]
    assert got == expected
    assert summary.by_channel == {"status": len(FLEET), "telemetry": 2 * len(FLEET)}


def test_an_endless_run_keeps_going_and_labels_end_where_it_got_to() -> None:
    scenario = parse_scenario(
        'name = "e"\n[[faults]]\nkind = "silent"\ncount = 1\nat = "2m"\nduration = "1d"\n', "e.toml"
    )
    sim = Simulation(FLEET, scenario, start_ms=START, duration_s=None, period_s=60, seed=2)
    batches = list(itertools.islice(sim.batches(), 10))
    assert len(batches) == 10
    assert all(m.due_ms < START + 10 * 60_000 for b in batches for m in b)
    (label,) = sim.labels()
    assert label.end_ms == START + 10 * 60_000


def test_a_run_stopped_early_labels_only_the_time_it_simulated() -> None:
    scenario = parse_scenario(
        'name = "s"\n[[faults]]\nkind = "silent"\ncount = 1\nat = "5m"\nduration = "30m"\n'
        '[[faults]]\nkind = "fan_failure"\ncount = 1\nat = "50m"\nduration = "5m"\n',
        "s.toml",
    )
    sim = Simulation(FLEET, scenario, start_ms=START, duration_s=3600, period_s=60, seed=2)
    assert sim.labels_so_far() == []  # nothing simulated yet
    list(itertools.islice(sim.batches(), 20))  # 20 minutes, then stopped
    planned = {lb.fault for lb in sim.labels()}
    assert planned == {"silent", "fan_failure"}
    (label,) = sim.labels_so_far()  # the fan failure was still due
    assert (label.fault, label.start_ms, label.end_ms) == (
        "silent",
        START + 5 * 60_000,
        START + 20 * 60_000,
    )
    list(sim.batches())  # the whole run: the same labels as planned
    assert sim.labels_so_far() == sim.labels()


def test_weather_is_the_same_however_far_it_was_drawn() -> None:
    a = Climate(np.array([True, False]), START, seed=3)
    b = Climate(np.array([True, False]), START, seed=3)
    far = START + 40 * 86_400_000
    for t in range(START, far, 86_400_000):  # a steps through every day, b jumps
        a.rain_at(t)
    probes = [far + k * 600_000 for k in range(200)]
    assert [b.rain_at(t) for t in probes] == [a.rain_at(t) for t in probes]
    assert any(b.rain_at(t) > 0 for t in range(START, far, 600_000))


def test_a_lead_in_shifts_the_scenario_and_the_physics_starts_settled() -> None:
    scenario = parse_scenario(
        'name = "l"\n[[faults]]\nkind = "silent"\ncount = 1\nat = "5m"\nduration = "5m"\n', "l.toml"
    )
    sim = Simulation(FLEET, scenario, start_ms=START, duration_s=7200, seed=2, lead_in_s=3600)
    (label,) = sim.labels()
    assert label.start_ms == START + 3600_000 + 300_000


def _mean_temp_inside(sim: Simulation, lo: int, hi: int) -> dict[str, float]:
    seen: dict[str, list[float]] = {}
    for message in sim:
        if message.due_ms >= hi:
            break
        body = msgspec.json.decode(message.payload)
        if message.due_ms >= lo and "temp_inside" in body.get("metrics", {}):
            seen.setdefault(body["device"], []).append(body["metrics"]["temp_inside"])
    return {device: float(np.mean(values)) for device, values in seen.items()}


def test_a_run_starts_where_a_longer_run_would_be() -> None:
    """Spun-up physics: no start-up transient, so runs can be joined end to end."""
    at = parse_iso_utc("2026-04-01T06:00:00Z")
    window = (at, at + 600_000)
    long_run = Simulation(FLEET, start_ms=at - 6 * 3600_000, duration_s=7 * 3600, seed=2)
    fresh = Simulation(FLEET, start_ms=at, duration_s=3600, seed=2)
    settled = _mean_temp_inside(long_run, *window)
    first = _mean_temp_inside(fresh, *window)
    assert set(first) == set(settled)
    assert max(abs(first[d] - settled[d]) for d in first) < 0.5
