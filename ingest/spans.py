"""``cable_span`` points: each cable segment joined to the one before it on its route.

A route is a chain of segments numbered from the exchange (``position`` 0, 1, 2 …), each
announcing its place in its retained ``online`` status. A map draws the route as a line
through them, but neither the map's query language (InfluxQL) nor Grafana can pair a
segment with the one at the previous position. Ingest can: it sees every segment's place,
so for each segment whose predecessor it knows it writes one point with both ends of the
span between them (tags ``ward``, ``route``, ``device``: the segment at the far end;
fields ``upstream``, ``up_lat``, ``up_lon``, ``lat``, ``lon``, ``position``). A board then
draws every span as a line (Grafana's spatial "line builder"), coloured like the segment
it leads to.

Segments announce themselves in any order: a segment's own span is written when its
predecessor is known, and the span of its successor (already known) is written again,
since one of its ends is this segment.
"""

from collections.abc import Iterable

from telemetry import DeviceInfo, DeviceKind
from telemetry.lineproto import encode_point

MEASUREMENT = "cable_span"


def span_line(segment: DeviceInfo, place: tuple[str, int], upstream: DeviceInfo, ts_ms: int) -> str:
    """The span from ``upstream`` to ``segment``, which sits at ``place`` (route,
    position) (schema: ``telemetry.storage.SCHEMA["cable_span"]``)."""
    route, position = place
    tags = {"ward": segment.ward, "route": route, "device": segment.id}
    fields: dict[str, float | int | bool | str] = {
        "upstream": upstream.id,
        "up_lat": upstream.lat,
        "up_lon": upstream.lon,
        "lat": segment.lat,
        "lon": segment.lon,
        "position": position,
    }
    return encode_point(MEASUREMENT, tags, fields, ts_ms)


class CableSpans:
    """Which segment sits where on each route (seeded with what the registry knew)."""

    def __init__(self, known: Iterable[DeviceInfo] = ()) -> None:
        self._at: dict[tuple[str, int], DeviceInfo] = {}
        """(route, position) → the segment there."""
        self._place: dict[str, tuple[str, int]] = {}
        """Segment id → its (route, position)."""
        for info in known:
            self._put(info)

    def __len__(self) -> int:
        return len(self._at)

    def learn(self, info: DeviceInfo, ts_ms: int) -> list[str]:
        """Take a device's announced place; the ``cable_span`` lines it makes known."""
        placed = self._put(info)
        if placed is None:
            return []
        route, position = placed
        lines = []
        before = self._at.get((route, position - 1))
        if before is not None:
            lines.append(span_line(info, placed, before, ts_ms))
        after = self._at.get((route, position + 1))
        if after is not None:
            lines.append(span_line(after, (route, position + 1), info, ts_ms))
        return lines

    def _put(self, info: DeviceInfo) -> tuple[str, int] | None:
        old = self._place.pop(info.id, None)
        if old is not None and self._at.get(old) is not None and self._at[old].id == info.id:
            del self._at[old]
        if info.kind is not DeviceKind.CABLE_SEGMENT or not info.route or info.position is None:
            return None
        place = (info.route, info.position)
        self._at[place] = info
        self._place[info.id] = place
        return place
