"""API key strings: ``cw_<id>_<secret>``. Only the SHA-256 of the whole key is stored; the
id (public, 12 hex digits) finds the row in one lookup, then the hashes are compared in
constant time."""

import hashlib
import hmac
import re
import secrets

PREFIX = "cw"
_KEY = re.compile(r"^cw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)`` pair; the key is shown once, to its owner."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, else ``None``."""
    match = _KEY.match(key)
    return match.group(1) if match else None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(key), stored_digest)
