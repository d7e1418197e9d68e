"""The crew page on a phone that is sometimes offline (issue 14, section 3), in headless
Chromium driven by Playwright, on a real server, store and InfluxDB (the set-up of
``test_crew_page``): it installs as an app, opens with the last alerts and no network,
queues actions offline and sends each once, rings for new critical alerts, asks a note
before resolving and lets it be undone for a minute, and says nothing of "offline" before
sign-in.

Nothing here waits a fixed time: network changes come from ``context.set_offline``, the
minute to undo from Playwright's clock, notifications from a granted permission.
"""

import asyncio
import json
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import test_crew_page as crew_page
from api_harness import keys, raise_alert
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from alerts.store import AlertStore
from anomaly.events import DetectionKind, Severity

PHONE = crew_page.PHONE
_TWO_FRAMES = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
WAIT_MS = crew_page.WAIT_MS
_card = crew_page._card
# The same real server (uvicorn, SQLite store, influxd), store and Debian Chromium.
server = crew_page.server
store = crew_page.store
browser = crew_page.browser

SPIES = """
window.__calls = { notifications: [], vibrations: [], beeps: 0 };
const show = ServiceWorkerRegistration.prototype.showNotification;
ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
  window.__calls.notifications.push({ title, body: options?.body, tag: options?.tag });
  return show.call(this, title, options);
};
Object.defineProperty(Navigator.prototype, "vibrate", {
  configurable: true,
  value(pattern) { window.__calls.vibrations.push(pattern); return true; },
});
const oscillator = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.__calls.beeps += 1;
  return oscillator.call(this);
};
"""
"""Records notifications, vibrations and beeps (and still shows the notification)."""


async def _context(
    browser: Browser, base: str, *, permissions: list[str] | None = None
) -> BrowserContext:
    return await browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        permissions=permissions or [],
        locale="en-US",  # the English texts; Vietnamese is tested in test_crew_language
        base_url=base,
    )


async def _sign_in(page: Page, key: str) -> None:
    await page.goto("/crew")
    await page.get_by_test_id("token").fill(key)
    await page.get_by_test_id("save-token").click()
    await expect(page.get_by_test_id("live")).to_have_text("live", timeout=WAIT_MS)


async def _controlled(page: Page) -> None:
    """The service worker controls the page and keeps its last answers.

    A page whose navigation began while the worker was still installing can miss
    `clients.claim()` (Chromium claims only clients it already knows); such a page works
    online and is controlled from its next load, so the test opens it again, as a crew
    member's next visit would.
    """
    await page.wait_for_function(
        "async () => (await navigator.serviceWorker.ready).active !== null", timeout=WAIT_MS
    )
    if await page.evaluate("() => navigator.serviceWorker.controller === null"):
        await page.reload()
    await page.wait_for_function(
        "() => navigator.serviceWorker.controller !== null", timeout=WAIT_MS
    )
    await page.wait_for_function(
        """async () => {
          const cache = await caches.open("citywatch-crew-data");
          const urls = (await cache.keys()).map((r) => new URL(r.url).pathname);
          return urls.includes("/me") && urls.includes("/alerts");
        }""",
        timeout=WAIT_MS,
    )


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def _kinds(store: AlertStore, alert_id: int) -> list[str]:
    return [change.kind.value for change in (await store.get_alert(alert_id)).timeline]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_page_installs_as_an_app(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    _, base = server
    crew = await keys(store)
    manifest_response = httpx.get(f"{base}/crew/manifest.webmanifest")
    assert manifest_response.headers["content-type"].startswith("application/manifest+json")
    manifest = manifest_response.json()
    assert manifest["start_url"] == "/crew"
    assert manifest["scope"] == "/crew"
    assert manifest["display"] == "standalone"
    assert manifest["name"]
    assert manifest["short_name"]
    assert manifest["theme_color"] == "#0f172a"
    sizes = set()
    for icon in manifest["icons"]:
        got = httpx.get(base + icon["src"])
        assert got.status_code == 200, icon
        assert got.headers["content-type"].startswith(icon["type"])
        if icon["type"] == "image/png":
            width, height = _png_size(got.content)
            assert icon["sizes"] == f"{width}x{height}"
            sizes.add(width)
    assert {192, 512} <= sizes
    worker = httpx.get(f"{base}/crew/sw.js")
    assert worker.headers["service-worker-allowed"] == "/crew"
    assert "javascript" in worker.headers["content-type"]

    context = await _context(browser, base)
    page = await context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security" in msg.text else None,
    )
    response = await page.goto("/crew")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "manifest-src 'self'" in csp
    assert "worker-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    await _sign_in(page, crew["crew_a"])
    await _controlled(page)
    registration = await page.evaluate(
        """async () => {
          const r = await navigator.serviceWorker.ready;
          return { scope: r.scope, script: r.active.scriptURL };
        }"""
    )
    assert registration == {"scope": f"{base}/crew", "script": f"{base}/crew/sw.js"}
    assert [w.url for w in context.service_workers] == [f"{base}/crew/sw.js"]
    # Chromium's own verdict: the manifest, icons and worker make an installable app.
    cdp = await context.new_cdp_session(page)
    verdict = await cdp.send("Page.getInstallabilityErrors")
    # Playwright's contexts are incognito-like, where Chromium never offers to install.
    errors = [e for e in verdict["installabilityErrors"] if e["errorId"] != "in-incognito"]
    assert errors == []
    manifest_seen = await cdp.send("Page.getAppManifest")
    assert manifest_seen["errors"] == []
    assert violations == []
    await context.close()


async def test_no_offline_before_sign_in(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    _, base = server
    crew = await keys(store)
    context = await _context(browser, base)
    page = await context.new_page()
    await page.goto("/crew")
    await expect(page.get_by_test_id("token")).to_be_visible()
    await expect(page.get_by_test_id("live")).to_be_hidden()
    assert "offline" not in (await page.locator("body").inner_text()).lower()

    # The page opens from the worker's cache with no network, still only asking for a key.
    await page.wait_for_function(
        "() => navigator.serviceWorker.controller !== null", timeout=WAIT_MS
    )
    await context.set_offline(True)
    await page.reload()
    await expect(page.get_by_test_id("token")).to_be_visible()
    await expect(page.get_by_test_id("live")).to_be_hidden()
    assert "offline" not in (await page.locator("body").inner_text()).lower()

    # Signed in, the badge appears; signed out, it goes again.
    await context.set_offline(False)
    await _sign_in(page, crew["crew_a"])
    await page.get_by_test_id("logout").click()
    await expect(page.get_by_test_id("token")).to_be_visible()
    await expect(page.get_by_test_id("live")).to_be_hidden()
    assert "offline" not in (await page.locator("body").inner_text()).lower()
    await context.close()


async def test_offline_the_page_shows_the_last_alerts_and_sends_actions_once_online(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    _, base = server
    crew = await keys(store)
    door = await raise_alert(store, "ward_a", "cab-near")
    cut = await raise_alert(
        store, "ward_a", "cab-far", kind=DetectionKind.CABLE_CUT, severity=Severity.CRITICAL
    )
    context = await _context(browser, base)
    page = await context.new_page()
    await _sign_in(page, crew["crew_a"])
    await expect(page.locator("li[data-alert-id]")).to_have_count(2, timeout=WAIT_MS)
    await _controlled(page)

    # No network: the page reloads from the phone, with the last alerts and saying so.
    await context.set_offline(True)
    await page.reload()
    await expect(page.locator("li[data-alert-id]")).to_have_count(2, timeout=WAIT_MS)
    await expect(_card(page, door)).to_contain_text("Door opened")
    await expect(page.get_by_test_id("notice")).to_contain_text(
        "No network: showing the alerts saved at", timeout=WAIT_MS
    )
    await expect(page.get_by_test_id("live")).to_have_text("offline", timeout=WAIT_MS)

    # An action taken offline waits on the phone, in words, and its button says why.
    await _card(page, door).get_by_role("button", name="Acknowledge").click()
    pending = _card(page, door).get_by_test_id("pending")
    await expect(pending).to_have_text("Acknowledge: will send when online", timeout=WAIT_MS)
    await expect(_card(page, door).locator("button.ack")).to_be_disabled()
    await expect(_card(page, door).get_by_test_id("blocked")).to_contain_text(
        "Acknowledge is waiting to be sent."
    )
    await expect(page.get_by_test_id("summary")).to_contain_text("1 waiting to send")
    assert "failed to fetch" not in (await page.locator("body").inner_text()).lower()
    queued = json.loads(await page.evaluate("localStorage.getItem('citywatch.crew.queue')") or "[]")
    assert [(op["alertId"], op["action"]) for op in queued] == [(door, "ack")]
    assert "cw_" not in json.dumps(queued)  # no key in the queue
    assert not (await store.get_alert(door)).alert.acknowledged
    crew_page.ARTIFACTS.mkdir(exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(crew_page.ARTIFACTS / "crew-page-offline.png"))

    # Online again: sent once, and the page is live with fresh data.
    await context.set_offline(False)
    await expect(page.get_by_test_id("live")).to_have_text("live", timeout=WAIT_MS)
    await expect(pending).to_be_empty(timeout=WAIT_MS)
    await expect(_card(page, door).locator(".meta")).to_contain_text("acknowledged by crew-a")
    await expect(page.get_by_test_id("notice")).to_be_hidden()
    detail = await store.get_alert(door)
    assert detail.alert.acknowledged_by == "crew-a"
    assert (await _kinds(store, door)).count("acknowledged") == 1
    assert await page.evaluate("localStorage.getItem('citywatch.crew.queue')") == "[]"

    # An answer lost on the way back (the server acted; the phone heard nothing): the page
    # keeps the action and sends it again with the same Idempotency-Key, a no-op.
    lost: list[str] = []

    async def lose_the_answer(route: Route) -> None:
        if lost:
            await route.continue_()
            return
        response = await route.fetch()
        lost.append(route.request.headers.get("idempotency-key", ""))
        assert response.ok
        await route.abort("internetdisconnected")

    await context.route("**/alerts/*/comment", lose_the_answer)
    await _card(page, cut).get_by_role("button", name="On site").click()
    await expect(_card(page, cut).get_by_test_id("pending")).to_have_text(
        "On site: will send when online", timeout=WAIT_MS
    )
    assert lost
    assert lost[0]
    assert [c.text for c in (await store.get_alert(cut)).comments] == ["On site"]
    await context.set_offline(True)  # the phone notices the network again...
    await context.set_offline(False)
    await expect(_card(page, cut).get_by_test_id("pending")).to_be_empty(timeout=WAIT_MS)
    await expect(_card(page, cut).locator(".meta")).to_contain_text("on it: crew-a")
    detail = await store.get_alert(cut)
    assert [c.text for c in detail.comments] == ["On site"]
    kinds = await _kinds(store, cut)
    assert kinds.count("commented") == 1
    assert kinds.count("assigned") == 1
    assert kinds.count("acknowledged") == 1
    await context.close()


async def test_a_list_answered_before_an_action_does_not_undo_it(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    """Back online, the page asks for the alert list and sends the action that waited, at
    once. A list the server answered before the action, arriving after the action's
    answer, must not show the alert as not acknowledged again (it did, until the next
    change: the card kept "opened" with the acknowledgement sent)."""
    _, base = server
    crew = await keys(store)
    door = await raise_alert(store, "ward_a", "cab-list-race")
    context = await _context(browser, base)
    page = await context.new_page()
    await _sign_in(page, crew["crew_a"])
    await _controlled(page)
    await expect(_card(page, door)).to_be_visible(timeout=WAIT_MS)
    await context.set_offline(True)
    await page.reload()
    await expect(page.get_by_test_id("live")).to_have_text("offline", timeout=WAIT_MS)
    await _card(page, door).get_by_role("button", name="Acknowledge").click()
    pending = _card(page, door).get_by_test_id("pending")
    await expect(pending).to_have_text("Acknowledge: will send when online", timeout=WAIT_MS)

    seen = await page.evaluate("() => state.lastEventId")
    held: list[str] = []
    handed: list[str] = []

    async def sent() -> bool:
        return await page.evaluate("localStorage.getItem('citywatch.crew.queue')") == "[]"

    async def streamed() -> bool:  # the stream spoke since (ready, or the change itself)
        return bool(await page.evaluate(f"() => state.lastEventId !== {json.dumps(seen)}"))

    async def stale_list(route: Route) -> None:
        response = await route.fetch()  # answered now: before the acknowledgement
        held.append(route.request.url)
        await _eventually(sent, "the acknowledgement answered")  # ... and handed over after
        await _eventually(streamed, "the acknowledgement streamed")  # ... even the stream's
        await route.fulfill(response=response)
        handed.append(route.request.url)

    async def lists_read() -> bool:  # every held list handed over, and the page done with it
        if not held or len(handed) < len(held):
            return False
        await page.evaluate(_TWO_FRAMES)  # the answer read and the page drawn
        return bool(await page.evaluate("() => !state.listing || state.listing.size === 0"))

    await context.route("**/alerts?state=active*", stale_list)
    await context.set_offline(False)
    await expect(pending).to_be_empty(timeout=WAIT_MS)
    await _eventually(lists_read, "the lists held back until the action was answered")
    meta = await _card(page, door).locator(".meta").inner_text()
    assert "acknowledged by crew-a" in meta, meta
    assert (await store.get_alert(door)).alert.acknowledged_by == "crew-a"
    await context.close()


async def test_a_new_critical_alert_rings_vibrates_and_notifies(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    _, base = server
    crew = await keys(store)

    # Without permission the page offers to turn alarms on (a tap: a user gesture), and
    # says so when the browser blocks notifications.
    context = await _context(browser, base)
    page = await context.new_page()
    await _sign_in(page, crew["crew_a"])
    setup = page.get_by_test_id("alarm-setup")
    await expect(setup).to_be_visible()
    if await page.evaluate("() => Notification.permission") == "denied":
        await setup.click()
        await expect(page.get_by_role("alert").first).to_contain_text(
            "Notifications are blocked for this page"
        )
    await context.grant_permissions(["notifications"])
    await setup.click()
    await expect(setup).to_be_hidden()
    await context.close()

    context = await _context(browser, base, permissions=["notifications"])
    await context.add_init_script(SPIES)
    page = await context.new_page()
    await _sign_in(page, crew["crew_a"])
    await expect(page.get_by_test_id("alarm-setup")).to_be_hidden()
    await page.evaluate("navigator.serviceWorker.ready")

    calls = "window.__calls"
    minor = await raise_alert(store, "ward_a", "cab-near")  # major: no alarm
    await expect(_card(page, minor)).to_be_visible(timeout=WAIT_MS)
    elsewhere = await raise_alert(
        store, "ward_b", "cab-b1", kind=DetectionKind.CABLE_CUT, severity=Severity.CRITICAL
    )
    cut = await raise_alert(
        store,
        "ward_a",
        "cab-far",
        kind=DetectionKind.CABLE_CUT,
        severity=Severity.CRITICAL,
        explanation="signal lost on the feeder",
    )
    await page.wait_for_function(f"() => {calls}.notifications.length > 0", timeout=WAIT_MS)
    await expect(_card(page, cut)).to_be_visible()
    await expect(_card(page, elsewhere)).to_have_count(0)
    recorded: dict[str, Any] = await page.evaluate(calls)
    assert recorded["notifications"] == [
        {
            "title": "Critical: Cable cut",
            "body": "No light through the segment: cable cut or crushed.\ncab-far · ward_a",
            "tag": f"citywatch-alert-{cut}",
        }
    ]
    assert recorded["vibrations"] == [[400, 150, 400, 150, 400]]
    assert recorded["beeps"] == 3
    # The system shows it a moment after the call: wait for it, then check it is the one.
    shown_js = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
        .map((n) => n.tag)"""
    await page.wait_for_function(f"async () => (await ({shown_js})()).length > 0", timeout=WAIT_MS)
    shown = await page.evaluate(shown_js)
    assert shown == [f"citywatch-alert-{cut}"]

    # In the background. Headless Chromium keeps every page "visible", so the page is told
    # it is hidden as a browser tells it (visibilityState and the event): the page does not
    # stop listening, and the notification goes through the service worker's registration.
    await page.evaluate(
        """() => {
          Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
          Object.defineProperty(document, "hidden", { get: () => true });
          document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    flood = await raise_alert(
        store, "ward_a", "cab-near", kind=DetectionKind.FLOODING, severity=Severity.CRITICAL
    )
    await page.wait_for_function(f"() => {calls}.notifications.length > 1", timeout=WAIT_MS)
    recorded = await page.evaluate(calls)
    assert recorded["notifications"][1]["tag"] == f"citywatch-alert-{flood}"
    assert len(recorded["vibrations"]) == 2
    await context.close()


async def test_resolve_asks_a_note_and_can_be_undone_for_a_minute(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    _, base = server
    crew = await keys(store)
    alert = await raise_alert(store, "ward_a", "cab-near")
    context = await _context(browser, base)
    page = await context.new_page()
    await page.clock.install()
    resolves: list[str] = []
    page.on(
        "request",
        lambda r: resolves.append(r.url) if r.method == "POST" and "/resolve" in r.url else None,
    )
    await _sign_in(page, crew["crew_a"])
    card = _card(page, alert)

    # A note is required.
    await card.get_by_role("button", name="Resolved").click()
    dialog = page.get_by_test_id("resolve-dialog")
    await expect(dialog).to_be_visible()
    await page.get_by_test_id("resolve-confirm").click()
    await expect(dialog).to_contain_text("Write a short note of what was done first.")
    await expect(dialog).to_be_visible()

    # Resolved, then undone within the minute: nothing is sent.
    await page.get_by_test_id("resolve-note").fill("door switch replaced")
    await page.get_by_test_id("resolve-confirm").click()
    await expect(dialog).to_be_hidden()
    undo = card.get_by_test_id("undo")
    await expect(undo).to_contain_text("Resolved: sent in 60 s unless you undo.")
    await expect(card.locator("button.resolve")).to_be_disabled()
    await page.clock.fast_forward(30_000)
    await expect(undo).to_contain_text("sent in 30 s")
    await undo.get_by_role("button", name="Undo").click()
    await expect(undo).to_be_hidden()
    await expect(card.locator("button.resolve")).to_be_enabled()
    await page.clock.fast_forward(61_000)
    await expect(card).to_be_visible()
    assert resolves == []
    assert "resolved" not in await _kinds(store, alert)

    # Resolved and left alone: sent once the minute is over, with its note.
    await card.get_by_role("button", name="Resolved").click()
    await page.get_by_test_id("resolve-note").fill("door switch replaced")
    await page.get_by_test_id("resolve-confirm").click()
    await expect(undo).to_be_visible()
    await page.clock.fast_forward(59_000)
    await expect(undo).to_contain_text("sent in 1 s")
    assert resolves == []
    await page.clock.fast_forward(2_000)
    await expect(card).to_have_count(0, timeout=WAIT_MS)
    assert len(resolves) == 1
    detail = await store.get_alert(alert)
    assert detail.alert.cleared_at is not None
    assert [c.detail for c in detail.timeline if c.kind.value == "resolved"] == [
        "door switch replaced"
    ]
    await context.close()


async def test_buttons_say_why_they_cannot_act(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    _, base = server
    crew = await keys(store)
    alert = await raise_alert(store, "ward_a", "cab-near")
    context = await _context(browser, base)

    # An admin key reads but does not act.
    admin = await context.new_page()
    await _sign_in(admin, crew["admin"])
    card = _card(admin, alert)
    for name in ("Acknowledge", "On site", "Resolved"):
        await expect(card.get_by_role("button", name=name)).to_be_disabled()
    await expect(card.get_by_test_id("blocked")).to_have_text(
        "Your key (admin) can read alerts but not act on them."
    )
    await admin.get_by_test_id("logout").click()

    # A crew that is already on site.
    page = admin
    await _sign_in(page, crew["crew_a"])
    await card.get_by_role("button", name="On site").click()
    await expect(card.get_by_test_id("blocked")).to_have_text(
        "You are already on site.", timeout=WAIT_MS
    )
    await expect(card.get_by_role("button", name="On site")).to_be_disabled()
    await expect(card.get_by_role("button", name="Acknowledged")).to_be_disabled()
    assert await card.get_by_role("button", name="On site").get_attribute("title") == (
        "You are already on site."
    )
    await context.close()
