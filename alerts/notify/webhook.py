"""Webhook notifier: JSON POST signed with HMAC-SHA256, retried with backoff.

The receiver checks ``X-Citywatch-Signature: sha256=<hex>``, the HMAC of the raw body
with the shared secret (GitHub's scheme), and deduplicates on ``Idempotency-Key:
citywatch-<change id>`` (or the body's ``id``): retries, and repeats after a crash of the
sender, resend the same change with the same key.
"""

import asyncio
import hashlib
import hmac
import logging

import httpx

from alerts.model import AlertChange
from alerts.notify.base import DeliveryResult, change_json, idempotency_key
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
        error = ""
        backoff = Backoff(*self._backoff)
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return DeliveryResult(True, attempt)
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code != 429 and response.status_code < 500:
                    return DeliveryResult(False, attempt, error, retryable=False)
            if attempt < self._attempts:
                delay = backoff.next_delay()
                log.info(
                    "webhook %s attempt %d failed (%s); retry in %.1fs",
                    self.url,
                    attempt,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
        return DeliveryResult(False, self._attempts, error)

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()
