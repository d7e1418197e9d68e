"""The harness itself: private servers start, answer, survive a restart, and clean up."""

import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.local_services import LocalInfluxd, LocalMosquitto, ServiceError, find_binary


def test_influxd_keeps_data_across_restart(own_influx: LocalInfluxd) -> None:
    url = own_influx.url
    httpx.post(f"{url}/query", params={"q": "CREATE DATABASE t"}).raise_for_status()
    httpx.post(f"{url}/write", params={"db": "t"}, content=b"m v=1 1000000000").raise_for_status()
    own_influx.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/ping")
    own_influx.start()
    body = httpx.get(f"{url}/query", params={"db": "t", "q": "SELECT v FROM m"}).json()
    assert body["results"][0]["series"][0]["values"] == [["1970-01-01T00:00:01Z", 1]]


def test_broker_delivers_and_cleans_up() -> None:
    with LocalMosquitto() as server:
        got: list[bytes] = []
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sub.on_message = lambda _c, _u, msg: got.append(msg.payload)
        sub.connect("127.0.0.1", server.port)
        sub.subscribe("t/#", qos=1)
        sub.loop_start()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", server.port)
        pub.loop_start()
        pub.publish("t/x", b"hello", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        pub.loop_stop()
        sub.loop_stop()
        root = server.root
    assert got == [b"hello"]
    assert not root.exists()


def test_missing_binary_is_a_clear_error() -> None:
    with pytest.raises(ServiceError, match=r"apt-get install -y somepkg"):
        find_binary("no-such-server-binary", "somepkg", "/nonexistent/server")


def test_servers_start_from_a_relative_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``citywatch run``/``demo`` keep their data under a relative ``var/...`` folder:
    the servers run inside it, so their config must not be named relative to it."""
    monkeypatch.chdir(tmp_path)
    for server_type in (LocalMosquitto, LocalInfluxd):
        root = Path("var/demo") / server_type.name
        root.mkdir(parents=True)
        with server_type(root) as server:
            assert server.running
            assert server.root == (tmp_path / root).resolve()
