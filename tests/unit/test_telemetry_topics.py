"""Topic layout: format/parse round trip and precise rejection."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemetry import Channel, DeviceKind, Topic, TopicError, is_valid_id

ids = st.from_regex(r"[a-z0-9][a-z0-9_\-]{0,63}", fullmatch=True)


@given(ward=ids, device=ids, kind=st.sampled_from(DeviceKind), channel=st.sampled_from(Channel))
def test_format_parse_round_trip(
    ward: str, device: str, kind: DeviceKind, channel: Channel
) -> None:
    topic = Topic(ward, kind, device, channel)
    assert Topic.parse(topic.format()) == topic


def test_layout_is_the_documented_one() -> None:
    topic = Topic("phuong_hoan_kiem", DeviceKind.CABINET, "cab-000001", Channel.TELEMETRY)
    assert topic.format() == "cw/v1/phuong_hoan_kiem/cabinet/cab-000001/telemetry"
    assert topic.with_channel(Channel.STATUS).format().endswith("/cab-000001/status")


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("cw/v1/w/cabinet/d", "is not cw/v1/<ward>"),
        ("cw/v2/w/cabinet/d/telemetry", "is not cw/v1/<ward>"),
        ("cw/v1/w/toaster/d/telemetry", "unknown device kind 'toaster'"),
        ("cw/v1/w/cabinet/d/chatter", "unknown channel 'chatter'"),
        ("cw/v1/W/cabinet/d/telemetry", "ward 'W' is not a valid id"),
        ("cw/v1/w/cabinet/+/telemetry", "device_id '+' is not a valid id"),
        ("cw/v1/w/cabinet//telemetry", "device_id '' is not a valid id"),
    ],
)
def test_bad_topics_say_what_is_wrong(topic: str, message: str) -> None:
    with pytest.raises(TopicError, match=message.replace("(", r"\(").replace("+", r"\+")):
        Topic.parse(topic)


@given(st.text(max_size=80))
def test_ids_never_carry_topic_or_line_protocol_syntax(value: str) -> None:
    if is_valid_id(value):
        assert not set(value) & set("/+#, =\"'\\\n\t ")
        assert 1 <= len(value) <= 64
