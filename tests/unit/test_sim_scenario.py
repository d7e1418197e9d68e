"""Scenario files: shipped stories load; bad files fail with file, fault index and field."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.faults import parse_duration
from simulators.scenario import ScenarioError, load_scenario, parse_scenario, shipped_scenarios
from simulators.wards import load_wards

WARDS = {w.codename for w in load_wards()}


def _fault(body: str) -> str:
    return f'name = "t"\n[[faults]]\n{body}\n'


def test_shipped_scenarios_load_with_warm_up_and_fit_two_hours() -> None:
    names = shipped_scenarios()
    assert {"monsoon_evening", "quiet_day", "sensor_faults"} <= set(names)
    for name in names:
        scenario = load_scenario(name, WARDS)
        assert scenario.name == name
        assert scenario.duration is not None
        assert scenario.duration <= 2 * 3600
        for fault in scenario.faults:
            assert fault.at >= 30 * 60, f"{name}: {fault.fault} starts before the warm-up ends"
            assert fault.at + fault.duration <= scenario.duration
    monsoon = load_scenario("monsoon_evening", WARDS)
    kinds = [f.fault for f in monsoon.faults]
    assert kinds.count("flooding") == 2
    assert {"mains_outage", "cable_cut", "fan_failure", "fibre_degradation"} <= set(kinds)
    assert load_scenario("quiet_day", WARDS).faults == []


BAD_FAULTS = [
    # (kind, extra TOML lines, what the message must say after "story.toml: ")
    ("meteor", "", r"faults\[0\] \(meteor\): .*fan_failure"),
    ("silent", 'duration = "40x"', r"faults\[0\] \(silent\)\.duration: bad duration '40x'"),
    ("silent", 'duration = "-5m"', r"faults\[0\] \(silent\)\.duration: must be positive"),
    ("silent", 'at = "-1m"', r"faults\[0\] \(silent\)\.at: must not be negative"),
    ("flooding", 'ward = "phuong_atlantis"', r".*\.ward: unknown ward 'phuong_atlantis'"),
    (
        "flooding",
        'wards = ["phuong_hoan_kiem", "phuong_kiem"]',
        r".*\.wards: unknown ward 'phuong_kiem' \(did you mean .*phuong_hoan_kiem",
    ),
    ("mains_outage", "share = 1.5", r".*\(mains_outage\)\.share: .*less than or equal to 1"),
    ("mains_outage", "share = 0", r".*\(mains_outage\)\.share: .*greater than 0"),
    ("mains_outage", "share = 0.5\ncount = 2", r".*\(mains_outage\): give either share or count"),
    ("spikes", 'metric = "temperature"', r".*cabinet has no metric 'temperature' \(it has temp_"),
    ("spikes", 'metric = "door_open"', r".*needs a numeric metric; door_open is a flag"),
    ("clock_skew", 'offset = "10m"', r".*\.offset: 600 s ahead would be refused"),
    ("silent", 'colour = "red"', r"faults\[0\] \(silent\)\.colour: Extra inputs"),
    ("silent", 'devices = ["cab-000001"]\nward = "phuong_hoan_kiem"', r".*targets itself"),
]


@pytest.mark.parametrize(("kind", "extra", "expected"), BAD_FAULTS)
def test_bad_faults_are_named_precisely(kind: str, extra: str, expected: str) -> None:
    lines = [f'kind = "{kind}"', extra]
    lines += [] if "at =" in extra else ['at = "1m"']
    lines += [] if "duration =" in extra else ['duration = "5m"']
    with pytest.raises(ScenarioError, match=rf"^story\.toml: {expected}"):
        parse_scenario(_fault("\n".join(lines)), "story.toml", WARDS)


def test_a_missing_field_is_named() -> None:
    with pytest.raises(ScenarioError, match=r"faults\[0\] \(silent\)\.duration: Field required"):
        parse_scenario(_fault('kind = "silent"\nat = "1m"'), "story.toml", WARDS)


def test_the_second_fault_is_the_one_named(tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text(
        'name = "two"\n'
        '[[faults]]\nkind = "silent"\nat = "1m"\nduration = "5m"\n'
        '[[faults]]\nkind = "dropout"\nat = "1m"\nduration = "5m"\nprobability = 2\n'
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(path, WARDS)
    assert str(err.value).startswith(f"{path}: faults[1] (dropout).probability:")


def test_syntax_errors_and_unknown_names() -> None:
    with pytest.raises(ScenarioError, match=r"^x\.toml: not valid TOML"):
        parse_scenario("name = ", "x.toml")
    with pytest.raises(ScenarioError, match=r"^x\.yaml: not valid YAML"):
        parse_scenario("name: [", "x.yaml")
    with pytest.raises(ScenarioError, match=r"not a shipped scenario \(shipped: .*monsoon_evening"):
        load_scenario("no_such_story")


def test_yaml_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "flood.yaml"
    path.write_text(
        "name: flood\nfaults:\n  - kind: flooding\n    ward: phuong_hoang_mai\n"
        "    at: 35m\n    duration: 1h\n    peak_mm: 90\n"
    )
    scenario = load_scenario(path, WARDS)
    assert scenario.faults[0].at == 2100
    assert scenario.faults[0].duration == 3600


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("90s") == 90
    assert parse_duration("-2m") == -120
    assert parse_duration(45) == 45
    for bad in ("", "m", "5 minutes", "1h-2m", True, None):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


@given(h=st.integers(0, 48), m=st.integers(0, 59), s=st.integers(0, 59))
def test_duration_round_trip(h: int, m: int, s: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s
