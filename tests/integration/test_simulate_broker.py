"""The simulator against a real Mosquitto: decodable, on schedule, faults where labelled,
deaths announced by Last Will (per device) or by the simulator (pooled), reconnects."""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions
from typer.testing import CliRunner

from citywatch.cli import app
from citywatch.local_services import LocalMosquitto, free_port
from simulators.fleet import build_fleet
from simulators.publisher import MqttSink, PublishError
from simulators.runner import run
from simulators.scenario import parse_scenario
from simulators.simulation import Simulation
from simulators.wards import load_wards
from telemetry import Report, Status, decode_message

WARDS = load_wards()
SENTINEL = "test/sentinel"


@dataclass
class Collector:
    """A subscriber that keeps everything it receives under cw/v1/#."""

    port: int
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: mqtt.Client | None = None

    def start(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        subscribed = threading.Event()
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect("127.0.0.1", self.port)
        client.subscribe(
            [("cw/v1/#", SubscribeOptions(qos=1)), (SENTINEL, SubscribeOptions(qos=1))]
        )
        client.loop_start()
        assert subscribed.wait(10)
        self._client = client

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def barrier(self, timeout: float = 10.0) -> None:
        """Publish a sentinel from a fresh connection and wait until it comes back:
        everything the broker published before it has then arrived too."""
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", self.port)
        pub.loop_start()
        pub.publish(SENTINEL, b"x", qos=1).wait_for_publish(timeout)
        deadline = time.monotonic() + timeout
        while not any(t == SENTINEL for t, _, _ in self.messages) and time.monotonic() < deadline:
            time.sleep(0.02)
        pub.disconnect()
        pub.loop_stop()
        assert any(t == SENTINEL for t, _, _ in self.messages), "sentinel never came back"

    def device_messages(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return [m for m in self.messages if m[0] != SENTINEL]

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()


@pytest.fixture
def collector(own_broker: LocalMosquitto) -> Iterator[Collector]:
    c = Collector(own_broker.port)
    c.start()
    yield c
    c.stop()


def test_cli_run_decodes_and_matches_the_schedule(
    own_broker: LocalMosquitto, collector: Collector, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--broker",
            own_broker.url,
            "--devices",
            "250",
            "--period",
            "30",
            "--duration",
            "600",
            "--speed",
            "0",
            "--seed",
            "3",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    expected = 250 + 250 * 600 // 30
    collector.wait_for(expected)
    collector.barrier()
    got = collector.device_messages()
    assert len(got) == expected
    now = int(time.time() * 1000)
    kinds = {"status": 0, "telemetry": 0}
    for topic, payload, _ in got:
        parsed, _ = decode_message(topic, payload, now_ms=now)
        kinds[parsed.channel] += 1
    assert kinds == {"status": 250, "telemetry": 250 * 20}


def test_faults_appear_where_the_labels_say(
    own_broker: LocalMosquitto, collector: Collector
) -> None:
    fleet = build_fleet(120, 8, WARDS)
    wards = sorted({d.ward for d in fleet.segments})[:3]
    scenario = parse_scenario(
        'name = "it"\n'
        f'[[faults]]\nkind = "flooding"\nwards = {wards!r}\nat = "10m"\nduration = "20m"\n'
        '[[faults]]\nkind = "cable_cut"\ncount = 1\nat = "12m"\nduration = "15m"\n'
        '[[faults]]\nkind = "door_intrusion"\ncount = 2\nat = "15m"\nduration = "5m"\n'
        '[[faults]]\nkind = "silent"\ncount = 1\nat = "5m"\nduration = "10m"\n',
        "it.toml",
        {w.codename for w in WARDS},
    )
    start = int(time.time() * 1000) - 40 * 60_000
    sim = Simulation(fleet, scenario, start_ms=start, duration_s=40 * 60, period_s=60, seed=4)
    sink = MqttSink(own_broker.url, fleet, mode="pooled")
    sink.connect()
    summary = run(sim, sink, speed=0, progress=False)
    assert summary.failed == 0
    collector.wait_for(summary.sent)
    collector.barrier()
    labels = sim.labels()
    assert {lb.fault for lb in labels} == {"flooding", "cable_cut", "door_intrusion", "silent"}

    abnormal = {  # readings a healthy device never sends
        "water_level": lambda v: v > 0,
        "moisture": lambda v: v > 45,
        "signal": lambda v: v is False,
        "door_open": lambda v: v is True,
    }
    seen: set[tuple[str, str]] = set()
    reports_of: dict[str, list[int]] = {}
    now = int(time.time() * 1000)
    for topic, payload, _ in collector.device_messages():
        _, message = decode_message(topic, payload, now_ms=now)
        if not isinstance(message, Report):
            continue
        reports_of.setdefault(message.device, []).append(message.ts)
        for metric, is_odd in abnormal.items():
            value = message.metrics.get(metric)
            if value is not None and is_odd(value):
                assert any(lb.covers(message.device, metric, message.ts) for lb in labels), (
                    f"{message.device}.{metric}={value} at {message.ts} is not labelled"
                )
                seen.add((message.device, metric))
    for lb in labels:
        if lb.metric in ("water_level", "signal", "door_open"):
            assert (lb.device, lb.metric) in seen, f"{lb} never showed"
        if lb.fault == "silent":
            assert not [t for t in reports_of[lb.device] if lb.start_ms <= t < lb.end_ms]
            assert reports_of[lb.device], "the device reports outside its silence"


OUTAGE = 'name = "dark"\n[[faults]]\nkind = "mains_outage"\nat = "5m"\nduration = "3h"\n'


@pytest.mark.parametrize("mode", ["per-device", "pooled"])
def test_a_dying_device_leaves_an_offline_status(
    own_broker: LocalMosquitto, collector: Collector, mode: str
) -> None:
    fleet = build_fleet(40, 6, WARDS)
    scenario = parse_scenario(OUTAGE, "dark.toml")
    start = int(time.time() * 1000) - 3 * 3600_000
    sim = Simulation(fleet, scenario, start_ms=start, duration_s=3 * 3600, period_s=120, seed=6)
    sink = MqttSink(own_broker.url, fleet, mode=mode)  # type: ignore[arg-type]
    assert sink.per_device == (mode == "per-device")
    sink.connect()
    summary = run(sim, sink, speed=0, progress=False)
    assert summary.failed == 0
    wills_generated = sum(1 for lb in sim.labels() if lb.metric == "*")
    assert wills_generated > 3, "a three-hour outage empties several batteries"
    if mode == "per-device":  # the broker, not the simulator, published the deaths
        assert summary.sent == summary.generated - wills_generated
    else:
        assert summary.sent == summary.generated
    collector.barrier()
    now = int(time.time() * 1000)
    offline: dict[str, Status] = {}
    for topic, payload, _ in collector.device_messages():
        _, message = decode_message(topic, payload, now_ms=now)
        if isinstance(message, Status) and message.state == "offline":
            offline[message.device] = message
    dead = {lb.device for lb in sim.labels() if lb.metric == "*"}
    assert set(offline) == dead, "exactly the dead devices went offline; the clean end adds none"
    assert all(s.ts is None and s.reason == "last_will" for s in offline.values())

    # What the platform sees afterwards: retained statuses say who is dead.
    late = Collector(own_broker.port)
    late.start()
    late.wait_for(len(fleet))
    late.stop()
    retained = {}
    for topic, payload, was_retained in late.device_messages():
        assert was_retained
        _, message = decode_message(topic, payload, now_ms=now)
        assert isinstance(message, Status)
        retained[message.device] = message.state
    assert {d for d, s in retained.items() if s == "offline"} == dead
    assert len(retained) == len(fleet)


def test_a_dead_device_boots_when_the_mains_return(
    own_broker: LocalMosquitto, collector: Collector
) -> None:
    fleet = build_fleet(40, 6, WARDS)
    scenario = parse_scenario(OUTAGE.replace('"3h"', '"2h"'), "dark.toml")
    start = int(time.time() * 1000) - 3 * 3600_000
    sim = Simulation(fleet, scenario, start_ms=start, duration_s=3 * 3600, period_s=120, seed=6)
    sink = MqttSink(own_broker.url, fleet, mode="per-device")
    sink.connect()
    summary = run(sim, sink, speed=0, progress=False)
    assert summary.failed == 0
    collector.barrier()
    now = int(time.time() * 1000)
    states: dict[str, list[str]] = {}
    first_seq_after_boot: dict[str, int] = {}
    for topic, payload, _ in collector.device_messages():
        _, message = decode_message(topic, payload, now_ms=now)
        if isinstance(message, Status):
            states.setdefault(message.device, []).append(message.state)
        elif isinstance(message, Report) and len(states[message.device]) == 3:
            first_seq_after_boot.setdefault(message.device, message.seq)
    dead = {d for d, s in states.items() if "offline" in s}
    assert dead, "some batteries ran flat"
    assert all(states[d] == ["online", "offline", "online"] for d in dead)
    assert first_seq_after_boot == dict.fromkeys(dead, 0), "a rebooted device counts from 0"


def test_publisher_reconnects_and_loses_nothing(own_broker: LocalMosquitto) -> None:
    fleet = build_fleet(60, 2, WARDS)
    start = int(time.time() * 1000) - 900_000
    sim = Simulation(fleet, start_ms=start, duration_s=900, period_s=30, seed=1)
    sink = MqttSink(own_broker.url, fleet, mode="pooled", connections=2)
    sink.connect()
    outage_done = threading.Event()

    def bounce() -> None:
        deadline = time.monotonic() + 30
        while sink.stats.sent < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        own_broker.stop()
        time.sleep(0.5)  # the broker stays away for a moment while messages pile up
        own_broker.start()
        outage_done.set()

    bouncer = threading.Thread(target=bounce)
    bouncer.start()
    summary = run(sim, sink, speed=450, progress=False)  # 15 minutes in 2 s
    bouncer.join()
    assert outage_done.is_set()
    assert summary.generated == 60 + 60 * 30
    assert summary.failed == 0
    assert summary.sent == summary.generated


def test_an_unreachable_broker_is_a_clear_error() -> None:
    sink = MqttSink(f"mqtt://127.0.0.1:{free_port()}", build_fleet(3, 1, WARDS))
    with pytest.raises(
        PublishError, match=r"3 of 3 connections .* not up after 1 s \(last error: .*refused"
    ):
        sink.connect(timeout=1)
    sink.close(timeout=0)
