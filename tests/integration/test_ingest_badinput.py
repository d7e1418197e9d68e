"""Bad input: fuzzed malformed payloads mixed with good ones; escaping against the real server."""

import threading
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from conftest import Endpoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from test_ingest_support import (
    Publisher,
    cabinet_report,
    count_points,
    query,
    running_ingest,
    telemetry_topic,
    wait_until,
)

from ingest import decode_deadletter
from ingest.deadletter import DeadLetter
from telemetry import DEADLETTER_PREFIX, DecodeError, decode_message, encode
from telemetry.lineproto import encode_point, stored_tag_value

TOPIC = "cw/v1/phuong_hoan_kiem/cabinet/cab-fuzz/telemetry"
_valid = encode(cabinet_report("cab-fuzz", 0))

_bad_payloads = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.just(_valid[:-3]),
    st.builds(
        lambda key, value: _valid.replace(b'"humidity":0.0', f'"{key}":{value}'.encode()),
        st.sampled_from(["humidity", "temp_inside", "nope", "door_open"]),
        st.sampled_from(["NaN", "1e400", "-5", "true", '"x"', "null", "101", "[]"]),
    ),
    st.builds(lambda n: _valid.replace(b'"v":1', f'"v":{n}'.encode()), st.integers(2, 99)),
    st.just(b"x" * 20000),
)


class DeadLetterCollector:
    def __init__(self, port: int) -> None:
        self.letters: list[DeadLetter] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.letters.append(decode_deadletter(m.payload))
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{DEADLETTER_PREFIX}/#", qos=1)
        self.client.loop_start()
        assert self.ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _expected_reason(topic: str, payload: bytes) -> str | None:
    try:
        decode_message(topic, payload, now_ms=cabinet_report("x", 0).ts + 10_000)
    except DecodeError as exc:
        return exc.reason
    return None


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(bad=st.lists(_bad_payloads, min_size=150, max_size=150))
def test_fuzzed_bad_payloads_dead_lettered_good_ones_written(
    broker: Endpoint, influx: Endpoint, tmp_path_factory: object, bad: list[bytes]
) -> None:
    db = "fuzz"
    bad = [p for p in bad if _expected_reason(TOPIC, p) is not None]
    good = [cabinet_report(f"cab-g{n % 5}", n) for n in range(300)]
    messages: list[tuple[str, bytes]] = []
    for n, report in enumerate(good):
        messages.append((telemetry_topic(report), encode(report)))
        if n < len(bad):
            messages.append((TOPIC, bad[n]))
    messages.append(("cw/v1/phuong_hoan_kiem/toaster/t-1/telemetry", _valid))  # bad topic
    spool = Path(str(tmp_path_factory.mktemp("fuzz")))  # type: ignore[attr-defined]
    letters = DeadLetterCollector(broker.port)
    with running_ingest(broker.url, influx.url, db, spool) as service:
        pub = Publisher(broker.port, "fuzz-pub")
        pub.publish_all(messages)
        pub.close()
        assert wait_until(lambda: len(letters.letters) == len(bad) + 1)
        assert wait_until(lambda: count_points(influx.url, db, "cabinet", "humidity") == len(good))
        assert service.writer._thread.is_alive()
        assert service.source.connected.is_set()
        assert sum(service.stats.rejected.values()) == len(bad) + 1
    letters.close()
    got = sorted((dl.original_payload(), dl.reason) for dl in letters.letters if dl.topic == TOPIC)
    want = sorted((p, _expected_reason(TOPIC, p)) for p in bad)
    assert got == want
    assert any(dl.reason == "bad_topic" for dl in letters.letters)
    assert all(dl.detail and dl.field for dl in letters.letters)


_tag_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30
)


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(values=st.lists(_tag_text, min_size=200, max_size=200))
def test_escaping_never_injects_a_line_or_field(influx: Endpoint, values: list[str]) -> None:
    db = "escaping"
    httpx.post(f"{influx.url}/query", params={"q": f"CREATE DATABASE {db}"})
    httpx.post(f"{influx.url}/query", params={"q": "DROP MEASUREMENT esc", "db": db})
    lines = [
        encode_point(
            "esc", {"route": v, "street": v + " ", "n": str(i)}, {"s": v, "i": i}, 1000 + i
        )
        for i, v in enumerate(values)
    ]
    response = httpx.post(
        f"{influx.url}/write",
        params={"db": db, "precision": "ms"},
        content="\n".join(lines).encode(),
    )
    assert response.status_code == 204, response.text
    rows = query(influx.url, db, "SELECT * FROM esc")
    assert len(rows) == len(values)
    assert {frozenset(r) for r in rows} == {frozenset({"time", "route", "street", "n", "s", "i"})}
    for row in rows:
        value = values[row["i"]]
        assert row["n"] == str(row["i"])
        assert row["time"] == 1000 + row["i"]
        assert row["route"] == stored_tag_value(value)
        assert row["street"] == stored_tag_value(value + " ")
        assert row["s"] == value
