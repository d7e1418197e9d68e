"""The one InfluxDB client: the v1 HTTP API (``/write``, ``/query``, ``/ping``), sync and async.

The v1 API is served by InfluxDB 1.x natively and by 2.x/3.x as their compatibility API,
so one plain httpx client covers all three (no vendor SDK does); ``token`` adds
``Authorization: Token ...`` for 2.x/3.x. Ingest's writer thread uses :class:`InfluxClient`,
the API and the pipeline's alert export :class:`AsyncInfluxClient`; both answer the same
way because both go through :func:`_checked`.

Errors are translated at this boundary into the cases callers must tell apart:
:class:`InfluxUnavailableError` (retry later: 5xx, timeouts, connection errors, auth not
accepted, 429), :class:`InfluxRejectedError` (retrying the same request cannot help: the
server refused it and says why in ``message``), and success. Values that go into InfluxQL
are quoted with :func:`quote_string` / :func:`quote_ident`.
"""

import gzip
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)


class InfluxError(RuntimeError):
    """Base of the errors of this client."""


class InfluxUnavailableError(InfluxError):
    """The server could not serve the request now (5xx, timeout, connection, auth); retry."""


class InfluxRejectedError(InfluxError):
    """The server refused the request (4xx); retrying it as it is cannot help.

    ``message`` is the server's own error text (for a write: which lines and why, parsed
    by ``ingest.refusal``).
    """

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"InfluxDB refused the request (HTTP {status}): {message[:500]}")


def quote_string(value: str) -> str:
    """An InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(value: str) -> str:
    """An InfluxQL identifier (database, measurement, tag or field name)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a query result: its measurement, tags and rows (column → value)."""

    name: str
    tags: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)


def series_of(body: dict[str, Any]) -> list[Series]:
    """The series of a ``/query`` answer; a missing database gives none (nothing written
    yet), any other statement error is ``InfluxRejectedError``."""
    out: list[Series] = []
    for result in body.get("results", []):
        error = result.get("error")
        if error:
            if "database not found" in error:
                return []
            raise InfluxRejectedError(200, error)
        for series in result.get("series", []):
            columns: list[str] = series["columns"]
            rows = [dict(zip(columns, values, strict=True)) for values in series["values"]]
            out.append(Series(series.get("name", ""), dict(series.get("tags") or {}), rows))
    return out


def error_text(response: httpx.Response) -> str:
    """The server's error message (1.x says ``error``, the 2.x compatibility API
    ``message``), else the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return response.text.strip()


def _checked(url: str, path: str, response: httpx.Response) -> httpx.Response:
    if response.status_code >= 500 or response.status_code in (401, 403, 429):
        raise InfluxUnavailableError(
            f"InfluxDB at {url} answered {response.status_code} to {path}: {error_text(response)}"
        )
    return response


def _unavailable(url: str, exc: httpx.HTTPError) -> InfluxUnavailableError:
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
    return InfluxUnavailableError(f"InfluxDB at {url} {what}: {exc!r}")


def _database_missing(response: httpx.Response) -> bool:
    return response.status_code == 404 and "database not found" in error_text(response)


_GZIP_HEADERS = {"Content-Encoding": "gzip", "Content-Type": "text/plain"}


class _Base:
    def __init__(self, url: str, database: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.headers = {"Authorization": f"Token {token}"} if token else {}

    def _query_params(self, q: str, epoch: str) -> dict[str, str]:
        return {"q": q, "db": self.database, "epoch": epoch}

    def _write_params(self, precision: str) -> dict[str, str]:
        return {"db": self.database, "precision": precision}

    def _create_statement(self) -> str:
        return f"CREATE DATABASE {quote_ident(self.database)}"


class InfluxClient(_Base):
    """Blocking client for one database; thread-compatible (one user at a time)."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
        gzip_level: int = 1,
    ) -> None:
        super().__init__(url, database, token)
        self.gzip_level = gzip_level
        self._http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def compress(self, body: bytes) -> bytes:
        """A body as ``write_gzipped`` wants it."""
        return gzip.compress(body, compresslevel=self.gzip_level, mtime=0)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _unavailable(self.url, exc) from exc
        return _checked(self.url, path, response)

    def ping(self) -> bool:
        try:
            return self._request("GET", "/ping").status_code == 204
        except InfluxUnavailableError:
            return False

    def query(self, q: str, *, method: str = "GET", epoch: str = "ms") -> dict[str, Any]:
        """Run InfluxQL; the decoded JSON answer (``InfluxRejectedError`` on 4xx)."""
        response = self._request(method, "/query", params=self._query_params(q, epoch))
        if response.status_code >= 400:
            raise InfluxRejectedError(response.status_code, error_text(response))
        result: dict[str, Any] = response.json()
        return result

    def create_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists)."""
        self.query(self._create_statement(), method="POST")

    def write_gzipped(self, body: bytes, *, precision: str = "ms") -> None:
        """Write one gzipped line-protocol body; creates the database once if the server
        says it is missing."""
        for attempt in range(2):
            response = self._request(
                "POST",
                "/write",
                params=self._write_params(precision),
                content=body,
                headers=_GZIP_HEADERS,
            )
            if response.status_code < 300:
                return
            if _database_missing(response) and attempt == 0:
                log.info("database %r missing on %s: creating it", self.database, self.url)
                self.create_database()
                continue
            raise InfluxRejectedError(response.status_code, error_text(response))


class AsyncInfluxClient(_Base):
    """The same client for asyncio code (the API's queries, the alert export's writes)."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, database, token)
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=timeout_s, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _unavailable(self.url, exc) from exc
        return _checked(self.url, path, response)

    async def ping(self) -> bool:
        """Whether the server answers ``/ping``."""
        try:
            return (await self._request("GET", "/ping")).status_code == 204
        except InfluxUnavailableError:
            return False

    async def query(self, q: str, *, epoch: str = "ms") -> list[Series]:
        """Run one read statement; its series (none while the database does not exist)."""
        response = await self._request("GET", "/query", params=self._query_params(q, epoch))
        if _database_missing(response):
            return []
        if response.status_code >= 400:
            raise InfluxRejectedError(response.status_code, error_text(response))
        return series_of(response.json())

    async def write(self, lines: str, *, precision: str = "ns") -> None:
        """Write line protocol (``precision``: the unit of its timestamps); creates the
        database once if the server says it is missing."""
        body = gzip.compress(lines.encode(), compresslevel=1, mtime=0)
        for attempt in range(2):
            response = await self._request(
                "POST",
                "/write",
                params=self._write_params(precision),
                content=body,
                headers=_GZIP_HEADERS,
            )
            if response.status_code < 300:
                return
            if _database_missing(response) and attempt == 0:
                create = self._query_params(self._create_statement(), "ms")
                await self._request("POST", "/query", params=create)
                continue
            raise InfluxRejectedError(response.status_code, error_text(response))
