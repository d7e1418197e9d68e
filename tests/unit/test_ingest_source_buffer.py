"""The MQTT client's shortcuts: chunked reads behave like the socket's own (the same bytes
in order, ``BlockingIOError`` when nothing is there, nothing of an old connection after a
new one); the lean PUBLISH path delivers exactly what paho's own parser does."""

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import MQTTv5
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.source import _BufferedClient


def client_on(sock: socket.socket) -> _BufferedClient:
    client = _BufferedClient(CallbackAPIVersion.VERSION2, client_id="t")
    client._sock = sock
    return client


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.lists(st.integers(1, 700), min_size=1))
def test_reads_return_the_stream_in_order(data: bytes, sizes: list[int]) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        theirs.sendall(data)
        client = client_on(ours)
        client.CHUNK = 257  # several chunks, boundaries inside reads
        got = b""
        i = 0
        while len(got) < len(data):
            chunk = client._sock_recv(sizes[i % len(sizes)])
            assert 0 < len(chunk) <= sizes[i % len(sizes)]
            got += chunk
            i += 1
        assert got == data
        with pytest.raises(BlockingIOError):
            client._sock_recv(10)


def test_a_new_connection_drops_what_the_old_one_buffered() -> None:
    old, old_peer = socket.socketpair()
    new, new_peer = socket.socketpair()
    with old, old_peer, new, new_peer:
        old.setblocking(False)
        new.setblocking(False)
        old_peer.sendall(b"OLD-CONNECTION-BYTES")
        new_peer.sendall(b"new")
        client = client_on(old)
        assert client._sock_recv(1) == b"O"
        assert client._buffered()
        client._sock = new
        assert not client._buffered()
        assert client._sock_recv(100) == b"new"
        new_peer.close()
        assert client._sock_recv(100) == b""  # closed by the peer


@st.composite
def publish_packets(draw: st.DrawFn) -> tuple[int, bytearray]:
    qos = draw(st.integers(0, 1))
    topic = draw(st.binary(max_size=80))
    mid = draw(st.integers(1, 65535))
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if draw(st.booleans()):
        props.MessageExpiryInterval = draw(st.integers(0, 2**32 - 1))
    # Strings MQTT allows (paho's parser refuses NUL, surrogates and U+FEFF; the broker too).
    mqtt_text = st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff"),
        max_size=100,
    )
    for key, value in draw(st.lists(st.tuples(mqtt_text, mqtt_text), max_size=4)):
        props.UserProperty = (key, value)  # appends
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    body += props.pack() + draw(st.binary(max_size=3000))
    return 0x30 | (qos << 1), bytearray(body)


@settings(max_examples=150, deadline=None)
@given(publish_packets())
def test_lean_publish_path_delivers_what_paho_parses(packet: tuple[int, bytearray]) -> None:
    command, body = packet
    client = _BufferedClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=MQTTv5)
    paho_got: list[tuple[bytes, bytes, int, int]] = []
    lean_got: list[tuple[bytes, bytes, int, int]] = []
    client.on_message = lambda _c, _u, m: paho_got.append((m._topic, m.payload, m.qos, m.mid))
    client._in_packet = {**client._in_packet, "command": command, "packet": bytearray(body)}
    client._handle_publish()
    client.publish_handler = lambda *args: lean_got.append(args)
    client._in_packet = {**client._in_packet, "command": command, "packet": bytearray(body)}
    client._handle_publish()
    assert lean_got == [(bytes(t), bytes(p), q, m if q else 0) for t, p, q, m in paho_got]


def test_an_untested_paho_is_refused_at_start_with_what_to_do() -> None:
    from ingest.source import check_paho  # noqa: PLC0415

    check_paho()  # the locked version
    with pytest.raises(RuntimeError, match=r"needs paho-mqtt 2\.1 or 2\.2.*found 3\.0\.0"):
        check_paho("3.0.0")
