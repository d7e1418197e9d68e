"""Backoff, duplicate/out-of-order policy, liveness timing with an injected clock."""

import random

import pytest

from ingest.liveness import KIND_PERIOD_S, LivenessTracker
from ingest.order import Order, OrderTracker
from telemetry import DeviceInfo, DeviceKind, Status
from telemetry.backoff import Backoff


def test_backoff_grows_exponentially_with_jitter_under_the_cap() -> None:
    backoff = Backoff(base_s=0.1, cap_s=2.0, rng=random.Random(7))
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        delay = backoff.next_delay()
        assert 0 <= delay <= ceilings[-1]
    assert ceilings[:6] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    backoff.reset()
    assert backoff.ceiling() == 0.1
    delays = [Backoff(base_s=1, cap_s=1, rng=random.Random(s)).next_delay() for s in range(20)]
    assert len(set(delays)) == 20  # jitter: no lock-step retries
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=0, cap_s=1)


def test_order_tracker_new_late_duplicate() -> None:
    tracker = OrderTracker(window=3)
    assert tracker.check("d", 1000) is Order.NEW
    assert tracker.check("d", 2000) is Order.NEW
    assert tracker.check("d", 2000) is Order.DUPLICATE
    assert tracker.check("d", 1500) is Order.LATE
    assert tracker.check("d", 1500) is Order.DUPLICATE
    assert tracker.check("other", 1500) is Order.NEW
    tracker.check("d", 3000)
    tracker.check("d", 4000)
    assert tracker.check("d", 1000) is Order.LATE  # fell out of the window: written again


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_liveness_timeout_is_misses_times_period_plus_grace() -> None:
    clock = FakeClock()
    tracker = LivenessTracker(misses=3, grace_s=10, clock=clock)
    change = tracker.on_report("cab-1", DeviceKind.CABINET, "w", ts_ms=0)
    assert change is not None
    assert (change.online, change.previous, change.reason) == (True, None, "report")
    assert tracker.timeout_s("cab-1") == 3 * KIND_PERIOD_S[DeviceKind.CABINET] + 10
    clock.now += 189.9
    assert tracker.check() == []
    clock.now += 0.2
    [offline] = tracker.check()
    assert (offline.device, offline.online, offline.previous, offline.reason) == (
        "cab-1",
        False,
        True,
        "timeout",
    )
    assert tracker.check() == []
    back = tracker.on_report("cab-1", DeviceKind.CABINET, "w", ts_ms=1000)
    assert back is not None
    assert back.online


def test_liveness_uses_a_shorter_observed_period() -> None:
    clock = FakeClock()
    tracker = LivenessTracker(misses=3, grace_s=2, clock=clock, smoothing=1.0)
    for i in range(5):
        tracker.on_report("fast", DeviceKind.CABINET, "w", ts_ms=i * 5000)
        clock.now += 5
    assert tracker.timeout_s("fast") == pytest.approx(3 * 5 + 2)
    clock.now += 13
    assert [c.device for c in tracker.check()] == ["fast"]


def test_liveness_status_and_last_will() -> None:
    clock = FakeClock()
    tracker = LivenessTracker(clock=clock)
    info = DeviceInfo(
        id="seg-1", kind=DeviceKind.CABLE_SEGMENT, ward="w", street="s", lat=21, lon=105
    )
    online = Status(
        v=1, device="seg-1", kind=DeviceKind.CABLE_SEGMENT, state="online", ts=1, info=info
    )
    will = Status(v=1, device="seg-1", kind=DeviceKind.CABLE_SEGMENT, state="offline")
    first = tracker.on_status(online, "w")
    assert first is not None
    assert first.reason == "status"
    assert tracker.on_status(online, "w") is None  # no transition, no change
    gone = tracker.on_status(will, "w")
    assert gone is not None
    assert (gone.online, gone.reason) == (False, "last_will")
    assert tracker.check() == []  # already offline: no timeout transition


def test_liveness_restored_from_a_snapshot_keeps_silences_and_states() -> None:
    clock = FakeClock()
    tracker = LivenessTracker(misses=3, grace_s=10, clock=clock, smoothing=1.0)
    for i in range(3):
        tracker.on_report("quiet", DeviceKind.CABINET, "w", ts_ms=i * 30_000)
        tracker.on_report("busy", DeviceKind.CABINET, "w", ts_ms=i * 30_000)
        clock.now += 30
    will = Status(v=1, device="gone", kind=DeviceKind.CABINET, state="offline")
    tracker.on_status(will, "w")
    snapshot = tracker.to_bytes()

    # Another process, the same clock (a checkpoint carries it over).
    taken_over = LivenessTracker(misses=3, grace_s=10, clock=clock)
    taken_over.restore(snapshot)
    assert taken_over.to_bytes() == snapshot
    assert taken_over.timeout_s("quiet") == pytest.approx(3 * 30 + 10)  # learned period
    assert (taken_over.state("busy"), taken_over.state("gone")) == (True, False)
    clock.now += 60
    assert taken_over.on_report("busy", DeviceKind.CABINET, "w", ts_ms=150_000) is None
    clock.now += 40  # 'quiet' last heard 130 s ago (> 100 s), 'busy' 40 s ago
    assert [(c.device, c.previous, c.reason) for c in taken_over.check()] == [
        ("quiet", True, "timeout")
    ]
    back = taken_over.on_report("gone", DeviceKind.CABINET, "w", ts_ms=160_000)
    assert back is not None
    assert (back.online, back.previous) == (True, False)  # its offline alert clears
    with pytest.raises(ValueError, match="damaged"):
        taken_over.restore(b"[1, 2")
    assert taken_over.state("busy") is True  # left as it was
