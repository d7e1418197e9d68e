"""Line protocol: escaping rules and the report template encoder."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemetry.lineproto import (
    ReportTemplates,
    encode_point,
    escape_tag,
    format_field_value,
    quote_string_field,
    series_key,
    stored_tag_value,
)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a b", "a\\ b"),
        ("a,b", "a\\,b"),
        ("a=b", "a\\=b"),
        ("x\\,evil=1", "x\\\\,evil\\=1"),
        ("line\nnext", "line\\nnext"),
        ("trail\\", "trail\u29f5"),
        ("Hà Nội", "Hà\\ Nội"),
    ],
)
def test_escape_tag(raw: str, escaped: str) -> None:
    assert escape_tag(raw) == escaped


@given(st.text())
def test_escaped_tag_has_no_unescaped_separator_or_newline(value: str) -> None:
    escaped = escape_tag(value)
    assert "\n" not in escaped
    assert "\r" not in escaped
    assert not escaped.endswith("\\")
    for i, char in enumerate(escaped):
        if char in ", =":
            assert i > 0
            assert escaped[i - 1] == "\\"


@given(st.text())
def test_string_field_quotes_cannot_close_early(value: str) -> None:
    quoted = quote_string_field(value)
    body = quoted[1:-1]
    i = 0
    while i < len(body):  # every quote inside is escaped: the string ends only at the end
        if body[i] == "\\":
            i += 2
            continue
        assert body[i] != '"'
        i += 1


def test_field_values_by_type() -> None:
    assert format_field_value(True) == "true"
    assert format_field_value(3) == "3i"
    assert format_field_value(2.5) == "2.5"
    assert format_field_value(300.0) == "300.0"
    assert format_field_value('say "hi"') == '"say \\"hi\\""'


def test_encode_point_sorts_tags_and_drops_empty_ones() -> None:
    line = encode_point("cabinet", {"ward": "w", "device": "d", "route": ""}, {"x": 1.5}, 42)
    assert line == "cabinet,device=d,ward=w x=1.5 42"
    with pytest.raises(ValueError, match="field"):
        encode_point("m", {}, {})


def test_report_template_renders_floats_and_bools() -> None:
    templates = ReportTemplates()
    series = series_key("cabinet", {"device": "cab-1", "ward": "w"})
    line = templates.line(series, {"temp_inside": 31.5, "door_open": False, "fan_rpm": 0.0}, 7)
    assert line == "cabinet,device=cab-1,ward=w temp_inside=31.5,door_open=False,fan_rpm=0.0 7"
    assert templates.template(("temp_inside", "door_open", "fan_rpm")) is templates.template(
        ("temp_inside", "door_open", "fan_rpm")
    )


def test_stored_tag_value_names_the_stand_ins() -> None:
    assert stored_tag_value("a\nb\\") == "a\\nb\u29f5"
    assert stored_tag_value("plain, with = signs") == "plain, with = signs"
