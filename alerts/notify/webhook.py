"""Webhook notifier: JSON POST signed with HMAC-SHA256, retried with backoff.

The receiver checks ``X-Citywatch-Signature: sha256=<hex>``, the HMAC of the raw body
with the shared secret (GitHub's scheme), and deduplicates on ``Idempotency-Key:
citywatch-<change id>`` (or the body's ``id``): retries, and repeats after a crash of the
sender, resend the same change with the same key.
"""

import hashlib
import hmac
import logging

import httpx

from alerts.model import AlertChange
from alerts.notify.base import (
    DeliveryResult,
    TryAgain,
    change_json,
    idempotency_key,
    with_retries,
)
from telemetry.backoff import Backoff

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Citywatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs each change to ``url``. Retries network errors, 429 and 5xx; other 4xx
    answers are final (the receiver refused this body; resending will not help)."""

    channel = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s)://, got {url!r}")
        if not secret:
            raise ValueError("webhook secret must not be empty")
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.url = url
        self.endpoint = url
        self._secret = secret
        self._attempts = attempts
        self._backoff = (backoff_s, max_backoff_s)
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._own_client = client is None

    def target_of(self, change: AlertChange) -> str:  # noqa: ARG002 (one URL for all)
        return self.url

    async def send(self, change: AlertChange) -> DeliveryResult:
        body = change_json(change)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self._secret),
            "X-Citywatch-Event": change.kind.value,
            "X-Citywatch-Delivery": str(change.id),
            IDEMPOTENCY_HEADER: idempotency_key(change),
        }

        async def attempt(n: int) -> DeliveryResult | TryAgain:
            try:
                response = await self._client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                return TryAgain(f"{type(exc).__name__}: {exc}")
            if response.is_success:
                return DeliveryResult(True, n)
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code != 429 and response.status_code < 500:
                return DeliveryResult(False, n, error, retryable=False)
            return TryAgain(error)

        return await with_retries(
            attempt,
            attempts=self._attempts,
            backoff=Backoff(*self._backoff),
            what=f"webhook {self.url}",
        )

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()
