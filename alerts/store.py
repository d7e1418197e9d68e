"""The alert store: lifecycle transitions applied in database transactions.

Every write loads the alert(s) it touches (``FOR UPDATE`` on PostgreSQL; SQLite takes its
write lock at ``BEGIN IMMEDIATE``), runs the pure :mod:`alerts.lifecycle` functions, and
writes the new state and its timeline entries in the same transaction. The unique
``open_key`` column makes the database refuse a second open alert for one key: a writer
that loses that race rolls back and retries, finding the winner's alert to update.

Lifecycle writes are serialised: SQLite by ``BEGIN IMMEDIATE``, PostgreSQL by a
transaction-scoped advisory lock (so several processes sharing one database queue too).
Timeline entries double as the change feed: their ids therefore increase in commit order,
and a client that saw id N misses nothing by asking for ``changes_since(N)``. The unique
index remains the guarantee against duplicates for any writer that bypasses the lock.

The change feed is the one outbox. Each consumer inside citywatch (the InfluxDB export,
each notifier) keeps a durable cursor here (:meth:`AlertStore.open_cursor`,
:meth:`AlertStore.advance_cursor`) and reads :meth:`AlertStore.feed_since`, whose changes
carry the alert as their own transaction left it: after a crash a consumer repeats the
changes past its cursor and sends exactly what it would have sent the first time. SSE
clients keep their own cursor (``Last-Event-ID``).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerts import apikeys, lifecycle
from alerts.correlation import (
    CUT_CHILD_TYPES,
    SIGNAL_METRICS,
    DeviceDirectory,
    IncidentScope,
    in_scope,
    no_directory,
    scope_of,
)
from alerts.engine import make_engine, writer
from alerts.migrate import upgrade
from alerts.model import (
    ActionKey,
    Alert,
    AlertChange,
    AlertDetail,
    AlertKey,
    AlertState,
    AlertStatus,
    ApiKey,
    Change,
    ChangeKind,
    Comment,
    Delivery,
    DeliveryAttempt,
    Incident,
    IncidentKind,
    Role,
    Silence,
)
from alerts.policy import Policy
from alerts.schema import (
    action_keys,
    alert_events,
    alerts,
    api_keys,
    comments,
    deliveries,
    feed_cursors,
    incidents,
    silences,
)
from anomaly.events import Detection, DetectionKind, Severity
from telemetry.backoff import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], int]
MAX_LIMIT = 1000
_RETRIES = 10
_WRITE_LOCK = 0x63770002
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
ACTION_KEY_TTL_MS = 24 * 3600 * 1000
"""How long an ``Idempotency-Key`` of an alert action is remembered."""
ACTION_KEY_STALE_MS = 60_000
"""A claim still in progress after this long was left by a request that died: taken over."""


def wall_clock_ms() -> int:
    """Epoch milliseconds now (the store's default clock)."""
    return time.time_ns() // 1_000_000


class StoreError(RuntimeError):
    """The store could not do what was asked."""


class NotFoundError(StoreError, LookupError):
    """No alert, incident, silence or key with that id."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and the total number of matches (``{"data", "count"}``)."""

    data: list[T]
    count: int


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Filters of :meth:`AlertStore.list_alerts`; ``None`` means any.

    ``wards`` restricts to a set of wards (a crew's); ``ward`` picks one. The time range
    applies to ``opened_at`` (``since`` inclusive, ``until`` exclusive).
    """

    state: AlertStatus | None = None
    severity: Severity | None = None
    ward: str | None = None
    wards: Sequence[str] | None = None
    device: str | None = None
    type: DetectionKind | None = None
    acknowledged: bool | None = None
    incident: int | None = None
    since: int | None = None
    until: int | None = None


@dataclass(slots=True)
class _Tx:
    """One lifecycle write transaction and what it knows of the alerts it touches.

    Alert rows are written when the transaction needs them in the database (before it
    reads the alerts table again, and at the end), in one multi-row statement each for
    new and changed alerts: a burst of detections costs a handful of round trips, not a
    few per detection (each round trip of the async driver is a thread hop, and those are
    what a busy ingest process makes expensive).
    """

    conn: AsyncConnection
    now: int
    policy: Policy
    events: list[tuple[int, str, Change]] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    known: dict[int, AlertState] = field(default_factory=dict)
    """The latest state of every alert this transaction loaded or wrote."""
    open_ids: dict[str, int] = field(default_factory=dict)
    """open_key -> id of the open alert, for the keys prefetched (absent: none open)."""
    history: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """dedup_key -> flap_changes of its newest closed alert (flapping spans alerts)."""
    to_insert: dict[int, AlertState] = field(default_factory=dict)
    to_update: dict[int, AlertState] = field(default_factory=dict)
    _silences: list[Silence] | None = None
    _incidents: list[sa.RowMapping] | None = None
    _alert_ids: list[int] = field(default_factory=list)
    _top_ids: dict[str, int] = field(default_factory=dict)

    async def active_silences(self) -> list[Silence]:
        if self._silences is None:
            rows = await self.conn.execute(
                sa.select(silences).where(
                    silences.c.starts_at <= self.now, silences.c.ends_at > self.now
                )
            )
            self._silences = [_silence_of(r) for r in rows.mappings()]
        return self._silences

    async def open_incidents(self) -> list[sa.RowMapping]:
        if self._incidents is None:
            rows = await self.conn.execute(
                sa.select(incidents).where(incidents.c.closed_at.is_(None)).order_by(incidents.c.id)
            )
            self._incidents = list(rows.mappings())
        return self._incidents

    def incidents_changed(self) -> None:
        self._incidents = None

    async def prefetch(self, open_keys: set[str]) -> None:
        """Load the open alerts of these keys, and the flap history of the others."""
        wanted = sorted(k for k in open_keys if k not in self.open_ids)
        for chunk in _chunks(wanted):
            rows = await self.conn.execute(
                sa.select(alerts).where(alerts.c.open_key.in_(chunk)).with_for_update()
            )
            for row in rows.mappings():
                self.known[row["id"]] = _state_of(row)
                self.open_ids[row["open_key"]] = row["id"]
        closed = [k for k in wanted if k not in self.open_ids and k not in self.history]
        for chunk in _chunks(closed):
            newest = (
                sa.select(sa.func.max(alerts.c.id))
                .where(alerts.c.dedup_key.in_(chunk))
                .group_by(alerts.c.dedup_key)
            )
            rows = await self.conn.execute(
                sa.select(alerts.c.dedup_key, alerts.c.flap_changes).where(alerts.c.id.in_(newest))
            )
            for key, flaps in rows:
                self.history[key] = tuple(flaps or ())

    async def new_id(self, hint: int) -> int:
        """An id for a new alert (``hint``: how many this transaction may need)."""
        if not self._alert_ids:
            self._alert_ids = (await self.take_ids(alerts, max(1, hint)))[::-1]
        return self._alert_ids.pop()

    async def take_ids(self, table: sa.Table, n: int) -> list[int]:
        """``n`` ascending ids for new rows of ``table``, in one round trip.

        Lifecycle writers are serialised (module doc), so ids can be taken before the
        rows are written: from PostgreSQL's sequence, or on SQLite after the largest id
        (SQLite's own rule for an INTEGER PRIMARY KEY; ids taken but not used are taken
        again by the next transaction)."""
        if self.conn.dialect.name == "postgresql":
            rows = await self.conn.execute(
                sa.text(
                    "SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"
                ),
                {"t": table.name, "n": n},
            )
            return sorted(int(i) for (i,) in rows)
        top = self._top_ids.get(table.name)
        if top is None:
            top = int(await self.conn.scalar(sa.select(sa.func.max(table.c.id))) or 0)
        self._top_ids[table.name] = top + n
        return list(range(top + 1, top + n + 1))

    def record(self, alert_id: int, state: AlertState, before: AlertState | None) -> None:
        """Remember a settled state; it reaches the database at the next :meth:`sync`."""
        if before is None or alert_id in self.to_insert:
            self.to_insert[alert_id] = state
        elif state != before or alert_id in self.to_update:
            self.to_update[alert_id] = state
        self.known[alert_id] = state
        key = state.key.open_key
        if state.is_open:
            self.open_ids[key] = alert_id
        else:
            if self.open_ids.get(key) == alert_id:
                del self.open_ids[key]
            self.history[key] = state.flap_changes

    async def sync(self) -> None:
        """Write the changed and the new alerts (one statement each). Changes first: an
        alert closed in this transaction frees its open_key for a new one."""
        if self.to_update:
            rows = [
                {"alert_id": i, **_columns_of(s, self.policy)} for i, s in self.to_update.items()
            ]
            self.to_update = {}
            await self.conn.execute(
                sa.update(alerts).where(alerts.c.id == sa.bindparam("alert_id")), rows
            )
        if self.to_insert:
            rows = [{"id": i, **_columns_of(s, self.policy)} for i, s in self.to_insert.items()]
            self.to_insert = {}
            await self.conn.execute(sa.insert(alerts), rows)


class AlertStore:
    """Alerts, incidents, silences, API keys and the delivery log, in one database.

    Build with :meth:`open` (runs migrations); ``now_ms`` arguments default to the
    injected ``clock``.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        policy: Policy | None = None,
        directory: DeviceDirectory = no_directory,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.engine = engine
        self._writer = writer(engine)
        self.policy = policy or Policy()
        self.directory = directory
        self.clock = clock
        self._write_turn = asyncio.Lock()
        """This process's writers take turns in FIFO order before the database lock: a
        busy writer re-taking SQLite's lock at once would otherwise starve the others
        (acknowledgements, the delivery log) until their busy timeout fails them."""
        self._silences_at_last_tick: frozenset[int] | None = None
        """Ids of the silences in force at this store's last tick (None: no tick yet)."""

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        policy: Policy | None = None,
        directory: DeviceDirectory = no_directory,
        clock: Clock = wall_clock_ms,
        migrate: bool = True,
    ) -> Self:
        """Connect to ``url`` and (by default) migrate the schema to the latest revision."""
        engine = make_engine(url)
        if migrate:
            try:
                await upgrade(engine)
            except BaseException:
                await engine.dispose()
                raise
        return cls(engine, policy=policy, directory=directory, clock=clock)

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _begin_write(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_turn, self._writer.begin() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise unless the database answers (for readiness probes)."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # ---------------------------------------------------------------- lifecycle writes

    async def apply_detection(
        self, detection: Detection, now_ms: int | None = None
    ) -> list[AlertChange]:
        """Apply one detection; returns the transitions it caused (``notify`` says which
        to push to crews)."""
        return await self.apply_detections([detection], now_ms)

    async def apply_detections(
        self, detections: Iterable[Detection], now_ms: int | None = None
    ) -> list[AlertChange]:
        """Apply detections in order, in one transaction."""
        batch = list(detections)

        async def work(tx: _Tx) -> None:
            keys = [lifecycle.key_of(d).open_key for d in batch]
            await tx.prefetch(set(keys))
            unopened = sum(1 for k in keys if k not in tx.open_ids)
            for detection in batch:
                await self._apply_one(tx, detection, unopened)

        return await self._write(work, now_ms)

    async def tick(self, now_ms: int | None = None) -> list[AlertChange]:
        """Let time act on open alerts: raise after pending, clear after keep-firing,
        end flapping, follow silences, escalate, remind. Call it every few seconds.

        Only the alerts whose timers are due (``due_at``) are read, unless the set of
        silences in force changed since this store's last tick: then every open alert is
        looked at, as a silence starting or ending may concern any of them."""
        seen: list[frozenset[int]] = []

        async def work(tx: _Tx) -> None:
            silenced = await tx.active_silences()
            in_force = frozenset(s.id for s in silenced)
            seen[:] = [in_force]
            query = sa.select(alerts).where(alerts.c.open_key.is_not(None))
            if in_force == self._silences_at_last_tick:
                query = query.where(alerts.c.due_at <= tx.now)
            rows = await tx.conn.execute(query.order_by(alerts.c.id).with_for_update())
            rows_read = list(rows.mappings())
            loaded = [(r["id"], _state_of(r)) for r in rows_read]
            tx.known.update(loaded)
            for row, (alert_id, _) in zip(rows_read, loaded, strict=True):
                # An earlier alert of this tick may have rewritten this one (incidents).
                state = tx.known[alert_id]
                if not state.is_open:
                    continue
                new, changes = lifecycle.tick(state, self.policy, tx.now)
                now_silenced = any(s.matches(state.key, tx.now) for s in silenced)
                if changes or new != state or now_silenced != state.silenced:
                    await self._settle(tx, alert_id, new, changes, before=state)
                elif row["due_at"] != lifecycle.next_due(state, self.policy):
                    tx.to_update[alert_id] = state  # e.g. due_at 0 from the migration

        changed = await self._write(work, now_ms)
        self._silences_at_last_tick = seen[0]
        return changed

    async def acknowledge(
        self, alert_id: int, actor: str, now_ms: int | None = None
    ) -> list[AlertChange]:
        return await self._manual(
            alert_id, now_ms, lambda s, now: lifecycle.acknowledge(s, actor, now)
        )

    async def unacknowledge(
        self, alert_id: int, actor: str, now_ms: int | None = None
    ) -> list[AlertChange]:
        return await self._manual(
            alert_id, now_ms, lambda s, now: lifecycle.unacknowledge(s, actor, now)
        )

    async def assign(
        self, alert_id: int, assignee: str | None, actor: str, now_ms: int | None = None
    ) -> list[AlertChange]:
        """Assign to a crew, or unassign with ``None``."""
        return await self._manual(
            alert_id, now_ms, lambda s, now: lifecycle.assign(s, assignee, actor, now)
        )

    async def comment(
        self, alert_id: int, text: str, actor: str, now_ms: int | None = None
    ) -> list[AlertChange]:
        async def also(tx: _Tx) -> None:
            await tx.conn.execute(
                sa.insert(comments).values(alert_id=alert_id, author=actor, text=text, at_ms=tx.now)
            )

        return await self._manual(
            alert_id, now_ms, lambda s, now: lifecycle.comment(s, text, actor, now), also
        )

    async def resolve(
        self, alert_id: int, actor: str, note: str = "", now_ms: int | None = None
    ) -> list[AlertChange]:
        """Clear an open alert by hand."""
        return await self._manual(
            alert_id, now_ms, lambda s, now: lifecycle.resolve(s, actor, now, note)
        )

    # ---------------------------------------------------------------- alert queries

    async def list_alerts(
        self, where: AlertFilter | None = None, skip: int = 0, limit: int = 100
    ) -> Page[Alert]:
        """Newest first."""
        _check_paging(skip, limit)
        conditions = _alert_conditions(where or AlertFilter())
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(alerts).where(*conditions)
            )
            rows = await conn.execute(
                sa.select(alerts)
                .where(*conditions)
                .order_by(alerts.c.id.desc())
                .offset(skip)
                .limit(limit)
            )
            return Page([_alert_of(r) for r in rows.mappings()], int(count or 0))

    async def get_alert(self, alert_id: int) -> AlertDetail:
        """One alert with its timeline (oldest first) and comments; :class:`NotFoundError`."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError(f"no alert {alert_id}")
            alert = _alert_of(row)
            events = await conn.execute(
                sa.select(alert_events)
                .where(alert_events.c.alert_id == alert_id)
                .order_by(alert_events.c.id)
            )
            notes = await conn.execute(
                sa.select(comments).where(comments.c.alert_id == alert_id).order_by(comments.c.id)
            )
            return AlertDetail(
                alert,
                [_change_of(r) for r in events.mappings()],
                [Comment(**r) for r in notes.mappings()],
            )

    async def changes_since(
        self, after_id: int = 0, wards: Sequence[str] | None = None, limit: int = 500
    ) -> list[AlertChange]:
        """Transitions with id > ``after_id`` (oldest first), each with the alert as it is
        now; ``wards`` restricts to those wards."""
        _check_paging(0, limit)
        query = sa.select(alert_events).where(alert_events.c.id > after_id)
        if wards is not None:
            query = query.where(alert_events.c.ward.in_(list(wards)))
        async with self.engine.connect() as conn:
            rows = list(
                (await conn.execute(query.order_by(alert_events.c.id).limit(limit))).mappings()
            )
            snapshots = await _alerts_by_id(conn, {r["alert_id"] for r in rows})
        return [_change_of(r, snapshots.get(r["alert_id"])) for r in rows]

    async def last_change_id(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.max(alert_events.c.id))) or 0)

    # ---------------------------------------------------------------- feed consumers

    async def feed_since(self, after_id: int = 0, limit: int = 500) -> list[AlertChange]:
        """Transitions with id > ``after_id`` (oldest first), each with the alert as its
        own transaction left it (stored with the change), so repeating a change sends the
        same thing. Changes stored before that snapshot existed (migration 0003) carry
        the alert as it is now."""
        _check_paging(0, limit)
        query = (
            sa.select(alert_events)
            .where(alert_events.c.id > after_id)
            .order_by(alert_events.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(query)).mappings())
            missing = {r["alert_id"] for r in rows if r["snapshot"] is None}
            current = await _alerts_by_id(conn, missing)
        return [
            _change_of(
                r,
                current.get(r["alert_id"])
                if r["snapshot"] is None
                else msgspec.convert(r["snapshot"], Alert),
            )
            for r in rows
        ]

    async def open_cursor(self, consumer: str) -> int:
        """Where ``consumer`` is in the change feed: every change up to the returned id
        is done. A consumer seen for the first time starts at the current head (stored at
        once): a new install, or a newly configured notifier, does not replay history."""
        where = feed_cursors.c.consumer == consumer
        async with self._begin_write() as conn:
            stored = await conn.scalar(sa.select(feed_cursors.c.change_id).where(where))
            if stored is None:
                head = await conn.scalar(sa.select(sa.func.max(alert_events.c.id)))
                await conn.execute(
                    _insert(conn, feed_cursors)
                    .values(consumer=consumer, change_id=int(head or 0), updated_ms=self.clock())
                    .on_conflict_do_nothing(index_elements=["consumer"])
                )
                stored = await conn.scalar(sa.select(feed_cursors.c.change_id).where(where))
        return int(stored or 0)

    async def advance_cursor(
        self, consumer: str, change_id: int, attempts: Sequence[DeliveryAttempt] = ()
    ) -> None:
        """Move ``consumer``'s cursor to ``change_id`` (never back) and log ``attempts``,
        in one transaction: a crash leaves either both or neither."""
        now = self.clock()
        async with self._begin_write() as conn:
            await _log_deliveries(conn, attempts, now)
            insert = _insert(conn, feed_cursors).values(
                consumer=consumer, change_id=change_id, updated_ms=now
            )
            stored = feed_cursors.c.change_id
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["consumer"],
                    set_={
                        "change_id": sa.case(
                            (insert.excluded.change_id > stored, insert.excluded.change_id),
                            else_=stored,
                        ),
                        "updated_ms": insert.excluded.updated_ms,
                    },
                )
            )

    async def cursors(self) -> dict[str, int]:
        """Every feed consumer's cursor."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(feed_cursors.c.consumer, feed_cursors.c.change_id))
            return {consumer: int(change_id) for consumer, change_id in rows}

    # ---------------------------------------------------------------- incidents

    async def list_incidents(
        self,
        *,
        open_only: bool = False,
        ward: str | None = None,
        wards: Sequence[str] | None = None,
        skip: int = 0,
        limit: int = 100,
    ) -> Page[Incident]:
        """Newest first, each with the ids of its child alerts."""
        _check_paging(skip, limit)
        conditions: list[sa.ColumnElement[bool]] = []
        if open_only:
            conditions.append(incidents.c.closed_at.is_(None))
        if ward is not None:
            conditions.append(incidents.c.ward == ward)
        if wards is not None:
            conditions.append(incidents.c.ward.in_(list(wards)))
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(incidents).where(*conditions)
            )
            rows = list(
                (
                    await conn.execute(
                        sa.select(incidents)
                        .where(*conditions)
                        .order_by(incidents.c.id.desc())
                        .offset(skip)
                        .limit(limit)
                    )
                ).mappings()
            )
            children = await _children(conn, [r["id"] for r in rows])
        return Page([_incident_of(r, children.get(r["id"], [])) for r in rows], int(count or 0))

    async def get_incident(self, incident_id: int) -> Incident:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError(f"no incident {incident_id}")
            children = await _children(conn, [incident_id])
        return _incident_of(row, children.get(incident_id, []))

    # ---------------------------------------------------------------- silences

    async def create_silence(
        self,
        *,
        starts_at: int,
        ends_at: int,
        ward: str | None = None,
        device: str | None = None,
        type: DetectionKind | None = None,
        comment: str = "",
        created_by: str = "",
        now_ms: int | None = None,
    ) -> Silence:
        """A maintenance window; takes effect on open alerts at the next :meth:`tick`."""
        if ends_at <= starts_at:
            raise ValueError("a silence must end after it starts")
        if ward is None and device is None and type is None:
            raise ValueError("a silence needs at least one matcher (ward, device or type)")
        values: dict[str, Any] = {
            "starts_at": starts_at,
            "ends_at": ends_at,
            "ward": ward,
            "device": device,
            "type": None if type is None else DetectionKind(type).value,
            "comment": comment,
            "created_by": created_by,
            "created_at": self.clock() if now_ms is None else now_ms,
        }
        async with self._begin_write() as conn:
            silence_id = await conn.scalar(
                sa.insert(silences).values(**values).returning(silences.c.id)
            )
        assert silence_id is not None
        return await self.get_silence(int(silence_id))

    async def get_silence(self, silence_id: int) -> Silence:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(silences).where(silences.c.id == silence_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"no silence {silence_id}")
        return _silence_of(row)

    async def list_silences(
        self, *, active_at: int | None = None, skip: int = 0, limit: int = 100
    ) -> Page[Silence]:
        """All silences (newest first), or those in force at ``active_at``."""
        _check_paging(skip, limit)
        conditions: list[sa.ColumnElement[bool]] = []
        if active_at is not None:
            conditions += [silences.c.starts_at <= active_at, silences.c.ends_at > active_at]
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(silences).where(*conditions)
            )
            rows = await conn.execute(
                sa.select(silences)
                .where(*conditions)
                .order_by(silences.c.id.desc())
                .offset(skip)
                .limit(limit)
            )
            return Page([_silence_of(r) for r in rows.mappings()], int(count or 0))

    async def delete_silence(self, silence_id: int) -> None:
        async with self._begin_write() as conn:
            result = await conn.execute(sa.delete(silences).where(silences.c.id == silence_id))
        if result.rowcount == 0:
            raise NotFoundError(f"no silence {silence_id}")

    # ---------------------------------------------------------------- API keys

    async def create_api_key(
        self, role: Role | str, wards: Sequence[str] = (), name: str = ""
    ) -> tuple[ApiKey, str]:
        """A new key: returns the stored record and the key string (shown only now).
        A crew key needs at least one ward; other roles take none."""
        role = Role(role)
        ward_list = sorted(set(wards))
        if role is Role.CREW and not ward_list:
            raise ValueError("a crew key needs at least one ward")
        if role is not Role.CREW and ward_list:
            raise ValueError(f"a {role.value} key sees every ward; wards apply to crew keys")
        key_id, key = apikeys.new_key()
        now = self.clock()
        async with self._begin_write() as conn:
            await conn.execute(
                sa.insert(api_keys).values(
                    id=key_id,
                    name=name,
                    role=role.value,
                    wards=ward_list,
                    secret_sha256=apikeys.digest(key),
                    created_at=now,
                )
            )
        return ApiKey(key_id, name, role, tuple(ward_list), now), key

    async def verify_api_key(self, key: str) -> ApiKey | None:
        """The key's record if it is valid and not revoked, else ``None``."""
        key_id = apikeys.key_id_of(key)
        if key_id is None:
            return None
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)))
                .mappings()
                .first()
            )
        if row is None or row["revoked_at"] is not None:
            return None
        if not apikeys.matches(key, row["secret_sha256"]):
            return None
        return _api_key_of(row)

    async def list_api_keys(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))
            return [_api_key_of(r) for r in rows.mappings()]

    async def revoke_api_key(self, key_id: str) -> None:
        async with self._begin_write() as conn:
            result = await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no active API key {key_id}")

    # ---------------------------------------------------------------- delivery log

    async def record_delivery(
        self,
        change: AlertChange,
        *,
        channel: str,
        target: str,
        delivered: bool,
        attempts: int,
        error: str = "",
        now_ms: int | None = None,
    ) -> Delivery:
        """Log one delivery; a repeat of (change, channel, target) updates its row, the
        attempts adding up."""
        attempt = DeliveryAttempt(change, channel, target, delivered, attempts, error)
        at_ms = self.clock() if now_ms is None else now_ms
        async with self._begin_write() as conn:
            await _log_deliveries(conn, [attempt], at_ms)
            row = (
                (
                    await conn.execute(
                        sa.select(deliveries).where(
                            deliveries.c.change_id == change.id,
                            deliveries.c.channel == channel,
                            deliveries.c.target == target,
                        )
                    )
                )
                .mappings()
                .one()
            )
        return Delivery(**row)

    async def record_deliveries(self, attempts: Sequence[DeliveryAttempt]) -> None:
        """Log many deliveries in one transaction (a burst of alerts notifies many); as
        :meth:`record_delivery`, keyed by (change, channel, target)."""
        if not attempts:
            return
        at_ms = self.clock()
        async with self._begin_write() as conn:
            await _log_deliveries(conn, attempts, at_ms)

    async def list_deliveries(
        self, *, alert_id: int | None = None, skip: int = 0, limit: int = 100
    ) -> Page[Delivery]:
        _check_paging(skip, limit)
        conditions = [] if alert_id is None else [deliveries.c.alert_id == alert_id]
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(deliveries).where(*conditions)
            )
            rows = await conn.execute(
                sa.select(deliveries)
                .where(*conditions)
                .order_by(deliveries.c.id.desc())
                .offset(skip)
                .limit(limit)
            )
            return Page([Delivery(**r) for r in rows.mappings()], int(count or 0))

    # ---------------------------------------------------------------- idempotency keys

    async def claim_action_key(
        self, key_id: str, idempotency_key: str, request: str, now_ms: int | None = None
    ) -> ActionKey | None:
        """Claim ``idempotency_key`` of API key ``key_id`` for a request (``request``: its
        digest). ``None``: claimed; the caller acts, then :meth:`finish_action_key` (or
        :meth:`release_action_key` when the action failed). Otherwise the key is taken:
        the row says by which request, and its answer (``status`` ``None``: still in
        progress). A claim in progress for longer than :data:`ACTION_KEY_STALE_MS` was left
        by a request that died, and is taken over. Keys older than
        :data:`ACTION_KEY_TTL_MS` are pruned here."""
        now = self.clock() if now_ms is None else now_ms
        where = sa.and_(
            action_keys.c.key_id == key_id, action_keys.c.idempotency_key == idempotency_key
        )
        for attempt in range(2):
            try:
                async with self._begin_write() as conn:
                    await conn.execute(
                        sa.delete(action_keys).where(
                            action_keys.c.created_at < now - ACTION_KEY_TTL_MS
                        )
                    )
                    row = (await conn.execute(sa.select(action_keys).where(where))).mappings()
                    found = row.first()
                    if found is None:
                        await conn.execute(
                            sa.insert(action_keys).values(
                                key_id=key_id,
                                idempotency_key=idempotency_key,
                                request=request,
                                created_at=now,
                            )
                        )
                        return None
                    abandoned = found["created_at"] < now - ACTION_KEY_STALE_MS
                    if found["status"] is None and found["request"] == request and abandoned:
                        await conn.execute(
                            sa.update(action_keys).where(where).values(created_at=now)
                        )
                        return None
                    return ActionKey(
                        found["request"], found["status"], found["response"], found["created_at"]
                    )
            except IntegrityError:
                # Another process claimed the same key between our read and insert.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def finish_action_key(
        self, key_id: str, idempotency_key: str, status: int, response: dict[str, Any]
    ) -> None:
        """Keep the first answer of a claimed key, for its repeats."""
        async with self._begin_write() as conn:
            await conn.execute(
                sa.update(action_keys)
                .where(
                    action_keys.c.key_id == key_id,
                    action_keys.c.idempotency_key == idempotency_key,
                )
                .values(status=status, response=response)
            )

    async def release_action_key(self, key_id: str, idempotency_key: str) -> None:
        """Forget a claim whose action failed: a retry acts again."""
        async with self._begin_write() as conn:
            await conn.execute(
                sa.delete(action_keys).where(
                    action_keys.c.key_id == key_id,
                    action_keys.c.idempotency_key == idempotency_key,
                    action_keys.c.status.is_(None),
                )
            )

    # ---------------------------------------------------------------- internals

    async def _write(
        self, work: Callable[[_Tx], Awaitable[None]], now_ms: int | None
    ) -> list[AlertChange]:
        now = self.clock() if now_ms is None else now_ms
        backoff = Backoff(base_s=0.002, cap_s=0.2)  # a lost race: retry at once, mostly
        for attempt in range(_RETRIES):
            try:
                async with self._begin_write() as conn:
                    if conn.dialect.name == "postgresql":
                        # One lifecycle writer at a time, as SQLite's BEGIN IMMEDIATE does:
                        # no lock-order deadlocks between ticks, detections and incident
                        # grouping, and feed ids commit in id order. Alert writes are
                        # events, not readings: a few hundred a second is plenty.
                        await conn.execute(
                            sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _WRITE_LOCK}
                        )
                    tx = _Tx(conn, now, self.policy)
                    await work(tx)
                    return await self._flush(tx)
            except IntegrityError:
                # Another writer opened the same alert first; re-read and update it.
                if attempt == _RETRIES - 1:
                    raise
                log.debug("open-alert race lost; retrying (attempt %d)", attempt + 1)
            except DBAPIError as exc:
                if _sqlstate(exc) not in _RETRY_SQLSTATES or attempt == _RETRIES - 1:
                    raise
                log.debug("transaction conflict %s; retrying", _sqlstate(exc))
            # Jittered backoff so that colliding writers do not collide again in step.
            await asyncio.sleep(backoff.next_delay())
        raise AssertionError("unreachable")

    async def _manual(
        self,
        alert_id: int,
        now_ms: int | None,
        action: Callable[[AlertState, int], lifecycle.Result],
        also: Callable[[_Tx], Awaitable[None]] | None = None,
    ) -> list[AlertChange]:
        async def work(tx: _Tx) -> None:
            state = await self._load(tx, alert_id)
            new, changes = action(state, tx.now)
            if also is not None:
                await also(tx)
            await self._settle(tx, alert_id, new, changes, before=state)

        return await self._write(work, now_ms)

    async def _load(self, tx: _Tx, alert_id: int) -> AlertState:
        row = (
            (
                await tx.conn.execute(
                    sa.select(alerts).where(alerts.c.id == alert_id).with_for_update()
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError(f"no alert {alert_id}")
        return _state_of(row)

    async def _apply_one(self, tx: _Tx, detection: Detection, unopened: int) -> None:
        """One detection, against the alerts ``tx.prefetch`` loaded for the batch."""
        key = lifecycle.key_of(detection)
        alert_id = tx.open_ids.get(key.open_key)
        if alert_id is None:
            if not lifecycle.opens(detection, self.policy):
                return
            state, changes = lifecycle.open_alert(
                detection, self.policy, tx.now, tx.history.get(key.open_key, ())
            )
            new_id = await tx.new_id(unopened)
            await self._settle(tx, new_id, state, changes, before=None)
            return
        before = tx.known[alert_id]
        state, changes = lifecycle.on_detection(before, detection, self.policy, tx.now)
        await self._settle(tx, alert_id, state, changes, before=before)

    async def _settle(
        self,
        tx: _Tx,
        alert_id: int,
        state: AlertState,
        changes: list[Change],
        *,
        before: AlertState | None,
    ) -> None:
        """Silences, incidents, notify decisions; then write the alert and queue changes."""
        if state.is_open:
            matched = [s for s in await tx.active_silences() if s.matches(state.key, tx.now)]
            detail = ", ".join(f"silence {s.id}" for s in matched)
            state, more = lifecycle.set_silenced(state, bool(matched), tx.now, detail)
            changes = changes + more
        if before is None or before.status is not state.status:
            # Incidents group the open alerts in scope when they open, so an alert needs a
            # look only when it appears or changes status (raised: a root opens one;
            # cleared: a root closes its incident).
            state, more = await self._correlate(tx, alert_id, state)
            changes = changes + more
        tx.record(alert_id, state, before)
        for change in lifecycle.finalize(state, changes):
            tx.events.append((alert_id, state.key.ward, change))
        tx.touched.add(alert_id)

    async def _correlate(self, tx: _Tx, alert_id: int, state: AlertState) -> lifecycle.Result:
        """Join an open incident, open one as its root, or close the one it roots."""
        if state.incident_root and not state.is_open:
            await self._close_incident(tx, state)
            return state, []
        if state.incident_id is not None or not state.is_open:
            return state, []
        for row in await tx.open_incidents():
            if row["root_alert_id"] != alert_id and in_scope(
                _scope_of_row(row), state.key, self.directory
            ):
                return lifecycle.join_incident(state, row["id"], False, tx.now)
        scope = scope_of(state.key, self.directory)
        if scope is None or state.status is not AlertStatus.ACTIVE:
            return state, []
        # A new incident: the rare path, which reads the alerts table, so write first.
        await tx.sync()
        tx.incidents_changed()
        incident_id = await tx.conn.scalar(
            sa.insert(incidents)
            .values(
                kind=scope.kind.value,
                ward=scope.ward,
                route=scope.route,
                position=scope.position,
                root_alert_id=alert_id,
                opened_at=tx.now,
                title=scope.title,
            )
            .returning(incidents.c.id)
        )
        assert incident_id is not None
        state, changes = lifecycle.join_incident(state, int(incident_id), True, tx.now)
        candidates = await tx.conn.execute(
            sa.select(alerts)
            .where(
                alerts.c.open_key.is_not(None),
                alerts.c.incident_id.is_(None),
                alerts.c.id != alert_id,
                alerts.c.device != "",
                _may_join(scope),
            )
            .order_by(alerts.c.id)
            .with_for_update()
        )
        for child_id, child in [(r["id"], _state_of(r)) for r in candidates.mappings()]:
            if in_scope(scope, child.key, self.directory):
                grouped, child_changes = lifecycle.join_incident(
                    child, int(incident_id), False, tx.now
                )
                await self._settle(tx, child_id, grouped, child_changes, before=child)
        return state, changes

    async def _close_incident(self, tx: _Tx, root: AlertState) -> None:
        assert root.incident_id is not None
        await tx.sync()
        tx.incidents_changed()
        result = await tx.conn.execute(
            sa.update(incidents)
            .where(incidents.c.id == root.incident_id, incidents.c.closed_at.is_(None))
            .values(closed_at=tx.now)
        )
        if result.rowcount == 0:
            return
        rows = await tx.conn.execute(
            sa.select(alerts)
            .where(
                alerts.c.incident_id == root.incident_id,
                alerts.c.incident_root.is_(False),
                alerts.c.open_key.is_not(None),
            )
            .order_by(alerts.c.id)
            .with_for_update()
        )
        for child_id, child in [(r["id"], _state_of(r)) for r in rows.mappings()]:
            freed, changes = lifecycle.leave_incident(child, tx.now)
            await self._settle(tx, child_id, freed, changes, before=child)

    async def _flush(self, tx: _Tx) -> list[AlertChange]:
        await tx.sync()
        if not tx.events:
            return []
        rows = [
            {
                "alert_id": alert_id,
                "kind": change.kind.value,
                "at_ms": change.at_ms,
                "detail": change.detail,
                "actor": change.actor,
                "notify": change.notify,
                "ward": ward,
            }
            for alert_id, ward, change in tx.events
        ]
        snapshots = await _alerts_by_id(tx.conn, tx.touched)
        stored = {i: msgspec.to_builtins(a) for i, a in snapshots.items()}
        # Ids taken up front: one multi-row INSERT (RETURNING would cost a round trip per
        # row on SQLite); they still increase in commit order, as the feed needs.
        ids = await tx.take_ids(alert_events, len(rows))
        await tx.conn.execute(
            sa.insert(alert_events),
            [
                {"id": i, **row, "snapshot": stored[alert_id]}
                for i, row, (alert_id, _, _) in zip(ids, rows, tx.events, strict=True)
            ],
        )
        return [
            AlertChange(
                id=int(event_id),
                alert_id=alert_id,
                kind=change.kind,
                at_ms=change.at_ms,
                detail=change.detail,
                actor=change.actor,
                notify=change.notify,
                ward=ward,
                alert=snapshots[alert_id],
            )
            for event_id, (alert_id, ward, change) in zip(ids, tx.events, strict=True)
        ]


# -------------------------------------------------------------------- row mapping


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _check_paging(skip: int, limit: int) -> None:
    if skip < 0:
        raise ValueError(f"skip must be >= 0, got {skip}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be in 1..{MAX_LIMIT}, got {limit}")


def _alert_conditions(where: AlertFilter) -> list[sa.ColumnElement[bool]]:
    c = alerts.c
    conditions: list[sa.ColumnElement[bool]] = []
    if where.state is not None:
        conditions.append(c.state == AlertStatus(where.state).value)
    if where.severity is not None:
        conditions.append(c.severity == Severity(where.severity).value)
    if where.ward is not None:
        conditions.append(c.ward == where.ward)
    if where.wards is not None:
        conditions.append(c.ward.in_(list(where.wards)))
    if where.device is not None:
        conditions.append(c.device == where.device)
    if where.type is not None:
        conditions.append(c.type == DetectionKind(where.type).value)
    if where.acknowledged is not None:
        conditions.append(c.acknowledged.is_(where.acknowledged))
    if where.incident is not None:
        conditions.append(c.incident_id == where.incident)
    if where.since is not None:
        conditions.append(c.opened_at >= where.since)
    if where.until is not None:
        conditions.append(c.opened_at < where.until)
    return conditions


def _columns_of(state: AlertState, policy: Policy) -> dict[str, Any]:
    key = state.key
    return {
        "due_at": lifecycle.next_due(state, policy),
        "open_key": key.open_key if state.is_open else None,
        "dedup_key": key.open_key,
        "type": key.type.value,
        "ward": key.ward,
        "device": key.device,
        "metric": key.metric,
        "severity": state.severity.value,
        "state": state.status.value,
        "acknowledged": state.acknowledged,
        "acknowledged_by": state.acknowledged_by,
        "acknowledged_at": state.acknowledged_at,
        "assignee": state.assignee,
        "opened_at": state.opened_at,
        "raised_at": state.raised_at,
        "last_seen": state.last_seen,
        "cleared_at": state.cleared_at,
        "started_at": state.started_at,
        "clear_pending_since": state.clear_pending_since,
        "count": state.count,
        "peak_score": state.peak_score,
        "last_score": state.last_score,
        "value": state.value,
        "explanation": state.explanation,
        "silenced": state.silenced,
        "flapping": state.flapping,
        "flap_changes": list(state.flap_changes),
        "escalated_at": state.escalated_at,
        "last_notified_at": state.last_notified_at,
        "incident_id": state.incident_id,
        "incident_root": state.incident_root,
    }


def _state_of(row: sa.RowMapping) -> AlertState:
    return AlertState(
        key=AlertKey(DetectionKind(row["type"]), row["ward"], row["device"], row["metric"]),
        status=AlertStatus(row["state"]),
        severity=Severity(row["severity"]),
        opened_at=row["opened_at"],
        last_seen=row["last_seen"],
        started_at=row["started_at"],
        raised_at=row["raised_at"],
        cleared_at=row["cleared_at"],
        clear_pending_since=row["clear_pending_since"],
        acknowledged=row["acknowledged"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        assignee=row["assignee"],
        count=row["count"],
        peak_score=row["peak_score"],
        last_score=row["last_score"],
        value=row["value"],
        explanation=row["explanation"],
        silenced=row["silenced"],
        flapping=row["flapping"],
        flap_changes=tuple(row["flap_changes"]),
        escalated_at=row["escalated_at"],
        last_notified_at=row["last_notified_at"],
        incident_id=row["incident_id"],
        incident_root=row["incident_root"],
    )


def _alert_of(row: sa.RowMapping) -> Alert:
    return Alert(
        id=row["id"],
        type=DetectionKind(row["type"]),
        ward=row["ward"],
        device=row["device"],
        metric=row["metric"],
        severity=Severity(row["severity"]),
        state=AlertStatus(row["state"]),
        acknowledged=row["acknowledged"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        assignee=row["assignee"],
        opened_at=row["opened_at"],
        raised_at=row["raised_at"],
        last_seen=row["last_seen"],
        cleared_at=row["cleared_at"],
        started_at=row["started_at"],
        count=row["count"],
        peak_score=row["peak_score"],
        last_score=row["last_score"],
        value=row["value"],
        explanation=row["explanation"],
        incident=row["incident_id"],
        incident_root=row["incident_root"],
        silenced=row["silenced"],
        flapping=row["flapping"],
        escalated_at=row["escalated_at"],
    )


def _change_of(row: sa.RowMapping, alert: Alert | None = None) -> AlertChange:
    return AlertChange(
        id=row["id"],
        alert_id=row["alert_id"],
        kind=ChangeKind(row["kind"]),
        at_ms=row["at_ms"],
        detail=row["detail"],
        actor=row["actor"],
        notify=row["notify"],
        ward=row["ward"],
        alert=alert,
    )


def _silence_of(row: sa.RowMapping) -> Silence:
    return Silence(
        id=row["id"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        ward=row["ward"],
        device=row["device"],
        type=None if row["type"] is None else DetectionKind(row["type"]),
        comment=row["comment"],
        created_by=row["created_by"],
    )


def _api_key_of(row: sa.RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        wards=tuple(row["wards"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def _scope_of_row(row: sa.RowMapping) -> IncidentScope:
    return IncidentScope(IncidentKind(row["kind"]), row["ward"], row["route"], row["position"], "")


def _incident_of(row: sa.RowMapping, children: list[int]) -> Incident:
    return Incident(
        id=row["id"],
        kind=IncidentKind(row["kind"]),
        ward=row["ward"],
        route=row["route"],
        position=row["position"],
        root_alert=row["root_alert_id"],
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        title=row["title"],
        children=children,
    )


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """An INSERT with ``ON CONFLICT`` clauses in this connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def _log_deliveries(
    conn: AsyncConnection, attempts: Sequence[DeliveryAttempt], at_ms: int
) -> None:
    """Upsert delivery rows keyed by (change, channel, target): the newest outcome, the
    attempts of every try added up (a redelivery after a crash logs once)."""
    merged: dict[tuple[int, str, str], dict[str, Any]] = {}
    for attempt in attempts:
        row = _delivery_row(attempt, at_ms)
        key = (row["change_id"], row["channel"], row["target"])
        if key in merged:
            row["attempts"] += merged[key]["attempts"]
        merged[key] = row
    if not merged:
        return
    insert = _insert(conn, deliveries)
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=["change_id", "channel", "target"],
            set_={
                "status": insert.excluded.status,
                "attempts": deliveries.c.attempts + insert.excluded.attempts,
                "error": insert.excluded.error,
                "at_ms": insert.excluded.at_ms,
            },
        ),
        list(merged.values()),
    )


def _delivery_row(attempt: DeliveryAttempt, at_ms: int) -> dict[str, Any]:
    return {
        "change_id": attempt.change.id,
        "alert_id": attempt.change.alert_id,
        "channel": attempt.channel,
        "target": attempt.target,
        "status": "delivered" if attempt.delivered else "failed",
        "attempts": attempt.attempts,
        "error": attempt.error,
        "at_ms": at_ms,
    }


def _may_join(scope: IncidentScope) -> sa.ColumnElement[bool]:
    """A superset of :func:`in_scope` in SQL, so a new incident does not read every open
    alert of the city (in_scope still decides, with the device directory)."""
    if scope.kind is IncidentKind.AREA_OUTAGE:
        return alerts.c.ward == scope.ward
    return sa.or_(
        alerts.c.type.in_(sorted(t.value for t in CUT_CHILD_TYPES)),
        alerts.c.metric.in_(sorted(SIGNAL_METRICS)),
    )


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    """Slices short enough for any database's limit on bound parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _alerts_by_id(conn: AsyncConnection, ids: set[int]) -> dict[int, Alert]:
    if not ids:
        return {}
    rows = await conn.execute(sa.select(alerts).where(alerts.c.id.in_(sorted(ids))))
    return {r["id"]: _alert_of(r) for r in rows.mappings()}


async def _children(conn: AsyncConnection, incident_ids: list[int]) -> dict[int, list[int]]:
    if not incident_ids:
        return {}
    rows = await conn.execute(
        sa.select(alerts.c.id, alerts.c.incident_id)
        .where(alerts.c.incident_id.in_(incident_ids), alerts.c.incident_root.is_(False))
        .order_by(alerts.c.id)
    )
    found: dict[int, list[int]] = {}
    for alert_id, incident_id in rows:
        found.setdefault(incident_id, []).append(alert_id)
    return found
