"""Where alert changes go: webhook and MQTT notifiers, each run as a follower of the
store's change feed with its own durable cursor (``notify_follower``), and the dispatcher
that sends a given list of changes at once; both log every delivery (the SSE stream
reads the store's change feed).

Telegram, Zalo and e-mail go through the routing file (:mod:`alerts.notify.routing`):
each of its receivers is a :class:`ReceiverFollower` of the change feed that groups,
paces and rate-limits its messages (:mod:`alerts.notify.routed`); their texts are
written in one place, :mod:`alerts.notify.message`."""

from alerts.notify.base import DeliveryResult, Notifier, change_json, idempotency_key
from alerts.notify.dispatch import Dispatcher, deliver, notify_follower
from alerts.notify.email import EmailNotifier
from alerts.notify.message import Message, render, render_group
from alerts.notify.mqtt import MqttNotifier, alert_topic
from alerts.notify.routed import ReceiverFollower, receiver_followers
from alerts.notify.routing import Routes, RoutesError, load_routes, parse_routes
from alerts.notify.telegram import TelegramNotifier
from alerts.notify.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, WebhookNotifier, sign
from alerts.notify.zalo import ZaloNotifier

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryResult",
    "Dispatcher",
    "EmailNotifier",
    "Message",
    "MqttNotifier",
    "Notifier",
    "ReceiverFollower",
    "Routes",
    "RoutesError",
    "TelegramNotifier",
    "WebhookNotifier",
    "ZaloNotifier",
    "alert_topic",
    "change_json",
    "deliver",
    "idempotency_key",
    "load_routes",
    "notify_follower",
    "parse_routes",
    "receiver_followers",
    "render",
    "render_group",
    "sign",
]
