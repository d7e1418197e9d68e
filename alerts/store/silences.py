"""Silences: maintenance windows whose matching alerts are recorded but not notified."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from alerts.model import Silence, SilenceMatcher
from alerts.schema import silences
from alerts.store.base import NotFoundError, Page, StoreBase, check_paging
from alerts.store.rows import row_of, silence_of
from alerts.store.sorting import SILENCE_SORTS, Sort, order_by
from anomaly.events import DetectionKind, Severity


class Silences(StoreBase):
    """Creating, reading and deleting silences (the lifecycle writes apply them)."""

    async def create_silence(
        self,
        *,
        starts_at: int,
        ends_at: int,
        ward: str | None = None,
        device: str | None = None,
        type: DetectionKind | None = None,
        severity: Severity | None = None,
        matchers: Sequence[SilenceMatcher] = (),
        comment: str = "",
        created_by: str = "",
        created_by_key: str = "",
        now_ms: int | None = None,
    ) -> Silence:
        """A maintenance window; takes effect on open alerts at the next :meth:`tick`.

        ``ward``, ``device``, ``type`` and ``severity`` match exactly; ``matchers`` add
        Alertmanager-style conditions (``=``, ``!=``, ``=~``, ``!~``). At least one
        condition is needed. ``ValueError`` for a window that does not end after it starts
        or a silence without conditions."""
        if ends_at <= starts_at:
            raise ValueError("a silence must end after it starts")
        draft = Silence(
            0,
            starts_at,
            ends_at,
            ward=ward,
            device=device,
            type=None if type is None else DetectionKind(type),
            severity=None if severity is None else Severity(severity),
            matchers=tuple(matchers),
        )
        if draft.is_empty:
            raise ValueError(
                "a silence needs at least one matcher (ward, device, type, severity or matchers)"
            )
        values: dict[str, Any] = {
            **row_of(draft),
            "comment": comment,
            "created_by": created_by,
            "created_by_key": created_by_key,
            "created_at": self.clock() if now_ms is None else now_ms,
        }
        del values["id"]
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
        return silence_of(row)

    async def list_silences(
        self,
        *,
        active_at: int | None = None,
        skip: int = 0,
        limit: int = 100,
        sort: Sequence[Sort] = (),
    ) -> Page[Silence]:
        """All silences, or those in force at ``active_at``; newest first, or in the order
        of ``sort`` (fields of :data:`SILENCE_SORTS`)."""
        check_paging(skip, limit)
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
                .order_by(*order_by(sort, SILENCE_SORTS, silences.c.id))
                .offset(skip)
                .limit(limit)
            )
            return Page([silence_of(r) for r in rows.mappings()], int(count or 0))

    async def delete_silence(self, silence_id: int) -> None:
        async with self._begin_write() as conn:
            result = await conn.execute(sa.delete(silences).where(silences.c.id == silence_id))
        if result.rowcount == 0:
            raise NotFoundError(f"no silence {silence_id}")
