"""Response and request bodies. ``XPublic`` is one resource, ``XsPublic`` a page of them.

Response models read the alert layer's frozen dataclasses directly (``from_attributes``);
times are epoch milliseconds, as everywhere in citywatch. The alert schema is derived from
the alert's one declaration (:class:`alerts.model.Alert`): its fields, types and
descriptions.
"""

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from alerts.model import (
    Alert,
    ChangeKind,
    IncidentKind,
    Lang,
    MatcherError,
    MatchOp,
    Role,
    SilenceMatcher,
)
from alerts.model import AlertSeverity as Severity
from alerts.model import AlertType as DetectionKind
from telemetry import DeviceKind
from telemetry.wards import nearest_wards, ward_names

MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms_of(value: object) -> object:
    """An ISO 8601 time (with an offset or ``Z``) as epoch milliseconds; anything else
    as given, for the integer validation that follows."""
    if not isinstance(value, str) or value.strip().lstrip("+-").isdigit():
        return value
    text = value.strip().upper()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "expected epoch milliseconds or an ISO 8601 time such as 2026-12-08T09:00:00+07:00"
        ) from None
    if moment.tzinfo is None:
        raise ValueError("an ISO 8601 time needs an offset or Z, e.g. 2026-12-08T09:00:00+07:00")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


EpochMs = Annotated[
    int,
    BeforeValidator(_epoch_ms_of),
    Field(ge=0, le=MAX_EPOCH_MS),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MS},
                {"type": "string", "format": "date-time"},
            ],
            "description": "epoch milliseconds, or ISO 8601 with an offset or Z",
        }
    ),
]
"""A time in a request: epoch milliseconds or ISO 8601 (answers are epoch milliseconds)."""
Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
"""A device id or ward codename (``telemetry.is_valid_id``)."""
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class _FromAttributes(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _model_of(record: type[Any], name: str) -> type[_FromAttributes]:
    """A response model with the fields of ``record`` (a dataclass of ``alerts.model``):
    same names, order and types, and the descriptions its field metadata gives."""
    hints = get_type_hints(record)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], Field(description=f.metadata.get("description")))
        for f in dataclasses.fields(record)
    }
    return create_model(name, __base__=_FromAttributes, __module__=__name__, **fields)


if TYPE_CHECKING:  # the fields are Alert's, made at import; the checker sees the base
    AlertPublic = _FromAttributes
else:
    AlertPublic = _model_of(Alert, "AlertPublic")


class AlertsPublic(BaseModel):
    data: list[AlertPublic]
    count: int = Field(description="total matching the filters (all pages)")


class AlertChangePublic(_FromAttributes):
    id: int = Field(description="monotonic across all alerts; the SSE event id")
    alert_id: int
    kind: ChangeKind
    at_ms: int
    detail: str
    actor: str | None
    ward: str


class StreamChangePublic(AlertChangePublic):
    """One SSE ``data:`` payload: the change and the alert after it."""

    alert: AlertPublic | None


class CommentPublic(_FromAttributes):
    id: int
    alert_id: int
    author: str
    text: str
    at_ms: int


class AlertDetailPublic(AlertPublic):
    timeline: list[AlertChangePublic] = Field(description="oldest first")
    comments: list[CommentPublic]


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Text


class AssignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)] | None = (
        Field(description="who takes the alert; null unassigns; a crew may assign only itself")
    )


class ActionCreate(BaseModel):
    """An optional note with acknowledge / resolve."""

    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""


class IncidentPublic(_FromAttributes):
    id: int
    kind: IncidentKind
    ward: str
    route: str | None
    position: int | None
    root_alert: int = Field(description="the alert whose cause the children share")
    device: str | None = Field(None, description="the device a device_down incident is about")
    opened_at: int
    closed_at: int | None
    title: str
    children: list[int] = Field(
        description="ids of the child alerts (not the root): grouped, or inhibited by the "
        "root, they are not notified"
    )


class IncidentsPublic(BaseModel):
    data: list[IncidentPublic]
    count: int


MatcherName = Literal["ward", "device", "type", "severity"]


class MatcherPublic(_FromAttributes):
    """A silence matcher, as in Alertmanager: ``name op value``. ``=~`` / ``!~`` take a
    regular expression (RE2 syntax) that must match the whole value."""

    name: MatcherName
    op: MatchOp = Field(description="=, !=, =~ (regex matches), !~ (regex does not match)")
    value: str


class MatcherCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: MatcherName = Field(description="what of the alert to match")
    op: MatchOp = Field(
        MatchOp.EQUAL, description="=, !=, =~ (regex matches), !~ (regex does not match)"
    )
    value: Annotated[str, StringConstraints(max_length=512)] = Field(
        description="the value, or a regular expression (RE2) that must match the whole value"
    )

    @field_validator("value")
    @classmethod
    def _usable(cls, value: str, info: ValidationInfo) -> str:
        name, op = info.data.get("name"), info.data.get("op")
        if name is None or op is None:
            return value  # reported on its own field
        try:
            matcher = SilenceMatcher(name, op, value)
        except MatcherError as exc:
            raise ValueError(str(exc)) from None
        known = _KNOWN_VALUES.get(name)
        if known is None:
            return value
        if op in (MatchOp.EQUAL, MatchOp.NOT_EQUAL):
            if name == "ward":
                check_ward(value)
            elif value not in known():
                raise ValueError(f"unknown {name} {value!r}; one of {', '.join(known())}")
        elif not any(matcher.matches(v) for v in known()):
            raise ValueError(f"the regular expression {value!r} matches no {name} we know")
        return value


_KNOWN_VALUES: dict[str, Callable[[], list[str]]] = {
    "ward": lambda: list(ward_names()),
    "type": lambda: [k.value for k in DetectionKind],
    "severity": lambda: [s.value for s in Severity],
}


def check_ward(ward: str) -> str:
    """``ward`` if the ward catalogue has it; a ValueError suggesting the nearest if not."""
    if ward not in ward_names():
        near = nearest_wards(ward)
        hint = f"; did you mean {' or '.join(repr(w) for w in near)}?" if near else ""
        raise ValueError(f"unknown ward {ward!r} (not in the Hanoi ward catalogue){hint}")
    return ward


class SilencePublic(_FromAttributes):
    id: int
    starts_at: int
    ends_at: int
    ward: str | None
    device: str | None
    type: DetectionKind | None
    severity: Severity | None
    matchers: list[MatcherPublic] = Field(description="all must match (and the fields above)")
    comment: str = Field(description="why the silence was made")
    created_by: str = Field(description="the name of the key that made it")
    created_by_key: str = Field(description="the id of the key that made it")


class SilencesPublic(BaseModel):
    data: list[SilencePublic]
    count: int


class SilenceCreate(BaseModel):
    """A maintenance window. An alert is silenced while every condition given holds:
    ``ward``, ``device``, ``type``, ``severity`` equal the alert's, and every matcher
    matches. At least one condition is needed; ``comment`` says why."""

    model_config = ConfigDict(extra="forbid")
    starts_at: EpochMs
    ends_at: EpochMs
    ward: Id | None = Field(None, description="a ward codename of the catalogue")
    device: Id | None = None
    type: DetectionKind | None = None
    severity: Severity | None = None
    matchers: list[MatcherCreate] = Field(default_factory=list, max_length=20)
    comment: Text = Field(description="why: what work or outage this silence covers")

    @field_validator("ward")
    @classmethod
    def _known_ward(cls, ward: str | None) -> str | None:
        return None if ward is None else check_ward(ward)

    @model_validator(mode="after")
    def _ends_after_start(self) -> "SilenceCreate":
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        conditions = (self.ward, self.device, self.type, self.severity)
        if all(c is None for c in conditions) and not self.matchers:
            raise ValueError(
                "a silence needs at least one matcher: ward, device, type, severity or matchers"
            )
        return self

    def silence_matchers(self) -> list[SilenceMatcher]:
        return [SilenceMatcher(m.name, m.op, m.value) for m in self.matchers]


class ReadingPublic(BaseModel):
    metric: str
    value: float | bool
    unit: str


class DevicePublic(BaseModel):
    id: str
    kind: DeviceKind
    ward: str
    route: str | None
    position: int | None
    street: str | None
    lat: float | None
    lon: float | None
    status: Literal["online", "offline", "unknown"]
    last_seen: int | None = Field(description="time of the latest reading (device time)")
    open_alerts: int


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int


class WindowPointPublic(BaseModel):
    ts: int
    metrics: dict[str, float | bool]


class DeviceDetailPublic(DevicePublic):
    readings: list[ReadingPublic] = Field(description="the latest reading of each metric")
    window: list[WindowPointPublic] = Field(description="recent readings, oldest first")
    window_s: int


class MePublic(BaseModel):
    """Who the presented key is."""

    id: str
    name: str
    role: Role
    wards: list[str]
    lang: Lang | None = Field(
        description="the language the key's holder reads (vi or en); null: not chosen, "
        "the crew page follows the browser"
    )


class TicketPublic(BaseModel):
    ticket: str = Field(description="pass as ?ticket= to the SSE stream (EventSource)")
    expires_at: int


class HealthPublic(BaseModel):
    status: Literal["ok"]


class ReadyPublic(BaseModel):
    status: Literal["ready", "not_ready"]
    store: bool
    influx: bool


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    role: Role
    wards: list[Id] = Field(default_factory=list, max_length=500)
    lang: Lang | None = Field(
        default=None, description="vi or en: the language the key's holder reads"
    )


class KeyPublic(_FromAttributes):
    id: str
    name: str
    role: Role
    wards: list[str]
    created_at: int
    revoked_at: int | None
    lang: Lang | None


class KeysPublic(BaseModel):
    data: list[KeyPublic]
    count: int


class KeyCreatedPublic(KeyPublic):
    key: str = Field(description="the secret, shown once")


class WardPublic(BaseModel):
    codename: str = Field(description="as in topics, tags and alerts: phuong_dinh_cong")
    name: str = Field(description="what a person reads: Phường Định Công")


class MetricInfoPublic(BaseModel):
    kind: DeviceKind
    name: str
    unit: str = Field(description="empty for true/false metrics")
    warn_low: float | None
    warn_high: float | None
    crit_low: float | None
    crit_high: float | None


class CataloguePublic(BaseModel):
    """The catalogues a person's view is written from (the crew page)."""

    wards: list[WardPublic]
    metrics: list[MetricInfoPublic] = Field(description="default alarm limits")
