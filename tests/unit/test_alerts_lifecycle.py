"""The pure alert state machine: every transition, table-driven, with injected time."""

import contextlib
from dataclasses import replace

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from alerts import lifecycle
from alerts.lifecycle import TransitionError
from alerts.model import AlertKey, AlertState, AlertStatus, ChangeKind
from alerts.policy import MINUTE_MS, Policy, TypePolicy
from anomaly.events import Detection, DetectionKind, Severity

K = DetectionKind
S = Severity
POLICY = Policy(
    per_type={
        K.FLOODING: TypePolicy(pending_ms=0, keep_firing_ms=0),
        K.OFFLINE: TypePolicy(pending_ms=2 * MINUTE_MS, keep_firing_ms=MINUTE_MS),
        K.BASELINE: TypePolicy(
            pending_ms=0, keep_firing_ms=MINUTE_MS, raise_score=0.6, clear_score=0.3
        ),
    },
    default=TypePolicy(pending_ms=0, keep_firing_ms=0),
    flap_window_ms=10 * MINUTE_MS,
    flap_threshold=4,
    escalate_after_ms=15 * MINUTE_MS,
    reminder_every_ms=30 * MINUTE_MS,
)


def det(
    kind: DetectionKind = K.FLOODING,
    *,
    active: bool = True,
    score: float = 0.9,
    severity: Severity = S.MAJOR,
    device: str = "cab_1",
    ward: str = "phuong_hoan_kiem",
    metric: str = "",
) -> Detection:
    return Detection(
        kind=kind,
        severity=severity,
        active=active,
        ward=ward,
        device=device,
        metric=metric,
        start_ms=0,
        ts_ms=0,
        score=score,
        explanation=f"{kind.value} score {score}",
    )


Step = tuple[str, int] | tuple[str, int, Detection]


def run(steps: list[Step], state: AlertState | None = None) -> tuple[AlertState, list[str]]:
    """Drive the machine; returns the final state and 'kind' (or 'kind!' when notified)."""
    seen: list[str] = []
    for step in steps:
        action, at = step[0], step[1]
        if action == "det":
            assert len(step) == 3
            detection = step[2]
            if state is None or not state.is_open:
                state, changes = lifecycle.open_alert(detection, POLICY, at)
            else:
                state, changes = lifecycle.on_detection(state, detection, POLICY, at)
        else:
            assert state is not None
            if action == "tick":
                state, changes = lifecycle.tick(state, POLICY, at)
            elif action == "ack":
                state, changes = lifecycle.acknowledge(state, "noc_an", at)
            elif action == "unack":
                state, changes = lifecycle.unacknowledge(state, "noc_an", at)
            elif action == "resolve":
                state, changes = lifecycle.resolve(state, "crew_7", at, "replaced pump")
            else:
                raise AssertionError(action)
        seen += [
            c.kind.value + ("!" if c.notify else "") for c in lifecycle.finalize(state, changes)
        ]
    assert state is not None
    return state, seen


M = MINUTE_MS
ON = det()
OFF = det(active=False)
OFFLINE_ON = det(K.OFFLINE)
OFFLINE_OFF = det(K.OFFLINE, active=False)

CASES: list[tuple[str, list[Step], AlertStatus, list[str]]] = [
    ("critical type raises at once", [("det", 0, ON)], AlertStatus.ACTIVE, ["raised!"]),
    ("pending waits", [("det", 0, OFFLINE_ON), ("tick", M)], AlertStatus.PENDING, ["pending"]),
    (
        "pending raises on tick after the pending period",
        [("det", 0, OFFLINE_ON), ("tick", M), ("tick", 2 * M)],
        AlertStatus.ACTIVE,
        ["pending", "raised!"],
    ),
    (
        "pending raises on a later detection",
        [("det", 0, OFFLINE_ON), ("det", 3 * M, OFFLINE_ON)],
        AlertStatus.ACTIVE,
        ["pending", "raised!"],
    ),
    (
        "ended while pending is discarded, never notified",
        [("det", 0, OFFLINE_ON), ("det", M, OFFLINE_OFF)],
        AlertStatus.CLEARED,
        ["pending", "discarded"],
    ),
    (
        "no keep-firing: clears at once",
        [("det", 0, ON), ("det", M, OFF)],
        AlertStatus.CLEARED,
        ["raised!", "cleared!"],
    ),
    (
        "keep-firing: clear waits",
        [
            ("det", 0, OFFLINE_ON),
            ("tick", 2 * M),
            ("det", 3 * M, OFFLINE_OFF),
            ("tick", 3 * M + 59_999),
        ],
        AlertStatus.ACTIVE,
        ["pending", "raised!", "clear_pending"],
    ),
    (
        "keep-firing: clears once the period has passed",
        [("det", 0, OFFLINE_ON), ("tick", 2 * M), ("det", 3 * M, OFFLINE_OFF), ("tick", 4 * M)],
        AlertStatus.CLEARED,
        ["pending", "raised!", "clear_pending", "cleared!"],
    ),
    (
        "keep-firing: the condition coming back cancels the clear",
        [
            ("det", 0, OFFLINE_ON),
            ("tick", 2 * M),
            ("det", 3 * M, OFFLINE_OFF),
            ("det", 3 * M + 30_000, OFFLINE_ON),
            ("tick", 5 * M),
        ],
        AlertStatus.ACTIVE,
        ["pending", "raised!", "clear_pending", "clear_cancelled"],
    ),
    (
        "hysteresis: a score between clear and raise keeps it up",
        [
            ("det", 0, det(K.BASELINE, score=0.7)),
            ("det", M, det(K.BASELINE, score=0.4)),
            ("tick", 5 * M),
        ],
        AlertStatus.ACTIVE,
        ["raised!"],
    ),
    (
        "hysteresis: a score below clear starts clearing",
        [
            ("det", 0, det(K.BASELINE, score=0.7)),
            ("det", M, det(K.BASELINE, score=0.2)),
            ("tick", 2 * M),
        ],
        AlertStatus.CLEARED,
        ["raised!", "clear_pending", "cleared!"],
    ),
    (
        "severity rises and is kept",
        [
            ("det", 0, det(severity=S.MINOR)),
            ("det", M, det(severity=S.MAJOR)),
            ("det", 2 * M, det(severity=S.WARNING)),
        ],
        AlertStatus.ACTIVE,
        ["raised!", "severity_raised!"],
    ),
    (
        "acknowledge, unacknowledge",
        [("det", 0, ON), ("ack", M), ("unack", 2 * M)],
        AlertStatus.ACTIVE,
        ["raised!", "acknowledged!", "unacknowledged"],
    ),
    (
        "a critical alert unacknowledged for 15 min escalates once, then reminds",
        [
            ("det", 0, det(severity=S.CRITICAL)),
            ("tick", 14 * M),
            ("tick", 15 * M),
            ("tick", 30 * M),
            ("tick", 45 * M),
        ],
        AlertStatus.ACTIVE,
        ["raised!", "escalated!", "reminder!"],
    ),
    (
        "acknowledged critical alerts neither escalate nor remind",
        [("det", 0, det(severity=S.CRITICAL)), ("ack", M), ("tick", 15 * M), ("tick", 60 * M)],
        AlertStatus.ACTIVE,
        ["raised!", "acknowledged!"],
    ),
    (
        "reminders every 30 min until acknowledged",
        [
            ("det", 0, ON),
            ("tick", 29 * M),
            ("tick", 30 * M),
            ("tick", 45 * M),
            ("tick", 60 * M),
            ("ack", 61 * M),
            ("tick", 120 * M),
        ],
        AlertStatus.ACTIVE,
        ["raised!", "reminder!", "reminder!", "acknowledged!"],
    ),
    (
        "unacknowledging restarts the reminder clock",
        [("det", 0, ON), ("ack", M), ("unack", 40 * M), ("tick", 69 * M), ("tick", 70 * M)],
        AlertStatus.ACTIVE,
        ["raised!", "acknowledged!", "unacknowledged", "reminder!"],
    ),
    (
        "resolve by hand",
        [("det", 0, ON), ("resolve", M)],
        AlertStatus.CLEARED,
        ["raised!", "resolved!"],
    ),
    (
        "resolving a pending alert is not notified (it never was raised)",
        [("det", 0, OFFLINE_ON), ("resolve", M)],
        AlertStatus.CLEARED,
        ["pending", "resolved"],
    ),
    (
        "a cleared alert can still be acknowledged",
        [("det", 0, ON), ("det", M, OFF), ("ack", 2 * M)],
        AlertStatus.CLEARED,
        ["raised!", "cleared!", "acknowledged!"],
    ),
]


@pytest.mark.parametrize(
    ("steps", "status", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_transitions(steps: list[Step], status: AlertStatus, expected: list[str]) -> None:
    state, seen = run(steps)
    assert seen == expected  # kinds in order, "!" where notified
    assert state.status is status


def test_repeated_detections_update_count_last_seen_and_peak() -> None:
    state, _ = run(
        [("det", 0, det(score=0.5)), ("det", M, det(score=0.95)), ("det", 2 * M, det(score=0.7))]
    )
    assert (state.count, state.last_seen, state.peak_score, state.last_score) == (
        3,
        2 * M,
        0.95,
        0.7,
    )
    assert state.raised_at == 0


def test_severity_is_kept_at_its_highest() -> None:
    state, _ = run(
        [
            ("det", 0, det(severity=S.MINOR)),
            ("det", M, det(severity=S.CRITICAL)),
            ("det", 2 * M, det(severity=S.MINOR)),
        ]
    )
    assert state.severity is S.CRITICAL


def test_below_raise_score_opens_nothing() -> None:
    low = det(K.BASELINE, score=0.5)
    assert not lifecycle.opens(low, POLICY)
    assert not lifecycle.opens(det(active=False), POLICY)
    with pytest.raises(TransitionError):
        lifecycle.open_alert(low, POLICY, 0)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([("det", 0, ON), ("ack", M), ("ack", 2 * M)], "already acknowledged by noc_an"),
        ([("det", 0, ON), ("unack", M)], "not acknowledged"),
        ([("det", 0, OFFLINE_ON), ("ack", M)], "pending"),
        ([("det", 0, ON), ("resolve", M), ("resolve", 2 * M)], "already cleared"),
    ],
)
def test_invalid_manual_transitions_are_refused(steps: list[Step], message: str) -> None:
    with pytest.raises(TransitionError, match=message):
        run(steps)


def test_assign_unassign_comment() -> None:
    state, _ = run([("det", 0, ON)])
    state, changes = lifecycle.assign(state, "crew_7", "noc_an", M)
    assert state.assignee == "crew_7"
    assert [(c.kind, c.detail, c.actor) for c in changes] == [
        (ChangeKind.ASSIGNED, "crew_7", "noc_an")
    ]
    with pytest.raises(TransitionError, match="already assigned"):
        lifecycle.assign(state, "crew_7", "noc_an", M)
    with pytest.raises(TransitionError, match="blank"):
        lifecycle.assign(state, "  ", "noc_an", M)
    state, changes = lifecycle.assign(state, None, "noc_an", 2 * M)
    assert state.assignee is None
    assert changes[0].kind is ChangeKind.UNASSIGNED
    with pytest.raises(TransitionError, match="not assigned"):
        lifecycle.assign(state, None, "noc_an", M)
    same, changes = lifecycle.comment(state, "on site, pumping", "crew_7", 3 * M)
    assert same == state
    assert changes[0].kind is ChangeKind.COMMENTED
    assert changes[0].detail == "on site, pumping"
    with pytest.raises(TransitionError, match="blank"):
        lifecycle.comment(state, " ", "crew_7", 3 * M)


def test_detections_for_closed_or_other_alerts_are_refused() -> None:
    state, _ = run([("det", 0, ON), ("det", M, OFF)])
    with pytest.raises(TransitionError, match="closed"):
        lifecycle.on_detection(state, ON, POLICY, 2 * M)
    state, _ = run([("det", 0, ON)])
    with pytest.raises(TransitionError, match="applied to"):
        lifecycle.on_detection(state, det(device="cab_2"), POLICY, M)


def test_keys() -> None:
    assert lifecycle.key_of(det(K.LIMIT, metric="humidity")) != lifecycle.key_of(
        det(K.LIMIT, metric="temp_inside")
    )
    # device-level rules ignore the metric that triggered them
    assert lifecycle.key_of(det(K.POWER_LOSS, metric="on_battery")) == AlertKey(
        K.POWER_LOSS, "phuong_hoan_kiem", "cab_1", ""
    )
    area = lifecycle.key_of(det(K.AREA_OUTAGE, device=""))
    assert area.open_key == "ward:phuong_hoan_kiem|area_outage"
    assert lifecycle.key_of(det(K.LIMIT, metric="humidity")).open_key == "dev:cab_1|limit|humidity"


def flap(state: AlertState | None, at: int) -> tuple[AlertState, list[str]]:
    """Raise (a new alert inheriting the flap history) then clear a minute later."""
    history = state.flap_changes if state else ()
    new, changes = lifecycle.open_alert(ON, POLICY, at, history)
    seen = [c.kind.value + ("!" if c.notify else "") for c in lifecycle.finalize(new, changes)]
    new, changes = lifecycle.on_detection(new, OFF, POLICY, at + M)
    seen += [c.kind.value + ("!" if c.notify else "") for c in lifecycle.finalize(new, changes)]
    return new, seen


def test_flapping_is_detected_across_alerts_and_not_renotified() -> None:
    state, first = flap(None, 0)
    assert first == ["raised!", "cleared!"]
    assert not state.flapping
    state, second = flap(state, 2 * M)  # the 4th raise/clear within 10 min
    assert second == ["raised!", "cleared", "flapping_started"]
    assert state.flapping
    state, third = flap(state, 4 * M)  # the next alert of the same key inherits it
    assert third == ["raised", "flapping_started", "cleared"]
    assert state.flapping


def test_flapping_ends_after_a_quiet_window_and_is_announced() -> None:
    state = None
    for at in (0, 2 * M):
        state, _ = flap(state, at)
    assert state is not None
    new, changes = lifecycle.open_alert(ON, POLICY, 4 * M, state.flap_changes)
    assert new.flapping
    assert new.status is AlertStatus.ACTIVE
    assert [c.notify for c in lifecycle.finalize(new, changes)] == [False, False]
    new, changes = lifecycle.tick(new, POLICY, 13 * M)
    assert changes == []  # the last change (4 min) is still within the window
    new, changes = lifecycle.tick(new, POLICY, 14 * M)
    assert [(c.kind, c.notify) for c in lifecycle.finalize(new, changes)] == [
        (ChangeKind.FLAPPING_STOPPED, True)
    ]
    assert not new.flapping


def test_old_history_outside_the_window_does_not_count() -> None:
    new, _ = lifecycle.open_alert(ON, POLICY, 60 * M, (0, M, 2 * M, 3 * M))
    assert not new.flapping
    assert new.flap_changes == (60 * M,)


def test_silenced_alerts_are_recorded_not_notified_until_the_silence_ends() -> None:
    state, _ = run([("det", 0, ON)])
    state, changes = lifecycle.set_silenced(state, True, M, "silence 3")
    assert [(c.kind, c.notify) for c in lifecycle.finalize(state, changes)] == [
        (ChangeKind.SILENCED, False)
    ]
    assert lifecycle.set_silenced(state, True, M) == (state, [])
    state, changes = lifecycle.on_detection(state, det(severity=S.CRITICAL), POLICY, 2 * M)
    assert [(c.kind, c.notify) for c in lifecycle.finalize(state, changes)] == [
        (ChangeKind.SEVERITY_RAISED, False)
    ]
    assert lifecycle.tick(state, POLICY, 60 * M)[1] == []  # no escalation, no reminder
    state, changes = lifecycle.set_silenced(state, False, 61 * M)
    assert [(c.kind, c.notify) for c in lifecycle.finalize(state, changes)] == [
        (ChangeKind.UNSILENCED, True)
    ]
    state, changes = lifecycle.tick(state, POLICY, 61 * M)
    assert [c.kind for c in changes] == [ChangeKind.ESCALATED]


def test_incident_children_are_quiet_until_ungrouped() -> None:
    state, _ = run([("det", 0, OFFLINE_ON), ("tick", 2 * M)])
    child, changes = lifecycle.join_incident(state, 7, False, 3 * M)
    assert child.grouped
    assert [(c.kind, c.notify) for c in lifecycle.finalize(child, changes)] == [
        (ChangeKind.GROUPED, False)
    ]
    assert lifecycle.tick(child, POLICY, 90 * M)[1] == []
    root, changes = lifecycle.join_incident(state, 7, True, 3 * M)
    assert changes == []
    assert not root.grouped
    assert root.incident_root
    free, changes = lifecycle.leave_incident(child, 10 * M)
    assert free.incident_id is None
    assert [(c.kind, c.notify) for c in lifecycle.finalize(free, changes)] == [
        (ChangeKind.UNGROUPED, True)
    ]
    assert lifecycle.leave_incident(root, 10 * M) == (root, [])


def test_a_closed_alert_does_not_tick() -> None:
    state, _ = run([("det", 0, ON), ("det", M, OFF)])
    assert lifecycle.tick(state, POLICY, 90 * M) == (state, [])
    assert lifecycle.set_silenced(replace(state), True, 90 * M) == (state, [])


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="clear_score"):
        TypePolicy(raise_score=0.3, clear_score=0.5)
    with pytest.raises(ValueError, match=">= 0"):
        TypePolicy(pending_ms=-1)
    with pytest.raises(ValueError, match="flap_threshold"):
        Policy(flap_threshold=1)


def test_critical_detections_skip_the_pending_period_warnings_wait() -> None:
    critical = det(K.OFFLINE, severity=S.CRITICAL)
    state, changes = lifecycle.open_alert(critical, POLICY, 0)
    assert state.status is AlertStatus.ACTIVE
    assert changes[0].kind is ChangeKind.RAISED

    major = det(K.OFFLINE, severity=S.MAJOR, device="cab_2")
    state, changes = lifecycle.open_alert(major, POLICY, 0)
    assert state.status is AlertStatus.PENDING
    # The condition turns critical while pending: raised at once, not after two minutes.
    state, changes = lifecycle.on_detection(
        state, det(K.OFFLINE, severity=S.CRITICAL, device="cab_2"), POLICY, M // 6
    )
    assert state.status is AlertStatus.ACTIVE
    assert ChangeKind.RAISED in [c.kind for c in changes]

    patient = replace(POLICY, critical_at_once=False)
    state, _ = lifecycle.open_alert(critical, patient, 0)
    assert state.status is AlertStatus.PENDING


_OPS = st.sampled_from(["detect", "end", "tick", "ack", "unack", "silence", "unsilence", "group"])


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([K.FLOODING, K.OFFLINE, K.BASELINE, K.CABLE_CUT]),
    severity=st.sampled_from([S.WARNING, S.MAJOR, S.CRITICAL]),
    history=st.lists(st.tuples(_OPS, st.integers(0, 40 * MINUTE_MS)), max_size=12),
    later=st.integers(0, 120 * MINUTE_MS),
)
def test_tick_changes_nothing_before_next_due(
    kind: DetectionKind,
    severity: Severity,
    history: list[tuple[str, int]],
    later: int,
) -> None:
    """The store ticks only alerts whose ``next_due`` has come: before it, a tick must
    leave the state as it is and say nothing; from it on, the tick has work to do."""
    now = 0
    state, _ = lifecycle.open_alert(det(kind, severity=severity), POLICY, now)
    for op, step in history:
        if not state.is_open:
            break
        now += step
        if op == "detect":
            state, _ = lifecycle.on_detection(state, det(kind, severity=severity), POLICY, now)
        elif op == "end":
            state, _ = lifecycle.on_detection(state, det(kind, active=False), POLICY, now)
        elif op == "tick":
            state, _ = lifecycle.tick(state, POLICY, now)
        elif op in ("ack", "unack") and state.status is AlertStatus.ACTIVE:
            action = lifecycle.acknowledge if op == "ack" else lifecycle.unacknowledge
            with contextlib.suppress(TransitionError):
                state, _ = action(state, "noc", now)
        elif op in ("silence", "unsilence"):
            state, _ = lifecycle.set_silenced(state, op == "silence", now)
        elif op == "group" and state.incident_id is None:
            state, _ = lifecycle.join_incident(state, 1, False, now)
    due = lifecycle.next_due(state, POLICY)
    at = now + later
    ticked = lifecycle.tick(state, POLICY, at)
    if due is None or at < due:
        event("not due")
        assert ticked == (state, [])
    else:
        event("due")
        assert ticked != (state, [])


def test_a_critical_alert_is_reminded_before_it_escalates() -> None:
    """Reminders more frequent than the escalation: next_due schedules each of them (it
    scheduled only the escalation, so the store ticked one reminder and then none)."""
    policy = replace(POLICY, reminder_every_ms=5 * MINUTE_MS)
    state, _ = lifecycle.open_alert(det(K.FLOODING, severity=S.CRITICAL), policy, 0)
    assert state.status is AlertStatus.ACTIVE
    seen = []
    while (due := lifecycle.next_due(state, policy)) is not None and due <= 20 * MINUTE_MS:
        state, changes = lifecycle.tick(state, policy, due)
        seen += [(c.kind, c.at_ms // MINUTE_MS) for c in changes]
    assert seen == [
        (ChangeKind.REMINDER, 5),
        (ChangeKind.REMINDER, 10),
        (ChangeKind.ESCALATED, 15),
        (ChangeKind.REMINDER, 20),
    ]
