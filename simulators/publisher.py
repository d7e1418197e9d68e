"""MQTT v5 publishing of simulated devices (paho-mqtt 2.x, QoS 1).

Two modes:

* **per device** (small fleets): one connection per device, each registering its own
  Last Will (retained ``offline`` status). A device that dies disconnects with reason
  code 0x04 "disconnect with Will message", so the *broker* announces the death, as it
  would for a real device that dropped off.
* **pooled** (large fleets): a few connections carry every device; the simulator
  publishes a dying device's retained ``offline`` status itself.

All connections are serviced from the caller's thread (paho's manual loop: ``loop_read``
/ ``loop_write`` / ``loop_misc`` on ready sockets). That avoids paho's per-connection
threads fighting over the GIL and is measurably faster (see benchmarks/simulator_rate.py).
Lost connections are retried with exponential backoff; QoS 1 messages published meanwhile
stay queued in paho (bounded) and go out after the reconnect.

MQTT 5 first; a broker that refuses it (RabbitMQ 3.10's MQTT plugin closes the
connection without a CONNACK, a v5 broker limited to 3.1.1 answers "unsupported protocol
version") gets MQTT 3.1.1 from then on, with no flag. In 3.1.1 a clean DISCONNECT
discards the Will, so a dying per-device connection publishes its own retained
``offline`` status before it disconnects (as the pooled mode does).
"""

import contextlib
import logging
import os
import select
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from simulators.fleet import Fleet
from simulators.simulation import SimMessage, offline_will
from simulators.sinks import SinkStats
from telemetry import Channel, Topic, encode

log = logging.getLogger(__name__)

PER_DEVICE_MAX = 200
"""Fleets up to this size get a connection per device in ``auto`` mode."""
PER_DEVICE_LIMIT = 900
"""Per-device mode refuses larger fleets: select() handles at most 1024 sockets."""
Mode = Literal["auto", "per-device", "pooled"]


class PublishError(RuntimeError):
    """The broker cannot be reached or refuses the simulator."""


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtt://HOST:PORT`` → (host, port); a precise error for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// (got {parts.scheme!r})")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host")
    try:
        port = parts.port or 1883
    except ValueError:
        raise ValueError(f"broker URL {url!r} has a bad port") from None
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"broker URL {url!r}: only mqtt://HOST:PORT is understood")
    return parts.hostname, port


@dataclass
class _Conn:
    client: mqtt.Client
    name: str
    connected: bool = False
    dead: bool = False
    """Per-device mode: the device has died and stays offline until it boots."""
    outstanding: int = 0
    retry_at: float = 0.0
    backoff: float = 0.5
    acked: bool = False
    """A CONNACK came on this connection (with the current protocol)."""
    will: tuple[str, bytes] | None = None


class MqttSink:
    """Publishes simulated messages to a broker; see the module docstring for modes."""

    def __init__(
        self,
        url: str,
        fleet: Fleet,
        *,
        mode: Mode = "auto",
        connections: int = 4,
        client_prefix: str | None = None,
        keepalive: int = 30,
        max_queued: int = 200_000,
        inflight: int = 1000,
    ) -> None:
        self.host, self.port = parse_broker_url(url)
        self.fleet = fleet
        self.per_device = mode == "per-device" or (mode == "auto" and len(fleet) <= PER_DEVICE_MAX)
        if self.per_device and len(fleet) > PER_DEVICE_LIMIT:
            raise ValueError(
                f"per-device mode opens a connection per device; {len(fleet)} devices is "
                f"more than {PER_DEVICE_LIMIT}: use the pooled mode"
            )
        self.keepalive = keepalive
        self.stats = SinkStats()
        self.protocol: MQTTProtocolVersion = mqtt.MQTTv5
        """MQTT 5 until the broker refuses it, then 3.1.1 (see the module docstring)."""
        self._v5_refused = False
        prefix = client_prefix or f"cwsim-{os.getpid()}"
        self._conns: list[_Conn] = []
        if self.per_device:
            self._limits = (max(1, max_queued // len(fleet)), 20)
            for device in fleet.devices:
                status = Topic(device.ward, device.kind, device.id, Channel.STATUS).format()
                will = (status, encode(offline_will(device.kind, device.id)))
                name = f"{prefix}-{device.id}"
                self._conns.append(_Conn(self._client(name, will), name, will=will))
        else:
            n = max(1, min(connections, len(fleet)))
            self._limits = (max_queued // n, inflight)
            names = [f"{prefix}-pool{k}" for k in range(n)]
            self._conns = [_Conn(self._client(name, None), name) for name in names]
        self._last_error = ""

    def _client(self, client_id: str, will: tuple[str, bytes] | None) -> mqtt.Client:
        max_queued, inflight = self._limits
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=self.protocol
        )
        client.max_inflight_messages_set(inflight)
        client.max_queued_messages_set(max_queued)
        if will is not None:
            client.will_set(will[0], will[1], 1, True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _fall_back_to_311(self) -> None:
        """The broker refused MQTT 5: new clients speaking 3.1.1 (nothing was sent yet)."""
        log.info("mqtt://%s:%d refused MQTT 5; speaking MQTT 3.1.1", self.host, self.port)
        self.protocol = mqtt.MQTTv311
        self._last_error = ""
        for conn in self._conns:
            with contextlib.suppress(Exception):
                conn.client.disconnect()
            conn.client = self._client(conn.name, conn.will)
            conn.client.user_data_set(conn)
            conn.connected = conn.acked = False
            conn.retry_at, conn.backoff = 0.0, 0.5
            self._open(conn)

    # -- callbacks (run inside loop_read on our thread) ----------------------------------
    def _conn_of(self, client: mqtt.Client) -> _Conn:
        conn: _Conn = client.user_data_get()
        return conn

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        conn = self._conn_of(client)
        if reason.is_failure:
            if self.protocol == mqtt.MQTTv5 and reason.value in (0x01, 0x84):
                self._v5_refused = True  # 3.1.1's "unacceptable version" or v5's 0x84
                return
            self._last_error = f"broker refused the connection: {reason}"
            log.warning("broker refused %s: %s", conn.name, reason)
            return
        conn.connected = conn.acked = True
        conn.backoff = 0.5

    def _on_disconnect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        conn = self._conn_of(client)
        if not conn.acked and self.protocol == mqtt.MQTTv5 and not self._any_acked():
            # Closed before any CONNACK on any connection: RabbitMQ 3.10 does this to v5.
            self._v5_refused = True
            return
        conn.connected = False
        if not conn.dead and reason.is_failure:
            log.warning("connection %s lost (%s); will retry", conn.name, reason)

    def _on_publish(
        self, client: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any
    ) -> None:
        conn = self._conn_of(client)
        conn.outstanding -= 1
        self.stats.pending -= 1
        if reason.is_failure:
            self.stats.failed += 1
            log.warning("broker refused message %d on %s: %s", mid, conn.name, reason)
        else:
            self.stats.sent += 1

    # -- connection management -------------------------------------------------------------
    def connect(self, timeout: float = 15.0) -> None:
        """Open every connection; ``PublishError`` if they are not all up by ``timeout``."""
        for conn in self._conns:
            conn.client.user_data_set(conn)
            self._open(conn)
        deadline = time.monotonic() + timeout
        while not all(c.connected for c in self._conns):
            if self._v5_refused and self.protocol == mqtt.MQTTv5:
                self._fall_back_to_311()
            if time.monotonic() > deadline:
                down = sum(not c.connected for c in self._conns)
                cause = f" (last error: {self._last_error})" if self._last_error else ""
                raise PublishError(
                    f"{down} of {len(self._conns)} connections to {self.host}:{self.port} "
                    f"not up after {timeout:g} s{cause}"
                )
            self.idle(0.05)
        log.info(
            "connected to mqtt://%s:%d: %d %s",
            self.host,
            self.port,
            len(self._conns),
            "device connections (each with its Last Will)"
            if self.per_device
            else "pooled connections",
        )

    def _any_acked(self) -> bool:
        return any(c.acked for c in self._conns)

    def _open(self, conn: _Conn) -> None:
        try:
            conn.client.connect(self.host, self.port, keepalive=self.keepalive)
        except OSError as exc:
            self._last_error = str(exc)
            conn.retry_at = time.monotonic() + conn.backoff
            log.debug("connect to %s:%d failed: %s", self.host, self.port, exc)
            conn.backoff = min(conn.backoff * 2, 30.0)

    def _service(self, conns: list[_Conn], timeout: float) -> None:
        socks = {}
        want_write = []
        now = time.monotonic()
        for conn in conns:
            sock = conn.client.socket()
            if sock is None:
                if not conn.dead and now >= conn.retry_at:
                    self._reconnect(conn)
                continue
            socks[sock] = conn
            if conn.client.want_write():
                want_write.append(sock)
        if not socks:
            time.sleep(timeout)
            return
        try:
            readable, writable, _ = select.select(list(socks), want_write, [], timeout)
        except (OSError, ValueError):
            readable, writable = [], []
        for sock in writable:
            socks[sock].client.loop_write()
        for sock in readable:
            conn = socks[sock]
            rc = conn.client.loop_read(max_packets=1000)
            if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
                conn.connected = False
        for conn in socks.values():
            if conn.client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS and not conn.dead:
                conn.connected = False

    def _reconnect(self, conn: _Conn) -> None:
        try:
            conn.client.reconnect()
        except OSError as exc:
            self._last_error = str(exc)
            conn.retry_at = time.monotonic() + conn.backoff
            log.debug("reconnect failed (%s); next try in %.1f s", exc, conn.backoff)
            conn.backoff = min(conn.backoff * 2, 30.0)

    # -- the sink interface -----------------------------------------------------------------
    def _conn_for(self, device: int) -> _Conn:
        if self.per_device:
            return self._conns[device]
        return self._conns[device % len(self._conns)]

    def send(self, message: SimMessage) -> None:
        conn = self._conn_for(message.device)
        if self.per_device and message.will:
            if self.protocol != mqtt.MQTTv5:  # 3.1.1: a clean disconnect drops the Will
                self._publish(conn, message)
            self._die(conn)
            return
        if conn.dead:  # a dead device boots: connect again (its Will registers anew)
            conn.dead = False
            self._open(conn)
        self._publish(conn, message)

    def _publish(self, conn: _Conn, message: SimMessage) -> None:
        info = conn.client.publish(message.topic, message.payload, qos=1, retain=message.retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:  # the one refusal paho does not keep
            self.stats.failed += 1
            log.warning("%s: paho's queue is full; message dropped", conn.name)
            return
        # Anything else paho keeps until PUBACKed: NO_CONN (no socket yet) and CONN_LOST
        # (the write in publish() found the socket broken) both go out after the reconnect.
        conn.outstanding += 1
        self.stats.pending += 1

    def _die(self, conn: _Conn) -> None:
        """Per-device mode: let the broker publish this device's Last Will."""
        self._drain([conn], timeout=5.0)
        conn.dead = True
        if self.protocol == mqtt.MQTTv5:
            conn.client.disconnect(
                reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            )
        else:
            conn.client.disconnect()
        self._service([conn], 0.0)
        conn.connected = False

    def idle(self, seconds: float) -> None:
        self._service(self._conns, max(0.0, seconds))

    def backlog(self) -> int:
        return self.stats.pending

    def _drain(self, conns: list[_Conn], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while any(c.outstanding > 0 for c in conns):
            if time.monotonic() > deadline:
                return False
            self._service(conns, 0.01)
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the broker acknowledged everything (or ``timeout``)."""
        return self._drain(self._conns, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is pending, then disconnect cleanly (no Last Will is published)."""
        if not self.flush(timeout):
            log.warning("%d messages still unacknowledged at close", self.stats.pending)
        self.stats.failed += self.stats.pending
        self.stats.pending = 0
        for conn in self._conns:
            if conn.client.socket() is not None and not conn.dead:
                conn.client.disconnect()
        self._service(self._conns, 0.0)
        for conn in self._conns:
            conn.client.loop_write()
