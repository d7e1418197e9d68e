"""The crew page speaks Vietnamese first (issue 14, section 2), in headless Chromium.

A browser that asks for Vietnamese, or for a language the page does not speak, gets the
Vietnamese page (``<html lang="vi">``); one that asks for English gets English, and the
switch on the page changes the language and keeps the choice. Wards read by their
Vietnamese names, cards say what is wrong from the alert's fields with the language's
numbers, and no "σ" shows (the detector's sentence stays behind "technical details").
A phone screenshot in Vietnamese is kept in ``artifacts/crew-page-vi.png``.
"""

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from api_harness import open_store, serve, settings
from playwright.async_api import Browser, Page, async_playwright, expect

from alerts.model import Role
from alerts.notify.i18n import HANOI
from alerts.notify.message import describe
from alerts.store import AlertStore
from anomaly import Detector
from anomaly.events import Detection, DetectionKind, Severity
from telemetry.batch import ReadingBatch
from telemetry.catalogue import metric_id

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
PHONE = {"width": 412, "height": 915}
WAIT_MS = 10_000
WARD = "phuong_dinh_cong"
WARD_NAME = "Phường Định Công"
TS_MS = 1_750_000_000_000


@pytest.fixture
def server(tmp_path: Path, influx) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    config = settings(url, influx.url, influx_database=f"crew_{uuid.uuid4().hex[:8]}")
    with serve(config) as base:
        yield url, base


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


async def _alerts(store: AlertStore) -> tuple[str, int, int]:
    """A crew key of the ward, a limit alert (57.5 °C inside a cabinet) and a baseline
    one whose detector sentence has a σ in it."""
    _, key = await store.create_api_key(Role.CREW, [WARD], name="to-dinh-cong")
    ids = []
    for kind, metric, value, explanation in (
        (DetectionKind.LIMIT, "temp_inside", 57.5,
         "temperature inside 57.5 °C, at or above the critical limit 55.0 °C"),
        (DetectionKind.BASELINE, "battery_voltage", 45.2,
         "battery voltage 45.2 V, 6.5σ below this cabinet's recent baseline 53.1 V"),
    ):  # fmt: skip
        changes = await store.apply_detection(
            Detection(
                kind=kind,
                severity=Severity.CRITICAL,  # raised at once (no pending period)
                active=True,
                ward=WARD,
                device=f"cab-{metric}",
                metric=metric,
                value=value,
                start_ms=TS_MS,
                ts_ms=TS_MS,
                score=0.95,
                explanation=explanation,
            )
        )
        ids.append(changes[-1].alert_id)
    return key, ids[0], ids[1]


async def _phone(browser: Browser, base: str, key: str, locale: str, cards: int = 2) -> Page:
    context = await browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale=locale,
        timezone_id="Europe/Paris",  # the page writes Hanoi times wherever the phone is
        base_url=base,
    )
    page = await context.new_page()
    await page.goto("/crew")
    await page.get_by_test_id("token").fill(key)
    await page.get_by_test_id("save-token").click()
    await expect(page.locator("li[data-alert-id]")).to_have_count(cards, timeout=WAIT_MS)
    return page


async def _hanoi_time(store: AlertStore, alert_id: int) -> str:
    opened = (await store.get_alert(alert_id)).alert.opened_at
    return datetime.fromtimestamp(opened / 1000, HANOI).strftime("%H:%M")


def _card(page: Page, alert_id: int):  # type: ignore[no-untyped-def]
    return page.locator(f'li[data-alert-id="{alert_id}"]')


async def test_the_crew_page_is_vietnamese_with_ward_names_and_no_sigma(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    _, base = server
    key, hot, low = await _alerts(store)
    phone = await _phone(browser, base, key, "vi-VN")
    assert await phone.locator("html").get_attribute("lang") == "vi"
    await expect(phone.get_by_test_id("live")).to_have_text("trực tuyến", timeout=WAIT_MS)
    await expect(phone.get_by_test_id("who")).to_have_text(f"to-dinh-cong · {WARD_NAME}")
    await expect(phone.get_by_test_id("summary")).to_have_text("2 đang mở")

    card = _card(phone, hot)
    await expect(card.locator(".what")).to_have_text("Vượt ngưỡng")
    await expect(card.locator(".sev")).to_have_text("khẩn cấp")
    await expect(card.get_by_test_id("why")).to_have_text(
        "Nhiệt độ trong tủ: 57,5 °C, vượt ngưỡng nguy hiểm 55 °C"
    )
    await expect(card.locator(".where")).to_have_text(f"cab-temp_inside · {WARD_NAME}")
    opened = await _hanoi_time(store, hot)  # the phone is in Paris; the page says Hanoi's
    await expect(card.locator(".meta")).to_contain_text(f"mở lúc {opened} (")
    await expect(card.get_by_role("button", name="Nhận việc")).to_be_visible()
    await expect(_card(phone, low).get_by_test_id("why")).to_have_text(
        "Điện áp ắc quy: 45,2 V, khác với bình thường"
    )

    # No σ where a person reads: the detector's sentence waits behind a closed toggle.
    visible = await phone.locator("body").inner_text()
    assert "σ" not in visible
    assert WARD not in visible  # no codename either
    detail = _card(phone, low).get_by_test_id("detail")
    await expect(detail.locator(".explanation")).to_be_hidden()
    await detail.locator("summary").click()
    await expect(detail.locator(".explanation")).to_contain_text("6.5σ below")

    ARTIFACTS.mkdir(exist_ok=True)
    await detail.locator("summary").click()
    await phone.screenshot(path=str(ARTIFACTS / "crew-page-vi.png"))

    # The switch: English at once, kept for the next visit.
    await phone.get_by_test_id("lang").click()
    assert await phone.locator("html").get_attribute("lang") == "en"
    await expect(card.get_by_test_id("why")).to_have_text(
        "Temperature inside the cabinet: 57.5 °C, above the critical limit 55 °C"
    )
    await expect(phone.get_by_test_id("live")).to_have_text("live")
    await expect(card.locator(".where")).to_contain_text(WARD_NAME)  # names stay Vietnamese
    await phone.reload()
    await expect(card.get_by_test_id("why")).to_contain_text("above the critical limit")
    assert await phone.locator("html").get_attribute("lang") == "en"
    await phone.get_by_test_id("lang").click()
    await expect(card.get_by_test_id("why")).to_contain_text("vượt ngưỡng nguy hiểm")


async def test_english_when_the_browser_asks_for_it_vietnamese_otherwise(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    _, base = server
    key, hot, _ = await _alerts(store)
    english = await _phone(browser, base, key, "en-US")
    assert await english.locator("html").get_attribute("lang") == "en"
    await expect(english.get_by_test_id("live")).to_have_text("live", timeout=WAIT_MS)
    await expect(_card(english, hot).locator(".what")).to_have_text("Reading out of limits")
    opened = await _hanoi_time(store, hot)
    await expect(_card(english, hot).locator(".meta")).to_contain_text(f"opened {opened} (")
    await expect(english.get_by_test_id("who")).to_contain_text(WARD_NAME)
    assert "σ" not in await english.locator("body").inner_text()

    other = await _phone(browser, base, key, "fr-FR")  # a language the page does not speak
    assert await other.locator("html").get_attribute("lang") == "vi"
    await expect(_card(other, hot).locator(".what")).to_have_text("Vượt ngưỡng")


async def test_the_key_language_wins_over_the_browser_and_the_switch_over_both(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    """``keys create --lang en``: a Vietnamese phone opens the page in English; a key with
    ``vi`` on an English phone, Vietnamese; the page's switch still has the last word."""
    _, base = server
    _, hot, _ = await _alerts(store)
    _, english_key = await store.create_api_key(Role.CREW, [WARD], name="noc-en", lang="en")
    _, viet_key = await store.create_api_key(Role.CREW, [WARD], name="to-vi", lang="vi")

    phone = await _phone(browser, base, english_key, "vi-VN")
    await expect(phone.get_by_test_id("live")).to_have_text("live", timeout=WAIT_MS)
    assert await phone.locator("html").get_attribute("lang") == "en"
    await expect(_card(phone, hot).locator(".what")).to_have_text("Reading out of limits")
    await expect(_card(phone, hot).get_by_test_id("why")).to_have_text(
        "Temperature inside the cabinet: 57.5 °C, above the critical limit 55 °C"
    )
    await expect(phone.get_by_test_id("logout")).to_have_text("Sign out")
    await phone.get_by_test_id("lang").click()  # the crew's own choice on this phone
    await expect(_card(phone, hot).locator(".what")).to_have_text("Vượt ngưỡng")
    await phone.reload()
    await expect(phone.get_by_test_id("live")).to_have_text("trực tuyến", timeout=WAIT_MS)
    await expect(_card(phone, hot).locator(".what")).to_have_text("Vượt ngưỡng")

    other = await _phone(browser, base, viet_key, "en-US")
    await expect(other.get_by_test_id("live")).to_have_text("trực tuyến", timeout=WAIT_MS)
    assert await other.locator("html").get_attribute("lang") == "vi"
    await expect(_card(other, hot).locator(".what")).to_have_text("Vượt ngưỡng")


async def test_the_catalogue_answers_ward_names_and_units(
    server: tuple[str, str], store: AlertStore
) -> None:
    _, base = server
    key, _, _ = await _alerts(store)
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/catalogue")).status_code == 401
        answer = await client.get("/catalogue", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    body = answer.json()
    assert {"codename": WARD, "name": WARD_NAME} in body["wards"]
    temp = next(m for m in body["metrics"] if m["name"] == "temp_inside")
    assert (temp["unit"], temp["warn_high"], temp["crit_high"]) == ("°C", 45, 55)
    door = next(m for m in body["metrics"] if m["name"] == "door_open")
    assert door["unit"] == ""


MINUTE = 60_000


def _rule_events(device: str, metrics: dict[str, np.ndarray], kind: DetectionKind) -> Detection:
    """The detector's first ``kind`` event for a cabinet fed ``metrics`` minute by minute."""
    detector, n = Detector(), len(next(iter(metrics.values())))
    ids = np.array([metric_id("cabinet", m) for m in metrics], dtype=np.int16)
    for i in range(n):
        batch = ReadingBatch(
            device=np.array([device] * len(metrics), dtype=object),
            ward=np.array([WARD] * len(metrics), dtype=object),
            metric=ids,
            ts_ms=np.full(len(metrics), TS_MS + i * MINUTE, dtype=np.int64),
            value=np.array([float(v[i]) for v in metrics.values()]),
        )
        for event in detector.update(batch).events:
            if event.kind is kind and event.active:
                return event
    raise AssertionError(f"no {kind} from the detector")


async def test_a_rule_alert_shows_its_figures_in_vietnamese(
    server: tuple[str, str], store: AlertStore, browser: Browser
) -> None:
    """Device rules' alerts used to say only what the rule is ("Tủ quá nóng: kiểm tra
    quạt…"): now the detector's rule event carries the reading it judged and what it is
    judged against, through the store and the API to the card."""
    _, base = server
    _, key = await store.create_api_key(Role.CREW, [WARD], name="to-dinh-cong")
    n = 240  # 35 °C for an hour, then +4 °C/h with the fans running: fans failing to cool
    temp = np.r_[np.full(60, 35.0), 35.0 + np.arange(n - 60) * 4.0 / 60]
    heat = _rule_events(
        "cab-nong", {"temp_inside": temp, "fan_rpm": np.full(n, 4200.0)}, DetectionKind.OVERHEATING
    )
    water = np.r_[np.zeros(10), np.full(10, 45.0)]  # 45 mm on the plinth floor
    flood = _rule_events("cab-ngap", {"water_level": water}, DetectionKind.FLOODING)
    now = int(time.time() * 1000)
    await store.apply_detections([heat, flood], now - 2 * MINUTE)
    await store.tick(now)  # overheating waits out its pending minute
    by_device = {a.device: a for a in (await store.list_alerts()).data}
    hot, wet = by_device["cab-nong"], by_device["cab-ngap"]
    assert (hot.device, hot.state.value, wet.device) == ("cab-nong", "active", "cab-ngap")
    assert (hot.value_metric, hot.value, hot.reference_kind) == ("temp_inside", 40.0, "baseline")
    assert (wet.value_metric, wet.value, wet.reference) == ("water_level", 45.0, 30.0)

    phone = await _phone(browser, base, key, "vi-VN")
    await expect(phone.get_by_test_id("live")).to_have_text("trực tuyến", timeout=WAIT_MS)
    card = _card(phone, hot.id)
    await expect(card.locator(".what")).to_have_text("Tủ quá nóng")
    why = "Nhiệt độ trong tủ: 40 °C, cao hơn bình thường 4,9 °C. Kiểm tra quạt và khe thông gió."
    await expect(card.get_by_test_id("why")).to_have_text(why)
    assert describe(hot) == why  # the page and the notifications say the same
    await expect(_card(phone, wet.id).get_by_test_id("why")).to_have_text(
        "Mực nước trong tủ: 45 mm, vượt ngưỡng 30 mm. Có nước vào: kiểm tra tủ hoặc cống cáp."
    )
    assert describe(wet) == await _card(phone, wet.id).get_by_test_id("why").inner_text()
    assert "σ" not in await phone.locator("body").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    await phone.screenshot(path=str(ARTIFACTS / "crew-page-rule-figures-vi.png"))

    await phone.get_by_test_id("lang").click()
    await expect(card.get_by_test_id("why")).to_have_text(
        "Temperature inside the cabinet: 40 °C, 4.9 °C above its usual. Check the fans and vents."
    )
    async with httpx.AsyncClient(base_url=base) as client:  # the API's detail keeps the lot
        detail = await client.get(f"/alerts/{hot.id}", headers={"Authorization": f"Bearer {key}"})
    body = detail.json()
    assert body["value"] == 40.0
    assert body["value_metric"] == "temp_inside"
    assert body["reference_kind"] == "baseline"
    assert abs(body["reference"] - 35.0) < 0.5
    assert "rpm" in body["explanation"]
