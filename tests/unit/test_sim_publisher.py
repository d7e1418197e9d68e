"""MqttSink's bookkeeping around paho's return codes (no broker: paho's publish is stubbed)."""

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTErrorCode

from simulators.fleet import build_fleet
from simulators.publisher import MqttSink
from simulators.simulation import SimMessage
from simulators.wards import load_wards


def _sink_whose_publish_returns(rc: MQTTErrorCode) -> MqttSink:
    sink = MqttSink("mqtt://127.0.0.1:1", build_fleet(4, 1, load_wards()), mode="pooled")

    def publish(*_args: object, **_kwargs: object) -> mqtt.MQTTMessageInfo:
        info = mqtt.MQTTMessageInfo(7)
        info.rc = rc
        return info

    for conn in sink._conns:
        conn.client.publish = publish  # type: ignore[method-assign]
    return sink


def _message() -> SimMessage:
    return SimMessage(due_ms=0, device=0, topic="cw/v1/t", payload=b"{}", retain=False)


@pytest.mark.parametrize("rc", [MQTTErrorCode.MQTT_ERR_NO_CONN, MQTTErrorCode.MQTT_ERR_CONN_LOST])
def test_a_message_paho_keeps_for_the_reconnect_is_awaited_not_failed(rc: MQTTErrorCode) -> None:
    # CONN_LOST: publish() itself found the socket broken. paho keeps the message and
    # sends it after the reconnect; counting it failed let close() stop waiting for it.
    sink = _sink_whose_publish_returns(rc)
    sink.send(_message())
    assert (sink.stats.failed, sink.stats.pending, sink.backlog()) == (0, 1, 1)
    assert sum(c.outstanding for c in sink._conns) == 1


def test_a_full_paho_queue_is_a_failure() -> None:
    sink = _sink_whose_publish_returns(MQTTErrorCode.MQTT_ERR_QUEUE_SIZE)
    sink.send(_message())
    assert (sink.stats.failed, sink.stats.pending) == (1, 0)
