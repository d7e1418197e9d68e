"""Response and request bodies. ``XPublic`` is one resource, ``XsPublic`` a page of them.

Response models read the alert layer's frozen dataclasses directly (``from_attributes``);
times are epoch milliseconds, as everywhere in citywatch. The alert schema is derived from
the alert's one declaration (:class:`alerts.model.Alert`): its fields, types and
descriptions.
"""

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from alerts.model import Alert, ChangeKind, IncidentKind, Role
from alerts.model import AlertType as DetectionKind
from telemetry import DeviceKind

EpochMs = Annotated[int, Field(ge=0, le=253_402_300_799_999, description="epoch milliseconds")]
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


class SilencePublic(_FromAttributes):
    id: int
    starts_at: int
    ends_at: int
    ward: str | None
    device: str | None
    type: DetectionKind | None
    comment: str
    created_by: str


class SilencesPublic(BaseModel):
    data: list[SilencePublic]
    count: int


class SilenceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starts_at: EpochMs
    ends_at: EpochMs
    ward: Id | None = None
    device: Id | None = None
    type: DetectionKind | None = None
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""

    @model_validator(mode="after")
    def _ends_after_start(self) -> "SilenceCreate":
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.ward is None and self.device is None and self.type is None:
            raise ValueError("a silence needs at least one matcher: ward, device or type")
        return self


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


class KeyPublic(_FromAttributes):
    id: str
    name: str
    role: Role
    wards: list[str]
    created_at: int
    revoked_at: int | None


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
