"""Which lines InfluxDB refused: message parsing, line scanning, identification (fake 1.x)."""

import doctest
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ingest.refusal
from ingest.refusal import (
    FieldTypeConflict,
    RejectedLine,
    field_types,
    identify_refused,
    parse_write_error,
    split_points,
)
from telemetry.influxdb import InfluxRejectedError


def test_doctests() -> None:
    assert doctest.testmod(ingest.refusal).failed == 0


# Messages as InfluxDB 1.6 / 1.8 and the 2.x compatibility API send them.
CONFLICT_1X = (
    'partial write: field type conflict: input field "temp_inside" on measurement "cabinet" '
    "is type float, already exists as type string dropped=7"
)
UNPARSABLE_1X = (
    "partial write: unable to parse 'bad line here': missing fields\n"
    "unable to parse 'x,y=3 'q': invalid field format dropped=0"
)
ALL_UNPARSABLE_1X = "unable to parse 'garbage': missing fields\nunable to parse 'a b': bad"
CONFLICT_2X = (
    "failure writing points to database: partial write: field type conflict: input field "
    '"v" on measurement "m x" is type integer, already exists as type float dropped=1'
)
RETENTION_1X = "partial write: points beyond retention policy dropped=2"


def test_parse_field_type_conflict_1x_and_2x() -> None:
    one = parse_write_error(CONFLICT_1X)
    assert (one.partial, one.dropped, one.unparsable) == (True, 7, ())
    assert one.conflicts == (FieldTypeConflict("cabinet", "temp_inside", "float", "string"),)
    two = parse_write_error(CONFLICT_2X)
    assert (two.partial, two.dropped) == (True, 1)
    assert two.conflicts == (FieldTypeConflict("m x", "v", "integer", "float"),)


def test_parse_unparsable_lines_names_each_line_and_reason() -> None:
    partial = parse_write_error(UNPARSABLE_1X)
    assert partial.partial
    assert partial.dropped == 0
    assert partial.unparsable == (
        RejectedLine("bad line here", "missing fields"),
        RejectedLine("x,y=3 'q", "invalid field format"),  # a quote inside the line
    )
    whole = parse_write_error(ALL_UNPARSABLE_1X)
    assert not whole.partial
    assert [r.line for r in whole.unparsable] == ["garbage", "a b"]


def test_parse_reasons_that_name_no_line() -> None:
    retention = parse_write_error(RETENTION_1X)
    assert (retention.partial, retention.dropped, retention.conflicts, retention.unparsable) == (
        True,
        2,
        (),
        (),
    )
    assert parse_write_error("database not found: x").partial is False


def test_rejected_error_keeps_the_servers_text_and_names_status() -> None:
    exc = InfluxRejectedError(400, CONFLICT_1X)
    parsed = parse_write_error(exc.message)
    assert parsed.partial
    assert parsed.dropped == 7
    assert parsed.conflicts[0].field == "temp_inside"
    assert "(HTTP 400)" in str(exc)


def test_split_points_keeps_newlines_inside_strings_and_skips_comments() -> None:
    body = (
        "# a comment\n"
        'ev,device=a\\ b detail="line one\nline two \\"quoted\\" x=1" 5\n'
        "\n"
        'cab,ward=q"uote t=1.5 6\n'
        "m x=1"
    )
    assert split_points(body) == [
        'ev,device=a\\ b detail="line one\nline two \\"quoted\\" x=1" 5',
        'cab,ward=q"uote t=1.5 6',
        "m x=1",
    ]


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ("cab,ward=a t=1.5 1", ("cab", {"t": "float"})),
        (
            'm\\ x,tag=" v=1i,s="a=b, c",b=T 1',
            ("m x", {"v": "integer", "s": "string", "b": "boolean"}),
        ),
        ("m u=3u,f\\=x=2", ("m", {"u": "unsigned", "f=x": "float"})),
        ("no-fields", ("", {})),
    ],
)
def test_field_types(point: str, expected: tuple[str, dict[str, str]]) -> None:
    assert field_types(point) == expected


class FakeInflux1x:
    """Mimics what InfluxDB 1.x does with a write: stores good points, refuses others.

    Like the real server: the field types of a measurement are fixed by the first write;
    points with a wrong type, unparsable lines (no space) and points older than the
    retention cutoff are refused; the message names only the *last* conflict, mentions
    parse errors only when nothing else went wrong, and ``dropped`` misses parse errors.
    """

    def __init__(self, schema: dict[str, dict[str, str]], retention_cutoff: int = 0) -> None:
        self.schema = {m: dict(f) for m, f in schema.items()}
        self.cutoff = retention_cutoff
        self.stored: set[str] = set()
        self.requests = 0

    def write(self, points: Sequence[str]) -> None:
        self.requests += 1
        conflict = ""
        unparsable: list[str] = []
        dropped = 0
        old = 0
        for point in points:
            measurement, types = field_types(point)
            if not types:
                unparsable.append(f"unable to parse '{point}': missing fields")
                continue
            if int(point.rsplit(" ", 1)[1]) < self.cutoff:
                old += 1
                continue
            known = self.schema.setdefault(measurement, {})
            bad = [(f, t) for f, t in types.items() if f in known and known[f] != t]
            if bad:
                field, kind = bad[0]
                conflict = (
                    f'field type conflict: input field "{field}" on measurement '
                    f'"{measurement}" is type {kind}, already exists as type {known[field]}'
                )
                dropped += 1
                continue
            for field, kind in types.items():
                known.setdefault(field, kind)
            self.stored.add(point)
        if conflict:
            raise InfluxRejectedError(400, f"partial write: {conflict} dropped={dropped}")
        if old:
            raise InfluxRejectedError(
                400, f"partial write: points beyond retention policy dropped={old}"
            )
        if unparsable:
            prefix = "partial write: " if len(unparsable) < len(points) else ""
            raise InfluxRejectedError(400, prefix + "\n".join(unparsable) + " dropped=0")


def _point(kind: str, i: int) -> str:
    return {
        "good": f"cab,device=d{i} hum={i}.5,t={i}.0 {1000 + i}",
        "string_t": f'cab,device=d{i} t="hot {i}" {1000 + i}',
        "int_x": f"seg,device=s{i} x={i}i {1000 + i}",
        "float_x": f"seg,device=s{i} x={i}.25 {1000 + i}",
        "garbage": f"garbage{i}",
        "old": f"cab,device=d{i} hum=1.0 {i}",
        "event": f'ev,device=e{i} detail="two\nlines, x=1" {1000 + i}',
    }[kind]


def _run(kinds: list[str], cutoff: int = 500) -> tuple[FakeInflux1x, list[str], list[int]]:
    server = FakeInflux1x({"cab": {"t": "float"}, "seg": {"x": "float"}}, cutoff)
    points = [_point(kind, i) for i, kind in enumerate(kinds)]
    found: list[int] = []
    try:
        server.write(points)
    except InfluxRejectedError as exc:
        refused = identify_refused(points, exc.message, server.write, max_requests=200)
        found = [r.index for r in refused]
    return server, points, found


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["good", "good", "event", "string_t", "int_x", "float_x", "garbage", "old"]
        ),
        min_size=1,
        max_size=40,
    )
)
def test_identify_refused_finds_exactly_the_refused_points(kinds: list[str]) -> None:
    server, points, found = _run(kinds)
    refusing = {"string_t", "int_x", "garbage", "old"}
    assert found == [i for i, kind in enumerate(kinds) if kind in refusing]
    # every other point is stored (writing it again changed nothing)
    assert server.stored == {p for i, p in enumerate(points) if i not in found}


def test_identify_refused_reasons_name_the_cause_and_stay_cheap() -> None:
    kinds = ["good"] * 500 + ["string_t"] * 300 + ["garbage", "int_x"] + ["good"] * 200
    server = FakeInflux1x({"cab": {"t": "float"}, "seg": {"x": "float"}})
    points = [_point(kind, i) for i, kind in enumerate(kinds)]
    with pytest.raises(InfluxRejectedError) as first:
        server.write(points)
    refused = identify_refused(points, first.value.message, server.write)
    assert [r.index for r in refused] == [*range(500, 800), 800, 801]
    assert refused[0].reason.startswith('field type conflict: field "t" of measurement "cab"')
    assert refused[300].reason == "unparsable: missing fields"
    assert '"x" of measurement "seg" is float in InfluxDB' in refused[301].reason
    # one write per distinct reason, not one per line
    assert server.requests <= 4


def test_bisection_finds_points_the_message_does_not_name() -> None:
    kinds = ["good"] * 30 + ["old"] + ["good"] * 30 + ["old"]
    server, _, found = _run(kinds)
    assert found == [30, 61]
    assert server.requests <= 1 + 2 * 2 * 6  # two halves per level, 6 levels, 2 bad points


def test_budget_spent_or_influx_away_keeps_the_unidentified_points() -> None:
    kinds = ["good"] * 16 + ["old"] * 2 + ["good"] * 16
    server = FakeInflux1x({}, retention_cutoff=500)
    points = [_point(kind, i) for i, kind in enumerate(kinds)]
    with pytest.raises(InfluxRejectedError) as first:
        server.write(points)
    refused = identify_refused(points, first.value.message, server.write, max_requests=2)
    assert {16, 17} <= {r.index for r in refused}  # never lost, maybe over-reported
    assert all("budget" in r.reason for r in refused)

    def away(points: Sequence[str]) -> None:
        raise ConnectionError("refused")

    refused = identify_refused(points, first.value.message, away)
    assert [r.index for r in refused] == list(range(len(points)))
    assert "InfluxDB unavailable while identifying" in refused[0].reason
