"""The API against a real store (SQLite and PostgreSQL): alerts, actions, roles, silences,
errors as problem details, ISO 8601 times, sorting and operation ids."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

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

from alerts.model import AlertStatus
from alerts.store import AlertStore
from anomaly.events import DetectionKind, Severity
from api import create_app

HK = "phuong_hoan_kiem"
BD = "phuong_ba_dinh"


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
        problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
    revoked_id = (await api.store.verify_api_key(api.keys["crew_b"])).id  # type: ignore[union-attr]
    await api.store.revoke_api_key(revoked_id)
    response = await api.client.get("/alerts", headers=api.auth("crew_b"))
    problem(response, 401, "unknown or revoked API key")


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
        body = problem(response, 422)
        (error,) = body["errors"]
        assert error["loc"] == ["query", name]
        assert error["msg"]
        assert body["detail"] == f"query.{name}: {error['msg']}"


async def test_one_alert_with_timeline_and_actions(api: Api) -> None:
    alert_id = await raise_alert(api.store, "ward_a", "cab-a1")
    noc = api.auth("noc")
    base = f"/alerts/{alert_id}"

    response = await api.client.post(f"{base}/acknowledge", json={}, headers=noc)
    assert response.status_code == 200
    assert response.json()["acknowledged"] is True
    assert response.json()["acknowledged_by"] == "noc-desk"
    again = await api.client.post(f"{base}/acknowledge", headers=noc)
    assert "already acknowledged" in problem(again, 409)["detail"]

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
    problem(missing, 404, "alert 999999 not found")


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
        problem(response, 404, f"alert {theirs} not found")
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
    assert "noc or crew" in problem(admin_ack, 403)["detail"]


async def test_incidents_scoped_to_wards(api: Api) -> None:
    noc = api.auth("noc")
    page = (await api.client.get("/incidents", headers=noc)).json()
    assert page == {"data": [], "count": 0}
    assert (await api.client.get("/incidents/5", headers=noc)).status_code == 404


async def test_noc_and_admin_manage_silences_crews_do_not(api: Api) -> None:
    body = {
        "starts_at": 1_000,
        "ends_at": 2_000,
        "ward": HK,
        "comment": "maintenance",
    }
    crew = api.auth("crew_a")
    problem(await api.client.post("/silences", json=body, headers=crew), 403)
    problem(await api.client.get("/silences", headers=crew), 403)

    noc = api.auth("noc")
    created = await api.client.post("/silences", json=body, headers=noc)
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["ward"] == HK
    assert silence["comment"] == "maintenance"
    assert silence["created_by"] == "noc-desk"
    noc_key = await api.store.verify_api_key(api.keys["noc"])
    assert noc_key is not None
    assert silence["created_by_key"] == noc_key.id
    assert silence["matchers"] == []
    listed = (await api.client.get("/silences", headers=api.auth("admin"))).json()
    assert listed["count"] == 1
    assert [s["id"] for s in listed["data"]] == [silence["id"]]
    by_admin = await api.client.post("/silences", json=body, headers=api.auth("admin"))
    assert by_admin.json()["created_by"] == "admin"

    backwards = await api.client.post("/silences", json={**body, "ends_at": 500}, headers=noc)
    assert "ends_at must be after starts_at" in problem(backwards, 422)["errors"][0]["msg"]
    no_matcher = await api.client.post(
        "/silences", json={"starts_at": 1, "ends_at": 2, "comment": "x"}, headers=noc
    )
    assert "at least one matcher" in problem(no_matcher, 422)["errors"][0]["msg"]
    no_why = await api.client.post(
        "/silences", json={k: v for k, v in body.items() if k != "comment"}, headers=noc
    )
    assert problem(no_why, 422)["errors"][0]["loc"] == ["body", "comment"]
    blank_why = await api.client.post("/silences", json={**body, "comment": "  "}, headers=noc)
    assert problem(blank_why, 422)["errors"][0]["loc"] == ["body", "comment"]

    deleted = await api.client.delete(f"/silences/{silence['id']}", headers=noc)
    assert deleted.status_code == 204
    gone = await api.client.delete(f"/silences/{silence['id']}", headers=noc)
    problem(gone, 404, f"silence {silence['id']} not found")
    problem(await api.client.delete(f"/silences/{silence['id']}", headers=crew), 403)


async def test_silences_refuse_unknown_wards_and_suggest_the_nearest(api: Api) -> None:
    noc = api.auth("noc")
    base = {"starts_at": 1_000, "ends_at": 2_000, "comment": "works"}
    nowhere = await api.client.post(
        "/silences", json={**base, "ward": "phuong_nowhere"}, headers=noc
    )
    (error,) = problem(nowhere, 422)["errors"]
    assert error["loc"] == ["body", "ward"]
    assert "unknown ward 'phuong_nowhere'" in error["msg"]
    typo = await api.client.post(
        "/silences", json={**base, "ward": "phuong_hoan_kiemm"}, headers=noc
    )
    (error,) = problem(typo, 422)["errors"]
    assert "did you mean 'phuong_hoan_kiem'" in error["msg"]
    in_matcher = await api.client.post(
        "/silences",
        json={**base, "matchers": [{"name": "ward", "op": "!=", "value": "phuong_hoan_kiemm"}]},
        headers=noc,
    )
    (error,) = problem(in_matcher, 422)["errors"]
    assert error["loc"] == ["body", "matchers", 0, "value"]
    assert "did you mean 'phuong_hoan_kiem'" in error["msg"]
    assert (await api.client.get("/silences", headers=noc)).json()["count"] == 0


async def test_silence_matchers_with_regex_silence_matching_alerts(api: Api) -> None:
    noc = api.auth("noc")
    body = {
        "starts_at": "2023-01-01T00:00:00Z",  # ISO 8601 as well as epoch ms
        "ends_at": 4_000_000_000_000,
        "severity": "major",
        "matchers": [
            {"name": "ward", "op": "=~", "value": "phuong_(hoan_kiem|ba_dinh)"},
            {"name": "device", "op": "=~", "value": "cab-0[1-3]"},
            {"name": "type", "op": "!~", "value": "cable_.*"},
        ],
        "comment": "cabinets 1-3 re-cabled tonight",
    }
    created = await api.client.post("/silences", json=body, headers=noc)
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["starts_at"] == 1_672_531_200_000
    assert silence["severity"] == "major"
    assert silence["matchers"] == body["matchers"]
    assert (await api.client.get(f"/silences/{silence['id']}", headers=noc)).json() == silence

    held = await raise_alert(api.store, HK, "cab-02")
    other_device = await raise_alert(api.store, HK, "cab-12")  # anchored: not cab-0[1-3]
    other_ward = await raise_alert(api.store, "phuong_tay_ho", "cab-01")
    other_severity = await raise_alert(api.store, BD, "cab-03", severity=Severity.CRITICAL)
    other_type = await raise_alert(api.store, BD, "cab-01", kind=DetectionKind.CABLE_CUT)
    silenced = {
        a["id"]: a["silenced"]
        for a in (await api.client.get("/alerts", headers=noc)).json()["data"]
    }
    assert silenced == {
        held: True,
        other_device: False,
        other_ward: False,
        other_severity: False,
        other_type: False,
    }

    for matcher, where, says in (
        ({"name": "device", "op": "=~", "value": "cab-["}, "value", "missing ]"),
        ({"name": "device", "op": "=~", "value": "(a)\\1"}, "value", "invalid escape"),
        ({"name": "type", "op": "=", "value": "fire"}, "value", "unknown type 'fire'"),
        ({"name": "severity", "op": "=~", "value": "urgent.*"}, "value", "matches no severity"),
        ({"name": "ward", "op": "=~", "value": "xa_atlantis.*"}, "value", "matches no ward"),
        ({"name": "metric", "op": "=", "value": "x"}, "name", "'ward', 'device', 'type'"),
        ({"name": "device", "op": "~", "value": "x"}, "op", "'=~'"),
    ):
        bad = await api.client.post("/silences", json={**body, "matchers": [matcher]}, headers=noc)
        (error,) = problem(bad, 422)["errors"]
        assert error["loc"] == ["body", "matchers", 0, where], error
        assert says in error["msg"], error


async def test_times_accept_iso_8601_as_well_as_epoch_ms(api: Api) -> None:
    a1 = await raise_alert(api.store, "ward_a", "cab-a1")
    opened = (await api.store.get_alert(a1)).alert.opened_at
    noc = api.auth("noc")

    async def ids(**params: object) -> list[int]:
        response = await api.client.get("/alerts", params=params, headers=noc)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["data"]]

    at = datetime.fromtimestamp(opened / 1000, UTC)
    hanoi = at.astimezone(timezone(timedelta(hours=7)))
    assert await ids(**{"from": at.isoformat().replace("+00:00", "Z")}) == [a1]
    assert await ids(**{"from": hanoi.isoformat(), "to": opened + 1}) == [a1]
    assert await ids(to=(at + timedelta(milliseconds=1)).isoformat()) == [a1]
    assert await ids(to=at.isoformat()) == []
    naive = await api.client.get("/alerts", params={"from": "2026-12-08T09:00:00"}, headers=noc)
    (error,) = problem(naive, 422)["errors"]
    assert error["loc"] == ["query", "from"]
    assert "needs an offset or Z" in error["msg"]
    response = await api.client.get(
        "/silences", params={"active_at": "2026-12-08T09:00:00+07:00"}, headers=noc
    )
    assert response.status_code == 200
    # answers stay epoch ms
    assert (await api.client.get(f"/alerts/{a1}", headers=noc)).json()["opened_at"] == opened


async def test_lists_take_a_whitelisted_sort(api: Api) -> None:
    minor = await raise_alert(api.store, "ward_a", "cab-a1", severity=Severity.MINOR)
    critical = await raise_alert(api.store, "ward_a", "cab-a2", severity=Severity.CRITICAL)
    major = await raise_alert(api.store, "ward_b", "cab-b1", severity=Severity.MAJOR)
    noc = api.auth("noc")

    async def ids(path: str, sort: str) -> list[int]:
        response = await api.client.get(path, params={"sort": sort}, headers=noc)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["data"]]

    assert await ids("/alerts", "-severity") == [critical, major, minor]
    assert await ids("/alerts", "severity") == [minor, major, critical]
    assert await ids("/alerts", "ward,-raised_at") == [critical, minor, major]
    assert await ids("/alerts", "id") == [minor, critical, major]
    assert await ids("/incidents", "-opened_at") == []
    for when in (3_000, 1_000, 2_000):
        await api.store.create_silence(starts_at=when, ends_at=9_000, ward=HK, comment="x")
    starts = [
        s["starts_at"]
        for s in (
            await api.client.get("/silences", params={"sort": "starts_at"}, headers=noc)
        ).json()["data"]
    ]
    assert starts == [1_000, 2_000, 3_000]
    for path, sort, says in (
        ("/alerts", "-explanation", "cannot sort by 'explanation'"),
        ("/alerts", "severity,severity", "given twice"),
        ("/incidents", "severity", "cannot sort by 'severity'"),
        ("/silences", "", "cannot sort by ''"),
    ):
        response = await api.client.get(path, params={"sort": sort}, headers=noc)
        (error,) = problem(response, 422)["errors"]
        assert error["loc"] == ["query", "sort"]
        assert says in error["msg"]


async def test_every_error_is_a_problem_document(api: Api) -> None:
    """One shape for every error: wrong path and method, a bad body, a validation error
    in the path, and the OpenAPI document names one schema for all of them."""
    noc = api.auth("noc")
    problem(await api.client.get("/nowhere", headers=noc), 404)
    problem(await api.client.put("/alerts", headers=noc), 405)
    problem(await api.client.get("/alerts/0", headers=noc), 422)
    broken = await api.client.post(
        "/silences", content=b"{not json", headers={**noc, "content-type": "application/json"}
    )
    assert problem(broken, 422)["errors"][0]["loc"][0] == "body"
    spec = (await api.client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    ids = []
    for operations in spec["paths"].values():
        for operation in operations.values():
            ids.append(operation["operationId"])
            for code, response in operation["responses"].items():
                if code[0] in "45":
                    assert response["content"] == {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/ProblemDetails"}
                        }
                    }, (operation["operationId"], code)
            assert "500" in operation["responses"]
    assert len(ids) == len(set(ids))
    for expected in ("listAlerts", "acknowledgeAlert", "createSilence", "deleteSilence"):
        assert expected in ids
    assert all(i[0].islower() and "_" not in i for i in ids), ids


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
    assert "needs at least one ward" in problem(no_wards, 422)["errors"][0]["msg"]
    revoked = await api.client.delete(f"/keys/{created.json()['id']}", headers=admin)
    assert revoked.status_code == 204
    after = await api.client.get("/me", headers={"Authorization": f"Bearer {key}"})
    assert after.status_code == 401


async def test_a_key_carries_the_language_its_holder_reads(api: Api) -> None:
    """``lang`` is set when the key is made, shown in ``/me`` and the key list; unset, it
    is null (the crew page follows the browser); anything but vi/en is refused."""
    admin = api.auth("admin")
    assert (await api.client.get("/me", headers=api.auth("crew_a"))).json()["lang"] is None
    created = await api.client.post(
        "/keys",
        json={"name": "noc en", "role": "crew", "wards": ["ward_c"], "lang": "en"},
        headers=admin,
    )
    assert created.status_code == 201
    assert created.json()["lang"] == "en"
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (await api.client.get("/me", headers=headers)).json()["lang"] == "en"
    listed = (await api.client.get("/keys", headers=admin)).json()["data"]
    assert {k["id"]: k["lang"] for k in listed}[created.json()["id"]] == "en"

    for bad in ("fr", "vi-VN", "", 1):
        refused = await api.client.post(
            "/keys",
            json={"name": "x", "role": "crew", "wards": ["ward_c"], "lang": bad},
            headers=admin,
        )
        (error,) = problem(refused, 422)["errors"]
        assert error["loc"] == ["body", "lang"], bad
        assert "'vi' or 'en'" in error["msg"], error
