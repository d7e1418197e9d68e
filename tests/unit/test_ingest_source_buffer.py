"""The MQTT client's chunked reads behave like the socket's own: the same bytes in order,
``BlockingIOError`` when nothing is there, and nothing of an old connection after a new one."""

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

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
