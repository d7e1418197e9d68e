"""Lifecycle writes: detections, the passing of time and people's actions on alerts.

Each write runs in one :class:`~alerts.store.unit_of_work.UnitOfWork` transaction: load
the alerts it touches, apply the pure :mod:`alerts.lifecycle` functions, then settle each
changed alert (silences, incidents, notify decisions) before the unit of work writes the
alerts and their changes.
"""

from collections.abc import Awaitable, Callable, Iterable

import sqlalchemy as sa

from alerts import lifecycle
from alerts.model import AlertChange, AlertState, Change
from alerts.schema import alerts, comments
from alerts.store.base import NotFoundError
from alerts.store.incidents import correlate
from alerts.store.rows import state_of
from alerts.store.unit_of_work import Tx, UnitOfWork
from anomaly.events import Detection


class LifecycleWrites(UnitOfWork):
    """Writes that move alerts through their lifecycle."""

    _silences_at_last_tick: frozenset[int] | None = None
    """Ids of the silences in force at this store's last tick (None: no tick yet)."""

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

        async def work(tx: Tx) -> None:
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

        async def work(tx: Tx) -> None:
            silenced = await tx.active_silences()
            in_force = frozenset(s.id for s in silenced)
            seen[:] = [in_force]
            query = sa.select(alerts).where(alerts.c.open_key.is_not(None))
            if in_force == self._silences_at_last_tick:
                query = query.where(alerts.c.due_at <= tx.now)
            rows = await tx.conn.execute(query.order_by(alerts.c.id).with_for_update())
            rows_read = list(rows.mappings())
            loaded = [(r["id"], state_of(r)) for r in rows_read]
            tx.known.update(loaded)
            for row, (alert_id, _) in zip(rows_read, loaded, strict=True):
                # An earlier alert of this tick may have rewritten this one (incidents).
                state = tx.known[alert_id]
                if not state.is_open:
                    continue
                new, changes = lifecycle.tick(state, self.policy, tx.now)
                now_silenced = any(s.matches(new.key, new.severity, tx.now) for s in silenced)
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
        async def also(tx: Tx) -> None:
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

    async def _manual(
        self,
        alert_id: int,
        now_ms: int | None,
        action: Callable[[AlertState, int], lifecycle.Result],
        also: Callable[[Tx], Awaitable[None]] | None = None,
    ) -> list[AlertChange]:
        async def work(tx: Tx) -> None:
            state = await self._load(tx, alert_id)
            new, changes = action(state, tx.now)
            if also is not None:
                await also(tx)
            await self._settle(tx, alert_id, new, changes, before=state)

        return await self._write(work, now_ms)

    async def _load(self, tx: Tx, alert_id: int) -> AlertState:
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
        return state_of(row)

    async def _apply_one(self, tx: Tx, detection: Detection, unopened: int) -> None:
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
        tx: Tx,
        alert_id: int,
        state: AlertState,
        changes: list[Change],
        *,
        before: AlertState | None,
    ) -> None:
        """Silences, incidents, notify decisions; then write the alert and queue changes."""
        if state.is_open:
            matched = [
                s
                for s in await tx.active_silences()
                if s.matches(state.key, state.severity, tx.now)
            ]
            detail = ", ".join(f"silence {s.id}" for s in matched)
            state, more = lifecycle.set_silenced(state, bool(matched), tx.now, detail)
            changes = changes + more
        if before is None or before.status is not state.status:
            # Incidents group the open alerts in scope when they open, so an alert needs a
            # look only when it appears or changes status (raised: a root opens one;
            # cleared: a root closes its incident).
            state, more = await correlate(tx, alert_id, state, self.directory, self._settle)
            changes = changes + more
        tx.record(alert_id, state, before)
        for change in lifecycle.finalize(state, changes):
            tx.events.append((alert_id, state.key.ward, change))
        tx.touched.add(alert_id)
