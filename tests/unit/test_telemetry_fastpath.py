"""The hot-path shortcuts of the contract give exactly the results of the plain definitions.

``decode_report`` checks a report's metrics with cached per-name-tuple tables and falls
back to a per-metric loop only on failure; ``ReadingBatch.from_reports`` flattens reports
grouped by metric names with numpy. Both are compared here with straightforward reference
implementations on random input (mixed kinds, metric orders, bad values).
"""

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry import CATALOGUE, DecodeError, DeviceKind, ReadingBatch, Report, decode_report

NOW = 1_764_300_000_000
KINDS = [DeviceKind.CABINET, DeviceKind.CABLE_SEGMENT]


def reference_check(kind: DeviceKind, metrics: dict[str, Any]) -> tuple[str, str] | None:
    """(field, reason) of the first bad metric, by the catalogue's definitions."""
    for name, value in metrics.items():
        field = f"$.metrics.{name}"
        spec = CATALOGUE[kind].get(name)
        if spec is None:
            return field, "unknown_metric"
        if isinstance(value, bool) != (spec.dtype == "bool"):
            return field, "wrong_type"
        if isinstance(value, bool):
            continue
        if not math.isfinite(value):
            return field, "not_finite"
        if not spec.valid_min <= value <= spec.valid_max:
            return field, "out_of_range"
    return None


@st.composite
def metric_values(draw: st.DrawFn, kind: DeviceKind) -> dict[str, Any]:
    names = draw(
        st.lists(st.sampled_from([*CATALOGUE[kind], "bogus"]), min_size=1, max_size=6, unique=True)
    )
    out: dict[str, Any] = {}
    for name in names:
        spec = CATALOGUE[kind].get(name)
        in_range = (
            st.booleans()
            if spec is not None and spec.dtype == "bool"
            else st.floats(spec.valid_min, spec.valid_max)
            if spec is not None
            else st.floats(-10, 10)
        )
        out[name] = draw(
            st.one_of(
                in_range,
                in_range,
                in_range,
                st.booleans(),
                st.floats(allow_nan=False, allow_infinity=False, width=32),
                st.integers(-1000, 1000),
            )
        )
    return out


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_decode_report_metric_checks_equal_the_reference(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(KINDS))
    metrics = data.draw(metric_values(kind))
    device = "dev-1"
    topic = f"cw/v1/w1/{kind.value}/{device}/telemetry"
    payload = json.dumps(
        {"v": 1, "device": device, "kind": kind.value, "ts": NOW, "seq": 0, "metrics": metrics}
    ).encode()
    expected = reference_check(
        kind, {k: float(v) if type(v) is int else v for k, v in metrics.items()}
    )
    for _ in range(2):  # the second decode meets the cached check
        assert outcome(topic, payload) == (expected, list(metrics) if expected is None else None)


def outcome(topic: str, payload: bytes) -> tuple[tuple[str, str] | None, list[str] | None]:
    """((field, reason), None) of a rejected report, (None, metric names) of an accepted one."""
    try:
        report = decode_report(topic, payload, now_ms=NOW)
    except DecodeError as error:
        return (error.field, error.reason), None
    return None, list(report.metrics)


def reference_batch(reports: list[Report], wards: list[str]) -> ReadingBatch:
    rows = [
        (r.device, w, CATALOGUE[r.kind][name].id, r.ts, float(value))
        for r, w in zip(reports, wards, strict=True)
        for name, value in r.metrics.items()
    ]
    return ReadingBatch(
        np.array([row[0] for row in rows], dtype=object),
        np.array([row[1] for row in rows], dtype=object),
        np.array([row[2] for row in rows], dtype=np.int16),
        np.array([row[3] for row in rows], dtype=np.int64),
        np.array([row[4] for row in rows], dtype=np.float64),
    )


@st.composite
def reports(draw: st.DrawFn) -> Report:
    kind = draw(st.sampled_from(KINDS))
    names = draw(st.lists(st.sampled_from(sorted(CATALOGUE[kind])), max_size=4, unique=True))
    metrics: dict[str, float | bool] = {
        name: draw(st.booleans())
        if CATALOGUE[kind][name].dtype == "bool"
        else draw(st.floats(-1e6, 1e6))
        for name in names
    }
    return Report(
        v=1,
        device=draw(st.sampled_from(["a", "b", "c"])),
        kind=kind,
        ts=draw(st.integers(0, 10**13)),
        seq=0,
        metrics=metrics,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(reports(), max_size=30), st.data())
def test_from_reports_equals_the_row_by_row_reference(
    batch_reports: list[Report], data: st.DataObject
) -> None:
    wards = data.draw(
        st.lists(
            st.sampled_from(["w1", "w2"]), min_size=len(batch_reports), max_size=len(batch_reports)
        )
    )
    got = ReadingBatch.from_reports(batch_reports, wards)
    want = reference_batch(batch_reports, wards)
    assert got.device.tolist() == want.device.tolist()
    assert got.ward.tolist() == want.ward.tolist()
    for column in ("metric", "ts_ms", "value"):
        assert getattr(got, column).dtype == getattr(want, column).dtype
        np.testing.assert_array_equal(getattr(got, column), getattr(want, column))
