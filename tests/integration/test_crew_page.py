"""The crew page in headless Chromium (Debian's, driven by Playwright) on a real server.

Two phones of one crew: the first acknowledges an alert and the second sees it arrive over
SSE; a new alert pushed through the store appears on both; other wards never show. A
screenshot of the phone viewport is kept in ``artifacts/``.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from api_harness import keys, open_store, raise_alert, serve, settings
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from alerts.store import AlertStore
from anomaly.events import Detection, DetectionKind, Severity
from ingest.device_status import device_status_line
from telemetry import DeviceInfo, DeviceKind

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
HOAN_KIEM = {"latitude": 21.0288, "longitude": 105.8525}
"""Where the crew's phone says it is."""
WAIT_MS = 10_000


@pytest.fixture
def server(tmp_path: Path, influx) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    config = settings(url, influx.url, influx_database=f"crew_{uuid.uuid4().hex[:8]}")
    _seed_influx(influx.url, config.influx_database)
    with serve(config) as base:
        yield url, base


def _seed_influx(influx_url: str, database: str) -> None:
    """Two cabinets in ward_a (one near the crew, one 3 km away) and one in ward_b."""
    now_ms = int(time.time() * 1000)
    lines = [
        f"cabinet,device=cab-far,ward=ward_a temp_inside=31.5,door_open=false {now_ms}",
        f"cabinet,device=cab-near,ward=ward_a temp_inside=29.0,door_open=true {now_ms}",
        f"cabinet,device=cab-b1,ward=ward_b temp_inside=30.0 {now_ms}",
        *(
            device_status_line(
                device,
                DeviceKind.CABINET,
                "ward_a",
                online=True,
                reason="status",
                ts_ms=now_ms - 60_000,
                info=DeviceInfo(device, DeviceKind.CABINET, "ward_a", street, lat, lon),
            )
            for device, street, lat, lon in (
                ("cab-far", "Giải Phóng", 21.0020, 105.8410),
                ("cab-near", "Hàng Bạc", 21.0340, 105.8520),
            )
        ),
    ]
    httpx.post(f"{influx_url}/query", params={"q": f'CREATE DATABASE "{database}"'})
    response = httpx.post(
        f"{influx_url}/write",
        params={"db": database, "precision": "ms"},
        content="\n".join(lines).encode(),
    )
    response.raise_for_status()


@pytest.fixture
async def store(server: tuple[str, str]) -> AsyncIterator[AlertStore]:
    s = await open_store(server[0])
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def _phone(browser: Browser, base: str, key: str, *, clock: bool = False) -> Page:
    """A signed-in phone; ``clock``: with Playwright's clock installed (time flows, and a
    test may skip ahead)."""
    context = await browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        geolocation=HOAN_KIEM,
        permissions=["geolocation"],
        locale="en-US",  # the English texts; Vietnamese is tested in test_crew_language
        base_url=base,
    )
    page = await context.new_page()
    if clock:
        await page.clock.install()
    await page.goto("/crew")
    await page.get_by_test_id("token").fill(key)
    await page.get_by_test_id("save-token").click()
    await expect(page.get_by_test_id("live")).to_have_text("live", timeout=WAIT_MS)
    return page


def _card(page: Page, alert_id: int):  # type: ignore[no-untyped-def]
    return page.locator(f'li[data-alert-id="{alert_id}"]')


async def test_crew_page_acknowledges_and_updates_live(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    _, base = server
    crew = await keys(store)
    far = await raise_alert(
        store,
        "ward_a",
        "cab-far",
        kind=DetectionKind.CABLE_CUT,
        severity=Severity.CRITICAL,
        explanation="signal lost on the feeder with a strain spike: likely cable cut",
    )
    near = await raise_alert(store, "ward_a", "cab-near")
    other = await raise_alert(store, "ward_b", "cab-b1")

    phone = await _phone(browser, base, crew["crew_a"])
    second = await _phone(browser, base, crew["crew_a"], clock=True)
    await expect(phone.get_by_test_id("who")).to_contain_text("crew-a")
    await expect(phone.locator("li[data-alert-id]")).to_have_count(2, timeout=WAIT_MS)
    await expect(_card(phone, other)).to_have_count(0)
    await expect(_card(phone, far)).to_contain_text("likely cable cut")

    # Sharing the location puts the nearer cabinet first, with its distance and map links.
    await phone.get_by_test_id("locate").click()
    await expect(_card(phone, near).locator(".dist")).to_have_text("0.6 km", timeout=WAIT_MS)
    order = await phone.locator("li[data-alert-id]").evaluate_all(
        "cards => cards.map(c => Number(c.dataset.alertId))"
    )
    assert order == [near, far]
    osm = _card(phone, near).get_by_role("link", name="Map")
    assert "openstreetmap.org/?mlat=21.034&mlon=105.852" in (await osm.get_attribute("href") or "")
    geo = _card(phone, near).get_by_role("link", name="Navigate")
    assert await geo.get_attribute("href") == "geo:21.034,105.852?q=21.034,105.852"

    # Acknowledge on the first phone: the store has it, the second phone sees it over SSE.
    await _card(phone, near).get_by_role("button", name="Acknowledge").click()
    await expect(_card(phone, near).locator(".meta")).to_contain_text(
        "acknowledged by crew-a", timeout=WAIT_MS
    )
    stored = (await store.get_alert(near)).alert
    assert stored.acknowledged
    assert stored.acknowledged_by == "crew-a"
    await expect(_card(second, near).locator("button.ack")).to_have_text(
        "Acknowledged", timeout=WAIT_MS
    )
    await expect(_card(second, near).locator("button.ack")).to_be_disabled()

    # On site: assigned to the crew, with a comment in the timeline.
    await _card(phone, far).get_by_role("button", name="On site").click()
    await expect(_card(second, far).locator(".meta")).to_contain_text(
        "on it: crew-a", timeout=WAIT_MS
    )
    # The page acknowledges, assigns, then comments: wait for the last of the three.
    deadline = time.monotonic() + WAIT_MS / 1000
    detail = await store.get_alert(far)
    while not detail.comments and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        detail = await store.get_alert(far)
    assert detail.alert.assignee == "crew-a"
    assert detail.alert.acknowledged
    assert [c.text for c in detail.comments] == ["On site"]

    # A new alert pushed through the store appears live; another ward's does not.
    fresh = await raise_alert(
        store, "ward_a", "cab-near", kind=DetectionKind.FLOODING, severity=Severity.CRITICAL,
        explanation="water 120 mm above the plinth floor",
    )  # fmt: skip
    await raise_alert(store, "ward_b", "cab-b2", kind=DetectionKind.FLOODING)
    await expect(_card(second, fresh)).to_contain_text("Water inside", timeout=WAIT_MS)
    await expect(_card(phone, fresh)).to_contain_text("water 120 mm", timeout=WAIT_MS)
    # One card per cabinet: the flood (critical) leads cab-near's card, its open door
    # folds in.
    await expect(phone.locator("li[data-alert-id]")).to_have_count(2)
    await expect(_card(phone, near)).to_have_count(0)
    folded = _card(phone, fresh).get_by_test_id("folded")
    await expect(folded.locator("summary")).to_have_text(
        "1 more alert(s) here or from the same cause"
    )

    # Resolved on the second phone, with a note, sent once its minute to undo is over:
    # gone from both lists.
    await _card(second, far).get_by_role("button", name="Resolved").click()
    await second.get_by_test_id("resolve-note").fill("spliced the feeder")
    await second.get_by_test_id("resolve-confirm").click()
    await expect(_card(second, far).get_by_test_id("undo")).to_be_visible()
    await second.clock.fast_forward(61_000)
    await expect(_card(phone, far)).to_have_count(0, timeout=WAIT_MS)
    await expect(_card(second, far)).to_have_count(0, timeout=WAIT_MS)
    resolved = await store.get_alert(far)
    assert resolved.alert.cleared_at is not None
    assert [c.detail for c in resolved.timeline if c.kind.value == "resolved"] == [
        "spliced the feeder"
    ]

    ARTIFACTS.mkdir(exist_ok=True)
    await phone.evaluate("window.scrollTo(0, 0)")
    await phone.screenshot(path=str(ARTIFACTS / "crew-page.png"))


async def test_crew_page_shows_the_problem_detail_of_a_refused_action(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    """An action the API refuses shows the problem's ``detail`` (RFC 9457), a validation
    error's too (it used to be a list, shown as "error 422"): the page's acknowledge
    request goes to an invalid alert id, and the real server's answer back to the page."""
    _, base = server
    crew = await keys(store)
    alert_id = await raise_alert(store, "ward_a", "cab-near")
    phone = await _phone(browser, base, crew["crew_a"])
    await expect(_card(phone, alert_id)).to_have_count(1, timeout=WAIT_MS)

    async def to_an_invalid_id(route: Route) -> None:
        answer = await route.fetch(url=f"{base}/alerts/0/acknowledge")
        assert answer.headers["content-type"] == "application/problem+json"
        await route.fulfill(response=answer)

    await phone.route(f"**/alerts/{alert_id}/acknowledge", to_an_invalid_id)
    await _card(phone, alert_id).get_by_role("button", name="Acknowledge").click()
    await expect(phone.locator("#error")).to_have_text(
        "Acknowledge was not done: path.alert_id: Input should be greater than or equal to 1",
        timeout=WAIT_MS,
    )


async def test_crew_page_refuses_a_bad_key(server: tuple[str, str], browser: Browser) -> None:
    _, base = server
    context = await browser.new_context(viewport=PHONE, locale="en-US", base_url=base)
    page = await context.new_page()
    await page.goto("/crew")
    viewport = await page.locator('meta[name="viewport"]').get_attribute("content")
    assert viewport is not None
    assert "width=device-width" in viewport
    await page.get_by_test_id("token").fill("cw_000000000000_not-a-real-key")
    await page.get_by_test_id("save-token").click()
    await expect(page.get_by_role("alert").first).to_contain_text("refused", timeout=WAIT_MS)
    assert await page.evaluate("localStorage.getItem('citywatch.crew.key')") is None


async def test_crew_page_runs_under_its_content_security_policy(
    server: tuple[str, str], browser: Browser
) -> None:
    """Served with a CSP (own script, styles and API only) and no framing, and the page
    still works under it: the browser reports no violation while it signs in."""
    _, base = server
    context = await browser.new_context(viewport=PHONE, locale="en-US", base_url=base)
    page = await context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security" in msg.text else None,
    )
    response = await page.goto("/crew")
    assert response is not None
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    await page.get_by_test_id("token").fill("cw_000000000000_not-a-real-key")
    await page.get_by_test_id("save-token").click()
    await expect(page.get_by_role("alert").first).to_contain_text("refused", timeout=WAIT_MS)
    assert violations == []


async def test_a_device_down_is_one_card_with_its_silent_sensors_folded_in(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    """A cabinet goes offline after its sensors fell silent, and its door opens: the crew
    sees one card for it (the offline alert), the silent sensors and the door folded in,
    not one card each."""
    _, base = server
    crew = await keys(store)
    t0 = int(time.time() * 1000)

    def det(kind: DetectionKind, metric: str = "") -> Detection:
        return Detection(
            kind=kind,
            severity=Severity.MAJOR,
            active=True,
            ward="ward_a",
            device="cab-near",
            metric=metric,
            start_ms=t0,
            ts_ms=t0,
            score=0.9,
            explanation=f"{kind.value} {metric}".strip(),
        )

    for metric in ("temp_inside", "humidity"):
        await store.apply_detection(det(DetectionKind.DROPOUT, metric), now_ms=t0)
    await store.apply_detection(det(DetectionKind.OFFLINE), now_ms=t0)
    await store.tick(now_ms=t0 + 10 * 60_000)  # past their pending periods: raised
    (incident,) = (await store.list_incidents(open_only=True)).data
    assert len(incident.children) == 2
    await raise_alert(store, "ward_a", "cab-near")  # and its door opened: a second problem

    phone = await _phone(browser, base, crew["crew_a"])
    cards = phone.locator("li[data-alert-id]")
    await expect(cards).to_have_count(1, timeout=WAIT_MS)
    card = _card(phone, incident.root_alert)
    await expect(card.locator(".what")).to_have_text("Device offline")
    folded = card.get_by_test_id("folded")
    await expect(folded.locator("summary")).to_have_text(
        "3 more alert(s) here or from the same cause"
    )
    await folded.locator("summary").click()
    await expect(folded.locator("li")).to_have_count(3)
    await expect(folded).to_contain_text("Sensor silent · Humidity inside the cabinet · cab-near")
    await expect(folded).to_contain_text("Door opened · cab-near")
    await expect(phone.get_by_test_id("summary")).to_contain_text("1 open")
