"""``/docs`` and ``/redoc`` work with no internet: headless Chromium on a real server,
every request that leaves the machine refused, and both pages still render the API."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from api_harness import serve, settings
from playwright.async_api import Browser, Route, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def base(tmp_path: Path, influx) -> Iterator[str]:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    with serve(settings(url, influx.url, influx_database=f"docs_{uuid.uuid4().hex[:8]}")) as b:
        yield b


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.mark.parametrize(
    ("path", "shows"),
    [
        ("/docs", "Liveness: the process answers"),  # an operation's summary in Swagger UI
        ("/redoc", "Liveness: the process answers"),  # a heading of ReDoc's body
    ],
)
async def test_docs_render_without_internet(
    base: str, browser: Browser, path: str, shows: str
) -> None:
    context = await browser.new_context(base_url=base)
    outside: list[str] = []

    async def only_this_machine(route: Route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_this_machine)
    page = await context.new_page()
    response = await page.goto(path)
    assert response is not None
    assert response.status == 200
    # Swagger UI shows summaries as text, ReDoc as headings (its menu copy stays folded).
    shown = page.get_by_role("heading", name=shows) if path == "/redoc" else page.get_by_text(shows)
    await expect(shown.first).to_be_visible(timeout=15_000)
    assert outside == [], f"{path} asked the internet for {outside}"
    await context.close()
