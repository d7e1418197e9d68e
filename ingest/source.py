"""The MQTT side: one paho-mqtt 2.x client, MQTT v5, QoS 1, persistent session, manual acks.

Why paho-mqtt 2.x: "acknowledge only after the durable write" needs a client that lets the
application send each PUBACK itself. paho 2.x has ``manual_ack=True`` + ``Client.ack``;
aiomqtt (built on paho) and gmqtt acknowledge on delivery to the callback, which would
lose every message acknowledged but not yet written when ingest dies. The session is
persistent (fixed client id, Clean Start off, a Session Expiry) so the broker queues
messages while ingest is down, and MQTT v5 Receive Maximum bounds how many
unacknowledged messages the broker sends us: that is the backpressure when the writer
falls behind or the spool is full.

Acks are tagged with a connection generation, bumped on every disconnect: after a
reconnect the broker resends unacknowledged messages (and may reuse their packet ids for
new ones), so a PUBACK of an earlier connection is dropped instead of risking to
acknowledge a different message; the redelivered copy is recognised as a duplicate and
acknowledged once the original is durable.

The acks of a batch go out as one write: paho's ``Client.ack`` queues one 4-byte PUBACK
per message, each with a wake-up byte to the network thread's socket pair and its own
``send`` (two syscalls and a dict per message, ~10 % of the drain's CPU). ``ack`` packs
all PUBACKs of a batch (in receive order) into one buffer and queues it as one packet
through paho's internal ``_packet_queue`` (paho-mqtt 2.1, locked; checked at start, with
``Client.ack`` as the fallback). A PUBACK with a success reason and no properties is the
same 4 bytes in MQTT 3.1.1 and 5.

Reads are buffered (``_BufferedClient``): paho reads a packet with a ``recv`` per fixed
header byte plus one for the body, and runs ``select`` before every packet; a backlog
drain paid ~5 syscalls per message for that. The subclass reads the socket in 64 KiB
chunks and serves paho's small reads from the chunk, and ``loop_read`` keeps handling
packets while the chunk holds data (``select`` cannot see bytes already read).

QoS 0/1 PUBLISH packets skip paho's generic path (an ``MQTTMessage`` with its
``MQTTMessageInfo`` and ``threading.Condition``, parsed v5 ``Properties`` we never read,
the topic-filter matcher, two mutexes): ``_BufferedClient._handle_publish`` takes topic,
packet id and payload from the packet and calls ``publish_handler`` directly. Anything
unusual (QoS 2, MQTT 3.x, a packet that does not parse) takes paho's own path. The skipped
properties are not validated (paho would drop the connection over, e.g., a NUL in a user
property, which the broker already refuses from publishers).
"""

import logging
import ssl
import struct
import threading
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.batch import AckToken, Confirmation
from telemetry import SUBSCRIPTION

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, AckToken | None], None]
PublishHandler = Callable[[bytes, bytes, int, int], None]
"""(topic bytes, payload, QoS, packet id) of a received PUBLISH."""

_PUBACK_HEADER = (mqtt.PUBACK << 24) | (2 << 16)
"""PUBACK fixed header (type, remaining length 2) above the 16-bit packet id, big-endian."""


def parse_broker_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """(host, port, tls, username, password) of ``mqtt://`` / ``mqtts://`` URLs."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host")
    tls = parts.scheme in ("mqtts", "ssl")
    port = parts.port or (8883 if tls else 1883)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, tls, user, password


PAHO_TESTED = ("2.1", "2.2")
"""paho-mqtt minor versions whose internals the client below was verified against
(pyproject pins the same range)."""
_PAHO_INTERNALS = ("_handle_publish", "_sock_recv", "_packet_queue", "loop_read")


def check_paho(version: str | None = None) -> None:
    """Refuse to start on a paho-mqtt whose internals we have not verified: manual acks
    and the lean PUBLISH path depend on them, and a silent change would lose messages."""
    installed = version or metadata.version("paho-mqtt")
    minor = ".".join(installed.split(".")[:2])
    missing = [name for name in _PAHO_INTERNALS if not hasattr(mqtt.Client, name)]
    if minor not in PAHO_TESTED or missing:
        raise RuntimeError(
            f"ingest needs paho-mqtt {' or '.join(PAHO_TESTED)} (it overrides internals of "
            f"its client for manual acks); found {installed}"
            + (f", without {', '.join(missing)}" if missing else "")
            + ": install a tested version (uv sync --frozen) or re-verify ingest/source.py"
        )


class _BufferedClient(mqtt.Client):
    """paho's client with chunked socket reads (see the module docstring).

    Overrides three internals of paho-mqtt 2.1 (locked in uv.lock): ``_sock_recv`` (a real
    socket's semantics: up to ``bufsize`` bytes, ``b""`` when closed, ``BlockingIOError``
    when nothing is there), ``loop_read`` and ``_handle_publish``. A buffer belongs to one
    socket: after a reconnect nothing of the old connection is served.
    """

    CHUNK = 65536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._chunk = b""
        self._chunk_pos = 0
        self._chunk_sock: object = None
        self.publish_handler: PublishHandler | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.publish_handler
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if handler is None or qos > 1 or self._protocol != mqtt.MQTTv5:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        end = len(packet)
        topic_end = pos = 2 + int.from_bytes(packet[0:2], "big")
        mid = 0
        if qos:
            mid = int.from_bytes(packet[pos : pos + 2], "big")
            pos += 2
        props_len, shift = 0, 0  # v5 properties: a variable byte integer, then skipped
        while pos < end and shift <= 21:
            byte = packet[pos]
            pos += 1
            props_len |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        else:
            return super()._handle_publish()  # malformed: paho raises and disconnects
        pos += props_len
        if pos > end or (qos and mid == 0):
            return super()._handle_publish()
        handler(bytes(packet[2:topic_end]), bytes(packet[pos:]), qos, mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _buffered(self) -> bool:
        return self._chunk_sock is self._sock and self._chunk_pos < len(self._chunk)

    def _sock_recv(self, bufsize: int) -> bytes:
        if not self._buffered():
            data = super()._sock_recv(max(bufsize, self.CHUNK))
            if len(data) <= bufsize:  # incl. b"": the connection closed
                return data
            self._chunk, self._chunk_pos, self._chunk_sock = data, 0, self._sock
        start = self._chunk_pos
        self._chunk_pos = min(start + bufsize, len(self._chunk))
        return self._chunk[start : self._chunk_pos]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None:
            if not self._buffered():
                break
            rc = super().loop_read(max_packets)
        return rc


class MqttSource:
    """Connects, subscribes to every device topic, delivers messages, sends acks."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        on_message: MessageHandler,
        session_expiry_s: int = 86400,
        receive_maximum: int = 20000,
        keepalive_s: int = 30,
        subscription: str = SUBSCRIPTION,
    ) -> None:
        self.host, self.port, tls, user, password = parse_broker_url(url)
        self.subscription = subscription
        self.handler = on_message
        self.generation = 0
        self._stopping = False
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._ack_lock = threading.Lock()
        self._keepalive_s = keepalive_s
        check_paho()
        client = _BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        if user is not None:
            client.username_pw_set(user, password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.publish_handler = self._on_publish
        self._props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        self._props.SessionExpiryInterval = session_expiry_s
        self._props.ReceiveMaximum = receive_maximum
        self.client = client
        self._coalesce_acks = callable(getattr(client, "_packet_queue", None))

    def start(self) -> None:
        """Connect in the background (retrying until the broker answers)."""
        self.client.connect_async(
            self.host,
            self.port,
            keepalive=self._keepalive_s,
            clean_start=False,
            properties=self._props,
        )
        self.client.loop_start()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,  # noqa: ARG002
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,  # noqa: ARG002
    ) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        log.info(
            "connected to %s:%d (session %s)",
            self.host,
            self.port,
            "resumed" if flags.session_present else "new",
        )
        self.connected.set()
        client.subscribe(self.subscription, qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,  # noqa: ARG002
        userdata: Any,  # noqa: ARG002
        flags: mqtt.DisconnectFlags,  # noqa: ARG002
        reason: ReasonCode,
        properties: Properties | None,  # noqa: ARG002
    ) -> None:
        with self._ack_lock:
            self.generation += 1
        self.connected.clear()
        self.subscribed.clear()
        if self._stopping:  # our own disconnect at the end of a run
            log.info("disconnected from %s:%d", self.host, self.port)
        else:
            log.warning("disconnected from %s:%d: %s; reconnecting", self.host, self.port, reason)

    def _on_message(
        self,
        client: mqtt.Client,  # noqa: ARG002
        userdata: Any,  # noqa: ARG002
        message: mqtt.MQTTMessage,
    ) -> None:
        token = (self.generation, message.mid) if message.qos else None
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)  # not UTF-8: dead-lettered as a bad topic
        try:
            self.handler(topic, bytes(message.payload), token)
        except Exception:  # never kill the network thread; the message stays unacked
            log.exception("handling a message on %r failed", topic)

    def _on_publish(self, topic_bytes: bytes, payload: bytes, qos: int, mid: int) -> None:
        """``_on_message`` without paho's ``MQTTMessage`` (the lean path)."""
        token = (self.generation, mid) if qos else None
        try:
            topic = topic_bytes.decode("utf-8")
        except UnicodeDecodeError:
            topic = repr(topic_bytes)  # not UTF-8: dead-lettered as a bad topic
        try:
            self.handler(topic, payload, token)
        except Exception:  # never kill the network thread; the message stays unacked
            log.exception("handling a message on %r failed", topic)

    def ack(self, tokens: list[AckToken]) -> None:
        """Acknowledge messages of the current connection; older ones are redelivered."""
        with self._ack_lock:
            generation = self.generation
            mids = [mid for token_generation, mid in tokens if token_generation == generation]
            if not mids:
                return
            if self._coalesce_acks:
                words = [_PUBACK_HEADER | mid for mid in mids]
                packet = struct.pack(f"!{len(words)}I", *words)
                self.client._packet_queue(mqtt.PUBACK, packet, 0, 0)
            else:
                for mid in mids:
                    self.client.ack(mid, 1)

    def publish(self, topic: str, payload: bytes) -> Confirmation:
        """Publish at QoS 1; the returned callable waits for the broker's PUBACK."""
        info = self.client.publish(topic, payload, qos=1)

        def confirmed(timeout_s: float) -> bool:
            deadline = time.monotonic() + timeout_s
            while not info.is_published():
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.005)
            return True

        return confirmed

    def flush_outgoing(self, timeout_s: float = 5.0) -> bool:
        """Wait until queued packets (acks) have been written to the socket."""
        deadline = time.monotonic() + timeout_s
        while self.client._out_packet and time.monotonic() < deadline:  # no public API
            time.sleep(0.01)
        return not self.client._out_packet

    def stop(self) -> None:
        """Send pending acks, disconnect (the session stays on the broker), end the thread."""
        self.flush_outgoing()
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
