"""The seeded Hanoi fleet: reproducible, well-formed, spread over the real wards."""

from collections import Counter

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.fleet import RURAL_ROAD, UNDERGROUND_SHARE, build_fleet
from simulators.wards import HANOI_LAT, HANOI_LON, Ward, WardDataError, load_wards, parse_wards
from telemetry import DeviceKind, is_valid_id

WARDS = load_wards()


def test_ward_table_is_hanoi_2025() -> None:
    assert len(WARDS) == 126
    assert {w.division for w in WARDS} == {"phuong", "xa"}
    hoan_kiem = next(w for w in WARDS if w.codename == "phuong_hoan_kiem")
    assert hoan_kiem.name == "Phường Hoàn Kiếm"
    assert hoan_kiem.urban
    assert hoan_kiem.streets


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    a, b, c = build_fleet(500, 7, WARDS), build_fleet(500, 7, WARDS), build_fleet(500, 8, WARDS)
    assert a.devices == b.devices
    assert a.devices != c.devices


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 900), seed=st.integers(0, 2**32 - 1))
def test_fleet_is_well_formed(n: int, seed: int) -> None:
    fleet = build_fleet(n, seed, WARDS)
    assert len(fleet) == n
    ids = [d.id for d in fleet.devices]
    assert len(set(ids)) == n
    assert all(is_valid_id(i) for i in ids)
    known = {w.codename: w for w in WARDS}
    duct_streets = {(s.ward.codename, s.name) for s in fleet.streets if s.underground}
    for device in fleet.devices:
        ward = known[device.ward]
        assert HANOI_LAT[0] <= device.lat <= HANOI_LAT[1]
        assert HANOI_LON[0] <= device.lon <= HANOI_LON[1]
        assert device.street in [*ward.streets, RURAL_ROAD]
        if device.kind is DeviceKind.CABLE_SEGMENT:
            assert (device.ward, device.street) in duct_streets
            assert device.route is not None
            assert device.position is not None
        else:
            assert device.route is None


def test_mix_density_and_coverage() -> None:
    fleet = build_fleet(2000, 1, WARDS)
    kinds = Counter(d.kind for d in fleet.devices)
    assert kinds[DeviceKind.CABINET] == 1200
    assert kinds[DeviceKind.CABLE_SEGMENT] == 800
    per_ward = Counter(d.ward for d in fleet.cabinets)
    assert set(per_ward) == {w.codename for w in WARDS}, "every ward gets a cabinet"
    urban = [per_ward[w.codename] for w in WARDS if w.urban]
    rural = [per_ward[w.codename] for w in WARDS if not w.urban]
    assert sum(urban) / len(urban) > 2 * sum(rural) / len(rural)


def test_routes_are_numbered_from_the_exchange() -> None:
    fleet = build_fleet(1500, 4, WARDS)
    routes: dict[str, list[int]] = {}
    for seg in fleet.segments:
        assert seg.route is not None
        assert seg.position is not None
        assert seg.id == f"seg-{seg.route}-{seg.position:02d}"
        routes.setdefault(seg.route, []).append(seg.position)
    assert all(sorted(p) == list(range(len(p))) for p in routes.values())


def test_share_of_underground_streets() -> None:
    fleet = build_fleet(10, 0, WARDS)
    names = {s.name: s.underground for s in fleet.streets if s.name != RURAL_ROAD}
    assert sum(names.values()) == round(UNDERGROUND_SHARE * len(names))


def test_bad_ward_tables_are_refused_precisely() -> None:
    ok = Ward(1, "phuong_x", "Phường X", "phuong", 21.0, 105.8, True, ["Phố A"])
    with pytest.raises(WardDataError, match=r"wards\[1\].*duplicate"):
        parse_wards(_table([ok, ok]))
    far = Ward(2, "phuong_y", "Phường Y", "phuong", 10.8, 106.7, True, [])
    with pytest.raises(WardDataError, match="not in Hanoi"):
        parse_wards(_table([far]))
    with pytest.raises(WardDataError, match="ward table"):
        parse_wards(b'{"wards": 3}')


def _table(wards: list[Ward]) -> bytes:
    return msgspec.json.encode({"source": "test", "province_code": 1, "wards": wards})


def test_a_tiny_fleet_still_builds() -> None:
    fleet = build_fleet(1, 3, WARDS)
    assert len(fleet) == 1
    assert fleet.devices[0].kind is DeviceKind.CABINET
