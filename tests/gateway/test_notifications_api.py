"""``/notifications/me``: the JSON API over the same notification store as the web pages — list
with the unread count, mark read (one or all; someone else's is 404 ``notification-not-found``),
and the kinds a person receives (a kind switched off is not stored)."""

from __future__ import annotations

import itertools

import pytest

from gateway.notifications import KINDS, Draft, NotificationStore

from .stack import enrol

_tx = itertools.count(1)


@pytest.fixture
def store(app) -> NotificationStore:
    return app.extensions["serums_notifications"]  # the pages' store: the API must use the same one


def _notify(store: NotificationStore, user_id: str, kind: str = "access", text: str = "dr.x opened your record"):
    n = next(_tx)
    return store.record(1000 + n, f"tx-api-{n}", [Draft(user_id, "lothian", kind, text, f"grant-{n}")])


def _problem(r, status: int, slug: str) -> None:
    assert r.status == status, r
    assert r.headers["Content-Type"].startswith("application/problem+json"), r
    assert r.json["type"].endswith(f"/problems/{slug}") and r.json["detail"], r.json


def test_list_unread_count_and_mark_read(world, http, store):
    patient = enrol(world.services, "lothian", "specialist")  # anyone signed in has notifications
    token = http.login(patient)
    r = http.get("/notifications/me", token=token)
    assert r.status == 200 and r.json == {"unread": 0, "notifications": []}
    first = _notify(store, patient.user_id, "access", "dr.a opened your record")[0]
    second = _notify(store, patient.user_id, "break-glass", "Emergency access: dr.b broke the glass")[0]
    r = http.get("/notifications/me", token=token)
    assert r.status == 200 and r.json["unread"] == 2
    assert [n["id"] for n in r.json["notifications"]] == [second.id, first.id]  # newest first
    top = r.json["notifications"][0]
    assert top["kind"] == "break-glass" and top["kind_label"] == KINDS["break-glass"]
    assert top["text"].startswith("Emergency access") and top["read_at"] is None and top["at"].endswith("+00:00")
    assert http.get("/notifications/me", token=token, params={"limit": 1}).json["notifications"][0]["id"] == second.id

    r = http.post("/notifications/me/read", token=token, json={"id": first.id})
    assert r.status == 200 and r.json == {"marked": 1, "unread": 1}
    assert store.unread_count(patient.user_id) == 1  # the pages see it read too
    assert http.post("/notifications/me/read", token=token, json={"id": first.id}).json == {"marked": 0, "unread": 1}
    listed = {n["id"]: n for n in http.get("/notifications/me", token=token).json["notifications"]}
    assert listed[first.id]["read_at"] is not None and listed[second.id]["read_at"] is None

    # someone else's notification: 404, and it stays unread
    other = enrol(world.services, "lothian", "gp")
    theirs = _notify(store, other.user_id)[0]
    _problem(http.post("/notifications/me/read", token=token, json={"id": theirs.id}), 404, "notification-not-found")
    _problem(http.post("/notifications/me/read", token=token, json={"id": 10**9}), 404, "notification-not-found")
    assert store.unread_count(other.user_id) == 1

    r = http.post("/notifications/me/read", token=token, json={})  # all of mine
    assert r.status == 200 and r.json == {"marked": 1, "unread": 0}
    assert store.unread_count(other.user_id) == 1
    # the clinician sees only their own
    r = http.get("/notifications/me", token=http.login(other))
    assert [n["id"] for n in r.json["notifications"]] == [theirs.id] and r.json["unread"] == 1


def test_kinds_preferences(world, http, store):
    nurse = enrol(world.services, "lothian", "nurse")
    token = http.login(nurse)
    r = http.get("/notifications/me/kinds", token=token)
    assert r.status == 200 and [k["kind"] for k in r.json["kinds"]] == list(KINDS)
    assert all(k["enabled"] and k["label"] == KINDS[k["kind"]] for k in r.json["kinds"])

    r = http.put("/notifications/me/kinds", token=token, json={"enabled": ["revocation", "review"]})
    assert r.status == 200
    assert {k["kind"]: k["enabled"] for k in r.json["kinds"]} == {k: k in ("revocation", "review") for k in KINDS}
    assert store.kinds(nurse.user_id) == {k: k in ("revocation", "review") for k in KINDS}  # what the pages show
    assert _notify(store, nurse.user_id, "access") == []  # switched off: not stored
    assert len(_notify(store, nurse.user_id, "revocation")) == 1

    before = store.kinds(nurse.user_id)
    for body in ({"enabled": ["revocation", "gossip"]}, {}, {"enabled": "review"}, {"enabled": [], "extra": 1}):
        r = http.put("/notifications/me/kinds", token=token, json=body)
        _problem(r, 422, "validation-error")
        assert r.json["errors"], r.json
    assert store.kinds(nurse.user_id) == before  # no state change
    assert http.put("/notifications/me/kinds", token=token, json={"enabled": []}).json["kinds"][0]["enabled"] is False


def test_bad_requests_are_problems(world, http):
    _problem(http.get("/notifications/me"), 401, "authentication-required")
    _problem(http.post("/notifications/me/read", json={}), 401, "authentication-required")
    token = http.login(enrol(world.services, "zmc", "specialist"))
    _problem(http.get("/notifications/me", token=token, params={"limit": 0}), 422, "validation-error")
    _problem(http.get("/notifications/me", token=token, params={"limit": "ten"}), 422, "validation-error")
    for body in ({"id": "one"}, {"id": 0}, {"id": 1.5}, {"what": 1}):
        _problem(http.post("/notifications/me/read", token=token, json=body), 422, "validation-error")
