"""The unit of work: one lifecycle write transaction, retried when it loses a race.

Every write loads the alert(s) it touches (``FOR UPDATE`` on PostgreSQL; SQLite takes its
write lock at ``BEGIN IMMEDIATE``), runs the pure :mod:`alerts.lifecycle` functions, and
writes the new state and its timeline entries in the same transaction. The unique
``open_key`` column makes the database refuse a second open alert for one key: a writer
that loses that race rolls back and retries, finding the winner's alert to update.

Lifecycle writes are serialised: SQLite by ``BEGIN IMMEDIATE``, PostgreSQL by a
transaction-scoped advisory lock (so several processes sharing one database queue too).
Timeline entries double as the change feed (:mod:`alerts.store.changes`): their ids
therefore increase in commit order. The unique index remains the guarantee against
duplicates for any writer that bypasses the lock.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts.model import AlertChange, AlertState, Change, Silence
from alerts.policy import Policy
from alerts.schema import alert_events, alerts, incidents, silences
from alerts.store.base import StoreBase, chunks
from alerts.store.queries import alerts_by_id
from alerts.store.rows import columns_of, silence_of, state_of
from telemetry.backoff import Backoff

log = logging.getLogger(__name__)

_RETRIES = 10
_WRITE_LOCK = 0x63770002
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


@dataclass(slots=True)
class Tx:
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
            self._silences = [silence_of(r) for r in rows.mappings()]
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
        for chunk in chunks(wanted):
            rows = await self.conn.execute(
                sa.select(alerts).where(alerts.c.open_key.in_(chunk)).with_for_update()
            )
            for row in rows.mappings():
                self.known[row["id"]] = state_of(row)
                self.open_ids[row["open_key"]] = row["id"]
        closed = [k for k in wanted if k not in self.open_ids and k not in self.history]
        for chunk in chunks(closed):
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
                {"alert_id": i, **columns_of(s, self.policy)} for i, s in self.to_update.items()
            ]
            self.to_update = {}
            await self.conn.execute(
                sa.update(alerts).where(alerts.c.id == sa.bindparam("alert_id")), rows
            )
        if self.to_insert:
            rows = [{"id": i, **columns_of(s, self.policy)} for i, s in self.to_insert.items()]
            self.to_insert = {}
            await self.conn.execute(sa.insert(alerts), rows)


class UnitOfWork(StoreBase):
    """Runs lifecycle writes: one transaction each, serialised, retried on lost races."""

    async def _write(
        self, work: Callable[[Tx], Awaitable[None]], now_ms: int | None
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
                    tx = Tx(conn, now, self.policy)
                    await work(tx)
                    return await flush(tx)
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


async def flush(tx: Tx) -> list[AlertChange]:
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
    snapshots = await alerts_by_id(tx.conn, tx.touched)
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


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None
