"""API keys: stored as a public id and the secret's digest, never the secret."""

from collections.abc import Sequence

import sqlalchemy as sa

from alerts import apikeys
from alerts.model import ApiKey, Role, parse_lang
from alerts.schema import api_keys
from alerts.store.base import NotFoundError, StoreBase
from alerts.store.rows import api_key_of


class ApiKeys(StoreBase):
    """Creating, verifying, listing and revoking API keys."""

    async def create_api_key(
        self, role: Role | str, wards: Sequence[str] = (), name: str = "", lang: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key: returns the stored record and the key string (shown only now).
        A crew key needs at least one ward; other roles take none. ``lang`` (``vi`` or
        ``en``; ``None``: not chosen) is the language its holder reads."""
        role = Role(role)
        key_lang = None if lang is None else parse_lang(lang)
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
                    lang=key_lang,
                )
            )
        return ApiKey(key_id, name, role, tuple(ward_list), now, lang=key_lang), key

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
        return api_key_of(row)

    async def list_api_keys(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))
            return [api_key_of(r) for r in rows.mappings()]

    async def revoke_api_key(self, key_id: str) -> None:
        async with self._begin_write() as conn:
            result = await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no active API key {key_id}")
