"""A batch of received messages on its way to durable storage and their acknowledgements."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from telemetry import Report

AckToken = tuple[int, int]
"""(connection generation, MQTT packet id) of a received QoS 1 message."""

Confirmation = Callable[[float], bool]
"""Waits up to a timeout (s) for an outgoing message to be confirmed; True if it was."""


@dataclass(slots=True)
class PendingBatch:
    """Lines to write plus everything that must wait until they are durable.

    ``acks`` covers every message the batch closes, in receive order, including ones that
    produced no line (statuses, duplicates, dead letters), so acknowledgements never
    overtake the write of a message received earlier. A dead letter's token is also in
    ``deadletters`` with its confirmation: it is acked only once the broker has the letter.
    """

    lines: list[str] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    wards: list[str] = field(default_factory=list)
    acks: list[AckToken] = field(default_factory=list)
    deadletters: list[tuple[AckToken | None, Confirmation]] = field(default_factory=list)
    lags_ms: list[int] = field(default_factory=list)
    accepted: list[tuple[str, int]] = field(default_factory=list)
    """(device, timestamp) of each report the batch writes: the duplicate window forgets
    them if the batch cannot be made durable."""
    created_s: float = field(default_factory=time.monotonic)

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def empty(self) -> bool:
        return not (self.lines or self.acks or self.deadletters)
