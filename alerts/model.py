"""The alert layer's value types: keys, states, changes, silences, incidents.

Times are epoch milliseconds (``int``) everywhere: the pure core never reads a clock, the
store is handed one. Records are frozen dataclasses so that the API layer can build its
response schemas from them (``from_attributes``) and tests can compare them whole.

A record's fields are declared once, here: the store maps each field to the table column
of the same name (or the one its :func:`meta` names; a nested record such as
:class:`AlertKey` spreads over its fields' columns), and the API derives its alert schema
from :class:`Alert`, descriptions included. Adding a field to an alert means adding it to
:class:`AlertState` (what the lifecycle keeps) and, if it is served, to :class:`Alert`,
plus its column (a migration and ``alerts.schema``).
"""

import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, get_args

import re2

from anomaly.events import DetectionKind, Reference, Severity

AlertType = DetectionKind
"""Alert types are the detection kinds (aliased here so the API need not import anomaly)."""
AlertSeverity = Severity
"""Alert severities are the detection severities (same reason)."""
ReferenceKind = Reference
"""What an alert's ``reference`` figure is (same reason)."""

SEVERITY_RANK: dict[Severity, int] = {
    Severity.WARNING: 0,
    Severity.MINOR: 1,
    Severity.MAJOR: 2,
    Severity.CRITICAL: 3,
}
"""Higher is more urgent."""

Lang = Literal["vi", "en"]
"""The languages a person can read citywatch in: Vietnamese (the default) and English."""
LANGS: tuple[Lang, ...] = get_args(Lang)


def parse_lang(value: str) -> Lang:
    """``vi`` or ``en`` (any case, spaces around ignored); anything else is refused with
    a :class:`ValueError` that names the value and what is accepted."""
    given = value.strip().lower()
    for lang in LANGS:
        if given == lang:
            return lang
    raise ValueError(f"unknown language {value!r}: use vi (Vietnamese) or en (English)")


AREA_TYPES: frozenset[DetectionKind] = frozenset({DetectionKind.AREA_OUTAGE})
"""Alert types keyed by ward (no device)."""

DEVICE_LEVEL_TYPES: frozenset[DetectionKind] = frozenset(
    {
        DetectionKind.OVERHEATING,
        DetectionKind.POWER_LOSS,
        DetectionKind.FLOODING,
        DetectionKind.INTRUSION,
        DetectionKind.CABLE_CUT,
        DetectionKind.FIBRE_DEGRADATION,
        DetectionKind.OFFLINE,
    }
)
"""Alert types about a whole device: the metric is not part of their key."""


def meta(*, column: str | None = None, description: str | None = None) -> dict[str, str]:
    """A record field's metadata: the table ``column`` that stores it, when that is not
    the field's name, and its ``description`` (what the API says the field means)."""
    given = {"column": column, "description": description}
    return {k: v for k, v in given.items() if v is not None}


class AlertStatus(StrEnum):
    """Where an alert is in its life. ``pending`` alerts wait out their pending period."""

    PENDING = "pending"
    ACTIVE = "active"
    CLEARED = "cleared"


class ChangeKind(StrEnum):
    """One entry of an alert's timeline."""

    PENDING = "pending"
    """Detected; waiting for the type's pending period before raising."""
    RAISED = "raised"
    DISCARDED = "discarded"
    """Ended while still pending: never raised, never notified."""
    SEVERITY_RAISED = "severity_raised"
    CLEAR_PENDING = "clear_pending"
    """The condition ended; the alert keeps firing for the type's keep-firing period."""
    CLEAR_CANCELLED = "clear_cancelled"
    CLEARED = "cleared"
    RESOLVED = "resolved"
    """Cleared by hand."""
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    ASSIGNED = "assigned"
    UNASSIGNED = "unassigned"
    COMMENTED = "commented"
    ESCALATED = "escalated"
    REMINDER = "reminder"
    FLAPPING_STARTED = "flapping_started"
    FLAPPING_STOPPED = "flapping_stopped"
    SILENCED = "silenced"
    UNSILENCED = "unsilenced"
    GROUPED = "grouped"
    """Became a child of an incident (its root alert speaks for it)."""
    UNGROUPED = "ungrouped"
    """Its incident closed while it is still active: it speaks for itself again."""


NOTIFIABLE: frozenset[ChangeKind] = frozenset(
    {
        ChangeKind.RAISED,
        ChangeKind.SEVERITY_RAISED,
        ChangeKind.CLEARED,
        ChangeKind.RESOLVED,
        ChangeKind.ACKNOWLEDGED,
        ChangeKind.ASSIGNED,
        ChangeKind.ESCALATED,
        ChangeKind.REMINDER,
        ChangeKind.FLAPPING_STOPPED,
        ChangeKind.UNSILENCED,
        ChangeKind.UNGROUPED,
    }
)
"""Changes pushed to crews (webhook, MQTT) unless the alert is silenced, flapping or grouped."""


@dataclass(frozen=True, slots=True)
class AlertKey:
    """What makes an alert unique while it is open.

    Device alerts: (device, type, metric) where metric is empty for device-level rules
    (two different metrics crossing their limits are two problems, cleared separately).
    Area alerts: (ward, type).
    """

    type: DetectionKind
    ward: str
    device: str = ""
    metric: str = ""

    @property
    def open_key(self) -> str:
        """The string the store's unique ``open_key`` column holds while the alert is open."""
        if self.type in AREA_TYPES or not self.device:
            return f"ward:{self.ward}|{self.type.value}"
        return f"dev:{self.device}|{self.type.value}|{self.metric}"


@dataclass(frozen=True, slots=True)
class Change:
    """One transition produced by the pure core, before the store gives it an id."""

    kind: ChangeKind
    at_ms: int
    detail: str = ""
    actor: str | None = None
    notify: bool = False
    """Decided by :func:`alerts.lifecycle.finalize`: push it to crews or not."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """The whole state of one alert, as the pure core sees and returns it."""

    key: AlertKey
    status: AlertStatus = field(metadata=meta(column="state"))
    severity: Severity
    opened_at: int
    """When the alert was first detected (server time)."""
    last_seen: int
    started_at: int
    """Device time the condition began (the detection's ``start_ms``)."""
    raised_at: int | None = None
    cleared_at: int | None = None
    clear_pending_since: int | None = None
    acknowledged: bool = False
    acknowledged_by: str | None = None
    acknowledged_at: int | None = None
    assignee: str | None = None
    count: int = 1
    peak_score: float = 0.0
    last_score: float = 0.0
    value: float | None = None
    value_metric: str = ""
    reference: float | None = None
    reference_kind: Reference | None = None
    explanation: str = ""
    silenced: bool = False
    flapping: bool = False
    flap_changes: tuple[int, ...] = ()
    """Times of raise/clear changes within the flapping window (carried to the next alert
    of the same key)."""
    escalated_at: int | None = None
    last_notified_at: int | None = None
    """Last raise, escalation or reminder: reminders count from here."""
    incident_id: int | None = None
    incident_root: bool = False

    @property
    def is_open(self) -> bool:
        return self.status is not AlertStatus.CLEARED

    @property
    def grouped(self) -> bool:
        """A child of an incident (not its root)."""
        return self.incident_id is not None and not self.incident_root


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as stored and served: the API's alert schema is derived from these fields
    (their types and descriptions), the webhook sends them, the change feed stores them."""

    id: int
    type: DetectionKind
    ward: str
    device: str = field(metadata=meta(description="empty for ward-level (area) alerts"))
    metric: str = field(metadata=meta(description="empty for device-level rules"))
    severity: Severity
    state: AlertStatus
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: int | None
    assignee: str | None
    opened_at: int
    raised_at: int | None
    last_seen: int
    cleared_at: int | None
    started_at: int = field(metadata=meta(description="device time the condition began"))
    count: int = field(metadata=meta(description="detections folded into this alert"))
    peak_score: float
    last_score: float
    value: float | None
    explanation: str = field(metadata=meta(description="what is wrong, in plain words"))
    incident: int | None = field(
        metadata=meta(column="incident_id", description="id of the incident grouping this alert")
    )
    incident_root: bool
    silenced: bool
    flapping: bool
    escalated_at: int | None
    value_metric: str = field(
        default="",
        metadata=meta(
            description="the metric `value` is a reading of: `metric` for metric alerts; for "
            "device rules the one the rule judged (temp_inside for overheating); empty "
            "for area alerts, whose `value` counts devices"
        ),
    )
    reference: float | None = field(
        default=None,
        metadata=meta(
            description="what `value` is judged against, where meaningful; "
            "`reference_kind` says which"
        ),
    )
    reference_kind: Reference | None = field(
        default=None,
        metadata=meta(
            description="limit: the alarm limit or rule threshold crossed; baseline: what "
            "the series usually reads; trend: change per hour (negative: falling); "
            "total: `value` devices of the ward out of `reference`"
        ),
    )


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One stored transition: an entry of the timeline and of the change feed.

    ``id`` is monotonic across all alerts (commit order); SSE uses it as the event id and
    resumes with :meth:`alerts.store.AlertStore.changes_since`.
    """

    id: int
    alert_id: int
    kind: ChangeKind
    at_ms: int
    detail: str
    actor: str | None
    notify: bool
    ward: str
    alert: Alert | None = None
    """The alert after this change (filled in by the feed and by ``apply_*``)."""


@dataclass(frozen=True, slots=True)
class AlertDetail:
    """One alert with its timeline (oldest first) and comments."""

    alert: Alert
    timeline: list[AlertChange]
    comments: list["Comment"]


@dataclass(frozen=True, slots=True)
class Comment:
    id: int
    alert_id: int
    author: str
    text: str
    at_ms: int


class IncidentKind(StrEnum):
    AREA_OUTAGE = "area_outage"
    """A ward's outage (its mains, or many of its devices silent together): groups the
    ward's power-loss and offline alerts, and takes over their device-down incidents."""
    CABLE_CUT = "cable_cut"
    """A cut on a cable route: groups the downstream segments' offline/signal alerts."""
    DEVICE_DOWN = "device_down"
    """A device offline or without mains: inhibits its own silent-sensor and dependent
    alerts (they stay visible, grouped under it, and are not notified)."""


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    kind: IncidentKind
    ward: str
    route: str | None
    position: int | None
    root_alert: int = field(metadata=meta(column="root_alert_id"))
    device: str | None = field(
        default=None, kw_only=True, metadata=meta(description="the device a device_down is about")
    )
    opened_at: int
    closed_at: int | None
    title: str
    children: list[int] = field(default_factory=list)
    """Ids of the child alerts (not the root)."""


class MatchOp(StrEnum):
    """How a silence matcher compares, as in Alertmanager: equal, not equal, and the
    regular expression matches and does not match (RE2 syntax, anchored at both ends)."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


MATCHER_NAMES: tuple[str, ...] = ("ward", "device", "type", "severity")
"""What a silence matcher may look at: an alert's ward, device, type and severity."""

_MAX_PATTERN = 512


class MatcherError(ValueError):
    """A matcher that cannot be used (unknown name, bad regular expression)."""


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the error is raised, not also printed
    return options


_RE2_OPTIONS = _re2_options()


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """The pattern compiled with RE2, which runs in linear time (no backtracking): a
    pattern a NOC key sends cannot stall the store's tick."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise MatcherError(f"invalid regular expression {pattern!r}: {reason}") from None


@dataclass(frozen=True, slots=True)
class SilenceMatcher:
    """One condition of a silence: ``name op value``, e.g. ``device =~ "cab-0[1-4]"``
    (the fields of Alertmanager's silence matchers, with the operator spelled out).

    Regular expressions match the whole value (Alertmanager anchors them the same way)
    and use RE2 syntax (no backreferences or lookaround); an alert with no device (an
    area alert) has the empty string as its device.
    """

    name: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        if self.name not in MATCHER_NAMES:
            raise MatcherError(
                f"unknown matcher name {self.name!r}; expected one of {', '.join(MATCHER_NAMES)}"
            )
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            if len(self.value) > _MAX_PATTERN:
                raise MatcherError(f"regular expression longer than {_MAX_PATTERN} characters")
            _compiled(self.value)

    def matches(self, value: str) -> bool:
        if self.op is MatchOp.EQUAL:
            return value == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return value != self.value
        found = _compiled(self.value).fullmatch(value) is not None
        return found if self.op is MatchOp.REGEX else not found


@dataclass(frozen=True, slots=True)
class Silence:
    """A maintenance window: matching alerts are recorded but not notified.

    An alert matches when every condition holds: each of ``ward``, ``device``, ``type``
    and ``severity`` that is set equals the alert's, and each of ``matchers`` matches
    (empty conditions match everything); ``ends_at`` is exclusive. ``created_by`` is
    who created it (the key's name), ``created_by_key`` that key's id, ``comment`` why.
    """

    id: int
    starts_at: int
    ends_at: int
    ward: str | None = None
    device: str | None = None
    type: DetectionKind | None = None
    comment: str = ""
    created_by: str = ""
    severity: Severity | None = None
    matchers: tuple[SilenceMatcher, ...] = ()
    created_by_key: str = ""

    def matches(self, key: AlertKey, severity: Severity, at_ms: int) -> bool:
        """Whether the silence holds an alert of ``key`` and ``severity`` at ``at_ms``."""
        if not (self.starts_at <= at_ms < self.ends_at):
            return False
        labels = {
            "ward": key.ward,
            "device": key.device,
            "type": key.type.value,
            "severity": severity.value,
        }
        exact = (
            ("ward", self.ward),
            ("device", self.device),
            ("type", None if self.type is None else self.type.value),
            ("severity", None if self.severity is None else self.severity.value),
        )
        return all(value is None or labels[name] == value for name, value in exact) and all(
            m.matches(labels[m.name]) for m in self.matchers
        )

    @property
    def is_empty(self) -> bool:
        """No condition at all: it would silence every alert (refused)."""
        conditions = (self.ward, self.device, self.type, self.severity)
        return all(c is None for c in conditions) and not self.matchers


class Role(StrEnum):
    NOC = "noc"
    CREW = "crew"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (never the secret). ``wards`` limits a crew key; empty for others.
    ``lang`` is the language its holder reads (``None``: not chosen, the browser's)."""

    id: str
    """The public prefix id, also the first part of the key string."""
    name: str
    role: Role
    wards: tuple[str, ...]
    created_at: int
    revoked_at: int | None = None
    lang: Lang | None = None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """What a notifier did with one change, to be logged as a :class:`Delivery`."""

    change: AlertChange
    channel: str
    target: str
    delivered: bool
    attempts: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification attempt series, as logged."""

    id: int
    change_id: int
    alert_id: int
    channel: str
    target: str
    status: str
    """``delivered`` or ``failed``."""
    attempts: int
    error: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ActionKey:
    """An ``Idempotency-Key`` already claimed by an alert action (see
    :meth:`alerts.store.AlertStore.claim_action_key`)."""

    request: str
    """Digest of the request that claimed the key."""
    status: int | None
    """The first answer's HTTP status; ``None`` while that request is in progress."""
    response: dict[str, Any] | None
    created_at: int
