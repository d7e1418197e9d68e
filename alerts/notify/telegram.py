"""Telegram notifier: a bot's ``sendMessage`` to one chat (a crew's group or a person).

The Bot API subset used: ``POST {api_url}/bot<token>/sendMessage`` with a JSON body
``{"chat_id", "text", "parse_mode": "HTML", "disable_web_page_preview": true}``; the
answer is ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error_code",
"description", "parameters": {"retry_after"}}``. A 429 asks to wait ``retry_after``
seconds (honoured, up to ``max_retry_after_s``; beyond it the change waits for the
follower's next round); 5xx and network errors are retried with backoff; other 4xx
(bad token 401, bot blocked 403, chat not found 400) are final for this change.

Telegram has no idempotency key: a retry after a lost answer, or a repeat after a crash,
can show a message twice (at least once).
"""

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Sequence

import httpx

from alerts.model import AlertChange
from alerts.notify.base import DeliveryResult, TryAgain, with_retries
from alerts.notify.i18n import DEFAULT_LANG, Lang
from alerts.notify.message import Message, WardName, codename, render
from telemetry.backoff import Backoff

log = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"
MAX_TEXT = 4096
"""Telegram's limit on a message's text (after entity parsing)."""

Sleep = Callable[[float], Awaitable[None]]


def telegram_html(message: Message) -> str:
    """The subject in bold and the text, escaped for ``parse_mode=HTML`` (a ward or an
    explanation holding ``<`` or ``&`` must not break the markup), cut to Telegram's
    limit."""
    head = f"<b>{html.escape(message.subject, quote=False)}</b>"
    body = html.escape(message.text, quote=False)
    room = MAX_TEXT - len(head) - 2  # the newline and the ellipsis
    if len(body) > room:  # cut the escaped body, never inside an entity such as &amp;
        body = body[:room]
        amp = body.rfind("&")
        if amp != -1 and ";" not in body[amp:]:
            body = body[:amp]
        body += "…"
    return f"{head}\n{body}"


class TelegramNotifier:
    """Sends to ``chat_id`` with the bot ``token`` (never logged: the endpoint and the
    delivery log name the chat only)."""

    channel = "telegram"

    def __init__(
        self,
        token: str,
        chat_id: str,
        *,
        api_url: str = TELEGRAM_API,
        attempts: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        timeout_s: float = 10.0,
        ward_name: WardName = codename,
        lang: Lang = DEFAULT_LANG,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not token or ":" not in token:
            raise ValueError("a Telegram bot token looks like 123456:ABC-…")
        if not chat_id:
            raise ValueError("a Telegram chat id is needed")
        if not api_url.startswith(("http://", "https://")):
            raise ValueError(f"Telegram API URL must be http(s)://, got {api_url!r}")
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.chat_id = chat_id
        self.endpoint = f"chat:{chat_id}"
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        self._attempts = attempts
        self._backoff = (backoff_s, max_backoff_s)
        self._max_retry_after_s = max_retry_after_s
        self._ward_name = ward_name
        self._lang = lang
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._own_client = client is None
        self._sleep = sleep

    def target_of(self, change: AlertChange) -> str:  # noqa: ARG002 (one chat for all)
        return self.chat_id

    async def send(self, change: AlertChange) -> DeliveryResult:
        return await self.send_message(render(change, self._ward_name, self._lang), [change.id])

    async def send_message(
        self,
        message: Message,
        change_ids: Sequence[int] = (),  # noqa: ARG002 (no place for them in a chat)
    ) -> DeliveryResult:
        body = {
            "chat_id": self.chat_id,
            "text": telegram_html(message),
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }

        async def attempt(n: int) -> DeliveryResult | TryAgain:
            try:
                response = await self._client.post(self._url, json=body)
            except httpx.HTTPError as exc:
                # The exception's text may hold the URL, and with it the token.
                return TryAgain(f"{type(exc).__name__}")
            answer = _json(response)
            if response.is_success and answer.get("ok") is True:
                return DeliveryResult(True, n)
            description = str(answer.get("description") or response.text[:200])
            code = answer.get("error_code", response.status_code)
            error = f"Telegram {code}: {description}"
            if response.status_code == 429:
                retry_after = _retry_after(answer)
                if retry_after is not None and retry_after > self._max_retry_after_s:
                    return DeliveryResult(False, n, error, retryable=True)
                return TryAgain(error, retry_after)
            if response.status_code < 500:
                return DeliveryResult(False, n, error, retryable=False)
            return TryAgain(error)

        return await with_retries(
            attempt,
            attempts=self._attempts,
            backoff=Backoff(*self._backoff),
            what=f"telegram chat {self.chat_id}",
            sleep=self._sleep,
        )

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _retry_after(answer: dict[str, object]) -> float | None:
    parameters = answer.get("parameters")
    if isinstance(parameters, dict):
        value = parameters.get("retry_after")
        if isinstance(value, int | float) and value >= 0:
            return float(value)
    return None
