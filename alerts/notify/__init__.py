"""Where alert changes go: webhook and MQTT notifiers, and the dispatcher that fans a
store write's changes out and logs every delivery (the SSE stream reads the store's
change feed)."""

from alerts.notify.base import DeliveryResult, Notifier, change_json
from alerts.notify.dispatch import Dispatcher
from alerts.notify.mqtt import MqttNotifier, alert_topic
from alerts.notify.webhook import SIGNATURE_HEADER, WebhookNotifier, sign

__all__ = [
    "SIGNATURE_HEADER",
    "DeliveryResult",
    "Dispatcher",
    "MqttNotifier",
    "Notifier",
    "WebhookNotifier",
    "alert_topic",
    "change_json",
    "sign",
]
