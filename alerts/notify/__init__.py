"""Where alert changes go: webhook and MQTT notifiers, each run as a follower of the
store's change feed with its own durable cursor (``notify_follower``), and the dispatcher
that sends a given list of changes at once; both log every delivery (the SSE stream
reads the store's change feed)."""

from alerts.notify.base import DeliveryResult, Notifier, change_json, idempotency_key
from alerts.notify.dispatch import Dispatcher, deliver, notify_follower
from alerts.notify.mqtt import MqttNotifier, alert_topic
from alerts.notify.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, WebhookNotifier, sign

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryResult",
    "Dispatcher",
    "MqttNotifier",
    "Notifier",
    "WebhookNotifier",
    "alert_topic",
    "change_json",
    "deliver",
    "idempotency_key",
    "notify_follower",
    "sign",
]
