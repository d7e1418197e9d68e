"""``Idempotency-Key`` on the alert actions: a repeat of a request answers the first answer.

A phone that lost its network cannot know whether its action arrived; it sends it again
with the same key (the crew page queues actions offline and replays them on reconnect).
The first request with a key claims it in the store, acts, and keeps its answer; a repeat
gets that answer (header ``Idempotent-Replayed: true``) and changes nothing, so the
timeline has one entry. Keys are per API key and kept a day. Following the IETF draft
*The Idempotency-Key HTTP Header Field*, a key reused for another request answers 409,
and so does a repeat while its first request is still running (with ``Retry-After``). An
action that fails (404, 409, ...) releases its key: a retry acts again, and fails again
the same way.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, Response

from alerts.store import AlertStore
from api.auth import Principal
from api.errors import conflict
from api.schemas import AlertPublic

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description=(
            "any unique string (a UUID): a repeat with the same key answers the first "
            "answer and does not act again (409 if the key was used for another request "
            "or its first request is still running)"
        ),
    ),
]


def request_digest(action: str, alert_id: int, body: object) -> str:
    """What a key is bound to: the action, the alert and the body."""
    text = json.dumps([action, alert_id, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def once(
    store: AlertStore,
    principal: Principal,
    key: str | None,
    request: str,
    response: Response,
    act: Callable[[], Awaitable[AlertPublic]],
) -> AlertPublic:
    """Run ``act`` unless ``key`` already ran it; answer the first answer either way."""
    if key is None:
        return await act()
    taken = await store.claim_action_key(principal.key.id, key, request)
    if taken is not None:
        if taken.request != request:
            raise conflict("this Idempotency-Key was used for another request")
        if taken.status is None or taken.response is None:
            busy = conflict("a request with this Idempotency-Key is still running; retry")
            busy.headers = {"Retry-After": "1"}
            raise busy
        response.headers["Idempotent-Replayed"] = "true"
        return AlertPublic.model_validate(taken.response)
    try:
        result = await act()
    except BaseException:
        await store.release_action_key(principal.key.id, key)
        raise
    await store.finish_action_key(principal.key.id, key, 200, result.model_dump(mode="json"))
    return result
