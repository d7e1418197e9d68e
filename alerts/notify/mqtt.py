"""MQTT notifier for crew apps: each change on ``cw/v1/_alerts/{ward}``, QoS 1, not
retained (a crew app that connects later reads the API, not stale retained alerts).
QoS 1 and repeats after a crash may deliver a change twice: apps deduplicate on the
payload's ``id`` (the change id).

paho-mqtt runs its network loop in its own thread; each publish is awaited on the event
loop until the broker acknowledges it (PUBACK, via paho's ``on_publish``), with retries.
No thread waits per message: a burst of hundreds of alerts would otherwise queue on the
loop's small default executor (shared with the pipeline's timers).
"""

import asyncio
import logging
import secrets
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from alerts.model import AlertChange
from alerts.notify.base import DeliveryResult, TryAgain, change_json, with_retries
from telemetry import TOPIC_PREFIX
from telemetry.backoff import Backoff

log = logging.getLogger(__name__)


def alert_topic(ward: str) -> str:
    """``cw/v1/_alerts/{ward}``."""
    return f"{TOPIC_PREFIX}/_alerts/{ward}"


class MqttNotifier:
    """Publishes to a broker; :meth:`start` connects (and paho reconnects by itself)."""

    channel = "mqtt"

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        attempts: int = 3,
        backoff_s: float = 0.5,
        ack_timeout_s: float = 10.0,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.host, self.port = host, port
        self.endpoint = f"{host}:{port}"
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._ack_timeout_s = ack_timeout_s
        self._connected = threading.Event()
        # Unique unless given: two processes on one broker with one id knock each other
        # off it (the broker takes over the session of the older connection).
        self.client_id = client_id or f"citywatch-alerts-{secrets.token_hex(4)}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._loop: asyncio.AbstractEventLoop | None = None
        self._awaiting: dict[int, asyncio.Future[None]] = {}
        """mid -> its PUBACK's future; touched only on the event loop's thread."""
        self._closing = False
        self._client.reconnect_delay_set(1, 30)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self._connected.set()
        else:
            log.warning("alert MQTT connection refused: %s", reason)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        if self._closing:  # our own clean disconnect at shutdown
            log.debug("alert MQTT disconnected: %s", reason)
        else:
            log.warning("alert MQTT disconnected: %s; reconnecting", reason)

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        # paho's network thread (holding paho's message lock): hand over to the loop. The
        # sender registered its future before it yielded, so the hand-over finds it.
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._acknowledge, mid)

    def _acknowledge(self, mid: int) -> None:
        future = self._awaiting.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def _acknowledged(self, info: mqtt.MQTTMessageInfo) -> bool:
        """Wait (at most the ack timeout) for the PUBACK of a message just published."""
        future = asyncio.get_running_loop().create_future()
        self._awaiting[info.mid] = future
        try:
            await asyncio.wait_for(future, self._ack_timeout_s)
        except TimeoutError:
            self._awaiting.pop(info.mid, None)
            return False
        return True

    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect and start the network thread; raise ``ConnectionError`` on timeout."""
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, timeout_s):
            await self.close()
            raise ConnectionError(f"no MQTT broker answered at {self.host}:{self.port}")

    async def close(self) -> None:
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()

    def target_of(self, change: AlertChange) -> str:
        return alert_topic(change.ward)

    async def send(self, change: AlertChange) -> DeliveryResult:
        self._loop = asyncio.get_running_loop()
        topic, body = alert_topic(change.ward), change_json(change)

        async def attempt(n: int) -> DeliveryResult | TryAgain:
            try:
                info = self._client.publish(topic, body, qos=1, retain=False)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return TryAgain(f"publish failed: {mqtt.error_string(info.rc)}")
                if await self._acknowledged(info):
                    return DeliveryResult(True, n)
            except (RuntimeError, ValueError) as exc:  # paho: not connected / queue full
                return TryAgain(f"{type(exc).__name__}: {exc}")
            return TryAgain(f"no PUBACK within {self._ack_timeout_s}s")

        return await with_retries(
            attempt,
            attempts=self._attempts,
            backoff=Backoff(self._backoff_s, max(self._backoff_s, 30.0)),
            what=f"mqtt {self.endpoint}",
        )
