"""Payload v1: valid reports decode to typed values; every kind of bad input is rejected
with the field and a reason code."""

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemetry import (
    CATALOGUE,
    DecodeError,
    DecodeLimits,
    DeviceInfo,
    DeviceKind,
    Report,
    Status,
    decode_message,
    decode_report,
    decode_status,
    encode,
)

NOW = 1_764_300_000_000
TOPIC = "cw/v1/phuong_hoan_kiem/cabinet/cab-000001/telemetry"


def body(**overrides: Any) -> bytes:
    message: dict[str, Any] = {
        "v": 1,
        "device": "cab-000001",
        "kind": "cabinet",
        "ts": NOW,
        "seq": 7,
        "metrics": {"temp_inside": 31.5, "door_open": False, "mains_voltage": 229},
    }
    message.update(overrides)
    return json.dumps(message).encode()


def reject(payload: bytes, topic: str = TOPIC, **kw: Any) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode_report(topic, payload, now_ms=NOW, **kw)
    return info.value


def test_valid_report_decodes_to_typed_values() -> None:
    report = decode_report(TOPIC, body(), now_ms=NOW)
    assert report.kind is DeviceKind.CABINET
    assert report.metrics == {"temp_inside": 31.5, "door_open": False, "mains_voltage": 229.0}
    assert isinstance(report.metrics["mains_voltage"], float)


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        (b"not json", "$", "not_json"),
        (
            b'{"v":1,"device":"cab-000001","kind":"cabinet","ts":1,"seq":0,"metrics":{"temp_inside":NaN}}',
            "$",
            "not_json",
        ),
        (
            body(metrics={"temp_inside": 1e300}).replace(b"1e+300", b"1e999"),
            "$.metrics[...]",
            "schema",
        ),
        (body(metrics={"temp_inside": float("inf")}), "$", "not_json"),
        (body(ts="yesterday"), "$.ts", "schema"),
        (body(ts=None), "$.ts", "schema"),
        (body(kind="toaster"), "$.kind", "schema"),
        (body(extra=1), "$", "schema"),
        (body(v=2), "$.v", "version"),
        (body(device="CAB 1"), "$.device", "bad_id"),
        (body(device="cab-000002"), "$.device", "topic_mismatch"),
        (body(kind="cable_segment", metrics={"temp": 20}), "$.kind", "topic_mismatch"),
        (body(ts=NOW + 3_600_000), "$.ts", "future"),
        (body(ts=NOW - 30 * 86_400_000), "$.ts", "too_old"),
        (body(seq=-1), "$.seq", "schema"),
        (body(seq=2**63), "$.seq", "out_of_range"),  # InfluxDB stores int64 only
        (body(metrics={}), "$.metrics", "empty"),
        (body(metrics={"warp_core": 1.0}), "$.metrics.warp_core", "unknown_metric"),
        (body(metrics={"temp": 1.0}), "$.metrics.temp", "unknown_metric"),
        (body(metrics={"door_open": 1}), "$.metrics.door_open", "wrong_type"),
        (body(metrics={"temp_inside": True}), "$.metrics.temp_inside", "wrong_type"),
        (body(metrics={"temp_inside": "hot"}), "$.metrics[...]", "schema"),
        (body(metrics={"temp_inside": 400.0}), "$.metrics.temp_inside", "out_of_range"),
        (body(metrics={"battery_soc": -3}), "$.metrics.battery_soc", "out_of_range"),
    ],
)
def test_bad_payloads_name_field_and_reason(payload: bytes, field: str, reason: str) -> None:
    error = reject(payload)
    assert (error.field, error.reason) == (field, reason)
    assert error.detail


def test_oversize_is_rejected_before_parsing() -> None:
    error = reject(body(), limits=DecodeLimits(max_bytes=50))
    assert error.reason == "oversize"
    assert "limit is 50" in error.detail


def test_out_of_range_message_gives_value_unit_and_range() -> None:
    error = reject(body(metrics={"temp_inside": 400.0}))
    assert str(error) == "$.metrics.temp_inside: 400.0 °C is outside the physical range [-20, 95]"


def test_bad_topic_is_a_decode_error() -> None:
    error = reject(body(), topic="cw/v1/phuong_hoan_kiem/cabinet/cab-000001/status")
    assert error.reason == "bad_topic"


def metric_values(kind: DeviceKind) -> st.SearchStrategy[dict[str, float | bool]]:
    def value(name: str) -> st.SearchStrategy[float | bool]:
        spec = CATALOGUE[kind][name]
        if spec.dtype == "bool":
            return st.booleans()
        return st.floats(spec.valid_min, spec.valid_max, allow_nan=False)

    names = list(CATALOGUE[kind])
    return st.fixed_dictionaries({}, optional={n: value(n) for n in names}).filter(bool)


@given(
    kind=st.sampled_from(DeviceKind),
    data=st.data(),
    seq=st.integers(0, 2**53),
    skew=st.integers(-86_400_000, 60_000),
)
def test_any_valid_report_round_trips(
    kind: DeviceKind, data: st.DataObject, seq: int, skew: int
) -> None:
    metrics = data.draw(metric_values(kind))
    report = Report(v=1, device="dev-1", kind=kind, ts=NOW + skew, seq=seq, metrics=metrics)
    topic = f"cw/v1/xa_ba_vi/{kind}/dev-1/telemetry"
    assert decode_report(topic, encode(report), now_ms=NOW) == report


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_report(TOPIC, payload, now_ms=NOW)
    assert info.value.reason


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_no_non_finite_or_out_of_range_value_is_accepted(value: float) -> None:
    try:
        report = decode_report(TOPIC, body(metrics={"humidity": value}), now_ms=NOW)
    except DecodeError:
        return
    accepted = report.metrics["humidity"]
    assert isinstance(accepted, float)
    assert math.isfinite(accepted)
    assert 0 <= accepted <= 100


def test_status_with_info_and_last_will_without_time() -> None:
    info = DeviceInfo(
        id="seg-r0001-02",
        kind=DeviceKind.CABLE_SEGMENT,
        ward="phuong_cua_nam",
        street="Hai Bà Trưng",
        lat=21.02,
        lon=105.84,
        route="r0001",
        position=2,
    )
    online = Status(v=1, device=info.id, kind=info.kind, state="online", ts=NOW, info=info)
    topic = "cw/v1/phuong_cua_nam/cable_segment/seg-r0001-02/status"
    assert decode_status(topic, encode(online), now_ms=NOW) == online
    will = Status(v=1, device=info.id, kind=info.kind, state="offline", reason="lwt")
    parsed, message = decode_message(topic, encode(will), now_ms=NOW)
    assert message == will
    assert parsed.device_id == info.id


def test_status_info_for_another_device_is_rejected() -> None:
    info = DeviceInfo(
        id="cab-000009", kind=DeviceKind.CABINET, ward="w", street="s", lat=21.0, lon=105.8
    )
    status = Status(v=1, device="cab-000001", kind=DeviceKind.CABINET, state="online", info=info)
    topic = "cw/v1/phuong_hoan_kiem/cabinet/cab-000001/status"
    with pytest.raises(DecodeError) as info_error:
        decode_status(topic, msgspec.json.encode(status), now_ms=NOW)
    assert info_error.value.reason == "topic_mismatch"


@pytest.mark.parametrize(
    ("route", "position", "field", "reason"),
    [
        ("r0001,evil=1", 2, "$.info.route", "bad_id"),  # a tag: bounded like an id
        ("r" * 65, 2, "$.info.route", "bad_id"),
        ("r0001", -1, "$.info.position", "out_of_range"),
    ],
)
def test_status_info_route_and_position_are_bounded(
    route: str, position: int, field: str, reason: str
) -> None:
    info = DeviceInfo(
        id="seg-r0001-02",
        kind=DeviceKind.CABLE_SEGMENT,
        ward="phuong_cua_nam",
        street="Hai Bà Trưng",
        lat=21.02,
        lon=105.84,
        route=route,
        position=position,
    )
    status = Status(v=1, device=info.id, kind=info.kind, state="online", ts=NOW, info=info)
    topic = "cw/v1/phuong_cua_nam/cable_segment/seg-r0001-02/status"
    with pytest.raises(DecodeError) as error:
        decode_status(topic, encode(status), now_ms=NOW)
    assert (error.value.field, error.value.reason) == (field, reason)
