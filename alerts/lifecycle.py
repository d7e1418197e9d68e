"""The alert state machine: pure functions from (state, input, now) to (state, changes).

No I/O and no clock: every function takes ``now_ms``; the store loads a state, calls one
of these, writes the result and the changes back in one transaction. The states are
``pending`` → ``active`` → ``cleared`` (closed), crossed with acknowledged or not; an
active alert may be clear-pending (keep-firing period), silenced, flapping, and a root or
child of an incident.
"""

from dataclasses import replace

from alerts.model import (
    AREA_TYPES,
    DEVICE_LEVEL_TYPES,
    NOTIFIABLE,
    SEVERITY_RANK,
    AlertKey,
    AlertState,
    AlertStatus,
    Change,
    ChangeKind,
)
from alerts.policy import Policy
from anomaly.events import Detection, Severity

Result = tuple[AlertState, list[Change]]


class TransitionError(ValueError):
    """A manual action that does not apply to the alert's current state."""


def key_of(detection: Detection) -> AlertKey:
    """The alert key a detection belongs to."""
    if detection.kind in AREA_TYPES or not detection.device:
        return AlertKey(detection.kind, detection.ward)
    metric = "" if detection.kind in DEVICE_LEVEL_TYPES else detection.metric
    return AlertKey(detection.kind, detection.ward, detection.device, metric)


def opens(detection: Detection, policy: Policy) -> bool:
    """Whether a detection opens an alert when none is open for its key."""
    return detection.active and detection.score >= policy.for_type(detection.kind).raise_score


def open_alert(
    detection: Detection, policy: Policy, now_ms: int, flap_history: tuple[int, ...] = ()
) -> Result:
    """A new alert for a detection that :func:`opens` (``flap_history`` from the previous
    alert of the same key keeps flapping visible across alerts)."""
    if not opens(detection, policy):
        raise TransitionError("this detection does not open an alert")
    state = AlertState(
        key=key_of(detection),
        status=AlertStatus.PENDING,
        severity=detection.severity,
        opened_at=now_ms,
        last_seen=now_ms,
        started_at=detection.start_ms,
        peak_score=detection.score,
        last_score=detection.score,
        value=detection.value,
        value_metric=detection.value_metric,
        reference=detection.reference,
        reference_kind=detection.reference_kind,
        explanation=detection.explanation,
        flap_changes=_recent(flap_history, policy, now_ms),
    )
    if policy.for_type(detection.kind).pending_ms == 0 or _urgent(state, policy):
        return _raise(state, policy, now_ms)
    return state, [Change(ChangeKind.PENDING, now_ms, detection.explanation)]


def _urgent(state: AlertState, policy: Policy) -> bool:
    return policy.critical_at_once and state.severity is Severity.CRITICAL


def on_detection(state: AlertState, detection: Detection, policy: Policy, now_ms: int) -> Result:
    """A further detection for an open alert: update, raise, escalate severity or clear."""
    if not state.is_open:
        raise TransitionError("alert is closed; a new detection opens a new alert")
    if key_of(detection) != state.key:
        raise TransitionError(f"detection for {key_of(detection)} applied to {state.key}")
    type_policy = policy.for_type(state.key.type)
    changes: list[Change] = []
    if not detection.active or detection.score < type_policy.clear_score:
        if state.status is AlertStatus.PENDING:
            state = replace(state, status=AlertStatus.CLEARED, cleared_at=now_ms)
            return state, [Change(ChangeKind.DISCARDED, now_ms, "ended before raising")]
        if state.clear_pending_since is None:
            if type_policy.keep_firing_ms == 0:
                return _clear(state, policy, now_ms, ChangeKind.CLEARED, detection.explanation)
            state = replace(state, clear_pending_since=now_ms)
            changes.append(Change(ChangeKind.CLEAR_PENDING, now_ms, detection.explanation))
        state, more = tick(state, policy, now_ms)
        return state, changes + more

    state = replace(
        state,
        count=state.count + 1,
        last_seen=now_ms,
        peak_score=max(state.peak_score, detection.score),
        last_score=detection.score,
        value=detection.value,
        value_metric=detection.value_metric,
        reference=detection.reference,
        reference_kind=detection.reference_kind,
        explanation=detection.explanation,
    )
    if SEVERITY_RANK[detection.severity] > SEVERITY_RANK[state.severity]:
        changes.append(
            Change(
                ChangeKind.SEVERITY_RAISED,
                now_ms,
                f"{state.severity.value} → {detection.severity.value}",
            )
        )
        state = replace(state, severity=detection.severity)
    if state.clear_pending_since is not None:
        state = replace(state, clear_pending_since=None)
        changes.append(Change(ChangeKind.CLEAR_CANCELLED, now_ms, "condition back"))
    state, more = tick(state, policy, now_ms)
    return state, changes + more


def tick(state: AlertState, policy: Policy, now_ms: int) -> Result:
    """What the passing of time does to an open alert: raise after the pending period,
    clear after keep-firing, end flapping, escalate, remind."""
    if not state.is_open:
        return state, []
    type_policy = policy.for_type(state.key.type)
    if state.status is AlertStatus.PENDING:
        if now_ms - state.opened_at >= type_policy.pending_ms or _urgent(state, policy):
            return _raise(state, policy, now_ms)
        return state, []
    if (
        state.clear_pending_since is not None
        and now_ms - state.clear_pending_since >= type_policy.keep_firing_ms
    ):
        return _clear(state, policy, now_ms, ChangeKind.CLEARED, "condition ended")

    changes: list[Change] = []
    if state.flapping and (
        not state.flap_changes or now_ms - state.flap_changes[-1] >= policy.flap_window_ms
    ):
        state = replace(
            state, flapping=False, flap_changes=_recent(state.flap_changes, policy, now_ms)
        )
        changes.append(Change(ChangeKind.FLAPPING_STOPPED, now_ms, "stable again"))
    if state.acknowledged or state.silenced or state.flapping or state.grouped:
        return state, changes
    raised_at = state.raised_at
    assert raised_at is not None  # active alerts were raised
    if (
        state.severity is Severity.CRITICAL
        and state.escalated_at is None
        and now_ms - raised_at >= policy.escalate_after_ms
    ):
        minutes = (now_ms - raised_at) // 60_000
        state = replace(state, escalated_at=now_ms, last_notified_at=now_ms)
        changes.append(Change(ChangeKind.ESCALATED, now_ms, f"unacknowledged for {minutes} min"))
    elif policy.reminder_every_ms > 0:
        since = raised_at if state.last_notified_at is None else state.last_notified_at
        if now_ms - since >= policy.reminder_every_ms:
            minutes = (now_ms - raised_at) // 60_000
            state = replace(state, last_notified_at=now_ms)
            changes.append(Change(ChangeKind.REMINDER, now_ms, f"active for {minutes} min"))
    return state, changes


def next_due(state: AlertState, policy: Policy) -> int | None:
    """The earliest time at which :func:`tick` may change this state (``None``: never,
    until something else changes it). The store keeps it in a column so that a tick
    reads only the alerts whose timers are due, not every open alert of the city."""
    if not state.is_open:
        return None
    type_policy = policy.for_type(state.key.type)
    if state.status is AlertStatus.PENDING:
        return (
            state.opened_at if _urgent(state, policy) else state.opened_at + type_policy.pending_ms
        )
    due: list[int] = []
    if state.clear_pending_since is not None:
        due.append(state.clear_pending_since + type_policy.keep_firing_ms)
    if state.flapping:
        due.append(state.flap_changes[-1] + policy.flap_window_ms if state.flap_changes else 0)
    elif not (state.acknowledged or state.silenced or state.grouped):
        raised_at = state.raised_at
        assert raised_at is not None  # active alerts were raised
        if state.severity is Severity.CRITICAL and state.escalated_at is None:
            due.append(raised_at + policy.escalate_after_ms)
        # Reminders too, escalation or not: with reminders more frequent than the
        # escalation, a critical alert got one and then none until it escalated.
        if policy.reminder_every_ms > 0:
            since = raised_at if state.last_notified_at is None else state.last_notified_at
            due.append(since + policy.reminder_every_ms)
    return min(due, default=None)


def acknowledge(state: AlertState, actor: str, now_ms: int) -> Result:
    if state.status is AlertStatus.PENDING:
        raise TransitionError("a pending alert has not been raised yet")
    if state.acknowledged:
        raise TransitionError(f"already acknowledged by {state.acknowledged_by}")
    state = replace(state, acknowledged=True, acknowledged_by=actor, acknowledged_at=now_ms)
    return state, [Change(ChangeKind.ACKNOWLEDGED, now_ms, "", actor)]


def unacknowledge(state: AlertState, actor: str, now_ms: int) -> Result:
    if not state.acknowledged:
        raise TransitionError("not acknowledged")
    # Reminders count again from now, not from the original raise.
    state = replace(
        state,
        acknowledged=False,
        acknowledged_by=None,
        acknowledged_at=None,
        last_notified_at=now_ms,
    )
    return state, [Change(ChangeKind.UNACKNOWLEDGED, now_ms, "", actor)]


def assign(state: AlertState, assignee: str | None, actor: str, now_ms: int) -> Result:
    """Assign to a crew (``None`` unassigns)."""
    if assignee == state.assignee:
        raise TransitionError(f"already assigned to {assignee}" if assignee else "not assigned")
    if assignee is not None and not assignee.strip():
        raise TransitionError("assignee must not be blank")
    kind = ChangeKind.ASSIGNED if assignee is not None else ChangeKind.UNASSIGNED
    return replace(state, assignee=assignee), [Change(kind, now_ms, assignee or "", actor)]


def comment(state: AlertState, text: str, actor: str, now_ms: int) -> Result:
    if not text.strip():
        raise TransitionError("comment must not be blank")
    return state, [Change(ChangeKind.COMMENTED, now_ms, text, actor)]


def resolve(state: AlertState, actor: str, now_ms: int, note: str = "") -> Result:
    """Clear by hand (the condition is fixed, or a false alarm)."""
    if not state.is_open:
        raise TransitionError("already cleared")
    return _clear(state, None, now_ms, ChangeKind.RESOLVED, note, actor=actor)


def set_silenced(state: AlertState, silenced: bool, now_ms: int, detail: str = "") -> Result:
    """Follow the silences that match the alert now."""
    if silenced == state.silenced or not state.is_open:
        return state, []
    kind = ChangeKind.SILENCED if silenced else ChangeKind.UNSILENCED
    return replace(state, silenced=silenced), [Change(kind, now_ms, detail)]


def join_incident(state: AlertState, incident_id: int, root: bool, now_ms: int) -> Result:
    """Become the root or a child of an incident."""
    state = replace(state, incident_id=incident_id, incident_root=root)
    if root:
        return state, []
    return state, [Change(ChangeKind.GROUPED, now_ms, f"incident {incident_id}")]


def leave_incident(state: AlertState, now_ms: int) -> Result:
    """The incident closed while this child is still open: it speaks for itself again."""
    if state.incident_id is None or state.incident_root or not state.is_open:
        return state, []
    detail = f"incident {state.incident_id} closed"
    state = replace(state, incident_id=None, last_notified_at=now_ms)
    if state.status is AlertStatus.PENDING:
        return state, []
    return state, [Change(ChangeKind.UNGROUPED, now_ms, detail)]


def finalize(state: AlertState, changes: list[Change]) -> list[Change]:
    """Decide which changes are notified: notifiable kinds of alerts that were raised and
    are not silenced, not flapping and not a child of an incident (its root speaks for it)."""
    quiet = state.silenced or state.flapping or state.grouped or state.raised_at is None
    return [replace(c, notify=c.kind in NOTIFIABLE and not quiet) for c in changes]


def _recent(times: tuple[int, ...], policy: Policy, now_ms: int) -> tuple[int, ...]:
    return tuple(t for t in times if now_ms - t < policy.flap_window_ms)


def _record_flap(state: AlertState, policy: Policy | None, now_ms: int) -> Result:
    if policy is None:  # manual resolution is not the condition flapping
        return state, []
    changes = (*_recent(state.flap_changes, policy, now_ms), now_ms)
    state = replace(state, flap_changes=changes)
    if len(changes) >= policy.flap_threshold and not state.flapping:
        detail = f"{len(changes)} state changes in {policy.flap_window_ms // 60_000} min"
        return replace(state, flapping=True), [Change(ChangeKind.FLAPPING_STARTED, now_ms, detail)]
    return state, []


def _raise(state: AlertState, policy: Policy, now_ms: int) -> Result:
    state = replace(state, status=AlertStatus.ACTIVE, raised_at=now_ms, last_notified_at=now_ms)
    state, flap = _record_flap(state, policy, now_ms)
    detail = f"{state.severity.value}: {state.explanation}"
    return state, [Change(ChangeKind.RAISED, now_ms, detail), *flap]


def _clear(
    state: AlertState,
    policy: Policy | None,
    now_ms: int,
    kind: ChangeKind,
    detail: str,
    *,
    actor: str | None = None,
) -> Result:
    state = replace(state, status=AlertStatus.CLEARED, cleared_at=now_ms, clear_pending_since=None)
    state, flap = _record_flap(state, policy, now_ms)
    return state, [Change(kind, now_ms, detail, actor), *flap]
