"""A read-only InfluxDB v1 HTTP API client: InfluxQL over ``/query`` and ``/ping``.

The v1 API is served by InfluxDB 1.x natively and by 2.x/3.x as a compatibility API, so a
plain httpx client is all the API needs (no vendor SDK covers all three). Values that go
into a query are quoted with :func:`quote_string` / :func:`quote_ident`; ids are also
validated by the callers (``telemetry.is_valid_id``) before they get here.
"""

from dataclasses import dataclass, field
from typing import Any

import httpx

from api.errors import BackendUnavailableError


def quote_string(value: str) -> str:
    """An InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(value: str) -> str:
    """An InfluxQL identifier (measurement, tag or field name)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a query result: its measurement, tags and rows (column → value)."""

    name: str
    tags: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)


class InfluxClient:
    """Runs InfluxQL queries; times come back as epoch milliseconds (``epoch=ms``)."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        token: str | None = None,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Token {token}"} if token else {}
        self.database = database
        self._http = httpx.AsyncClient(
            base_url=url, headers=headers, timeout=timeout_s, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ping(self) -> bool:
        """Whether the server answers ``/ping``."""
        try:
            response = await self._http.get("/ping")
        except httpx.HTTPError:
            return False
        return response.status_code == 204

    async def query(self, influxql: str) -> list[Series]:
        """Run one statement; a missing database or measurement gives no series."""
        try:
            response = await self._http.get(
                "/query", params={"db": self.database, "q": influxql, "epoch": "ms"}
            )
        except httpx.HTTPError as exc:
            raise BackendUnavailableError(f"InfluxDB unreachable: {exc}") from exc
        if response.status_code >= 500:
            raise BackendUnavailableError(f"InfluxDB answered {response.status_code}")
        body = response.json()
        if response.status_code >= 400 or "error" in body:
            raise BackendUnavailableError(f"InfluxDB rejected a query: {body.get('error', body)}")
        out: list[Series] = []
        for result in body.get("results", []):
            error = result.get("error")
            if error:
                if "database not found" in error:
                    return []
                raise BackendUnavailableError(f"InfluxDB query failed: {error}")
            for series in result.get("series", []):
                columns: list[str] = series["columns"]
                rows = [dict(zip(columns, values, strict=True)) for values in series["values"]]
                out.append(Series(series.get("name", ""), dict(series.get("tags") or {}), rows))
        return out
