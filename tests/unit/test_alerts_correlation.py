"""Incident scopes: which alerts an area outage or a cable cut speaks for."""

import pytest

from alerts.correlation import directory_of, in_scope, no_directory, scope_of
from alerts.model import AlertKey, IncidentKind
from anomaly.events import DetectionKind as K
from telemetry import DeviceInfo, DeviceKind

HK, BD = "phuong_hoan_kiem", "phuong_ba_dinh"
DEVICES = [
    DeviceInfo("cab_1", DeviceKind.CABINET, HK, "Hàng Bài", 21.02, 105.85),
    DeviceInfo("cab_9", DeviceKind.CABINET, BD, "Kim Mã", 21.03, 105.82),
    *(
        DeviceInfo(f"seg_{i}", DeviceKind.CABLE_SEGMENT, HK, "Tràng Tiền", 21.02, 105.85, "r7", i)
        for i in range(4)
    ),
    DeviceInfo("seg_x", DeviceKind.CABLE_SEGMENT, HK, "Tràng Tiền", 21.02, 105.85, "r9", 3),
]
LOOKUP = directory_of(DEVICES)


def test_area_outage_scope() -> None:
    scope = scope_of(AlertKey(K.AREA_OUTAGE, HK), LOOKUP)
    assert scope is not None
    assert (scope.kind, scope.ward, scope.title) == (
        IncidentKind.AREA_OUTAGE,
        HK,
        f"Area outage in {HK} (mains, or many devices silent together)",
    )
    members = {
        (AlertKey(K.POWER_LOSS, HK, "cab_1"), True),
        (AlertKey(K.OFFLINE, HK, "cab_1"), True),
        (AlertKey(K.LIMIT, HK, "cab_1", "on_battery"), True),
        (AlertKey(K.LIMIT, HK, "cab_1", "humidity"), False),
        (AlertKey(K.FLOODING, HK, "cab_1"), False),
        (AlertKey(K.POWER_LOSS, BD, "cab_9"), False),
        (AlertKey(K.AREA_OUTAGE, HK), False),
    }
    assert {(key, in_scope(scope, key, LOOKUP)) for key, _ in members} == members


@pytest.mark.parametrize(
    ("key", "member"),
    [
        (AlertKey(K.OFFLINE, HK, "seg_3"), True),
        (AlertKey(K.DROPOUT, HK, "seg_2", "strain"), True),
        (AlertKey(K.LIMIT, HK, "seg_3", "signal"), True),
        (AlertKey(K.LIMIT, HK, "seg_3", "optical_loss"), True),
        (AlertKey(K.CABLE_CUT, HK, "seg_3"), True),
        (AlertKey(K.LIMIT, HK, "seg_3", "temp"), False),
        (AlertKey(K.OFFLINE, HK, "seg_1"), False),  # upstream of the cut
        (AlertKey(K.OFFLINE, HK, "seg_x"), False),  # another route
        (AlertKey(K.OFFLINE, HK, "unknown"), False),
        (AlertKey(K.CABLE_CUT, HK, "seg_2"), False),  # the root itself
    ],
)
def test_cable_cut_scope(key: AlertKey, member: bool) -> None:
    scope = scope_of(AlertKey(K.CABLE_CUT, HK, "seg_2"), LOOKUP)
    assert scope is not None
    assert (scope.route, scope.position) == ("r7", 2)
    assert in_scope(scope, key, LOOKUP) is member


def test_no_incident_without_a_root_type_or_a_known_route() -> None:
    assert scope_of(AlertKey(K.BASELINE, HK, "cab_1", "temp_inside"), LOOKUP) is None
    assert scope_of(AlertKey(K.POWER_LOSS, HK, ""), LOOKUP) is None  # a device's only
    assert scope_of(AlertKey(K.CABLE_CUT, HK, "seg_2"), no_directory) is None
    assert scope_of(AlertKey(K.CABLE_CUT, HK, "cab_1"), LOOKUP) is None  # no route


@pytest.mark.parametrize(
    ("key", "member"),
    [
        (AlertKey(K.DROPOUT, HK, "cab_1", "temp_inside"), True),  # a silent sensor
        (AlertKey(K.FLATLINE, HK, "cab_1", "humidity"), True),  # a frozen one
        (AlertKey(K.POWER_LOSS, HK, "cab_1"), True),  # the other cause, folded in
        (AlertKey(K.BASELINE, HK, "cab_1", "battery_soc"), True),  # follows the mains
        (AlertKey(K.LIMIT, HK, "cab_1", "fan_rpm"), True),  # fans stop with it
        (AlertKey(K.OVERHEATING, HK, "cab_1"), False),  # a fault of its own
        (AlertKey(K.BASELINE, HK, "cab_1", "temp_inside"), False),
        (AlertKey(K.DROPOUT, HK, "cab_2", "temp_inside"), False),  # another device
    ],
)
def test_device_down_scope(key: AlertKey, member: bool) -> None:
    """A device offline (or without mains) inhibits its own dependent alerts."""
    for root in (K.OFFLINE, K.POWER_LOSS):
        scope = scope_of(AlertKey(root, HK, "cab_1"), LOOKUP)
        assert scope is not None
        assert (scope.kind, scope.root_device) == (IncidentKind.DEVICE_DOWN, "cab_1")
        if key.type is not root:
            assert in_scope(scope, key, LOOKUP) is member
