"""E-mail notifier: one plain-text message over SMTP (aiosmtplib) to the NOC's addresses.

``security``: ``starttls`` (submission, port 587: upgrade the connection, refuse to go
on in clear if the server cannot), ``tls`` (implicit TLS, port 465) or ``none`` (a relay
on a trusted network, and the tests' local ``aiosmtpd``). A 4xx SMTP answer, a dropped
connection or a timeout is retried with backoff; a 5xx (mailbox unknown, relaying
denied, authentication failed) is final for this change.

Every message carries a ``Message-ID`` made of its change ids, the same for a retry or
a repeat after a crash, so a mail store or a reader's client can drop the duplicate.
"""

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

import aiosmtplib

from alerts.model import AlertChange
from alerts.notify.base import DeliveryResult, TryAgain, with_retries
from alerts.notify.i18n import DEFAULT_LANG, Lang
from alerts.notify.message import Message, WardName, codename, render
from telemetry.backoff import Backoff

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
Sleep = Callable[[float], Awaitable[None]]


class EmailNotifier:
    """Sends from ``sender`` to every address of ``to`` in one message (one delivery
    target: the list)."""

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        to: Sequence[str],
        *,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        attempts: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        timeout_s: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        message_id_domain: str = "citywatch.local",
        ward_name: WardName = codename,
        lang: Lang = DEFAULT_LANG,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not host:
            raise ValueError("an SMTP host is needed")
        if not 0 < port < 65536:
            raise ValueError(f"SMTP port must be 1-65535, got {port}")
        if "@" not in sender:
            raise ValueError(f"the sender must be an e-mail address, got {sender!r}")
        if not to or any("@" not in a for a in to):
            raise ValueError(f"recipients must be e-mail addresses, got {list(to)!r}")
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be starttls, tls or none, got {security!r}")
        if (username is None) != (password is None):
            raise ValueError("SMTP authentication needs both a username and a password")
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.host, self.port = host, port
        self.sender = sender
        self.to = tuple(to)
        self.endpoint = f"{host}:{port}"
        self.target = ",".join(self.to)
        self._security = security
        self._auth = (username, password)
        self._attempts = attempts
        self._backoff = (backoff_s, max_backoff_s)
        self._timeout_s = timeout_s
        self._tls_context = tls_context
        self._domain = message_id_domain
        self._ward_name = ward_name
        self._lang = lang
        self._sleep = sleep

    def target_of(self, change: AlertChange) -> str:  # noqa: ARG002 (one list for all)
        return self.target

    async def send(self, change: AlertChange) -> DeliveryResult:
        return await self.send_message(render(change, self._ward_name, self._lang), [change.id])

    def email(self, message: Message, change_ids: Sequence[int] = ()) -> EmailMessage:
        """The message as sent: plain text, UTF-8 (Vietnamese subjects are encoded)."""
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail["Date"] = formatdate(localtime=False)
        if change_ids:
            ids = sorted(change_ids)
            span = str(ids[0]) if len(ids) == 1 else f"{ids[0]}-{ids[-1]}.{len(ids)}"
            mail["Message-ID"] = f"<citywatch-{span}@{self._domain}>"
            mail["X-Citywatch-Changes"] = " ".join(map(str, ids))
        mail.set_content(message.text)
        return mail

    async def send_message(
        self, message: Message, change_ids: Sequence[int] = ()
    ) -> DeliveryResult:
        mail = self.email(message, change_ids)
        username, password = self._auth
        backoff = Backoff(*self._backoff)

        async def attempt(n: int) -> DeliveryResult | TryAgain:
            try:
                refused, _ = await aiosmtplib.send(
                    mail,
                    hostname=self.host,
                    port=self.port,
                    username=username,
                    password=password,
                    use_tls=self._security == "tls",
                    start_tls=self._security == "starttls",
                    tls_context=self._tls_context,
                    timeout=self._timeout_s,
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                error = "recipients refused: " + "; ".join(
                    f"{r.recipient} {r.code} {r.message}" for r in exc.recipients
                )
                if all(400 <= r.code < 500 for r in exc.recipients):
                    return TryAgain(error)  # the mailboxes are busy: try again
                return DeliveryResult(False, n, error, retryable=False)
            except aiosmtplib.SMTPResponseException as exc:
                error = f"SMTP {exc.code}: {exc.message}"
                if exc.code >= 500:
                    return DeliveryResult(False, n, error, retryable=False)
                return TryAgain(error)
            except (aiosmtplib.SMTPException, OSError) as exc:
                return TryAgain(f"{type(exc).__name__}: {exc}")
            partly = "; ".join(f"{a} {r.code} {r.message}" for a, r in refused.items())
            return DeliveryResult(True, n, f"refused by some: {partly}" if partly else "")

        return await with_retries(
            attempt,
            attempts=self._attempts,
            backoff=backoff,
            what=f"e-mail via {self.endpoint}",
            sleep=self._sleep,
        )

    async def close(self) -> None:
        """Nothing held between messages (one SMTP session each)."""
