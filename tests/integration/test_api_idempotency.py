"""``Idempotency-Key`` on the alert actions, against a real store (SQLite and PostgreSQL): a
repeat answers the first answer and adds nothing to the timeline."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from api_harness import (
    STORE_KINDS,
    client_for,
    keys,
    open_store,
    problem,
    raise_alert,
    settings,
    store_url,
)

from alerts.store import ACTION_KEY_STALE_MS, ACTION_KEY_TTL_MS, AlertStore
from api import create_app
from api.idempotency import request_digest


@dataclass
class Api:
    client: httpx.AsyncClient
    store: AlertStore
    keys: dict[str, str]

    def headers(self, role: str, key: str | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.keys[role]}"}
        if key is not None:
            out["Idempotency-Key"] = key
        return out

    async def kinds(self, alert_id: int) -> Counter[str]:
        detail = await self.store.get_alert(alert_id)
        return Counter(change.kind.value for change in detail.timeline)


@pytest.fixture(params=STORE_KINDS)
async def api(request: pytest.FixtureRequest, tmp_path, influx) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    store = await open_store(store_url(request.param, tmp_path, request))
    try:
        app = create_app(settings("sqlite+aiosqlite:///unused.db", influx.url), store=store)
        async with client_for(app) as client:
            yield Api(client, store, await keys(store))
    finally:
        await store.close()


async def test_a_repeated_action_answers_the_first_answer_and_acts_once(api: Api) -> None:
    alert = await raise_alert(api.store, "ward_a", "cab-a1")
    for path, body in (
        ("acknowledge", {"note": "seen"}),
        ("assign", {"assignee": "crew-a"}),
        ("comment", {"text": "On site"}),
        ("resolve", {"note": "replaced the door switch"}),
    ):
        url = f"/alerts/{alert}/{path}"
        key = f"k-{path}-0001"
        first = await api.client.post(url, json=body, headers=api.headers("crew_a", key))
        assert first.status_code == 200, first.text
        assert "idempotent-replayed" not in first.headers
        again = await api.client.post(url, json=body, headers=api.headers("crew_a", key))
        assert again.status_code == 200, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    kinds = await api.kinds(alert)
    assert kinds["acknowledged"] == 1
    assert kinds["assigned"] == 1
    assert kinds["commented"] == 2  # the acknowledgement's note and "On site"
    assert kinds["resolved"] == 1
    assert [c.text for c in (await api.store.get_alert(alert)).comments] == ["seen", "On site"]


async def test_without_a_key_a_repeat_acts_again(api: Api) -> None:
    alert = await raise_alert(api.store, "ward_a", "cab-a1")
    for _ in range(2):
        response = await api.client.post(
            f"/alerts/{alert}/comment", json={"text": "hello"}, headers=api.headers("noc")
        )
        assert response.status_code == 200
    assert (await api.kinds(alert))["commented"] == 2


async def test_a_key_reused_for_another_request_is_refused(api: Api) -> None:
    alert = await raise_alert(api.store, "ward_a", "cab-a1")
    other = await raise_alert(api.store, "ward_a", "cab-a2")
    headers = api.headers("noc", "same-key")
    assert (await api.client.post(f"/alerts/{alert}/acknowledge", headers=headers)).is_success
    for url, body in (
        (f"/alerts/{other}/acknowledge", None),  # another alert
        (f"/alerts/{alert}/resolve", None),  # another action
        (f"/alerts/{alert}/acknowledge", {"note": "x"}),  # another body
    ):
        response = await api.client.post(url, json=body, headers=headers)
        problem(response, 409, "this Idempotency-Key was used for another request")
    assert not (await api.store.get_alert(other)).alert.acknowledged
    assert (await api.store.get_alert(alert)).alert.state.value == "active"


async def test_keys_belong_to_one_api_key(api: Api) -> None:
    alert = await raise_alert(api.store, "ward_a", "cab-a1")
    for role in ("noc", "crew_a"):
        response = await api.client.post(
            f"/alerts/{alert}/comment", json={"text": "hi"}, headers=api.headers(role, "k1")
        )
        assert response.status_code == 200
        assert "idempotent-replayed" not in response.headers
    assert (await api.kinds(alert))["commented"] == 2


async def test_a_failed_action_keeps_no_answer(api: Api) -> None:
    """A 409 (or 404) is not remembered: the repeat acts again, and fails the same way."""
    alert = await raise_alert(api.store, "ward_a", "cab-a1")
    await api.store.resolve(alert, "someone")
    for _ in range(2):
        response = await api.client.post(
            f"/alerts/{alert}/resolve", headers=api.headers("noc", "late")
        )
        problem(response, 409, "already cleared")
    hidden = await api.client.post(
        f"/alerts/{await raise_alert(api.store, 'ward_b', 'cab-b1')}/acknowledge",
        headers=api.headers("crew_a", "other-ward"),
    )
    assert hidden.status_code == 404


async def test_concurrent_repeats_act_once(api: Api) -> None:
    alert = await raise_alert(api.store, "ward_a", "cab-a1")
    responses = await asyncio.gather(
        *(
            api.client.post(
                f"/alerts/{alert}/comment",
                json={"text": "once"},
                headers=api.headers("crew_a", "burst"),
            )
            for _ in range(6)
        )
    )
    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {200, 409}
    assert codes[200] >= 1
    assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 409)
    assert (await api.kinds(alert))["commented"] == 1


async def test_a_repeat_while_the_first_is_running_is_told_to_retry(api: Api) -> None:
    alert = await raise_alert(api.store, "ward_a", "cab-a1")
    noc = await api.store.verify_api_key(api.keys["noc"])
    assert noc is not None
    digest = request_digest("comment", alert, "hello")
    assert await api.store.claim_action_key(noc.id, "running", digest) is None
    response = await api.client.post(
        f"/alerts/{alert}/comment", json={"text": "hello"}, headers=api.headers("noc", "running")
    )
    assert response.status_code == 409
    assert response.headers["retry-after"] == "1"
    assert "still running" in response.json()["detail"]
    assert (await api.kinds(alert))["commented"] == 0


async def test_bad_keys_are_refused(api: Api) -> None:
    alert = await raise_alert(api.store, "ward_a", "cab-a1")
    for bad in ("", "with space", "x" * 201):
        response = await api.client.post(
            f"/alerts/{alert}/acknowledge", headers=api.headers("noc", bad)
        )
        assert response.status_code == 422, bad
    spec = (await api.client.get("/openapi.json")).json()
    params = spec["paths"]["/alerts/{alert_id}/resolve"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in params)


async def test_store_takes_over_abandoned_claims_and_prunes_old_keys(api: Api) -> None:
    store = api.store
    assert await store.claim_action_key("kid", "k", "digest", now_ms=1_000) is None
    taken = await store.claim_action_key("kid", "k", "digest", now_ms=2_000)
    assert taken is not None
    assert taken.status is None  # in progress
    # Its request died: after the stale period a repeat takes the claim over.
    later = 1_000 + ACTION_KEY_STALE_MS + 1
    assert await store.claim_action_key("kid", "k", "digest", now_ms=later) is None
    await store.finish_action_key("kid", "k", 200, {"id": 1})
    done = await store.claim_action_key("kid", "k", "digest", now_ms=later + 1)
    assert done is not None
    assert (done.status, done.response) == (200, {"id": 1})
    # A day later the key is forgotten.
    assert (
        await store.claim_action_key("kid", "k", "d2", now_ms=later + ACTION_KEY_TTL_MS + 1) is None
    )
