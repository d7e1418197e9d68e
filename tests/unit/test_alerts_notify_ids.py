"""The alert notifier's MQTT client id."""

from alerts.notify.mqtt import MqttNotifier


def test_alert_notifiers_of_two_processes_get_distinct_mqtt_client_ids() -> None:
    """One hard-coded id made two processes on one broker take each other's session
    (39 takeovers); a given id is kept."""
    first, second = MqttNotifier("127.0.0.1"), MqttNotifier("127.0.0.1")
    assert first.client_id != second.client_id
    assert first.client_id.startswith("citywatch-alerts-")
    assert MqttNotifier("127.0.0.1", client_id="noc-a").client_id == "noc-a"
