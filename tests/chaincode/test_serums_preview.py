"""PreferenceContract:Preview — what a given requester would get of a patient's record under the
hospital's rules and the patient's preferences: the same decision a request records, written
nowhere; for a registered user or for anyone of a role at a hospital (treating or not)."""

from __future__ import annotations

from chaincode.serums.vocab import SECTIONS

from .conftest import Cast, World, refused


def _reasons(preview: dict) -> dict[str, str]:
    return {d["section"]: d["reason"] for d in preview["decision"]}


def _prefs(zmc_allowed: bool = True) -> list[dict]:
    out = [{"pref_id": "no-research", "effect": "deny", "grantee": {"kind": "role", "id": "researcher"},
            "sections": ["*"], "purposes": ["research"]}]
    if zmc_allowed:
        out.append({"pref_id": "zmc-ok", "effect": "allow", "grantee": {"kind": "hospital", "id": "ZmcMSP"},
                    "sections": ["conditions"], "purposes": ["treatment"]})
    return out


def test_preview_of_a_registered_user_is_the_decision_a_request_records(world: World, cast: Cast):
    p = world.patient("lothian", _prefs())
    spec = world.user("lothian", "specialist")
    ask = ["conditions", "imaging", "contact"]
    before = p.evaluate("PreferenceContract", "Preview", p.name, {"user": spec.name}, ask, "treatment")
    assert before["requester"] == {"user_id": spec.name, "role": "specialist", "hospital": "LothianMSP",
                                   "treating": False}
    assert _reasons(before) == {"conditions": "not-treating", "imaging": "hospital-rule", "contact": "no-rule"}
    assert before["granted"] == ["imaging"] and before["version"] == 2
    world.treat(p, spec)
    preview = p.evaluate("PreferenceContract", "Preview", p.name, {"user": spec.name}, ask, "treatment")
    assert preview["requester"]["treating"] is True and sorted(preview["granted"]) == ["conditions", "imaging"]
    request = spec.submit("TransportContract", "RequestAccess", p.name, ask, "treatment", "")
    assert request["reasons"] == _reasons(preview)
    recorded = p.evaluate("TransportContract", "GetRequest", request["request_id"])["decision"]
    assert {d["section"]: d for d in preview["decision"]} == {d["section"]: d for d in recorded}


def test_preview_of_a_role_at_a_hospital(world: World, cast: Cast):
    p = world.patient("lothian", _prefs())
    look = lambda requester, sections, purpose: p.evaluate(  # noqa: E731
        "PreferenceContract", "Preview", p.name, requester, sections, purpose)
    # the patient's own deny beats the hospital's research rule
    r = look({"role": "researcher", "hospital": "LothianMSP"}, ["conditions"], "research")
    assert _reasons(r) == {"conditions": "patient-deny"} and r["requester"]["user_id"] is None
    # the patient's allow for Zmc supplies the consent a Zmc specialist lacks (no treating relationship)
    r = look({"role": "specialist", "hospital": "ZmcMSP"}, ["conditions", "contact"], "treatment")
    assert _reasons(r) == {"conditions": "patient-consent", "contact": "no-rule"}
    r = look({"role": "gp", "hospital": "LothianMSP"}, ["conditions"], "treatment")
    assert _reasons(r) == {"conditions": "not-treating"}
    r = look({"role": "gp", "hospital": "LothianMSP", "treating": True}, ["conditions"], "treatment")
    assert _reasons(r) == {"conditions": "hospital-rule"} and r["grant_seconds"] == 8 * 3600
    assert _reasons(look({"role": "nurse", "hospital": "LothianMSP"}, ["demographics"], "treatment")) == \
        {"demographics": "hospital-rule"}
    assert _reasons(look({"role": "nurse", "hospital": "ZmcMSP"}, ["demographics"], "treatment")) == \
        {"demographics": "other-hospital"}
    everything = look({"role": "insurer", "hospital": "FcrbMSP"}, ["*"], "insurance")
    assert [d["section"] for d in everything["decision"]] == list(SECTIONS)
    assert set(_reasons(everything).values()) == {"hospital-rule-deny"} and everything["granted"] == []
    # without the patient's allow, the Zmc specialist gets nothing
    q = world.patient("lothian", _prefs(zmc_allowed=False))
    r = q.evaluate("PreferenceContract", "Preview", q.name, {"role": "specialist", "hospital": "ZmcMSP"},
                   ["conditions"], "treatment")
    assert _reasons(r) == {"conditions": "not-treating"} and r["granted"] == []


def test_preview_readers_and_bad_input(world: World, cast: Cast):
    p = world.patient("lothian", _prefs())
    args = (p.name, {"role": "gp", "hospital": "LothianMSP"}, ["conditions"], "treatment")
    assert cast.auditor.evaluate("PreferenceContract", "Preview", *args)["patient"] == p.name
    assert world.admins["lothian"].evaluate("PreferenceContract", "Preview", *args)["patient"] == p.name
    other = world.patient("lothian")
    for who in (other, cast.spec, world.admins["zmc"]):
        refused(403, "may read this", who.evaluate, "PreferenceContract", "Preview", *args)
    ev = p.evaluate
    refused(400, "requester.role", ev, "PreferenceContract", "Preview", p.name, {"user": cast.gp.name, "role": "gp"},
            ["conditions"], "treatment")
    refused(400, "requester.hospital", ev, "PreferenceContract", "Preview", p.name, {"role": "gp"}, ["conditions"],
            "treatment")
    refused(400, "requester.role", ev, "PreferenceContract", "Preview", p.name,
            {"role": "wizard", "hospital": "LothianMSP"}, ["conditions"], "treatment")
    refused(400, "requester.treating", ev, "PreferenceContract", "Preview", p.name,
            {"role": "gp", "hospital": "LothianMSP", "treating": "yes"}, ["conditions"], "treatment")
    refused(400, "requester", ev, "PreferenceContract", "Preview", p.name, {"who": "me"}, ["conditions"], "treatment")
    refused(404, "requester.user", ev, "PreferenceContract", "Preview", p.name, {"user": "nobody-here"},
            ["conditions"], "treatment")
    refused(404, "requester.hospital", ev, "PreferenceContract", "Preview", p.name,
            {"role": "gp", "hospital": "NowhereMSP"}, ["conditions"], "treatment")
    refused(400, "sections", ev, "PreferenceContract", "Preview", p.name, args[1], ["xray"], "treatment")
    refused(400, "purpose", ev, "PreferenceContract", "Preview", p.name, args[1], ["conditions"], "curiosity")
    refused(404, "patient", ev, "PreferenceContract", "Preview", "nobody-here", args[1], ["conditions"], "treatment")
