"""``POST /patients/me/preferences/preview``: what a given requester would get of my record under my
hospital's rules and my preferences — the decision a real request then records, written nowhere."""

from __future__ import annotations

from .stack import enrol


def _reasons(body: dict) -> dict[str, str]:
    return {d["section"]: d["reason"] for d in body["decision"]}


def test_preview_matches_the_request_and_writes_nothing(world, http):
    svc = world.services
    _, ref = world.patient_ref("lothian", 1)
    spec = enrol(svc, "lothian", "specialist")
    patient = enrol(svc, "lothian", "patient", user_id=ref, treating=(spec.user_id,))
    ptok = http.login(patient)
    r = http.post("/patients/me/preferences", token=ptok, json={
        "effect": "deny", "grantee": {"kind": "role", "id": "researcher"}, "sections": ["*"], "purposes": ["research"]})
    assert r.status == 201, r

    def preview(requester: dict, sections: list[str], purpose: str, token: str = ptok):
        return http.post("/patients/me/preferences/preview", token=token,
                         json={"requester": requester, "sections": sections, "purpose": purpose})

    decisions_before = http.get("/patients/me/access-log", token=ptok, params={"kind": "decision"}).json["count"]
    ask = ["conditions", "contact"]
    r = preview({"user": spec.user_id}, ask, "treatment")
    assert r.status == 200, r
    assert r.json["requester"] == {"user_id": spec.user_id, "role": "specialist", "hospital": "lothian",
                                   "treating": True}
    assert _reasons(r.json) == {"conditions": "hospital-rule", "contact": "no-rule"}
    assert r.json["granted"] == ["conditions"] and r.json["grant_seconds"] == 8 * 3600
    # a role at a hospital: the patient's refusal beats the hospital's research rule; "*" is every section
    r = preview({"role": "researcher", "hospital": "lothian"}, ["*"], "research")
    assert r.status == 200 and r.json["requester"]["user_id"] is None and r.json["granted"] == []
    assert set(_reasons(r.json).values()) == {"patient-deny"}
    r = preview({"role": "gp", "hospital": "LothianMSP", "treating": True}, ["conditions"], "treatment")
    assert _reasons(r.json) == {"conditions": "hospital-rule"} and r.json["requester"]["hospital"] == "lothian"
    assert _reasons(preview({"role": "nurse", "hospital": "zmc"}, ["contact"], "treatment").json) == \
        {"contact": "other-hospital"}
    # nothing written: no request on the patient's trail
    assert http.get("/patients/me/access-log", token=ptok, params={"kind": "decision"}).json["count"] == \
        decisions_before
    # and the real request records exactly the previewed decision
    dtok = http.login(spec)
    req = http.post("/doctors/requests", token=dtok, json={"patient_id": ref, "sections": ask, "purpose": "treatment"})
    assert req.status in (200, 201), req
    assert req.json["reasons"] == _reasons(preview({"user": spec.user_id}, ask, "treatment").json)

    # bad input: 422 with the field, or the chain's / gateway's 404; the role check first
    for body in ({"requester": {"user": spec.user_id, "role": "gp"}, "sections": ask, "purpose": "treatment"},
                 {"requester": {"role": "gp"}, "sections": ask, "purpose": "treatment"},
                 {"requester": {"role": "wizard", "hospital": "lothian"}, "sections": ask, "purpose": "treatment"},
                 {"requester": {"role": "gp", "hospital": "lothian", "treating": "yes"}, "sections": ask,
                  "purpose": "treatment"},
                 {"requester": {"role": "gp", "hospital": "lothian"}, "sections": ["xray"], "purpose": "treatment"},
                 {"requester": {"role": "gp", "hospital": "lothian"}, "sections": ask, "purpose": "fun"},
                 {"sections": ask, "purpose": "treatment"}):
        r = http.post("/patients/me/preferences/preview", token=ptok, json=body)
        assert r.status == 422 and r.json["type"].endswith("/validation-error") and r.json["errors"], (body, r)
    r = preview({"role": "gp", "hospital": "atlantis"}, ask, "treatment")
    assert r.status == 404 and r.json["type"].endswith("/unknown-hospital"), r
    r = preview({"user": "nobody-at-all"}, ask, "treatment")
    assert r.status == 404 and r.json["type"].endswith("/chain-not-found") and "requester.user" in r.json["detail"], r
    r = preview({"user": spec.user_id}, ask, "treatment", token=dtok)
    assert r.status == 403 and r.json["type"].endswith("/forbidden"), r
