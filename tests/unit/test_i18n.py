"""Notification texts in Vietnamese (the default) and English: gettext catalogues that
are complete and compiled, Babel's numbers and Hanoi times, words a lineman reads (no σ),
and the receiver's ``lang`` in the routing file."""

import dataclasses
import io
import string
from datetime import datetime

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from channel_helpers import ENV, change

from alerts.model import AlertChange, ChangeKind
from alerts.notify.i18n import HANOI, LOCALE_DIR, number, translations
from alerts.notify.message import describe, render, render_group
from alerts.notify.routing import parse_routes
from anomaly.events import DetectionKind, Reference, Severity
from telemetry.wards import display_name

PO = LOCALE_DIR / "vi" / "LC_MESSAGES" / "citywatch.po"
MESSAGE_PY = LOCALE_DIR.parent / "message.py"
NOON_HANOI = int(datetime(2025, 6, 16, 12, 5, tzinfo=HANOI).timestamp() * 1000)


def _reading(type: DetectionKind, metric: str, value: float | None, **kw: object) -> AlertChange:
    c = change(1, type=type, at_ms=NOON_HANOI, **kw)  # type: ignore[arg-type]
    assert c.alert is not None
    alert = dataclasses.replace(
        c.alert, metric=metric, value=value, explanation="temp 6.5σ above baseline"
    )
    return dataclasses.replace(c, alert=alert)


# ----------------------------------------------------------------------------- catalogues


def test_every_marked_text_has_a_vietnamese_translation() -> None:
    with PO.open("rb") as f:
        catalog = read_po(f)
    marked = {
        msgid if isinstance(msgid, str) else msgid[0]
        for _, msgid, _, _ in extract_from_file("python", MESSAGE_PY)
    }
    assert marked, "nothing extracted"
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0]): m for m in catalog if m.id and m.string
    }
    missing = sorted(marked - set(translated))
    assert not missing, f"not in {PO.name} (run make i18n, then translate): {missing}"
    fuzzy = sorted(k for k, m in translated.items() if m.fuzzy)
    assert not fuzzy, f"fuzzy translations: {fuzzy}"
    empty = [m.id for m in catalog if m.id and not all(m.string)]
    assert not empty
    for m in catalog:  # every {placeholder} of the source is in the translation
        if m.id:
            source = m.id if isinstance(m.id, str) else m.id[0]
            texts = [m.string] if isinstance(m.string, str) else list(m.string)
            for text in texts:
                assert sorted(_fields(text)) == sorted(_fields(source)), source


def _fields(text: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


def test_the_compiled_catalogue_is_the_po_file() -> None:
    with PO.open("rb") as f:
        catalog = read_po(f)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    committed = PO.with_suffix(".mo").read_bytes()
    assert committed == compiled.getvalue(), "citywatch.mo is stale: run make i18n"


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        translations("fr")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- texts


def test_messages_are_vietnamese_by_default_with_ward_names_and_hanoi_time() -> None:
    message = render(
        _reading(DetectionKind.LIMIT, "temp_inside", 48.0, severity=Severity.CRITICAL),
        display_name,
    )
    assert message.subject == "MỚI: Vượt ngưỡng (khẩn cấp) — Phường Hoàng Mai"
    lines = message.text.splitlines()
    assert lines == [
        "Phường Hoàng Mai · cab_1",
        "Nhiệt độ trong tủ: 48 °C, vượt ngưỡng cảnh báo 45 °C",
        "12:05 · cảnh báo #1",  # 05:05 UTC
    ]
    assert "σ" not in message.text
    assert "Detector" not in message.text


def test_english_is_available_and_keeps_the_detectors_sentence() -> None:
    message = render(
        _reading(DetectionKind.LIMIT, "temp_inside", 57.25, severity=Severity.CRITICAL),
        display_name,
        "en",
    )
    assert message.subject == "NEW: Reading out of limits (critical) — Phường Hoàng Mai"
    assert message.text.splitlines()[1:] == [
        "Temperature inside the cabinet: 57.2 °C, above the critical limit 55 °C",
        "Detector: temp 6.5σ above baseline",
        "12:05 · alert #1",
    ]


def test_numbers_follow_the_language() -> None:
    assert number(1234.56, "vi") == "1.234,6"
    assert number(1234.56, "en") == "1,234.6"
    assert number(48.0, "vi") == "48"
    alert = _reading(DetectionKind.BASELINE, "optical_loss", 4.25).alert
    assert alert is not None
    assert describe(alert, "vi") == "Suy hao quang: 4,2 dB, khác với bình thường"
    assert describe(alert, "en") == "Optical loss: 4.2 dB, not its usual"


@pytest.mark.parametrize(
    ("type", "metric", "value", "vi"),
    [
        (DetectionKind.LIMIT, "battery_soc", 15.0, "Dung lượng ắc quy: 15 %, dưới ngưỡng nguy hiểm 20 %"),  # noqa: E501
        (DetectionKind.LIMIT, "door_open", 1.0, "Cửa tủ: mở, ngoài ngưỡng cho phép"),
        (DetectionKind.FLATLINE, "humidity", 71.0, "Độ ẩm trong tủ đứng yên ở 71 %RH: cảm biến có thể bị treo"),  # noqa: E501
        (DetectionKind.DROPOUT, "fan_rpm", None, "Không nhận được số đo tốc độ quạt: thiết bị, nguồn điện hay đường truyền có sự cố?"),  # noqa: E501
        (DetectionKind.OFFLINE, "", None, "Thiết bị ngừng gửi dữ liệu: mất nguồn hay mất đường truyền?"),  # noqa: E501
        (DetectionKind.OVERHEATING, "", None, "Tủ quá nóng: kiểm tra quạt và khe thông gió."),
    ],
)  # fmt: skip
def test_the_main_line_is_written_from_the_alerts_fields(
    type: DetectionKind, metric: str, value: float | None, vi: str
) -> None:
    alert = _reading(type, metric, value).alert
    assert alert is not None
    assert describe(alert) == vi
    assert "σ" not in describe(alert, "en")


def test_a_group_in_vietnamese_counts_in_words_and_spans_hanoi_times() -> None:
    changes = [
        dataclasses.replace(change(i, device=f"cab_{i}"), at_ms=NOON_HANOI + i * 60_000)
        for i in range(1, 4)
    ]
    changes.append(dataclasses.replace(change(4, ward="phuong_ba_dinh"), at_ms=NOON_HANOI))
    changes.append(dataclasses.replace(change(5, kind=ChangeKind.CLEARED), at_ms=NOON_HANOI))
    message = render_group(changes, display_name)
    assert message.subject == "5 thay đổi cảnh báo — 2 phường/xã (4 mới, 1 đã hết)"
    lines = message.text.splitlines()
    assert lines[0] == "MỚI: Ngập nước (nghiêm trọng) cab_1 — Phường Hoàng Mai"
    assert lines[-1] == "12:05–12:08"
    english = render_group(changes, display_name, "en")
    assert english.subject == "5 alert changes — 2 wards (4 new, 1 cleared)"


def test_reminders_and_notes_read_in_the_language() -> None:
    base = change(1, at_ms=NOON_HANOI)
    later = NOON_HANOI + 45 * 60_000
    reminder = dataclasses.replace(base, kind=ChangeKind.REMINDER, at_ms=later, detail="x")
    assert "đã mở 45 phút" in render(reminder).text.splitlines()
    assert "open for 45 minutes" in render(reminder, lang="en").text.splitlines()
    note = dataclasses.replace(
        base, kind=ChangeKind.RESOLVED, detail="Đã thay quạt", actor="to-3", at_ms=later
    )
    text = render(note).text.splitlines()
    assert text[1:3] == ["Đã thay quạt", "bởi to-3"]
    assert render(note).subject.startswith("ĐÃ XỬ LÝ: Ngập nước")


# ----------------------------------------------------------------------------- routing


def test_a_receiver_speaks_vietnamese_unless_its_file_says_english() -> None:
    data = {
        "receivers": [
            {"name": "noc", "email": {"host": "smtp.x", "from": "a@x.vn", "to": ["b@x.vn"]},
             "lang": "en"},
            {"name": "tg", "telegram": {"token": "${CW_TG_TOKEN}", "chat_ids": [-100]}},
        ],
        "route": {"receiver": "tg"},
    }  # fmt: skip
    tree = parse_routes(data, env=ENV)
    assert tree.receivers["noc"].lang == "en"
    assert tree.receivers["tg"].lang == "vi"
    data["receivers"][0]["lang"] = "fr"  # type: ignore[index]
    with pytest.raises(ValueError, match="lang"):
        parse_routes(data, env=ENV)


def _figures(
    type: DetectionKind,
    value_metric: str,
    value: float | None,
    reference: float | None,
    kind: Reference | None,
    metric: str = "",
) -> AlertChange:
    """A rule alert (no metric of its own) with the figures its detection carried."""
    c = _reading(type, metric, value)
    assert c.alert is not None
    alert = dataclasses.replace(
        c.alert, value_metric=value_metric, reference=reference, reference_kind=kind
    )
    return dataclasses.replace(c, alert=alert)


@pytest.mark.parametrize(
    ("type", "value_metric", "value", "reference", "kind", "vi", "en"),
    [
        (DetectionKind.OVERHEATING, "temp_inside", 48.0, 38.0, Reference.BASELINE,
         "Nhiệt độ trong tủ: 48 °C, cao hơn bình thường 10 °C. Kiểm tra quạt và khe thông gió.",
         "Temperature inside the cabinet: 48 °C, 10 °C above its usual. Check the fans and vents."),
        (DetectionKind.FLOODING, "water_level", 45.0, 30.0, Reference.LIMIT,
         "Mực nước trong tủ: 45 mm, vượt ngưỡng 30 mm. Có nước vào: kiểm tra tủ hoặc cống cáp.",
         "Water in the cabinet: 45 mm, above the limit 30 mm. Water has got in: check the "
         "cabinet or the duct."),
        (DetectionKind.FLOODING, "moisture", 37.0, 15.0, Reference.BASELINE,
         "Độ ẩm trong cống cáp: 37 %, cao hơn bình thường 22 %. Có nước vào: kiểm tra tủ hoặc "
         "cống cáp.",
         "Duct moisture: 37 %, 22 % above its usual. Water has got in: check the cabinet or "
         "the duct."),
        (DetectionKind.POWER_LOSS, "battery_soc", 62.0, -8.0, Reference.TREND,
         "Dung lượng ắc quy: 62 %, giảm 8 % mỗi giờ. Mất điện lưới: tủ đang chạy bằng ắc quy.",
         "Battery charge: 62 %, falling 8 % an hour. Mains lost: the cabinet runs on its battery."),
        (DetectionKind.POWER_LOSS, "battery_soc", 62.0, None, None,
         "Dung lượng ắc quy: 62 %. Mất điện lưới: tủ đang chạy bằng ắc quy.",
         "Battery charge: 62 %. Mains lost: the cabinet runs on its battery."),
        (DetectionKind.FIBRE_DEGRADATION, "optical_loss", 4.2, 0.02, Reference.TREND,
         "Suy hao quang: 4,2 dB, tăng 0,48 dB mỗi ngày. Sợi quang hoặc mối hàn đang xuống cấp.",
         "Optical loss: 4.2 dB, rising 0.48 dB a day. Fibre or splice degrading."),
        (DetectionKind.CABLE_CUT, "strain", 2600.0, 1500.0, Reference.LIMIT,
         "Lực căng cáp: 2.600 µε, vượt ngưỡng 1.500 µε. Mất ánh sáng qua đoạn cáp: cáp bị đứt "
         "hoặc bị đè bẹp.",
         "Cable strain: 2,600 µε, above the limit 1,500 µε. No light through the segment: "
         "cable cut or crushed."),
        (DetectionKind.AREA_OUTAGE, "", 12.0, 40.0, Reference.TOTAL,
         "12 trong số 40 tủ của phường cùng chạy ắc quy: mất điện cả khu vực.",
         "12 of 40 cabinets in the ward on battery at once: area power outage."),
        (DetectionKind.INTRUSION, "door_open", 1.0, None, None,  # a state, not a figure
         "Cửa tủ bị mở ngoài giờ làm việc.",
         "The cabinet door was opened outside working hours."),
    ],
)  # fmt: skip
def test_a_rule_alert_says_its_figure_and_what_it_is_judged_against(
    type: DetectionKind,
    value_metric: str,
    value: float | None,
    reference: float | None,
    kind: Reference | None,
    vi: str,
    en: str,
) -> None:
    alert = _figures(type, value_metric, value, reference, kind).alert
    assert alert is not None
    assert describe(alert) == vi
    assert describe(alert, "en") == en


def test_an_area_outage_by_silence_does_not_read_as_one_on_battery() -> None:
    counted = _figures(DetectionKind.AREA_OUTAGE, "", 12.0, 40.0, Reference.TOTAL, "offline")
    assert counted.alert is not None
    assert describe(counted.alert) == (
        "12 trong số 40 thiết bị của phường cùng mất kết nối: mất điện hoặc mất đường truyền "
        "cả khu vực."
    )
    bare = _figures(DetectionKind.AREA_OUTAGE, "", None, None, None, "offline")
    assert bare.alert is not None
    assert "ắc quy" not in describe(bare.alert)


@pytest.mark.parametrize(
    ("type", "metric", "value", "reference", "vi"),
    [
        (DetectionKind.BASELINE, "battery_voltage", 45.2, 53.1,
         "Điện áp ắc quy: 45,2 V, thấp hơn bình thường 7,9 V"),
        (DetectionKind.TIME_OF_DAY, "temp_inside", 41.0, 33.0,
         "Nhiệt độ trong tủ: 41 °C, cao hơn mọi ngày vào giờ này 8 °C"),
        (DetectionKind.LEVEL_SHIFT, "mains_voltage", 150.0, 230.0,
         "Điện áp lưới: 150 V, thay đổi đột ngột so với mức 230 V trước đó"),
    ],
)  # fmt: skip
def test_statistical_alerts_say_how_far_from_the_usual_in_units_not_sigma(
    type: DetectionKind, metric: str, value: float, reference: float, vi: str
) -> None:
    alert = _figures(type, metric, value, reference, Reference.BASELINE, metric).alert
    assert alert is not None
    assert describe(alert) == vi
    assert "σ" not in describe(alert, "en")


def test_a_rule_notification_carries_its_figure_in_both_languages() -> None:
    rule = _figures(DetectionKind.OVERHEATING, "temp_inside", 48.0, 38.0, Reference.BASELINE)
    vi = render(rule, display_name)
    assert vi.subject == "MỚI: Tủ quá nóng (nghiêm trọng) — Phường Hoàng Mai"
    assert vi.text.splitlines()[1] == (
        "Nhiệt độ trong tủ: 48 °C, cao hơn bình thường 10 °C. Kiểm tra quạt và khe thông gió."
    )
    en = render(rule, display_name, "en").text.splitlines()
    assert en[1] == (
        "Temperature inside the cabinet: 48 °C, 10 °C above its usual. Check the fans and vents."
    )
    assert en[2].startswith("Detector: ")  # the statistics stay for the NOC, in English
