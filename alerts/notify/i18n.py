"""Languages of the texts a person reads: Vietnamese first, English available.

The smallest design that uses the ecosystem's tools and nothing of our own making:

- Wording is English in the source, marked for gettext (``_("…")``, ``ngettext``, and
  ``N_`` for tables), and translated in a standard gettext catalogue,
  ``alerts/notify/locale/vi/LC_MESSAGES/citywatch.po``. Python's :mod:`gettext` reads the
  compiled ``.mo`` next to it; English is the source itself (:class:`gettext.NullTranslations`).
- The ``.mo`` is compiled by Babel and committed, so an installed wheel needs no build
  step; ``tests/unit/test_i18n.py`` fails when the ``.po`` and the ``.mo`` differ, or when
  a marked text has no translation (``make i18n`` re-extracts, updates and compiles).
- Numbers, durations and times go through Babel with the language's conventions
  (``48,5 °C`` in Vietnamese) and the ``Asia/Ho_Chi_Minh`` time zone.

A language is chosen where a text is rendered (a receiver's ``lang`` in the routing file;
:data:`DEFAULT_LANG` when none is set).
"""

import gettext
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_time, format_timedelta
from babel.numbers import format_decimal

from alerts.model import LANGS, Lang  # the languages are the model's (an API key has one)

__all__ = [
    "DEFAULT_LANG",
    "DOMAIN",
    "HANOI",
    "LANGS",
    "LOCALE_DIR",
    "N_",
    "Lang",
    "clock",
    "duration",
    "hanoi_tz",
    "number",
    "translations",
]

DEFAULT_LANG: Lang = "vi"
DOMAIN = "citywatch"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def hanoi_tz() -> tzinfo:
    """``Asia/Ho_Chi_Minh``; UTC+7 where the system has no time-zone data (Vietnam has
    kept UTC+7 without daylight saving since 1975)."""
    try:
        return ZoneInfo("Asia/Ho_Chi_Minh")
    except ZoneInfoNotFoundError:  # pragma: no cover - a slim image without tzdata
        return timezone(timedelta(hours=7), "ICT")


HANOI = hanoi_tz()


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for a marker
    """Marks ``message`` for extraction; it is translated where it is used."""
    return message


@cache
def translations(lang: Lang) -> gettext.NullTranslations:
    """The catalogue of ``lang`` (English: the source texts)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r} (one of {', '.join(LANGS)})")
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])


def number(value: float, lang: Lang, *, digits: int = 1) -> str:
    """``48,5`` / ``48.5``: at most ``digits`` decimals, none when they are zero."""
    pattern = "#,##0" + ("." + "#" * digits if digits > 0 else "")
    return format_decimal(value, format=pattern, locale=lang)


def clock(at_ms: int, lang: Lang) -> str:
    """``14:05`` in Hanoi time."""
    at = datetime.fromtimestamp(at_ms / 1000, UTC)
    return format_time(at, "HH:mm", tzinfo=HANOI, locale=lang)


def duration(ms: int, lang: Lang) -> str:
    """``15 phút`` / ``15 minutes``, ``2 giờ`` / ``2 hours``."""
    return format_timedelta(
        timedelta(milliseconds=max(ms, 0)), threshold=1.5, format="long", locale=lang
    )
