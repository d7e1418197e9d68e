"""The in-process broadcaster: ward filters, bounded queues, lagging subscribers."""

import asyncio

import pytest

from alerts.model import AlertChange, ChangeKind
from alerts.notify import Broadcaster, SubscriberLaggedError


def change(change_id: int, ward: str = "phuong_a") -> AlertChange:
    return AlertChange(
        id=change_id,
        alert_id=1,
        kind=ChangeKind.RAISED,
        at_ms=change_id,
        detail="",
        actor=None,
        notify=True,
        ward=ward,
    )


async def test_subscribers_get_their_wards_in_order() -> None:
    hub = Broadcaster()
    everything = hub.subscribe()
    only_b = hub.subscribe(["phuong_b"])
    hub.publish([change(1), change(2, "phuong_b"), change(3)])
    assert [(await everything.get()).id for _ in range(3)] == [1, 2, 3]
    assert (await only_b.get()).id == 2
    assert everything.last_id == 3
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(only_b.get(), 0.05)


async def test_a_lagging_subscriber_is_cut_off_and_told_where_to_resume() -> None:
    hub = Broadcaster(queue_size=2)
    slow = hub.subscribe()
    fast = hub.subscribe()
    hub.publish([change(1)])
    assert (await fast.get()).id == 1
    hub.publish([change(2), change(3)])  # slow: 1, 2 queued, 3 overflows
    assert hub.subscribers == 1
    assert hub.lagged_total == 1
    assert [(await slow.get()).id for _ in range(2)] == [1, 2]
    with pytest.raises(SubscriberLaggedError) as lagged:
        await slow.get()
    assert lagged.value.last_id == 2
    assert [(await fast.get()).id for _ in range(2)] == [2, 3]  # the other one is unaffected


async def test_closing_ends_iteration_and_unsubscribes() -> None:
    hub = Broadcaster()
    with hub.subscribe() as sub:
        hub.publish([change(1)])
        received = [c.id async for c in _take(sub, 1)]
    assert received == [1]
    assert hub.subscribers == 0
    hub.publish([change(2)])  # nobody listening: no error

    sub = hub.subscribe()
    waiter = asyncio.create_task(anext(sub))
    await asyncio.sleep(0)
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await waiter


async def _take(sub, n):  # type: ignore[no-untyped-def]
    for _ in range(n):
        yield await sub.get()


def test_queue_size_is_validated() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        Broadcaster(queue_size=0)
