"""Zalo notifier: an Official Account's consultation message (``cs``) to one follower.

The Zalo OA API v3 subset used: ``POST {api_url}/v3.0/oa/message/cs`` with the header
``access_token: <OA access token>`` and the JSON body ``{"recipient": {"user_id": …},
"message": {"text": …}}``. Zalo answers HTTP 200 with ``{"error": 0, "message":
"Success", "data": {"message_id", "user_id"}}``; a nonzero ``error`` is a failure.
Codes in ``retry_codes`` (by default -32, the OA's per-minute request limit) are
retried with backoff, as are HTTP 429/5xx and network errors; every other code (bad or
expired token, user not following the OA, outside the consultation window, invalid
parameters) is final for this change and logged with Zalo's ``message``. An answer
without a code (a proxy's page) is retried.

Zalo has no idempotency key: a retry after a lost answer can show a message twice.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence

import httpx

from alerts.model import AlertChange
from alerts.notify.base import DeliveryResult, TryAgain, with_retries
from alerts.notify.i18n import DEFAULT_LANG, Lang
from alerts.notify.message import Message, WardName, codename, render
from telemetry.backoff import Backoff

log = logging.getLogger(__name__)

ZALO_API = "https://openapi.zalo.me"
MAX_TEXT = 2000
"""Zalo's limit on a text message."""
RETRY_CODES: frozenset[int] = frozenset({-32})

Sleep = Callable[[float], Awaitable[None]]


def zalo_text(message: Message) -> str:
    """Subject line, then the text (Zalo text messages have no markup), within the limit."""
    text = f"{message.subject}\n{message.text}"
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class ZaloNotifier:
    """Sends to the follower ``user_id`` of the OA whose ``access_token`` is given
    (never logged)."""

    channel = "zalo"

    def __init__(
        self,
        access_token: str,
        user_id: str,
        *,
        api_url: str = ZALO_API,
        attempts: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        retry_codes: Collection[int] = RETRY_CODES,
        ward_name: WardName = codename,
        lang: Lang = DEFAULT_LANG,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not access_token:
            raise ValueError("a Zalo OA access token is needed")
        if not user_id:
            raise ValueError("a Zalo user id is needed")
        if not api_url.startswith(("http://", "https://")):
            raise ValueError(f"Zalo API URL must be http(s)://, got {api_url!r}")
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.user_id = user_id
        self.endpoint = f"user:{user_id}"
        self._url = f"{api_url.rstrip('/')}/v3.0/oa/message/cs"
        self._token = access_token
        self._attempts = attempts
        self._backoff = (backoff_s, max_backoff_s)
        self._retry_codes = frozenset(retry_codes)
        self._ward_name = ward_name
        self._lang = lang
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._own_client = client is None
        self._sleep = sleep

    def target_of(self, change: AlertChange) -> str:  # noqa: ARG002 (one follower for all)
        return self.user_id

    async def send(self, change: AlertChange) -> DeliveryResult:
        return await self.send_message(render(change, self._ward_name, self._lang), [change.id])

    async def send_message(
        self,
        message: Message,
        change_ids: Sequence[int] = (),  # noqa: ARG002 (no place for them in a chat)
    ) -> DeliveryResult:
        body = {"recipient": {"user_id": self.user_id}, "message": {"text": zalo_text(message)}}
        headers = {"access_token": self._token}

        async def attempt(n: int) -> DeliveryResult | TryAgain:
            try:
                response = await self._client.post(self._url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                return TryAgain(f"{type(exc).__name__}: {exc}")
            if response.status_code == 429 or response.status_code >= 500:
                return TryAgain(f"HTTP {response.status_code}: {response.text[:200]}")
            if not response.is_success:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                return DeliveryResult(False, n, error, retryable=False)
            code, text = _answer(response)
            if code == 0:
                return DeliveryResult(True, n)
            error = f"Zalo error {code}: {text}"
            if code is not None and code not in self._retry_codes:
                return DeliveryResult(False, n, error, retryable=False)
            return TryAgain(error)

        return await with_retries(
            attempt,
            attempts=self._attempts,
            backoff=Backoff(*self._backoff),
            what=f"zalo user {self.user_id}",
            sleep=self._sleep,
        )

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()


def _answer(response: httpx.Response) -> tuple[int | None, str]:
    """Zalo's ``error`` code and ``message``; ``None`` for an answer without one."""
    try:
        answer = response.json()
    except ValueError:
        return None, f"not JSON: {response.text[:200]}"
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), int):
        return None, f"no error code: {response.text[:200]}"
    return int(answer["error"]), str(answer.get("message", ""))
