"""Short-lived, signed SSE stream tickets.

Browsers' ``EventSource`` cannot send an ``Authorization`` header, so the crew page first
trades its Bearer key for a ticket (``POST /stream/ticket``) and opens
``/alerts/stream?ticket=...``. A ticket names the key and expires within a minute: the
long-lived key never appears in a URL (URLs end up in proxy and server logs), and a leaked
ticket is useless soon after. The key is looked up again when the ticket is used, so a
revoked key's tickets stop working too. Hand-written over :mod:`hmac` because it is a dozen
lines and no signing library is among the locked dependencies.
"""

import base64
import hashlib
import hmac


class TicketError(ValueError):
    """A ticket that is malformed, forged or expired."""


def _sign(secret: bytes, payload: bytes) -> str:
    digest = hmac.new(secret, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(secret: bytes, key_id: str, expires_at_ms: int) -> str:
    """A ticket for ``key_id`` valid until ``expires_at_ms``."""
    payload = f"{key_id}.{expires_at_ms}"
    return f"{payload}.{_sign(secret, payload.encode())}"


def verify(secret: bytes, ticket: str, now_ms: int, max_ttl_ms: int | None = None) -> str:
    """The key id a valid ticket names; :class:`TicketError` otherwise (also for a
    ticket valid longer ahead than ``max_ttl_ms``: no ticket we issue is)."""
    parts = ticket.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        raise TicketError("malformed stream ticket")
    key_id, expires, signature = parts
    expected = _sign(secret, f"{key_id}.{expires}".encode())
    if not hmac.compare_digest(expected, signature):
        raise TicketError("invalid stream ticket")
    if int(expires) <= now_ms:
        raise TicketError("stream ticket expired; ask for a new one")
    if max_ttl_ms is not None and int(expires) - now_ms > max_ttl_ms:
        raise TicketError("invalid stream ticket")
    return key_id
