"""Idempotency keys of alert actions: a repeated request with the same key answers what
the first one did and acts once (a phone retrying after a lost answer, an offline queue
sent twice)."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from alerts.model import ActionKey
from alerts.schema import action_keys
from alerts.store.base import StoreBase

ACTION_KEY_TTL_MS = 24 * 3600 * 1000
"""How long an ``Idempotency-Key`` of an alert action is remembered."""
ACTION_KEY_STALE_MS = 60_000
"""A claim still in progress after this long was left by a request that died: taken over."""


class ActionKeys(StoreBase):
    """Claiming, answering and releasing the idempotency keys of alert actions."""

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
