"""Fan-out of a store write's changes: notify those marked ``notify``, log each delivery
in the store. (The live view reads every change from the store's change feed.)"""

import asyncio
import logging
from collections.abc import Sequence

from alerts.model import AlertChange, DeliveryAttempt
from alerts.notify.base import DeliveryResult, Notifier
from alerts.store import AlertStore

log = logging.getLogger(__name__)


class Dispatcher:
    """``await dispatcher.dispatch(await store.apply_detections(...))``.

    Only ``notify=True`` changes go to the notifiers: silences, flapping and incident
    grouping were already decided by the store, whose change feed (``changes_since``) the
    SSE stream reads, silenced and grouped changes included.
    """

    def __init__(
        self,
        store: AlertStore,
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        self.store = store
        self.notifiers = list(notifiers)
        self.delivered = 0
        self.failed = 0

    async def dispatch(self, changes: Sequence[AlertChange]) -> None:
        jobs = [
            self._deliver(notifier, change)
            for change in changes
            if change.notify
            for notifier in self.notifiers
        ]
        # One log transaction for the whole burst, not one per delivery.
        await self.store.record_deliveries(await asyncio.gather(*jobs))

    async def _deliver(self, notifier: Notifier, change: AlertChange) -> DeliveryAttempt:
        try:
            result = await notifier.send(change)
        except Exception as exc:  # a notifier bug must not lose the log row
            log.exception("%s notifier raised", notifier.channel)
            result = DeliveryResult(False, 1, f"{type(exc).__name__}: {exc}")
        if result.delivered:
            self.delivered += 1
        else:
            self.failed += 1
            log.warning(
                "%s delivery of change %d failed after %d attempts: %s",
                notifier.channel,
                change.id,
                result.attempts,
                result.error,
            )
        return DeliveryAttempt(
            change,
            channel=notifier.channel,
            target=notifier.target_of(change),
            delivered=result.delivered,
            attempts=result.attempts,
            error=result.error,
        )
