"""The metric catalogue is complete and self-consistent."""

import numpy as np
import pytest

from telemetry import (
    CATALOGUE,
    METRICS_BY_ID,
    DeviceKind,
    Metric,
    ReadingBatch,
    Report,
    metric,
    metric_id,
)

CABINET = {
    "temp_inside",
    "temp_outside",
    "humidity",
    "door_open",
    "mains_voltage",
    "on_battery",
    "battery_soc",
    "battery_voltage",
    "fan_rpm",
    "water_level",
    "power_draw",
}
SEGMENT = {"temp", "moisture", "strain", "optical_loss", "signal"}


def test_every_metric_the_issue_names_is_catalogued() -> None:
    assert set(CATALOGUE[DeviceKind.CABINET]) == CABINET
    assert set(CATALOGUE[DeviceKind.CABLE_SEGMENT]) == SEGMENT


@pytest.mark.parametrize("spec", list(METRICS_BY_ID.values()), ids=lambda m: m.name)
def test_limits_lie_inside_the_valid_range_and_are_ordered(spec: Metric) -> None:
    assert spec.valid_min < spec.valid_max
    assert spec.period_s > 0
    assert spec.unit
    limits = [spec.crit_low, spec.warn_low, spec.warn_high, spec.crit_high]
    present = [x for x in limits if x is not None]
    assert present == sorted(present)
    assert all(spec.valid_min <= x <= spec.valid_max for x in present)


def test_lookup_by_name_and_id() -> None:
    assert metric("cabinet", "temp_inside").unit == "°C"
    assert METRICS_BY_ID[metric_id(DeviceKind.CABLE_SEGMENT, "optical_loss")].unit == "dB"
    with pytest.raises(KeyError, match="no metric 'temp' on device kind 'cabinet'"):
        metric("cabinet", "temp")


def test_batch_flattens_reports_into_columns() -> None:
    reports = [
        Report(
            v=1,
            device="cab-1",
            kind=DeviceKind.CABINET,
            ts=1000,
            seq=0,
            metrics={"temp_inside": 30.0, "door_open": True},
        ),
        Report(
            v=1,
            device="seg-1",
            kind=DeviceKind.CABLE_SEGMENT,
            ts=2000,
            seq=0,
            metrics={"signal": False},
        ),
    ]
    batch = ReadingBatch.from_reports(reports, ["w1", "w2"])
    assert len(batch) == 3
    assert batch.device.tolist() == ["cab-1", "cab-1", "seg-1"]
    assert batch.ward.tolist() == ["w1", "w1", "w2"]
    assert batch.metric.tolist() == [1, 4, 25]
    np.testing.assert_array_equal(batch.ts_ms, [1000, 1000, 2000])
    np.testing.assert_array_equal(batch.value, [30.0, 1.0, 0.0])
    assert len(ReadingBatch.empty()) == 0
    with pytest.raises(ValueError, match="one ward per report"):
        ReadingBatch.from_reports(reports, ["w1"])
