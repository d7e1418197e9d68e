"""Where simulated messages go: the sink interface and the JSON-lines file sink.

A sink only delivers; pacing, progress and the summary belong to ``simulators.runner``.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

import msgspec

from simulators.simulation import SimMessage


@dataclass
class SinkStats:
    """What a sink did with the messages it was given."""

    sent: int = 0
    """Delivered (for MQTT: acknowledged by the broker)."""
    failed: int = 0
    """Refused or never acknowledged."""
    pending: int = 0
    """Handed over but not yet acknowledged."""


class Sink(Protocol):
    """Delivers messages; ``idle`` lets it work while the pacer waits."""

    stats: SinkStats

    def send(self, message: SimMessage) -> None: ...

    def idle(self, seconds: float) -> None:
        """Spend up to ``seconds`` on background work (acks, reconnects) or just wait."""
        ...

    def backlog(self) -> int:
        """Messages handed over but not yet delivered (the pacer slows down when high)."""
        ...

    def close(self) -> None:
        """Deliver what is pending and end cleanly."""
        ...


class _JsonLine(msgspec.Struct):
    topic: str
    payload: msgspec.Raw


class FileSink:
    """Writes ``{"topic": …, "payload": {…}}`` JSON lines, as fast as it can.

    A device's death is written as the ``offline`` status the broker would publish for
    its Last Will, so the file holds the same stream a subscriber would see.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stats = SinkStats()
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()
        self._out: IO[bytes] = path.open("wb")

    def send(self, message: SimMessage) -> None:
        self._encoder.encode_into(
            _JsonLine(message.topic, msgspec.Raw(message.payload)), self._buffer, -1
        )
        self._buffer.extend(b"\n")
        self.stats.sent += 1
        if len(self._buffer) > 1 << 20:
            self._out.write(self._buffer)
            self._buffer.clear()

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def backlog(self) -> int:
        return 0

    def close(self) -> None:
        if not self._out.closed:
            self._out.write(self._buffer)
            self._buffer.clear()
            self._out.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_jsonl(path: Path) -> list[tuple[str, bytes]]:
    """Read back a JSON-lines stream as (topic, payload bytes) pairs."""
    decoder = msgspec.json.Decoder(_JsonLine)
    with path.open("rb") as src:
        return [(line.topic, bytes(line.payload)) for line in map(decoder.decode, src) if line]
