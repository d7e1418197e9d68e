"""The API against a real store (SQLite and PostgreSQL): alerts, actions, roles, silences."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from api_harness import STORE_KINDS, client_for, keys, open_store, raise_alert, settings, store_url

from alerts.model import AlertStatus
from alerts.store import AlertStore
from anomaly.events import DetectionKind, Severity
from api import create_app


@dataclass
class Api:
    client: httpx.AsyncClient
    store: AlertStore
    keys: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture(params=STORE_KINDS)
async def api(request: pytest.FixtureRequest, tmp_path, influx) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    store = await open_store(store_url(request.param, tmp_path, request))
    try:
        app = create_app(settings("sqlite+aiosqlite:///unused.db", influx.url), store=store)
        async with client_for(app) as client:
            yield Api(client, store, await keys(store))
    finally:
        await store.close()


async def test_unauthenticated_and_bad_keys_get_401_json(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await api.client.get("/alerts", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert isinstance(response.json()["detail"], str)
    revoked_id = (await api.store.verify_api_key(api.keys["crew_b"])).id  # type: ignore[union-attr]
    await api.store.revoke_api_key(revoked_id)
    response = await api.client.get("/alerts", headers=api.auth("crew_b"))
    assert response.status_code == 401
    assert response.json() == {"detail": "unknown or revoked API key"}


async def test_list_filters_and_paging(api: Api) -> None:
    a1 = await raise_alert(api.store, "ward_a", "cab-a1", ts_ms=1_000)
    a2 = await raise_alert(
        api.store, "ward_a", "seg-a2", kind=DetectionKind.CABLE_CUT, severity=Severity.CRITICAL
    )
    b1 = await raise_alert(api.store, "ward_b", "cab-b1")
    await api.store.resolve(b1, "someone")

    async def ids(**params: object) -> tuple[list[int], int]:
        response = await api.client.get("/alerts", params=params, headers=api.auth("noc"))
        assert response.status_code == 200, response.text
        body = response.json()
        return [a["id"] for a in body["data"]], body["count"]

    assert await ids() == ([b1, a2, a1], 3)
    assert await ids(state="active") == ([a2, a1], 2)
    assert await ids(state="cleared") == ([b1], 1)
    assert await ids(ward="ward_a") == ([a2, a1], 2)
    assert await ids(severity="critical") == ([a2], 1)
    assert await ids(type="intrusion") == ([b1, a1], 2)
    assert await ids(device="cab-a1") == ([a1], 1)
    assert await ids(limit=1) == ([b1], 3)
    assert await ids(skip=1, limit=1) == ([a2], 3)
    assert await ids(acknowledged="false") == ([b1, a2, a1], 3)
    opened = (await api.store.get_alert(a2)).alert.opened_at
    assert await ids(**{"from": opened, "to": opened + 1}) == ([a2], 1)

    one = (await api.client.get("/alerts", params={"limit": 1}, headers=api.auth("noc"))).json()
    alert = one["data"][0]
    for field in ("id", "device", "ward", "type", "severity", "state", "acknowledged",
                  "opened_at", "last_seen", "incident"):  # fmt: skip
        assert field in alert
    assert alert["state"] == "cleared"


async def test_bad_filters_get_precise_422(api: Api) -> None:
    cases = {
        "state": "melting",
        "limit": "0",
        "skip": "-1",
        "ward": "Ward A",
        "from": "yesterday",
    }
    for name, value in cases.items():
        response = await api.client.get("/alerts", params={name: value}, headers=api.auth("noc"))
        assert response.status_code == 422, name
        (error,) = response.json()["detail"]
        assert error["loc"] == ["query", name]
        assert error["msg"]


async def test_one_alert_with_timeline_and_actions(api: Api) -> None:
    alert_id = await raise_alert(api.store, "ward_a", "cab-a1")
    noc = api.auth("noc")
    base = f"/alerts/{alert_id}"

    response = await api.client.post(f"{base}/acknowledge", json={}, headers=noc)
    assert response.status_code == 200
    assert response.json()["acknowledged"] is True
    assert response.json()["acknowledged_by"] == "noc-desk"
    again = await api.client.post(f"{base}/acknowledge", headers=noc)
    assert again.status_code == 409
    assert "already acknowledged" in again.json()["detail"]

    response = await api.client.post(f"{base}/assign", json={"assignee": "crew-a"}, headers=noc)
    assert response.json()["assignee"] == "crew-a"
    note = {"text": "replacing lock"}
    response = await api.client.post(f"{base}/comment", json=note, headers=noc)
    assert response.status_code == 200
    blank = await api.client.post(f"{base}/comment", json={"text": "  "}, headers=noc)
    assert blank.status_code == 422
    response = await api.client.post(f"{base}/resolve", json={"note": "fixed"}, headers=noc)
    assert response.json()["state"] == "cleared"

    detail = (await api.client.get(base, headers=noc)).json()
    kinds = [entry["kind"] for entry in detail["timeline"]]
    assert kinds == ["raised", "acknowledged", "assigned", "commented", "resolved"]
    assert [c["text"] for c in detail["comments"]] == ["replacing lock"]
    stored = (await api.store.get_alert(alert_id)).alert
    assert stored.state is AlertStatus.CLEARED
    assert stored.acknowledged_by == "noc-desk"

    missing = await api.client.get("/alerts/999999", headers=noc)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "alert 999999 not found"}


async def test_crew_sees_and_changes_only_its_wards(api: Api) -> None:
    mine = await raise_alert(api.store, "ward_a", "cab-a1")
    theirs = await raise_alert(api.store, "ward_b", "cab-b1")
    crew = api.auth("crew_a")

    listed = (await api.client.get("/alerts", headers=crew)).json()
    assert [a["id"] for a in listed["data"]] == [mine]
    assert listed["count"] == 1
    other_ward = (await api.client.get("/alerts", params={"ward": "ward_b"}, headers=crew)).json()
    assert other_ward == {"data": [], "count": 0}

    assert (await api.client.get(f"/alerts/{theirs}", headers=crew)).status_code == 404
    for action, body in (
        ("acknowledge", {}),
        ("comment", {"text": "x"}),
        ("resolve", {}),
        ("assign", {"assignee": "crew-a"}),
    ):
        response = await api.client.post(f"/alerts/{theirs}/{action}", json=body, headers=crew)
        assert response.status_code == 404, action
        assert response.json() == {"detail": f"alert {theirs} not found"}
    untouched = await api.store.get_alert(theirs)
    assert not untouched.alert.acknowledged
    assert untouched.alert.state is AlertStatus.ACTIVE
    assert [c.kind.value for c in untouched.timeline] == ["raised"]

    # In its own ward a crew acknowledges and assigns itself, but no one else.
    ack = await api.client.post(f"/alerts/{mine}/acknowledge", headers=crew)
    assert ack.json()["acknowledged_by"] == "crew-a"
    other = await api.client.post(
        f"/alerts/{mine}/assign", json={"assignee": "crew-b"}, headers=crew
    )
    assert other.status_code == 403
    me = await api.client.post(f"/alerts/{mine}/assign", json={"assignee": "crew-a"}, headers=crew)
    assert me.json()["assignee"] == "crew-a"

    # Admin keys read but do not act; the feed of a crew carries its wards only.
    admin_ack = await api.client.post(f"/alerts/{theirs}/acknowledge", headers=api.auth("admin"))
    assert admin_ack.status_code == 403
    assert "noc or crew" in admin_ack.json()["detail"]


async def test_incidents_scoped_to_wards(api: Api) -> None:
    noc = api.auth("noc")
    page = (await api.client.get("/incidents", headers=noc)).json()
    assert page == {"data": [], "count": 0}
    assert (await api.client.get("/incidents/5", headers=noc)).status_code == 404


async def test_silences_are_admin_only(api: Api) -> None:
    body = {"starts_at": 1_000, "ends_at": 2_000, "ward": "ward_a", "comment": "maintenance"}
    for role in ("crew_a", "noc"):
        response = await api.client.post("/silences", json=body, headers=api.auth(role))
        assert response.status_code == 403, role
    assert (await api.client.get("/silences", headers=api.auth("crew_a"))).status_code == 403

    admin = api.auth("admin")
    created = await api.client.post("/silences", json=body, headers=admin)
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["ward"] == "ward_a"
    assert silence["created_by"] == "admin"
    listed = (await api.client.get("/silences", headers=api.auth("noc"))).json()
    assert listed["count"] == 1
    assert [s["id"] for s in listed["data"]] == [silence["id"]]

    backwards = await api.client.post("/silences", json={**body, "ends_at": 500}, headers=admin)
    assert backwards.status_code == 422
    assert "ends_at must be after starts_at" in backwards.json()["detail"][0]["msg"]
    no_matcher = await api.client.post(
        "/silences", json={"starts_at": 1, "ends_at": 2}, headers=admin
    )
    assert "at least one matcher" in no_matcher.json()["detail"][0]["msg"]

    deleted = await api.client.delete(f"/silences/{silence['id']}", headers=admin)
    assert deleted.status_code == 204
    gone = await api.client.delete(f"/silences/{silence['id']}", headers=admin)
    assert gone.status_code == 404


async def test_me_and_keys(api: Api) -> None:
    me = (await api.client.get("/me", headers=api.auth("crew_a"))).json()
    assert me["name"] == "crew-a"
    assert me["role"] == "crew"
    assert me["wards"] == ["ward_a"]

    admin = api.auth("admin")
    assert (await api.client.get("/keys", headers=api.auth("noc"))).status_code == 403
    created = await api.client.post(
        "/keys", json={"name": "night crew", "role": "crew", "wards": ["ward_c"]}, headers=admin
    )
    assert created.status_code == 201
    key = created.json()["key"]
    who = (await api.client.get("/me", headers={"Authorization": f"Bearer {key}"})).json()
    assert who["wards"] == ["ward_c"]
    no_wards = await api.client.post(
        "/keys", json={"name": "x", "role": "crew", "wards": []}, headers=admin
    )
    assert no_wards.status_code == 422
    assert "needs at least one ward" in no_wards.json()["detail"][0]["msg"]
    revoked = await api.client.delete(f"/keys/{created.json()['id']}", headers=admin)
    assert revoked.status_code == 204
    after = await api.client.get("/me", headers={"Authorization": f"Bearer {key}"})
    assert after.status_code == 401
