"""The routing file: who hears of which alert change, through which channel, and when.

Modelled on Alertmanager's configuration, so a NOC that knows one reads the other:
``receivers`` (each one channel and its settings), a ``route`` tree whose nodes match
changes on their labels and hand them to a receiver, grouped and paced, and named
``quiet_hours``. YAML, like Alertmanager's file (and PyYAML is already a dependency);
pydantic validates it, and every error names the file, the path in it and the field::

    routes.yaml: route.routes[1].matchers[0]: unknown label 'zone' (ward, severity, …)

Labels of a change: ``ward``, ``severity``, ``type`` (the alert's), ``device``,
``metric`` and ``kind`` (the change: ``raised``, ``cleared``, ``reminder``…).
Matchers are Alertmanager's strings ``label="value"``, ``!=``, ``=~`` (a regular
expression matched against the whole value) and ``!~``.

A change starts at the root (which matches everything) and goes down: at each level the
first child whose matchers all match takes it (``continue: true`` lets the next sibling
try too); a node none of whose children match is where the change ends. Children inherit
``receiver``, ``group_by``, the three intervals, ``quiet_hours`` and
``quiet_min_severity`` unless they set their own. A receiver reached twice by one change
sends it once (in the first route's group).

A receiver's ``lang`` (``vi``, the default, or ``en``) is the language of its messages.

Secrets (bot tokens, access tokens, SMTP passwords) are written as environment
references ``${NAME}`` and read when the file is loaded; a literal secret is refused.
"""

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from alerts.model import SEVERITY_RANK, AlertChange, AlertSeverity
from alerts.notify.i18n import DEFAULT_LANG, HANOI, Lang

LABELS = ("ward", "severity", "type", "device", "metric", "kind")
"""What matchers and ``group_by`` may name."""

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_MATCHER = re.compile(r'^\s*([A-Za-z_]+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')
_TIME_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class RoutesError(ValueError):
    """The routing file is unreadable or invalid; the message says where."""


# ----------------------------------------------------------------------------- values


def parse_duration(value: object) -> float:
    """``"30s"``, ``"5m"``, ``"4h"``, ``"1d"``, ``"1h30m"`` (or a number of seconds) →
    seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value and (m := _DURATION.match(value.strip())):
        d, h, mi, s = (int(g or 0) for g in m.groups())
        seconds = float(((d * 24 + h) * 60 + mi) * 60 + s)
    else:
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 4h or 1h30m")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _secret(value: object, info: Any) -> str:
    if not isinstance(value, str) or not (m := _ENV_REF.match(value.strip())):
        raise ValueError(
            "a secret is never written in the routing file: give an environment "
            "reference such as ${CITYWATCH_TELEGRAM_TOKEN}"
        )
    env: Mapping[str, str] = (info.context or {}).get("env", os.environ)
    name = m.group(1)
    found = env.get(name)
    if not found:
        raise ValueError(f"environment variable {name} is not set (or empty)")
    return found


SecretRef = Annotated[str, BeforeValidator(_secret), Field(repr=False)]
"""A value read from the environment at load time (not shown in ``repr``)."""


def _optional_secret(value: object, info: Any) -> str | None:
    return None if value is None else _secret(value, info)


OptionalSecretRef = Annotated[str | None, BeforeValidator(_optional_secret), Field(repr=False)]


@dataclass(frozen=True, slots=True)
class Matcher:
    """``label op "value"`` (Alertmanager's syntax); regexes match the whole value."""

    label: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        m = _MATCHER.match(text)
        if m is None:
            raise ValueError(
                f'{text!r} is not a matcher such as severity="critical" or ward=~"phuong_.*"'
            )
        label, op, raw = m.groups()
        if label not in LABELS:
            raise ValueError(f"unknown label {label!r} (one of {', '.join(LABELS)})")
        value = re.sub(r"\\(.)", r"\1", raw)
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regular expression {value!r}: {exc}") from None
        return cls(label, op, value, pattern)  # type: ignore[arg-type]

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.label, "")
        if self.pattern is not None:
            hit = self.pattern.fullmatch(got) is not None
            return hit if self.op == "=~" else not hit
        return (got == self.value) if self.op == "=" else (got != self.value)

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


def labels_of(change: AlertChange) -> dict[str, str]:
    """The labels routing matches and groups on."""
    alert = change.alert
    return {
        "ward": change.ward,
        "kind": change.kind.value,
        "severity": alert.severity.value if alert else "",
        "type": alert.type.value if alert else "",
        "device": alert.device if alert else "",
        "metric": alert.metric if alert else "",
    }


# ----------------------------------------------------------------------------- the file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RateLimit(_Strict):
    """At most ``messages`` per ``per`` (a token bucket: a burst of ``messages``, then one
    every ``per / messages``). Messages over the limit wait; none is dropped."""

    messages: int = Field(gt=0)
    per: Duration = Field(gt=0)


class TelegramSettings(_Strict):
    token: SecretRef
    chat_ids: list[str] = Field(min_length=1)
    api_url: str = "https://api.telegram.org"

    @field_validator("chat_ids", mode="before")
    @classmethod
    def _ids_are_text(cls, value: object) -> object:
        return [str(v) for v in value] if isinstance(value, list) else value


class ZaloSettings(_Strict):
    access_token: SecretRef
    user_ids: list[str] = Field(min_length=1)
    api_url: str = "https://openapi.zalo.me"
    retry_codes: list[int] = Field(default_factory=lambda: [-32])

    @field_validator("user_ids", mode="before")
    @classmethod
    def _ids_are_text(cls, value: object) -> object:
        return [str(v) for v in value] if isinstance(value, list) else value


class EmailSettings(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: OptionalSecretRef = None
    sender: str = Field(alias="from", pattern=r".+@.+")
    to: list[Annotated[str, Field(pattern=r".+@.+")]] = Field(min_length=1)

    @model_validator(mode="after")
    def _auth_pair(self) -> "EmailSettings":
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


_DEFAULT_RATE: dict[str, RateLimit] = {
    # Telegram allows about 20 messages a minute into one group; Zalo and SMTP relays
    # have limits of their own: stay well inside them.
    "telegram": RateLimit(messages=20, per=60.0),
    "zalo": RateLimit(messages=20, per=60.0),
    "email": RateLimit(messages=20, per=60.0),
}


class Receiver(_Strict):
    """One named destination: exactly one of ``telegram``, ``zalo``, ``email``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    telegram: TelegramSettings | None = None
    zalo: ZaloSettings | None = None
    email: EmailSettings | None = None
    rate_limit: RateLimit | None = None
    """Default: 20 messages a minute."""
    lang: Lang = DEFAULT_LANG
    """The language of its messages: ``vi`` (the default) or ``en``."""

    @model_validator(mode="after")
    def _one_channel(self) -> "Receiver":
        given = [c for c in ("telegram", "zalo", "email") if getattr(self, c) is not None]
        if len(given) != 1:
            raise ValueError(
                "a receiver has exactly one channel: telegram, zalo or email"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def channel(self) -> str:
        return next(c for c in ("telegram", "zalo", "email") if getattr(self, c) is not None)

    @property
    def limit(self) -> RateLimit:
        return self.rate_limit or _DEFAULT_RATE[self.channel]


class QuietRange(_Strict):
    """Times of day in Hanoi (``"22:00-06:00"`` wraps past midnight), on ``weekdays``
    (default every day; the day is the one the range starts on)."""

    times: list[str] = Field(min_length=1)
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(WEEKDAYS)  # type: ignore[arg-type]
    )

    @field_validator("times")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        for text in value:
            m = _TIME_RANGE.match(text.strip())
            if m is None:
                raise ValueError(f"{text!r} is not a time range such as 22:00-06:00")
            h1, m1, h2, m2 = map(int, m.groups())
            if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
                raise ValueError(f"{text!r} is not a time range such as 22:00-06:00")
            if (h1, m1) == (h2, m2):
                raise ValueError(f"{text!r} is empty: start and end are the same")
        return value

    def covers(self, at: datetime) -> bool:
        """Whether ``at`` (aware) falls in one of the ranges, read in Hanoi time."""
        local = at.astimezone(HANOI)
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        for text in self.times:
            h1, m1, h2, m2 = map(int, text.strip().replace("-", ":").split(":"))
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if start < end:
                if start <= minute < end and WEEKDAYS[day] in self.weekdays:
                    return True
            elif minute >= start:  # the evening part, on the day it starts
                if WEEKDAYS[day] in self.weekdays:
                    return True
            elif minute < end and WEEKDAYS[(day - 1) % 7] in self.weekdays:
                return True  # the morning part: the range began yesterday
        return False


def _check_matcher(text: str) -> str:
    Matcher.parse(text)
    return text


class RouteSpec(_Strict):
    """One node of the route tree, as written (unset fields inherit)."""

    receiver: str | None = None
    matchers: list[Annotated[str, AfterValidator(_check_matcher)]] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    """Labels whose values make a group (``["..."]``: every label, i.e. no grouping)."""
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    quiet_hours: list[str] | None = None
    quiet_min_severity: AlertSeverity | None = None
    routes: list["RouteSpec"] = Field(default_factory=list)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is None or value == ["..."]:
            return value
        for label in value:
            if label not in LABELS:
                raise ValueError(
                    f"unknown label {label!r} (one of {', '.join(LABELS)}, or '...' alone)"
                )
        return value


class RoutesFile(_Strict):
    receivers: list[Receiver] = Field(min_length=1)
    route: RouteSpec
    quiet_hours: dict[str, list[QuietRange]] = Field(default_factory=dict)


# ----------------------------------------------------------------------------- resolved


@dataclass(frozen=True, slots=True)
class Route:
    """A route tree node with everything inherited filled in."""

    path: str
    """``route``, ``route.routes[0]``…: names the node in messages and group keys."""
    receiver: str
    matchers: tuple[Matcher, ...]
    continue_: bool
    group_by: tuple[str, ...] | None
    """``None``: every label (each alert's changes apart)."""
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float
    quiet: tuple[QuietRange, ...]
    quiet_min_severity: AlertSeverity
    routes: tuple["Route", ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def group_key(self, change: AlertChange, labels: Mapping[str, str]) -> tuple[str, ...]:
        if self.group_by is None:
            return (self.path, f"alert={change.alert_id}")
        return (self.path, *(f"{k}={labels[k]}" for k in self.group_by))

    def is_quiet(self, at: datetime, labels: Mapping[str, str]) -> bool:
        """Whether a change with ``labels`` is held back at ``at``: inside quiet hours,
        less severe than ``quiet_min_severity``."""
        if not any(q.covers(at) for q in self.quiet):
            return False
        try:
            severity = AlertSeverity(labels.get("severity", ""))
        except ValueError:
            return True
        return SEVERITY_RANK[severity] < SEVERITY_RANK[self.quiet_min_severity]


@dataclass(frozen=True, slots=True)
class Routes:
    """A validated routing file: receivers by name and the resolved route tree."""

    receivers: Mapping[str, Receiver]
    root: Route
    source: str = "<routes>"

    def match(self, change: AlertChange) -> list[Route]:
        """The routes a change ends at, one per receiver (the first that reaches it)."""
        labels = labels_of(change)
        found: list[Route] = []
        _walk(self.root, labels, found)
        seen: set[str] = set()
        unique = []
        for route in found:
            if route.receiver not in seen:
                seen.add(route.receiver)
                unique.append(route)
        return unique


def _walk(route: Route, labels: Mapping[str, str], found: list[Route]) -> bool:
    if not route.matches(labels):
        return False
    child_hit = False
    for child in route.routes:
        if _walk(child, labels, found):
            child_hit = True
            if not child.continue_:
                break
    if not child_hit:
        found.append(route)
    return True


_ROOT_DEFAULTS: dict[str, Any] = {
    "group_by": ["ward"],
    "group_wait": 30.0,
    "group_interval": 300.0,
    "repeat_interval": 4 * 3600.0,
    "quiet_hours": [],
    "quiet_min_severity": AlertSeverity.CRITICAL,
}
"""Alertmanager's defaults (30 s, 5 min, 4 h), grouping by ward."""


def _resolve(
    spec: RouteSpec,
    parent: dict[str, Any],
    path: str,
    file: RoutesFile,
    errors: list[str],
) -> Route:
    mine = {
        k: getattr(spec, k) if getattr(spec, k) is not None else parent[k]
        for k in (*_ROOT_DEFAULTS, "receiver")
    }
    receivers = {r.name for r in file.receivers}
    if mine["receiver"] is None:
        errors.append(f"{path}.receiver: the root route needs a receiver")
    elif mine["receiver"] not in receivers:
        errors.append(
            f"{path}.receiver: no receiver named {mine['receiver']!r} "
            f"(receivers: {', '.join(sorted(receivers))})"
        )
    for name in spec.quiet_hours or ():
        if name not in file.quiet_hours:
            known = ", ".join(sorted(file.quiet_hours)) or "none defined"
            errors.append(f"{path}.quiet_hours: no quiet_hours named {name!r} ({known})")
    children = tuple(
        _resolve(child, mine, f"{path}.routes[{i}]", file, errors)
        for i, child in enumerate(spec.routes)
    )
    group_by = mine["group_by"]
    return Route(
        path=path,
        receiver=mine["receiver"] or "",
        matchers=tuple(Matcher.parse(m) for m in spec.matchers),
        continue_=spec.continue_,
        group_by=None if group_by == ["..."] else tuple(group_by),
        group_wait_s=mine["group_wait"],
        group_interval_s=mine["group_interval"],
        repeat_interval_s=mine["repeat_interval"],
        quiet=tuple(q for name in mine["quiet_hours"] for q in file.quiet_hours.get(name, ())),
        quiet_min_severity=mine["quiet_min_severity"],
        routes=children,
    )


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("telegram", "zalo", "email") or not part[0].isupper():
            out += f".{part}" if out else part
    return out


def parse_routes(
    data: Mapping[str, Any], *, source: str = "<routes>", env: Mapping[str, str] | None = None
) -> Routes:
    """Validate a routing file's content (``env``: where ``${NAME}`` is looked up,
    default the process environment)."""
    try:
        file = RoutesFile.model_validate(data, context={"env": os.environ if env is None else env})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _where(err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{source}: {where}: {msg}" if where else f"{source}: {msg}")
        raise RoutesError("\n".join(lines)) from None
    errors: list[str] = []
    names = [r.name for r in file.receivers]
    for i, name in enumerate(names):
        if name in names[:i]:
            errors.append(f"receivers[{i}].name: {name!r} is defined twice")
    if file.route.matchers:
        errors.append("route.matchers: the root route matches everything; it takes no matchers")
    if file.route.receiver is None:
        errors.append("route.receiver: the root route needs a receiver")
    root = _resolve(file.route, {**_ROOT_DEFAULTS, "receiver": None}, "route", file, errors)
    if errors:
        raise RoutesError("\n".join(f"{source}: {e}" for e in dict.fromkeys(errors)))
    return Routes({r.name: r for r in file.receivers}, root, source)


def load_routes(path: Path, *, env: Mapping[str, str] | None = None) -> Routes:
    """Read and validate the routing file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise RoutesError(f"{path}: not valid YAML{where}: {exc}") from None
    if not isinstance(data, dict):
        raise RoutesError(f"{path}: expected a mapping with receivers and route")
    return parse_routes(data, source=str(path), env=env)
