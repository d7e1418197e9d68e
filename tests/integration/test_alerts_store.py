"""The alert store against real databases: SQLite (WAL, a file per test) and PostgreSQL
(a temporary database for the session, on 127.0.0.1:5432 as user postgres)."""

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import fresh_database
from sqlalchemy.exc import IntegrityError

from alerts.correlation import DeviceLocation
from alerts.lifecycle import TransitionError
from alerts.model import (
    AlertStatus,
    ChangeKind,
    IncidentKind,
    MatcherError,
    MatchOp,
    Role,
    SilenceMatcher,
)
from alerts.policy import MINUTE_MS, Policy, TypePolicy
from alerts.schema import alerts, metadata
from alerts.store import ALERT_SORTS, SILENCE_SORTS, AlertFilter, AlertStore, NotFoundError, Sort
from anomaly.events import Detection, DetectionKind, Severity

K = DetectionKind
M = MINUTE_MS
POLICY = Policy(
    per_type={K.OFFLINE: TypePolicy(pending_ms=2 * M, keep_firing_ms=M)},
    default=TypePolicy(pending_ms=0, keep_firing_ms=0),
    flap_window_ms=10 * M,
    flap_threshold=4,
    escalate_after_ms=15 * M,
    reminder_every_ms=30 * M,
)
HK = "phuong_hoan_kiem"
BD = "phuong_ba_dinh"
DIRECTORY = {
    **{f"cab_{i}": DeviceLocation(HK) for i in range(4)},
    "cab_bd": DeviceLocation(BD),
    **{f"seg_{i}": DeviceLocation(HK, "route_7", i) for i in range(5)},
    "seg_other": DeviceLocation(HK, "route_9", 3),
}


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A uniquely named PostgreSQL database for this session, dropped afterwards."""
    with fresh_database("citywatch_alerts_test") as url:
        yield url


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * M

    def __call__(self) -> int:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[AlertStore]:
    opened = await AlertStore.open(store_url, policy=POLICY, directory=DIRECTORY.get, clock=clock)
    if opened.engine.dialect.name == "postgresql":  # one database per session: start empty
        names = ", ".join(t.name for t in metadata.sorted_tables)
        async with opened.engine.begin() as conn:
            await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    try:
        yield opened
    finally:
        await opened.close()


def det(
    kind: DetectionKind = K.FLOODING,
    device: str = "cab_1",
    *,
    active: bool = True,
    ward: str = HK,
    severity: Severity = Severity.MAJOR,
    metric: str = "",
    score: float = 0.9,
) -> Detection:
    return Detection(
        kind=kind,
        severity=severity,
        active=active,
        ward=ward,
        device=device,
        metric=metric,
        start_ms=0,
        ts_ms=0,
        score=score,
        explanation=f"{kind.value} on {device or ward}",
    )


def kinds(changes: list) -> list[tuple[str, str, bool]]:  # type: ignore[type-arg]
    return [(c.alert.device or c.alert.ward, c.kind.value, c.notify) for c in changes]


async def test_repeated_detections_update_one_alert(store: AlertStore) -> None:
    first = await store.apply_detection(det(score=0.5), now_ms=0)
    assert kinds(first) == [("cab_1", "raised", True)]
    assert await store.apply_detection(det(score=0.8), now_ms=M) == []
    await store.apply_detection(det(score=0.6), now_ms=2 * M)
    page = await store.list_alerts()
    assert page.count == 1
    alert = page.data[0]
    assert (alert.count, alert.last_seen, alert.peak_score, alert.last_score) == (
        3,
        2 * M,
        0.8,
        0.6,
    )
    assert (alert.state, alert.acknowledged, alert.raised_at) == (AlertStatus.ACTIVE, False, 0)


async def test_concurrent_writers_on_one_engine_create_one_alert(store: AlertStore) -> None:
    results = await asyncio.gather(*(store.apply_detection(det(), now_ms=i) for i in range(24)))
    page = await store.list_alerts()
    assert page.count == 1
    assert page.data[0].count == 24  # no lost update either
    raised = [c for changes in results for c in changes if c.kind is ChangeKind.RAISED]
    assert len(raised) == 1


async def test_concurrent_writers_on_two_engines_create_one_alert(
    store: AlertStore, store_url: str, clock: Clock
) -> None:
    other = await AlertStore.open(store_url, policy=POLICY, directory=DIRECTORY.get, clock=clock)
    try:
        await asyncio.gather(
            *(
                s.apply_detection(det(K.LIMIT, metric="humidity"), now_ms=i)
                for i in range(12)
                for s in (store, other)
            )
        )
    finally:
        await other.close()
    page = await store.list_alerts()
    assert page.count == 1
    assert page.data[0].count == 24


async def test_the_database_refuses_a_second_open_alert(store: AlertStore) -> None:
    await store.apply_detection(det(), now_ms=0)
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(alerts))).mappings().one()
    duplicate = {k: v for k, v in row.items() if k != "id"}
    with pytest.raises(IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(sa.insert(alerts).values(**duplicate))
    # once cleared (open_key NULL) the same key may open again
    await store.apply_detection(det(active=False), now_ms=M)
    await store.apply_detection(det(), now_ms=2 * M)
    page = await store.list_alerts()
    assert [a.state for a in page.data] == [AlertStatus.ACTIVE, AlertStatus.CLEARED]


async def test_pending_keep_firing_and_tick(store: AlertStore) -> None:
    assert kinds(await store.apply_detection(det(K.OFFLINE), now_ms=0)) == [
        ("cab_1", "pending", False)
    ]
    assert await store.tick(now_ms=M) == []
    assert kinds(await store.tick(now_ms=2 * M)) == [("cab_1", "raised", True)]
    assert kinds(await store.apply_detection(det(K.OFFLINE, active=False), now_ms=3 * M)) == [
        ("cab_1", "clear_pending", False)
    ]
    assert kinds(await store.tick(now_ms=4 * M)) == [("cab_1", "cleared", True)]
    alert = (await store.list_alerts()).data[0]
    assert (alert.state, alert.cleared_at) == (AlertStatus.CLEARED, 4 * M)


async def test_flapping_across_alerts_is_marked_and_quiet(store: AlertStore) -> None:
    notified = []
    for i in range(3):
        notified += [c.notify for c in await store.apply_detection(det(), now_ms=2 * i * M)]
        notified += [
            c.notify for c in await store.apply_detection(det(active=False), now_ms=(2 * i + 1) * M)
        ]
    page = await store.list_alerts(AlertFilter(device="cab_1"))
    assert page.count == 3
    assert [a.flapping for a in page.data] == [True, True, False]
    assert notified.count(True) == 3  # raise+clear, raise; then quiet


async def test_manual_actions_and_timeline(store: AlertStore, clock: Clock) -> None:
    (raised,) = await store.apply_detection(det(severity=Severity.CRITICAL))
    alert_id = raised.alert_id
    clock.now += M
    assert kinds(await store.acknowledge(alert_id, "noc_an")) == [("cab_1", "acknowledged", True)]
    with pytest.raises(TransitionError, match="already acknowledged"):
        await store.acknowledge(alert_id, "noc_binh")
    await store.assign(alert_id, "crew_7", "noc_an")
    await store.comment(alert_id, "pump on the way", "crew_7")
    await store.unacknowledge(alert_id, "noc_an")
    clock.now += M
    (resolved,) = await store.resolve(alert_id, "crew_7", "pumped out")
    assert resolved.alert is not None
    assert (resolved.alert.state, resolved.alert.assignee) == (AlertStatus.CLEARED, "crew_7")
    detail = await store.get_alert(alert_id)
    assert [(c.kind.value, c.actor) for c in detail.timeline] == [
        ("raised", None),
        ("acknowledged", "noc_an"),
        ("assigned", "noc_an"),
        ("commented", "crew_7"),
        ("unacknowledged", "noc_an"),
        ("resolved", "crew_7"),
    ]
    assert [(c.author, c.text) for c in detail.comments] == [("crew_7", "pump on the way")]
    with pytest.raises(NotFoundError):
        await store.get_alert(9999)
    with pytest.raises(NotFoundError):
        await store.acknowledge(9999, "noc_an")


async def test_list_filters_and_paging(store: AlertStore) -> None:
    await store.apply_detection(det(K.FLOODING, "cab_0", severity=Severity.CRITICAL), now_ms=0)
    await store.apply_detection(det(K.INTRUSION, "cab_1", severity=Severity.MINOR), now_ms=M)
    await store.apply_detection(det(K.LIMIT, "cab_bd", ward=BD, metric="humidity"), now_ms=2 * M)
    await store.apply_detection(det(K.LIMIT, "cab_2", metric="temp_inside"), now_ms=3 * M)
    await store.apply_detection(det(K.LIMIT, "cab_2", metric="temp_inside", active=False), 4 * M)
    await store.acknowledge(1, "noc_an", now_ms=5 * M)

    async def ids(where: AlertFilter, skip: int = 0, limit: int = 100) -> tuple[list[int], int]:
        page = await store.list_alerts(where, skip, limit)
        return [a.id for a in page.data], page.count

    assert await ids(AlertFilter()) == ([4, 3, 2, 1], 4)
    assert await ids(AlertFilter(), skip=1, limit=2) == ([3, 2], 4)
    assert await ids(AlertFilter(state=AlertStatus.CLEARED)) == ([4], 1)
    assert await ids(AlertFilter(severity=Severity.CRITICAL)) == ([1], 1)
    assert await ids(AlertFilter(ward=BD)) == ([3], 1)
    assert await ids(AlertFilter(wards=[HK])) == ([4, 2, 1], 3)
    assert await ids(AlertFilter(device="cab_2")) == ([4], 1)
    assert await ids(AlertFilter(type=K.LIMIT)) == ([4, 3], 2)
    assert await ids(AlertFilter(acknowledged=True)) == ([1], 1)
    assert await ids(AlertFilter(since=M, until=3 * M)) == ([3, 2], 2)
    with pytest.raises(ValueError, match="limit"):
        await store.list_alerts(limit=0)
    with pytest.raises(ValueError, match="skip"):
        await store.list_alerts(skip=-1)


async def test_area_outage_groups_the_wards_power_and_offline_alerts(store: AlertStore) -> None:
    await store.apply_detection(det(K.POWER_LOSS, "cab_0"), now_ms=0)
    await store.apply_detection(det(K.OFFLINE, "cab_1"), now_ms=0)
    await store.tick(now_ms=2 * M)  # offline raised after its pending period
    await store.apply_detection(det(K.POWER_LOSS, "cab_bd", ward=BD), now_ms=2 * M)
    await store.apply_detection(det(K.FLOODING, "cab_2"), now_ms=2 * M)  # not power related
    outage = det(K.AREA_OUTAGE, "", severity=Severity.CRITICAL)
    changes = await store.apply_detection(outage, now_ms=3 * M)
    assert kinds(changes) == [
        ("cab_0", "grouped", False),
        ("cab_1", "grouped", False),
        (HK, "raised", True),
    ]
    opened = (await store.list_incidents(open_only=True)).data
    (incident,) = [i for i in opened if i.kind is IncidentKind.AREA_OUTAGE]
    # cab_bd (another ward) lost its mains alone: its own device-down incident; cab_0's
    # and cab_1's were taken over by the outage (closed, their alerts grouped in it).
    assert [(i.kind, i.device) for i in opened if i is not incident] == [
        (IncidentKind.DEVICE_DOWN, "cab_bd")
    ]
    root = await store.get_alert(incident.root_alert)
    assert root.alert.incident == incident.id
    assert root.alert.incident_root
    assert [(await store.get_alert(i)).alert.device for i in incident.children] == [
        "cab_0",
        "cab_1",
    ]
    # a further cabinet losing mains joins quietly
    late = await store.apply_detection(det(K.POWER_LOSS, "cab_3"), now_ms=4 * M)
    assert kinds(late) == [("cab_3", "raised", False), ("cab_3", "grouped", False)]
    assert len((await store.get_incident(incident.id)).children) == 3
    # no reminders for the children, one escalation for the root
    reminders = await store.tick(now_ms=40 * M)
    assert {(c.alert.device or c.alert.ward, c.kind.value) for c in reminders} == {
        (HK, "escalated"),
        ("cab_bd", "reminder"),
        ("cab_2", "reminder"),
    }
    # the outage ends: the incident closes, the children still open speak again
    await store.apply_detection(det(K.POWER_LOSS, "cab_0", active=False), now_ms=41 * M)
    ended = await store.apply_detection(
        det(K.AREA_OUTAGE, "", active=False, severity=Severity.CRITICAL), now_ms=42 * M
    )
    assert kinds(ended) == [
        ("cab_1", "ungrouped", True),
        ("cab_3", "ungrouped", True),
        (HK, "cleared", True),
    ]
    assert (await store.get_incident(incident.id)).closed_at == 42 * M
    still_open = (await store.list_incidents(open_only=True)).data
    assert [(i.kind, i.device) for i in still_open] == [(IncidentKind.DEVICE_DOWN, "cab_bd")]
    with pytest.raises(NotFoundError):
        await store.get_incident(999)


async def test_cable_cut_groups_downstream_offline_and_signal_alerts(store: AlertStore) -> None:
    for seg in ("seg_1", "seg_3", "seg_4", "seg_other"):
        await store.apply_detection(det(K.OFFLINE, seg), now_ms=0)
    await store.tick(now_ms=2 * M)
    await store.apply_detection(
        det(K.LIMIT, "seg_4", metric="signal", severity=Severity.CRITICAL), now_ms=2 * M
    )
    await store.apply_detection(det(K.LIMIT, "seg_3", metric="temp"), now_ms=2 * M)
    cut = await store.apply_detection(
        det(K.CABLE_CUT, "seg_2", severity=Severity.CRITICAL), now_ms=3 * M
    )
    grouped = {(c.alert.device, c.alert.metric) for c in cut if c.kind is ChangeKind.GROUPED}
    assert grouped == {("seg_3", ""), ("seg_4", ""), ("seg_4", "signal")}
    # The downstream segments' own device-down incidents were taken over by the cut;
    # the segments upstream (seg_1) and elsewhere keep theirs.
    cuts = [i for i in (await store.list_incidents()).data if i.kind is IncidentKind.CABLE_CUT]
    devices = {
        i.device: i.closed_at
        for i in (await store.list_incidents()).data
        if i.kind is IncidentKind.DEVICE_DOWN
    }
    assert devices == {"seg_1": None, "seg_3": 3 * M, "seg_4": 3 * M, "seg_other": None}
    (incident,) = cuts
    assert (incident.kind, incident.route, incident.position) == (
        IncidentKind.CABLE_CUT,
        "route_7",
        2,
    )
    assert "route_7" in incident.title


async def test_a_device_down_inhibits_its_silent_sensors(store: AlertStore) -> None:
    """A cabinet falls silent: one alert per silent sensor, then the device goes offline.
    Its offline alert becomes the one card (a device-down incident): the silent sensors
    are grouped under it, stay visible with who inhibits them, and are not notified;
    another cabinet's are not touched. Back online, the incident closes."""
    for metric in ("temp_inside", "humidity", "door_open"):
        await store.apply_detection(det(K.DROPOUT, "cab_1", metric=metric), now_ms=0)
    await store.apply_detection(det(K.DROPOUT, "cab_9", metric="temp_inside"), now_ms=0)
    await store.apply_detection(det(K.OFFLINE, "cab_1"), now_ms=M)
    raised = await store.tick(now_ms=3 * M)  # offline raised after its pending period
    assert sorted(kinds(raised)) == [
        ("cab_1", "grouped", False),
        ("cab_1", "grouped", False),
        ("cab_1", "grouped", False),
        ("cab_1", "raised", True),
    ]
    opened = (await store.list_incidents(open_only=True)).data
    (incident,) = opened
    assert (incident.kind, incident.device, len(incident.children)) == (
        IncidentKind.DEVICE_DOWN,
        "cab_1",
        3,
    )
    root = (await store.get_alert(incident.root_alert)).alert
    assert (root.type, root.device, root.incident_root) == (K.OFFLINE, "cab_1", True)
    for child in incident.children:  # visible, with the incident naming their cause
        alert = (await store.get_alert(child)).alert
        assert (alert.type, alert.incident, alert.incident_root) == (K.DROPOUT, incident.id, False)
    # A sensor falling silent later joins quietly; reminders go to the root only.
    late = await store.apply_detection(det(K.DROPOUT, "cab_1", metric="fan_rpm"), now_ms=4 * M)
    assert kinds(late) == [("cab_1", "raised", False), ("cab_1", "grouped", False)]
    reminders = await store.tick(now_ms=40 * M)
    assert {(c.alert.device, c.alert.type.value, c.kind.value) for c in reminders} == {
        ("cab_1", "offline", "reminder"),
        ("cab_9", "dropout", "reminder"),
    }
    # Back online: the incident closes, the sensors still silent speak for themselves.
    await store.apply_detection(det(K.OFFLINE, "cab_1", active=False), now_ms=41 * M)
    back = await store.tick(now_ms=43 * M)
    assert ("cab_1", "ungrouped", True) in kinds(back)
    assert (await store.get_incident(incident.id)).closed_at is not None


async def test_silences_suppress_notification_but_record(store: AlertStore) -> None:
    with pytest.raises(ValueError, match="matcher"):
        await store.create_silence(starts_at=0, ends_at=10 * M)
    with pytest.raises(ValueError, match="end after"):
        await store.create_silence(starts_at=10 * M, ends_at=0, ward=HK)
    silence = await store.create_silence(
        starts_at=0,
        ends_at=10 * M,
        ward=HK,
        type=K.FLOODING,
        comment="pump works",
        created_by="admin",
    )
    other = await store.create_silence(starts_at=0, ends_at=10 * M, device="cab_bd")
    changes = await store.apply_detection(det(K.FLOODING, "cab_1"), now_ms=M)
    assert kinds(changes) == [("cab_1", "raised", False), ("cab_1", "silenced", False)]
    assert changes[-1].alert is not None
    assert changes[-1].alert.silenced
    # a different type in the same ward is not silenced
    assert kinds(await store.apply_detection(det(K.INTRUSION, "cab_1"), now_ms=M)) == [
        ("cab_1", "raised", True)
    ]
    assert [s.id for s in (await store.list_silences(active_at=5 * M)).data] == [
        other.id,
        silence.id,
    ]
    assert (await store.list_silences(active_at=10 * M)).count == 0
    assert kinds(await store.tick(now_ms=10 * M)) == [("cab_1", "unsilenced", True)]
    await store.delete_silence(other.id)
    with pytest.raises(NotFoundError):
        await store.delete_silence(other.id)
    with pytest.raises(NotFoundError):
        await store.get_silence(other.id)
    assert (await store.get_silence(silence.id)).comment == "pump works"


async def test_silence_matchers_regex_and_severity_at_writes_and_ticks(
    store: AlertStore,
) -> None:
    """Alertmanager-style matchers (=, !=, =~, !~; regexes match the whole value) and a
    severity condition apply where silences apply: detection writes and ticks."""
    regex = await store.create_silence(
        starts_at=0,
        ends_at=10 * M,
        matchers=[
            SilenceMatcher("device", MatchOp.REGEX, "cab_[0-2]"),
            SilenceMatcher("type", MatchOp.NOT_REGEX, "intrusion|offline"),
        ],
        comment="cabinets 0-2 rewired",
        created_by="noc-desk",
        created_by_key="k123",
    )
    stored = await store.get_silence(regex.id)
    assert stored.matchers == regex.matchers
    assert stored.matchers[0] == SilenceMatcher("device", MatchOp.REGEX, "cab_[0-2]")
    assert (stored.created_by, stored.created_by_key) == ("noc-desk", "k123")

    silenced = await store.apply_detection(det(K.FLOODING, "cab_1"), now_ms=M)
    assert kinds(silenced) == [("cab_1", "raised", False), ("cab_1", "silenced", False)]
    # !~ holds the intrusion back; the regex is anchored: cab_3 and cab_10 are not cab_[0-2]
    assert kinds(await store.apply_detection(det(K.INTRUSION, "cab_2"), now_ms=M)) == [
        ("cab_2", "raised", True)
    ]
    assert kinds(await store.apply_detection(det(K.FLOODING, "cab_3"), now_ms=M)) == [
        ("cab_3", "raised", True)
    ]

    # severity: only critical alerts of the ward; a major one is silenced when it worsens
    await store.create_silence(
        starts_at=2 * M,
        ends_at=10 * M,
        ward=BD,
        severity=Severity.CRITICAL,
        comment="known outage",
    )
    major = await store.apply_detection(det(K.FLOODING, "cab_bd", ward=BD), now_ms=2 * M)
    assert kinds(major) == [("cab_bd", "raised", True)]
    worse = await store.apply_detection(
        det(K.FLOODING, "cab_bd", ward=BD, severity=Severity.CRITICAL), now_ms=3 * M
    )
    assert ("cab_bd", "silenced", False) in kinds(worse)

    # a tick follows a silence that starts later: cab_3's flooding alert is held then
    await store.create_silence(
        starts_at=4 * M,
        ends_at=6 * M,
        matchers=[SilenceMatcher("ward", MatchOp.REGEX, "phuong_(hoan_kiem|tay_ho)")],
        severity=Severity.MAJOR,
        comment="ward works",
    )
    assert ("cab_3", "silenced", False) in kinds(await store.tick(now_ms=4 * M))
    ended = kinds(await store.tick(now_ms=6 * M))
    assert ("cab_3", "unsilenced", True) in ended
    assert ("cab_1", "unsilenced", True) not in ended  # still under the regex silence


def test_silence_matchers_refuse_what_cannot_match() -> None:
    with pytest.raises(MatcherError, match=r"invalid regular expression 'cab_\[': missing \]"):
        SilenceMatcher("device", MatchOp.REGEX, "cab_[")
    with pytest.raises(MatcherError, match="unknown matcher name 'metric'"):
        SilenceMatcher("metric", MatchOp.EQUAL, "x")
    # RE2: no backreferences (and no catastrophic backtracking on a hostile pattern)
    with pytest.raises(MatcherError, match="invalid regular expression"):
        SilenceMatcher("device", MatchOp.REGEX, r"(a)\1")
    slow = SilenceMatcher("device", MatchOp.REGEX, "(a+)+b")
    assert not slow.matches("a" * 64)


async def test_lists_sort_by_whitelisted_fields(store: AlertStore) -> None:
    await store.apply_detection(det(K.FLOODING, "cab_0", severity=Severity.MINOR), now_ms=0)
    await store.apply_detection(det(K.FLOODING, "cab_1", severity=Severity.CRITICAL), now_ms=M)
    await store.apply_detection(det(K.FLOODING, "cab_2", severity=Severity.MAJOR), now_ms=2 * M)
    await store.apply_detection(det(K.FLOODING, "cab_3", severity=Severity.MAJOR), now_ms=M)

    async def devices(text: str) -> list[str]:
        page = await store.list_alerts(sort=Sort.parse(text, list(ALERT_SORTS)))
        return [a.device for a in page.data]

    # by urgency, not alphabetically; ties newest first (by id)
    assert await devices("-severity") == ["cab_1", "cab_3", "cab_2", "cab_0"]
    assert await devices("severity,opened_at") == ["cab_0", "cab_3", "cab_2", "cab_1"]
    assert await devices("-opened_at,device") == ["cab_2", "cab_1", "cab_3", "cab_0"]
    with pytest.raises(ValueError, match="cannot sort by 'explanation'"):
        Sort.parse("-explanation", list(ALERT_SORTS))
    with pytest.raises(ValueError, match="given twice"):
        Sort.parse("id,-id", list(ALERT_SORTS))
    for start in (3 * M, M, 2 * M):
        await store.create_silence(starts_at=start, ends_at=9 * M, device=f"cab_{start // M}")
    page = await store.list_silences(sort=Sort.parse("starts_at", list(SILENCE_SORTS)))
    assert [s.starts_at for s in page.data] == [M, 2 * M, 3 * M]


async def test_change_feed_resumes_and_filters_by_ward(store: AlertStore) -> None:
    await store.apply_detection(det(K.FLOODING, "cab_1"), now_ms=0)
    await store.apply_detection(det(K.FLOODING, "cab_bd", ward=BD), now_ms=0)
    await store.acknowledge(1, "noc_an", now_ms=M)
    everything = await store.changes_since(0)
    ids = [c.id for c in everything]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert await store.last_change_id() == ids[-1]
    assert [c.kind for c in await store.changes_since(ids[0])] == [
        ChangeKind.RAISED,
        ChangeKind.ACKNOWLEDGED,
    ]
    assert {c.ward for c in await store.changes_since(0, wards=[BD])} == {BD}
    assert await store.changes_since(ids[-1]) == []


async def test_api_keys(store: AlertStore) -> None:
    crew, secret = await store.create_api_key(Role.CREW, ["phuong_b", "phuong_a"], "crew 7")
    assert secret.startswith(f"cw_{crew.id}_")
    assert crew.wards == ("phuong_a", "phuong_b")
    assert await store.verify_api_key(secret) == crew
    assert await store.verify_api_key(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert await store.verify_api_key("Bearer nonsense") is None
    async with store.engine.connect() as conn:
        stored = await conn.scalar(sa.text("SELECT secret_sha256 FROM api_keys"))
    assert secret not in str(stored)
    noc, _ = await store.create_api_key("noc")
    assert [k.id for k in await store.list_api_keys()] == [crew.id, noc.id]
    await store.revoke_api_key(crew.id)
    assert await store.verify_api_key(secret) is None
    with pytest.raises(NotFoundError):
        await store.revoke_api_key(crew.id)
    with pytest.raises(ValueError, match="at least one ward"):
        await store.create_api_key(Role.CREW)
    with pytest.raises(ValueError, match="every ward"):
        await store.create_api_key(Role.ADMIN, ["phuong_a"])
    with pytest.raises(ValueError, match="root"):
        await store.create_api_key("root")


async def test_delivery_log(store: AlertStore) -> None:
    (change,) = await store.apply_detection(det(), now_ms=0)
    await store.record_delivery(
        change, channel="webhook", target="http://x", delivered=True, attempts=2
    )
    await store.record_delivery(
        change,
        channel="mqtt",
        target="cw/v1/_alerts/x",
        delivered=False,
        attempts=3,
        error="refused",
    )
    page = await store.list_deliveries(alert_id=change.alert_id)
    assert page.count == 2
    assert [(d.channel, d.status, d.attempts, d.error) for d in page.data] == [
        ("mqtt", "failed", 3, "refused"),
        ("webhook", "delivered", 2, ""),
    ]


async def test_mixed_concurrent_workload_keeps_the_invariants(
    store: AlertStore, store_url: str, clock: Clock
) -> None:
    """Detections, ticks and acknowledgements from two engines at once: one open alert
    per key, at most one open incident per ward, a gap-free ordered feed."""
    other = await AlertStore.open(store_url, policy=POLICY, directory=DIRECTORY.get, clock=clock)
    rnd = random.Random(5)

    def detection() -> Detection:
        kind = rnd.choice([K.POWER_LOSS, K.FLOODING, K.AREA_OUTAGE])
        device = "" if kind is K.AREA_OUTAGE else f"cab_{rnd.randrange(4)}"
        return det(kind, device, active=rnd.random() < 0.7)

    async def worker(target: AlertStore, seed: int) -> None:
        for step in range(12):
            roll = rnd.random()
            at = seed * 100 + step
            if roll < 0.7:
                await target.apply_detections([detection() for _ in range(3)], now_ms=at)
            elif roll < 0.85:
                await target.tick(now_ms=at)
            else:
                with contextlib.suppress(TransitionError, NotFoundError):
                    await target.acknowledge(rnd.randrange(1, 20), "noc_an", now_ms=at)

    try:
        await asyncio.gather(*(worker(s, i) for i, s in enumerate([store, other] * 3)))
    finally:
        await other.close()
    page = await store.list_alerts(limit=1000)
    open_keys = Counter((a.type, a.device, a.ward) for a in page.data if a.state != "cleared")
    assert max(open_keys.values()) == 1
    assert (await store.list_incidents(open_only=True)).count <= 1
    feed = await store.changes_since(0, limit=1000)
    assert len(feed) > 50
    assert [c.id for c in feed] == sorted(c.id for c in feed)
    timeline_total = 0
    for alert in page.data:
        timeline_total += len((await store.get_alert(alert.id)).timeline)
    assert timeline_total == len(feed)


async def _empty(store: AlertStore) -> None:
    """Every table emptied (ids of a second run then differ: compare by rank)."""
    async with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())


def _by_rank(alert_ids: list[int]) -> dict[int | None, int | None]:
    ranks: dict[int | None, int | None] = {None: None}
    ranks.update({alert_id: rank for rank, alert_id in enumerate(sorted(alert_ids))})
    return ranks


async def _outcome(store: AlertStore, changes: list) -> tuple[list, list, list]:  # type: ignore[type-arg]
    """Alerts, incidents and changes with ids replaced by their rank."""
    alerts_now = (await store.list_alerts(limit=1000)).data
    alert_rank = _by_rank([a.id for a in alerts_now])
    incident_list = (await store.list_incidents(limit=1000)).data
    incident_rank = _by_rank([i.id for i in incident_list])
    table = sorted(
        (
            alert_rank[a.id],
            a.type.value,
            a.ward,
            a.device,
            a.metric,
            a.state.value,
            a.severity.value,
            a.count,
            a.flapping,
            incident_rank[a.incident],
            a.incident_root,
        )
        for a in alerts_now
    )
    groups = sorted(
        (incident_rank[i.id], i.kind.value, alert_rank[i.root_alert], i.closed_at is None)
        for i in incident_list
    )
    feed = [(alert_rank[c.alert_id], c.kind.value, c.notify) for c in changes]
    return table, groups, feed


async def test_a_batch_equals_its_detections_one_at_a_time(store: AlertStore) -> None:
    """One transaction of many detections (opening, repeating, clearing and reopening
    keys, incidents opening and closing, children joining) ends as the same detections
    applied one transaction each."""
    rnd = random.Random(11)
    devices = [*(f"cab_{i}" for i in range(4)), "cab_bd", *(f"seg_{i}" for i in range(5))]

    def detection() -> Detection:
        kind = rnd.choice(
            [K.POWER_LOSS, K.FLOODING, K.AREA_OUTAGE, K.CABLE_CUT, K.LIMIT, K.DROPOUT]
        )
        if kind is K.AREA_OUTAGE:
            return det(kind, "", active=rnd.random() < 0.6, severity=Severity.CRITICAL)
        device = rnd.choice(
            [d for d in devices if d.startswith("seg")] if kind is K.CABLE_CUT else devices
        )
        return det(
            kind,
            device,
            ward=BD if device == "cab_bd" else HK,
            active=rnd.random() < 0.65,
            metric="signal" if kind is K.LIMIT else "",
            severity=Severity.CRITICAL if kind is K.CABLE_CUT else Severity.MAJOR,
        )

    rounds = [[detection() for _ in range(40)] for _ in range(4)]
    batched = []
    for step, batch in enumerate(rounds):
        batched += await store.apply_detections(batch, now_ms=step * M)
    together = await _outcome(store, batched)
    await _empty(store)
    single = []
    for step, batch in enumerate(rounds):
        for one in batch:
            single += await store.apply_detection(one, now_ms=step * M)
    assert await _outcome(store, single) == together
    assert len(together[0]) > 10  # the mix did exercise it
    assert len(together[1]) >= 2


async def test_a_burst_of_detections_costs_a_few_statements(store: AlertStore) -> None:
    """Round trips per transaction stay a handful, whatever its number of detections:
    under a busy ingest each one is a thread hop that waits for the GIL."""
    statements: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    burst = [det(K.FLOODING, f"cab_{i}") for i in range(4)] + [
        det(K.LIMIT, f"seg_{i % 5}", metric=f"m{i}") for i in range(196)
    ]
    opened = await store.apply_detections(burst, now_ms=0)
    first = len(statements)
    statements.clear()
    repeated = await store.apply_detections(burst, now_ms=M)
    assert len([c for c in opened if c.kind is ChangeKind.RAISED]) == 200
    assert repeated == []
    assert (await store.list_alerts()).count == 200
    assert first <= 12, statements
    assert len(statements) <= 10, statements


async def test_a_tick_reads_the_due_alerts_only_until_the_silences_change(
    store: AlertStore,
) -> None:
    """``due_at`` holds each open alert's next timer; a tick reads only those due, and
    every open alert when a silence started or ended since the last tick."""
    await store.apply_detections([det(K.FLOODING, f"cab_{i}") for i in range(4)], now_ms=0)
    async with store.engine.connect() as conn:
        due = list(await conn.scalars(sa.select(alerts.c.due_at)))
    assert due == [30 * M] * 4  # the policy's reminder
    assert await store.tick(now_ms=M) == []
    async with store.engine.begin() as conn:  # take one off the timers behind its back
        await conn.execute(alerts.update().where(alerts.c.device == "cab_0").values(due_at=None))
    reminded = await store.tick(now_ms=31 * M)
    assert sorted(c.alert.device for c in reminded if c.kind is ChangeKind.REMINDER) == [
        "cab_1",
        "cab_2",
        "cab_3",
    ]
    async with store.engine.connect() as conn:
        due = list(await conn.scalars(sa.select(alerts.c.due_at).order_by(alerts.c.device)))
    assert due == [None, 61 * M, 61 * M, 61 * M]
    await store.create_silence(starts_at=32 * M, ends_at=90 * M, device="cab_0")
    looked_at = await store.tick(now_ms=33 * M)  # a new silence: every open alert is read
    assert {(c.alert.device, c.kind) for c in looked_at} == {
        ("cab_0", ChangeKind.REMINDER),
        ("cab_0", ChangeKind.SILENCED),
    }
    async with store.engine.connect() as conn:
        due = list(await conn.scalars(sa.select(alerts.c.due_at).order_by(alerts.c.device)))
    assert due == [None, 61 * M, 61 * M, 61 * M]  # silenced: no timer until it ends
    assert await store.tick(now_ms=34 * M) == []
