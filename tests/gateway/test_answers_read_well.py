"""What people read in the API's answers: times in ISO 8601, the preference shape the README
shows (``"grantee": "anyone"``) and a wrong shape's error naming the expected one, and a patient's
access log and treatments naming the people (display name, role, hospital) behind the chain's
pseudonymous ids."""

from __future__ import annotations

import datetime as dt

import pytest

from .stack import enrol


@pytest.fixture(scope="module")
def cast(world):
    """The one fixture patient no other gateway test enrols (zmc's second), treated by a specialist."""
    spec = enrol(world.services, "zmc", "specialist")
    _, ref = world.patient_ref("zmc", 1)
    return enrol(world.services, "zmc", "patient", user_id=ref, treating=(spec.user_id,)), spec


def _iso(value) -> dt.datetime:
    assert isinstance(value, str), value
    t = dt.datetime.fromisoformat(value)
    assert t.tzinfo is not None, value
    return t


def test_no_answer_schema_has_an_epoch_number_for_a_time(app):
    spec = app.test_client().get("/openapi.json").json
    numeric = [(name, prop) for name, schema in spec["components"]["schemas"].items()
               for prop, d in (schema.get("properties") or {}).items()
               if prop.endswith("_at") and d.get("type") in ("integer", "number")]
    assert not numeric


def test_times_in_answers_are_iso_8601(world, http, cast):
    gp = enrol(world.services, "lothian", "gp")
    r = http.post("/auth/login", json={"username": gp.username, "method": "text", "text_key": gp.key})
    assert _iso(r.json["expires_at"]) > dt.datetime.now(dt.UTC)
    r = http.post("/auth/login/complete", json={"challenge": r.json["challenge"], "totp_code": gp.totp()})
    assert _iso(r.json["access_expires_at"]) < _iso(r.json["refresh_expires_at"])
    code = http.post("/patients/me/share-codes", token=http.login(cast[0]), json={"ttl_seconds": 300}).json
    left = (_iso(code["expires_at"]) - dt.datetime.now(dt.UTC)).total_seconds()
    assert 290 <= left <= 301


def test_grantee_anyone_as_the_readme_shows_and_a_wrong_shape_says_what_is_expected(http, cast):
    tok = http.login(cast[0])
    r = http.post("/patients/me/preferences", token=tok, json={
        "effect": "deny", "grantee": "anyone", "sections": ["contact"], "purposes": ["research"]})
    assert r.status == 201, r
    prefs = http.get("/patients/me/preferences", token=tok).json
    assert any(p["grantee_kind"] == "anyone" for p in prefs["rules"].values()), prefs
    r = http.post("/patients/me/preferences", token=tok, json={
        "effect": "deny", "grantee": ["insurer"], "sections": ["contact"], "purposes": ["research"]})
    assert r.status == 422
    assert r.json["errors"]["json"]["grantee"] == ['expected "anyone" or an object {"kind": "user"|"role"|'
                                                   '"hospital", "id": "…"} (or {"kind": "anyone"})']
    assert "_schema" not in r.json["detail"] and "Invalid input type" not in r.json["detail"]


def test_access_log_and_treatments_name_the_people(http, cast):
    patient, spec = cast
    ptok, dtok = http.login(patient), http.login(spec)
    d = http.post("/doctors/requests", token=dtok, json={"patient_id": patient.user_id, "sections": ["conditions"],
                                                         "purpose": "treatment", "justification": "direct-care"}).json
    assert d["token"], d
    assert http.post("/doctors/records", token=dtok, json={"token": d["token"]["token"]}).status == 200
    expected = {"user_id": spec.user_id, "display_name": spec.username, "role": "specialist", "hospital": "zmc"}
    for kind in ("access", "decision"):
        log = http.get("/patients/me/access-log", token=ptok, params={"kind": kind}).json["records"]
        assert log and all(x["who"] == expected for x in log), log
    treatments = http.get("/patients/me/treatments", token=ptok).json["records"]
    assert [t["who"] for t in treatments] == [expected]
