"""``/metrics`` is not for everyone: loopback clients only, unless a token is set."""

from pathlib import Path

import httpx
from api_harness import problem, settings

from api import create_app


async def _get(app, client: tuple[str, int], headers: dict[str, str]) -> httpx.Response:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):
        return await http.get("/metrics", headers=headers)


async def test_metrics_answer_loopback_or_the_token_only(tmp_path: Path, influx) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    open_app = create_app(settings(url, influx.url))
    assert (await _get(open_app, ("127.0.0.1", 5000), {})).status_code == 200
    refused = await _get(open_app, ("203.0.113.7", 5000), {})
    assert "CITYWATCH_METRICS_TOKEN" in problem(refused, 403)["detail"]
    token = "scrape-token-0123456789abcdef"
    guarded = create_app(settings(url, influx.url, metrics_token=token))
    far = ("203.0.113.7", 5000)
    assert (await _get(guarded, far, {})).status_code == 401
    assert (await _get(guarded, far, {"Authorization": "Bearer wrong"})).status_code == 401
    ok = await _get(guarded, far, {"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert "citywatch_api" in ok.text
