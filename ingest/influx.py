"""A small InfluxDB v1-API client: ``/write`` (gzip, ms precision), ``/query``, ``/ping``.

The v1 API is served by InfluxDB 1.x natively and by 2.x/3.x as their compatibility API,
so one client covers all three; ``token`` adds ``Authorization: Token ...`` for 2.x/3.x.
Errors are translated at this boundary into the three cases the writer must tell apart:
``InfluxUnavailableError`` (retry later: 5xx, timeouts, connection errors, auth not accepted),
``InfluxRejectedError`` (retrying cannot help: the server refused some or all lines, and says
which and why), and success.
"""

import gzip
import logging
from typing import Any

import httpx

from ingest.refusal import WriteRejected, parse_write_error

log = logging.getLogger(__name__)


class InfluxError(RuntimeError):
    """Base of the errors of this client."""


class InfluxUnavailableError(InfluxError):
    """The server could not take the write now (5xx, timeout, connection, auth); retry."""


class InfluxRejectedError(InfluxError, WriteRejected):
    """The server refused the write or part of it (4xx); retrying the same body cannot help.

    ``lines`` names the unparsable lines with the server's reason, ``conflicts`` the field
    type conflict it reported, ``dropped`` is the server's ``dropped=N``, ``partial`` says
    the server stored the other points, ``message`` is the server's error text. Which
    points were refused is found by ``ingest.refusal.identify_refused``.
    """

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        parsed = parse_write_error(message)
        self.lines = list(parsed.unparsable)
        self.conflicts = list(parsed.conflicts)
        self.dropped = parsed.dropped
        self.partial = parsed.partial
        what = "partial write" if self.partial else "write refused"
        super().__init__(f"InfluxDB {what} (HTTP {status}): {message[:500]}")


def _quote_identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxClient:
    """Writes gzipped line protocol to one database; thread-compatible (one user at a time)."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
        gzip_level: int = 1,
    ) -> None:
        headers = {"Authorization": f"Token {token}"} if token else {}
        self.url = url.rstrip("/")
        self.database = database
        self.gzip_level = gzip_level
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def compress(self, body: bytes) -> bytes:
        """A body as ``write_gzipped`` wants it."""
        return gzip.compress(body, compresslevel=self.gzip_level, mtime=0)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.url} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.url} unreachable: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            raise InfluxUnavailableError(
                f"InfluxDB at {self.url} answered {response.status_code} to {path}: "
                f"{_error_text(response)}"
            )
        return response

    def ping(self) -> bool:
        try:
            return self._request("GET", "/ping").status_code == 204
        except InfluxUnavailableError:
            return False

    def query(self, q: str, *, method: str = "GET", epoch: str = "ms") -> dict[str, Any]:
        """Run InfluxQL; the decoded JSON answer (``InfluxRejectedError`` on 4xx)."""
        params = {"q": q, "db": self.database, "epoch": epoch}
        response = self._request(method, "/query", params=params)
        if response.status_code >= 400:
            raise InfluxRejectedError(response.status_code, _error_text(response))
        result: dict[str, Any] = response.json()
        return result

    def create_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists)."""
        self.query(f"CREATE DATABASE {_quote_identifier(self.database)}", method="POST")

    def write_gzipped(self, body: bytes) -> None:
        """Write one gzipped line-protocol body (ms timestamps).

        Creates the database once if the server says it is missing.
        """
        for attempt in range(2):
            response = self._request(
                "POST",
                "/write",
                params={"db": self.database, "precision": "ms"},
                content=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
            )
            if response.status_code < 300:
                return
            text = _error_text(response)
            if response.status_code == 404 and "database not found" in text and attempt == 0:
                log.info("database %r missing on %s: creating it", self.database, self.url)
                self.create_database()
                continue
            raise InfluxRejectedError(response.status_code, text)


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(data, dict):  # 1.x says "error", the 2.x compatibility API "message"
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return response.text.strip()
