"""The compose stack's Mosquitto ACL, loaded into a real local Mosquitto: devices publish
only under their own id, only ingest reads everything, crews read only alerts."""

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from citywatch.local_services import LocalMosquitto, find_binary

DEPLOY = Path(__file__).parents[2] / "deploy" / "mosquitto"
USERS = {
    "ingest": "in-pw",
    "crew": "crew-pw",
    "citywatch-api": "api-pw",
    "simulator": "sim-pw",
    "cab-000001": "dev-pw",
    "cab-000002": "dev2-pw",
}
OWN = "cw/v1/phuong_hoan_kiem/cabinet/cab-000001/telemetry"
OTHER = "cw/v1/phuong_hoan_kiem/cabinet/cab-000002/telemetry"
ALERT = "cw/v1/_alerts/phuong_hoan_kiem"


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMosquitto]:
    root = tmp_path_factory.mktemp("acl")
    passwd = root / "passwd"
    tool = find_binary("mosquitto_passwd", "mosquitto", "/usr/bin/mosquitto_passwd")
    for user, password in USERS.items():
        flags = ["-b"] if passwd.exists() else ["-c", "-b"]
        subprocess.run([tool, *flags, str(passwd), user, password], check=True)
    passwd.chmod(0o600)
    config = f"allow_anonymous false\npassword_file {passwd}\nacl_file {DEPLOY / 'acl'}\n"
    with LocalMosquitto(extra_config=config) as server:
        yield server


class Client:
    """A connected MQTT v5 client that records what it receives."""

    def __init__(self, port: int, user: str, password: str | None = None) -> None:
        self.received: list[str] = []
        self.connected = threading.Event()
        self.reason: ReasonCode | None = None
        self._mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._mqtt.username_pw_set(user, password if password is not None else USERS[user])
        self._mqtt.on_connect = self._on_connect
        self._mqtt.on_message = lambda _c, _u, msg: self.received.append(msg.topic)
        self._mqtt.connect("127.0.0.1", port)
        self._mqtt.loop_start()
        self.connected.wait(5)

    def _on_connect(
        self, _c: object, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        self.reason = reason
        self.connected.set()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self._mqtt.on_subscribe = lambda *_: done.set()
        self._mqtt.subscribe(topic, qos=1)
        assert done.wait(5)

    def publish(self, topic: str) -> None:
        self._mqtt.publish(topic, b"{}", qos=1).wait_for_publish(5)

    def close(self) -> None:
        self._mqtt.disconnect()
        self._mqtt.loop_stop()


def settle(clients: list[Client], marker_topic: str, marker: Client) -> None:
    """Wait until a marker message published last has reached every reader (QoS 1 keeps
    order per publisher, so anything published before it has been delivered or refused)."""
    marker.publish(marker_topic)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(marker_topic in c.received for c in clients):
            return
        time.sleep(0.02)
    raise AssertionError("marker never arrived")


def test_device_publishes_only_under_its_own_id(secured_broker: LocalMosquitto) -> None:
    ingest = Client(secured_broker.port, "ingest")
    ingest.subscribe("cw/v1/#")
    device = Client(secured_broker.port, "cab-000001")
    device.publish(OWN)
    device.publish(OTHER)
    device.publish("cw/v1/_deadletter/x")
    settle([ingest], OWN.replace("telemetry", "status"), device)
    assert OWN in ingest.received
    assert OTHER not in ingest.received
    assert "cw/v1/_deadletter/x" not in ingest.received
    device.close()
    ingest.close()


def test_only_ingest_reads_device_topics(secured_broker: LocalMosquitto) -> None:
    snoop = Client(secured_broker.port, "cab-000002")
    snoop.subscribe("cw/v1/#")
    crew = Client(secured_broker.port, "crew")
    crew.subscribe("cw/v1/#")
    ingest = Client(secured_broker.port, "ingest")
    ingest.subscribe("cw/v1/#")
    device = Client(secured_broker.port, "cab-000001")
    device.publish(OWN)
    settle([ingest], OWN.replace("telemetry", "event"), device)
    assert OWN in ingest.received
    assert snoop.received == []
    assert crew.received == []
    for c in (snoop, crew, ingest, device):
        c.close()


def test_crews_read_alerts_that_only_the_api_may_write(secured_broker: LocalMosquitto) -> None:
    crew = Client(secured_broker.port, "crew")
    crew.subscribe("cw/v1/_alerts/#")
    forger = Client(secured_broker.port, "cab-000001")
    forger.publish(ALERT + "/forged")
    api = Client(secured_broker.port, "citywatch-api")
    api.publish(ALERT)
    settle([crew], ALERT + "/marker", api)
    assert ALERT in crew.received
    assert ALERT + "/forged" not in crew.received
    for c in (crew, forger, api):
        c.close()


def test_wrong_password_and_anonymous_are_refused(secured_broker: LocalMosquitto) -> None:
    intruder = Client(secured_broker.port, "ingest", "guess")
    assert intruder.reason is not None
    assert intruder.reason.is_failure
    intruder.close()
