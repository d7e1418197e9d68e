"""Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter").

The one retry schedule of every package (ingest's writer, the alert store's transactions,
the notifiers, the change-feed followers). Full jitter spreads the retries of many
clients that failed together (a database restart)
instead of letting them hammer the server in lock-step.
"""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays ``uniform(0, min(cap, base * 2**attempt))``; ``reset()`` after a success.

    >>> b = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(1))
    >>> [round(b.next_delay(), 2) for _ in range(5)]
    [0.13, 1.69, 3.06, 2.04, 3.96]
    """

    base_s: float = 0.2
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError(f"need 0 < base_s <= cap_s, got {self.base_s} and {self.cap_s}")

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 60))

    def next_delay(self) -> float:
        """The next delay in seconds; each call counts one more failed attempt."""
        delay = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
