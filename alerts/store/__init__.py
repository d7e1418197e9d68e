"""The alert store: lifecycle transitions applied in database transactions.

One module per concern, one class for callers (:class:`AlertStore`):

- :mod:`~alerts.store.base` — the engine, the write turn, errors, paging;
- :mod:`~alerts.store.rows` — row mapping between the tables and the value types;
- :mod:`~alerts.store.unit_of_work` — one lifecycle write transaction, retried on races;
- :mod:`~alerts.store.writes` — detections, ticks and manual actions (the lifecycle);
- :mod:`~alerts.store.incidents` — incident grouping, and reading incidents;
- :mod:`~alerts.store.queries` — reading alerts (the API's reads too);
- :mod:`~alerts.store.changes` — the change feed (the one outbox) and its cursors;
- :mod:`~alerts.store.silences`, :mod:`~alerts.store.api_keys`,
  :mod:`~alerts.store.deliveries` — silences, API keys, the delivery log;
- :mod:`~alerts.store.action_keys` — idempotency keys of alert actions.
"""

from alerts.store.action_keys import ACTION_KEY_STALE_MS, ACTION_KEY_TTL_MS, ActionKeys
from alerts.store.api_keys import ApiKeys
from alerts.store.base import (
    MAX_LIMIT,
    Clock,
    NotFoundError,
    Page,
    StoreError,
    wall_clock_ms,
)
from alerts.store.changes import ChangeFeedStore
from alerts.store.deliveries import DeliveryLog
from alerts.store.incidents import IncidentReads
from alerts.store.queries import AlertFilter, AlertReads, OpenAlerts
from alerts.store.silences import Silences
from alerts.store.sorting import ALERT_SORTS, INCIDENT_SORTS, SILENCE_SORTS, Sort
from alerts.store.writes import LifecycleWrites

__all__ = [
    "ACTION_KEY_STALE_MS",
    "ACTION_KEY_TTL_MS",
    "ALERT_SORTS",
    "INCIDENT_SORTS",
    "MAX_LIMIT",
    "SILENCE_SORTS",
    "AlertFilter",
    "AlertStore",
    "Clock",
    "NotFoundError",
    "OpenAlerts",
    "Page",
    "Sort",
    "StoreError",
    "wall_clock_ms",
]


class AlertStore(
    LifecycleWrites,
    AlertReads,
    IncidentReads,
    ChangeFeedStore,
    Silences,
    ApiKeys,
    DeliveryLog,
    ActionKeys,
):
    """Alerts, incidents, silences, API keys and the delivery log, in one database.

    Build with :meth:`open` (runs migrations); ``now_ms`` arguments default to the
    injected ``clock``.
    """
