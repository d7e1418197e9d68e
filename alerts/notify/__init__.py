"""Where alert changes go: the in-process broadcaster (SSE), webhook and MQTT notifiers,
and the dispatcher that fans a store write's changes out and logs every delivery."""

from alerts.notify.base import DeliveryResult, Notifier, change_json
from alerts.notify.broadcast import Broadcaster, SubscriberLaggedError, Subscription
from alerts.notify.dispatch import Dispatcher
from alerts.notify.mqtt import MqttNotifier, alert_topic
from alerts.notify.webhook import SIGNATURE_HEADER, WebhookNotifier, sign

__all__ = [
    "SIGNATURE_HEADER",
    "Broadcaster",
    "DeliveryResult",
    "Dispatcher",
    "MqttNotifier",
    "Notifier",
    "SubscriberLaggedError",
    "Subscription",
    "WebhookNotifier",
    "alert_topic",
    "change_json",
    "sign",
]
