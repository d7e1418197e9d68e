"""Pure parts of the API: tickets, settings, InfluxQL quoting, device status, ward scoping."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from alerts.model import ApiKey, Role
from api import ApiSettings, Environment, tickets
from api.auth import Principal
from api.devices import (
    LOCATION_FIELDS,
    SERIES_TAGS,
    STATE_FIELD,
    STATUS_MEASUREMENT,
    DeviceFacts,
    _decide_status,
    _merge,
)
from api.feed import ChangeFeed
from telemetry import CATALOGUE, DeviceKind
from telemetry.influxdb import Series, quote_ident, quote_string
from telemetry.storage import SCHEMA

SECRET = b"a test secret of some length"


def test_ticket_round_trip_and_rejections() -> None:
    ticket = tickets.issue(SECRET, "abc123def456", expires_at_ms=2_000)
    assert tickets.verify(SECRET, ticket, now_ms=1_999) == "abc123def456"
    with pytest.raises(tickets.TicketError, match="expired"):
        tickets.verify(SECRET, ticket, now_ms=2_000)
    with pytest.raises(tickets.TicketError, match="invalid"):
        tickets.verify(b"other secret", ticket, now_ms=0)
    key_id, expires, signature = ticket.split(".")
    with pytest.raises(tickets.TicketError, match="invalid"):
        tickets.verify(SECRET, f"{key_id}.{int(expires) + 1}.{signature}", now_ms=0)
    with pytest.raises(tickets.TicketError, match="invalid"):
        tickets.verify(SECRET, f"otherkeyid00.{expires}.{signature}", now_ms=0)
    for malformed in ("", "a.b", "a.b.c.d", "k.soon.sig"):
        with pytest.raises(tickets.TicketError, match="malformed"):
            tickets.verify(SECRET, malformed, now_ms=0)


def test_ticket_secrets_are_never_defaults() -> None:
    """No secret anybody can read in the source or in .env.example: without one a
    development service signs with a random one; production must be given one; a
    placeholder or a short value is refused everywhere."""
    dev_a, dev_b = ApiSettings(), ApiSettings()
    assert dev_a.environment is Environment.DEVELOPMENT
    assert dev_a.ticket_key != dev_b.ticket_key
    assert len(dev_a.ticket_key) >= 32
    with pytest.raises(ValidationError, match="CITYWATCH_TICKET_SECRET must be set"):
        ApiSettings(environment=Environment.PRODUCTION)
    for placeholder in ("change-me", "change-me-to-a-long-random-string", "CHANGEME-now-please"):
        with pytest.raises(ValidationError, match="placeholder"):
            ApiSettings(ticket_secret=placeholder)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least 16"):
        ApiSettings(environment=Environment.PRODUCTION, ticket_secret="short")  # type: ignore[arg-type]
    ok = ApiSettings(environment=Environment.PRODUCTION, ticket_secret="x" * 32)  # type: ignore[arg-type]
    assert ok.ticket_key == b"x" * 32


def test_a_ticket_valid_longer_than_any_we_issue_is_refused() -> None:
    far = tickets.issue(SECRET, "abcdef012345", 10_000_000)
    assert tickets.verify(SECRET, far, now_ms=0) == "abcdef012345"
    with pytest.raises(tickets.TicketError, match="invalid"):
        tickets.verify(SECRET, far, now_ms=0, max_ttl_ms=300_000)


def test_timelines_name_keys_never_by_their_id() -> None:
    """A key id is what a stream ticket names: a crew reading timelines must not learn
    other keys' ids. An unnamed key gets a stable pseudonym."""
    from alerts.model import ApiKey, Role  # noqa: PLC0415
    from api.auth import Principal  # noqa: PLC0415

    key = ApiKey(id="0123456789ab", name="", role=Role.CREW, wards=("w",), created_at=0)
    actor = Principal(key).actor
    assert "0123456789ab" not in actor
    assert actor == Principal(key).actor
    assert actor.startswith("crew ")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYWATCH_INFLUX_DATABASE", "telemetry")
    monkeypatch.setenv("CITYWATCH_FEED_POLL_S", "2")
    settings = ApiSettings()
    assert (settings.influx_database, settings.feed_poll_s) == ("telemetry", 2.0)
    monkeypatch.setenv("CITYWATCH_FEED_POLL_S", "-1")
    with pytest.raises(ValidationError, match="feed_poll_s"):
        ApiSettings()


@given(st.text())
def test_influxql_string_literals_cannot_break_out(value: str) -> None:
    quoted = quote_string(value)
    assert quoted.startswith("'")
    assert quoted.endswith("'")
    body = quoted[1:-1]
    # Every quote inside is escaped: undo the escapes and get the value back.
    i, out = 0, []
    while i < len(body):
        if body[i] == "\\":
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != "'"
            out.append(body[i])
            i += 1
    assert "".join(out) == value
    assert quote_ident('we"ird') == '"we\\"ird"'


def _device(**kw: object) -> DeviceFacts:
    return DeviceFacts(id="cab-1", kind=DeviceKind.CABINET, ward="w", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("last_seen", "status", "status_at", "expected"),
    [
        (100_000, "unknown", None, "online"),  # recent readings
        (100_000 - 211_000, "unknown", None, "offline"),  # silent > 3 × 60 s + 30 s
        (100_000 - 209_000, "unknown", None, "online"),
        (90_000, "offline", 95_000, "offline"),  # Last Will after the last reading
        (99_000, "offline", 95_000, "online"),  # reported again since
        (None, "online", 50_000, "online"),  # only a status record
        (None, "unknown", None, "unknown"),
    ],
)
def test_device_status(
    last_seen: int | None, status: str, status_at: int | None, expected: str
) -> None:
    device = _device(last_seen=last_seen, status=status, status_at=status_at)
    _decide_status(device, now_ms=100_000)
    assert device.status == expected


def test_merge_takes_the_latest_series_state_and_location() -> None:
    latest = [
        Series("cabinet", {"device": "cab-1"}, [{"time": 5, "ward": "old", "temp_inside": 20}]),
        Series("cabinet", {"device": "cab-1"}, [{"time": 9, "ward": "new", "door_open": 1}]),
        Series("not_a_kind", {"device": "x"}, [{"time": 9}]),
    ]
    state = [
        Series("device_status", {"device": "cab-1", "kind": "cabinet", "ward": "new"},
               [{"time": 7, "online": False}]),
        Series("device_status", {"device": "cab-1", "kind": "cabinet", "ward": "old"},
               [{"time": 3, "online": True}]),
        Series("device_status",
               {"device": "seg-9", "kind": "cable_segment", "ward": "w2", "route": "r1"},
               [{"time": 4, "online": False}]),
    ]  # fmt: skip
    location = [
        Series("device_status", {"device": "cab-1"},
               [{"time": 0, "street": "Hàng Bạc", "lat": 21.0, "lon": 105.8, "position": None}]),
        Series("device_status", {"device": "seg-9"},
               [{"time": 0, "street": "Lò Đúc", "lat": 21.1, "lon": 105.9, "position": 3}]),
    ]  # fmt: skip
    devices = _merge(latest, state, location)
    assert sorted(devices) == ["cab-1", "seg-9"]
    cab = devices["cab-1"]
    assert (cab.ward, cab.last_seen, cab.readings) == ("new", 9, {"door_open": True})
    assert (cab.status, cab.status_at) == ("offline", 7)  # the later of its two status series
    assert (cab.street, cab.lat, cab.lon, cab.position) == ("Hàng Bạc", 21.0, 105.8, None)
    seg = devices["seg-9"]
    assert (seg.kind, seg.ward, seg.route, seg.position, seg.status) == (
        DeviceKind.CABLE_SEGMENT,
        "w2",
        "r1",
        3,
        "offline",
    )


def test_device_queries_read_only_what_the_storage_schema_declares() -> None:
    status = SCHEMA[STATUS_MEASUREMENT]
    assert {STATE_FIELD, *LOCATION_FIELDS} <= status.fields
    assert set(SERIES_TAGS) <= status.tags
    for kind in DeviceKind:
        readings = SCHEMA[kind.value]
        assert set(CATALOGUE[kind]) == readings.fields
        assert {"ward", "device"} <= readings.tags


def test_principal_scopes_crews_to_their_wards() -> None:
    crew = Principal(ApiKey("k1", "crew 7", Role.CREW, ("w1", "w2"), 0))
    noc = Principal(ApiKey("k2", "", Role.NOC, (), 0))
    assert crew.narrow(None) == ["w1", "w2"]
    assert crew.narrow(["w2", "w3"]) == ["w2"]
    assert noc.narrow(None) is None
    assert noc.narrow(["w3"]) == ["w3"]
    assert crew.sees("w1")
    assert not crew.sees("w3")
    assert noc.sees("anything")
    assert crew.actor == "crew 7"
    assert noc.actor.startswith("noc ")
    assert "k2" not in noc.actor


async def test_change_feed_wakes_waiters_when_the_head_moves() -> None:
    head = 0

    async def current() -> int:
        return head

    feed = ChangeFeed(current, poll_s=30)  # only pokes wake it in this test
    await feed.start()
    try:
        waiter = asyncio.create_task(feed.wait_beyond(0, timeout_s=30))
        head = 3
        feed.poke()
        await asyncio.wait_for(waiter, 5)
        assert feed.latest == 3
        await feed.wait_beyond(3, timeout_s=0.05)  # nothing new: returns at the timeout
        assert feed.latest == 3
    finally:
        await feed.stop()
