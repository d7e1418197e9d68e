"""Pacing a simulation into a sink: hold the schedule, show progress, sum up.

With ``speed`` s > 0 a message due at device time t goes out at wall time
``wall0 + (t - start) / s`` (60 plays an hour in a minute; device timestamps stay those of
the simulated clock). ``speed`` 0 sends as fast as the sink takes messages. The pacer never
lets the sink's backlog grow without bound: above ``high_water`` unacknowledged messages it
waits for acknowledgements first.
"""

import logging
import time
from dataclasses import dataclass, field

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simulators.simulation import Simulation
from simulators.sinks import Sink

log = logging.getLogger(__name__)

PUMP_EVERY = 256
"""Service the sink's sockets at least every this many messages."""


@dataclass
class RunSummary:
    """What a run did."""

    generated: int = 0
    sent: int = 0
    failed: int = 0
    duration_s: float = 0.0
    max_lag_s: float = 0.0
    """Worst delay of a message behind its scheduled wall time."""
    interrupted: bool = False
    by_channel: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Delivered messages per second of wall time."""
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0

    def lines(self) -> list[str]:
        channels = ", ".join(f"{k} {v}" for k, v in sorted(self.by_channel.items()))
        return [
            f"messages generated {self.generated} ({channels})",
            f"sent {self.sent}, failed {self.failed}",
            f"duration {self.duration_s:.2f} s, rate {self.rate:,.0f} msg/s, "
            f"worst lag behind schedule {self.max_lag_s:.2f} s"
            + (" (interrupted)" if self.interrupted else ""),
        ]


def run(
    sim: Simulation,
    sink: Sink,
    *,
    speed: float = 0.0,
    progress: bool = True,
    high_water: int = 10_000,
) -> RunSummary:
    """Play ``sim`` into ``sink``; the sink is closed (cleanly) at the end."""
    if speed < 0:
        raise ValueError(f"speed must be >= 0, got {speed}")
    summary = RunSummary()
    # Every device: one report per tick plus its online status.
    expected = len(sim.fleet) * (sim.n_ticks + 1) if sim.n_ticks is not None else None
    bar = Progress(
        TextColumn("[bold]simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("msgs  sent {task.fields[sent]}  failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        disable=not progress,
        transient=False,
    )
    task = bar.add_task("simulate", total=expected, sent=0, failed=0)
    wall0 = time.monotonic()
    scale = 1.0 / (1000.0 * speed) if speed > 0 else 0.0
    count = 0
    try:
        with bar:
            for batch in sim.batches():
                for message in batch:
                    if speed > 0:
                        due = wall0 + (message.due_ms - sim.start_ms) * scale
                        wait = due - time.monotonic()
                        if wait > 0.001:
                            sink.idle(wait)
                        else:
                            summary.max_lag_s = max(summary.max_lag_s, -wait)
                    while sink.backlog() > high_water:
                        sink.idle(0.005)
                    sink.send(message)
                    count += 1
                    channel = message.topic.rsplit("/", 1)[1]
                    summary.by_channel[channel] = summary.by_channel.get(channel, 0) + 1
                    if count % PUMP_EVERY == 0:
                        sink.idle(0.0)
                bar.update(task, completed=count, sent=sink.stats.sent, failed=sink.stats.failed)
    except KeyboardInterrupt:
        summary.interrupted = True
        log.warning("interrupted: closing cleanly")
    finally:
        sink.close()
        summary.generated = count
        summary.sent = sink.stats.sent
        summary.failed = sink.stats.failed
        summary.duration_s = time.monotonic() - wall0
    return summary
