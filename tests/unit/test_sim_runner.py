"""The pacer: holds device time against a (fake) wall clock, bounds the backlog, sums up."""

import pytest

import simulators.runner as runner_module
from simulators.fleet import build_fleet
from simulators.runner import run
from simulators.simulation import SimMessage, Simulation
from simulators.sinks import SinkStats
from simulators.wards import load_wards

FLEET = build_fleet(20, 1, load_wards())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class RecordingSink:
    """Acknowledges a message ``ack_after`` idle calls after it arrived; records wall times."""

    def __init__(self, clock: FakeClock, ack_after: int = 0) -> None:
        self.clock = clock
        self.stats = SinkStats()
        self.sent_at: list[tuple[float, SimMessage]] = []
        self.ack_after = ack_after
        self.max_backlog = 0

    def send(self, message: SimMessage) -> None:
        self.sent_at.append((self.clock.now, message))
        self.stats.pending += 1
        self.max_backlog = max(self.max_backlog, self.stats.pending)
        if self.ack_after == 0:
            self._ack(self.stats.pending)

    def _ack(self, n: int) -> None:
        self.stats.pending -= n
        self.stats.sent += n

    def idle(self, seconds: float) -> None:
        self.clock.now += seconds
        if self.ack_after:
            self._ack(min(self.stats.pending, 7))

    def backlog(self) -> int:
        return self.stats.pending

    def close(self) -> None:
        self._ack(self.stats.pending)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(runner_module.time, "monotonic", fake.monotonic)
    return fake


def test_speed_maps_device_time_to_wall_time(clock: FakeClock) -> None:
    sim = Simulation(FLEET, start_ms=1_784_109_600_000, duration_s=600, period_s=60, seed=1)
    sink = RecordingSink(clock)
    summary = run(sim, sink, speed=60, progress=False)
    assert summary.sent == summary.generated == 20 * 10 + 20
    for wall, message in sink.sent_at:
        scheduled = 1000.0 + (message.due_ms - sim.start_ms) / 60_000
        assert scheduled - 0.001 <= wall < scheduled + 0.002  # on time to the millisecond
    assert clock.now - 1000.0 == pytest.approx(10.0, abs=1.0)  # ten minutes in ten seconds


def test_flat_out_never_waits_and_bounds_the_backlog(clock: FakeClock) -> None:
    sim = Simulation(FLEET, start_ms=1_784_109_600_000, duration_s=3600, period_s=10, seed=1)
    sink = RecordingSink(clock, ack_after=1)
    summary = run(sim, sink, speed=0, progress=False, high_water=50)
    assert summary.sent == summary.generated
    assert sink.max_backlog <= 51
    assert summary.max_lag_s == 0


def test_negative_speed_is_refused() -> None:
    sim = Simulation(FLEET, start_ms=0, duration_s=60)
    with pytest.raises(ValueError, match="speed"):
        run(sim, RecordingSink(FakeClock()), speed=-1, progress=False)
