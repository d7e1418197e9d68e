"""The area rule for silence: a share of a ward's devices offline together is one area
outage, held while half that share stays offline."""

from anomaly import DetectionKind, DetectorConfig
from anomaly.area_silence import AREA_SILENCE_METRIC, AreaSilence

MIN = 60_000


def test_a_ward_going_silent_together_is_one_area_outage() -> None:
    rule = AreaSilence(DetectorConfig())  # 3 devices and 30 % within 10 min
    events = []
    for i in range(3):
        events += rule.change(f"cab-{i}", "w1", online=False, now_ms=i * MIN, ward_devices=10)
    (start,) = events
    assert (start.kind, start.ward, start.metric, start.active) == (
        DetectionKind.AREA_OUTAGE,
        "w1",
        AREA_SILENCE_METRIC,
        True,
    )
    assert start.device == ""
    assert "3 of 10 devices in w1 went silent" in start.explanation
    # another ward's one device, and more of w1, change nothing
    assert rule.change("cab-x", "w2", online=False, now_ms=4 * MIN, ward_devices=10) == []
    assert rule.change("cab-3", "w1", online=False, now_ms=4 * MIN, ward_devices=10) == []
    # held while 3 stay offline (30 %, above half the share); fewer than 3: it ends
    assert rule.change("cab-0", "w1", online=True, now_ms=5 * MIN, ward_devices=10) == []
    (end,) = rule.change("cab-1", "w1", online=True, now_ms=6 * MIN, ward_devices=10)
    assert (end.active, end.start_ms) == (False, 2 * MIN)


def test_devices_going_silent_one_by_one_are_not_an_area_outage() -> None:
    rule = AreaSilence(DetectorConfig())
    events = []
    for i in range(5):  # one every 11 min: never 3 within the 10 min window
        events += rule.change(f"cab-{i}", "w1", online=False, now_ms=i * 11 * MIN, ward_devices=8)
    assert events == []
