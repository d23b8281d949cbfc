"""PolicyContract and PreferenceContract on the embedded node: who writes, validation that names
the field, versions and history. Rule changes happen on FCRB, whose patients no other test uses."""

from __future__ import annotations

import datetime as dt

from .conftest import BASELINE_RULES, Cast, World, refused


def test_hospital_rules_are_versioned_and_written_only_by_their_admins(world: World, cast: Cast):
    admin = world.admins["fcrb"]
    before = cast.spec.evaluate("PolicyContract", "GetPolicy", "FcrbMSP")  # every member reads the rules
    assert set(before["rules"]) >= {r["rule_id"] for r in BASELINE_RULES}
    t = admin.tx("PolicyContract", "PutRule", {"roles": ["gp"], "sections": ["contact"], "purposes": ["treatment"],
                                               "max_grant_seconds": 600})
    rule = t.result
    assert rule["rule_id"].startswith("r-") and rule["version"] == 1 and rule["effect"] == "allow"
    assert rule["policy_version"] == before["version"] + 1
    assert admin.event(t.status) == ("PolicyChanged", {"hospital": "FcrbMSP", "version": rule["policy_version"],
                                                       "change": "added", "rule_id": rule["rule_id"],
                                                       "at": rule["updated_at"]})
    again = admin.submit("PolicyContract", "PutRule", {"rule_id": rule["rule_id"], "roles": ["gp", "nurse"],
                                                       "sections": ["contact"], "purposes": ["treatment"]})
    assert again["version"] == 2 and again["roles"] == ["gp", "nurse"]
    # the rule applies at once
    p = world.patient("fcrb")
    gp = world.user("fcrb", "gp")
    r = gp.submit("TransportContract", "RequestAccess", p.name, ["contact"], "treatment", "")
    rec = gp.evaluate("TransportContract", "GetRequest", r["request_id"])
    assert r["reasons"] == {"contact": "hospital-rule"} and rec["decision"][0]["basis"] == [rule["rule_id"]]
    removed = admin.submit("PolicyContract", "RemoveRule", rule["rule_id"])
    assert removed["rule_id"] == rule["rule_id"]
    r = gp.submit("TransportContract", "RequestAccess", p.name, ["contact"], "treatment", "")
    assert r["denied"] == [{"section": "contact", "reason": "no-rule"}]
    refused(404, "rule_id", admin.submit, "PolicyContract", "RemoveRule", rule["rule_id"])
    history = cast.auditor.evaluate("PolicyContract", "PolicyHistory", "FcrbMSP")
    versions = [h["policy"]["version"] for h in history]
    assert versions == sorted(versions) and versions[-1] == removed["policy_version"]
    assert rule["rule_id"] in history[-2]["policy"]["rules"] and rule["rule_id"] not in history[-1]["policy"]["rules"]
    # nobody else writes FCRB's rules; another admin writes its own hospital's
    for who in (cast.spec, cast.auditor, world.user("fcrb", "nurse")):
        refused(403, "only a hospital admin", who.submit, "PolicyContract", "PutRule",
                {"roles": ["gp"], "sections": ["contact"], "purposes": ["treatment"]})


def test_rule_validation_names_the_field(world: World):
    admin = world.admins["fcrb"]
    base = {"roles": ["gp"], "sections": ["contact"], "purposes": ["treatment"]}
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    for bad, field in [
        ({**base, "roles": ["surgeon"]}, "rule.roles[0]"),
        ({**base, "sections": ["contact", "*"]}, "rule.sections"),
        ({**base, "purposes": []}, "rule.purposes"),
        ({**base, "effect": "maybe"}, "rule.effect"),
        ({**base, "same_hospital": "yes"}, "rule.same_hospital"),
        ({**base, "max_grant_seconds": 10}, "rule.max_grant_seconds"),
        ({**base, "max_grant_seconds": 10**9}, "rule.max_grant_seconds"),
        ({**base, "valid_until": past}, "rule.valid_until"),
        ({**base, "valid_from": "2030-01-02T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"}, "rule.valid_until"),
        ({**base, "colour": "red"}, "rule: unknown field(s) colour"),
        ({"roles": ["gp"], "purposes": ["treatment"]}, "rule.sections: required"),
        ({**base, "rule_id": "has space"}, "rule.rule_id"),
    ]:
        refused(400, field, admin.submit, "PolicyContract", "PutRule", bad)
    refused(400, "argument 'rule'", admin.submit, "PolicyContract", "PutRule", "not json")


def test_policy_settings(world: World, cast: Cast):
    admin = world.admins["fcrb"]
    out = admin.submit("PolicyContract", "SetPolicySettings", {"break_glass_seconds": 1800})
    assert out["settings"]["break_glass_seconds"] == 1800
    try:
        p = world.patient("fcrb")
        nurse = world.user("fcrb", "nurse")
        r = nurse.submit("TransportContract", "BreakGlass", p.name, ["conditions"], "clinical-emergency")
        g = p.evaluate("TransportContract", "GetGrant", r["grant_id"])
        span = dt.datetime.fromisoformat(g["expires_at"]) - dt.datetime.fromisoformat(g["created_at"])
        assert span == dt.timedelta(minutes=30)
    finally:
        admin.submit("PolicyContract", "SetPolicySettings", {"break_glass_seconds": 7200})
    refused(400, "settings.break_glass_seconds", admin.submit, "PolicyContract", "SetPolicySettings",
            {"break_glass_seconds": 10 * 24 * 3600})
    refused(409, "unchanged", admin.submit, "PolicyContract", "SetPolicySettings", {"break_glass_seconds": 7200})
    refused(403, "only a hospital admin", cast.spec.submit, "PolicyContract", "SetPolicySettings",
            {"max_grant_seconds": 60})


def test_preferences_are_written_only_by_the_patient(world: World, cast: Cast):
    p = world.patient()
    other = world.patient()
    pref = {"effect": "deny", "grantee": {"kind": "role", "id": "insurer"}, "sections": ["*"], "purposes": ["*"]}
    for who in (other, cast.spec, world.admins["lothian"], cast.auditor):
        refused(403, "", who.submit, "PreferenceContract", "AddPreference", p.name, pref)
    t = p.tx("PreferenceContract", "AddPreference", p.name, pref)
    assert t.result["version"] == 1 and t.result["preference"]["pref_id"].startswith("p-")
    name, ev = p.event(t.status)
    assert name == "PreferenceChanged" and ev["patient"] == p.name and ev["patient_hospital"] == "LothianMSP"
    listed = p.evaluate("PreferenceContract", "ListPreferences", p.name)
    assert listed["version"] == 1 and list(listed["rules"]) == [t.result["pref_id"]]
    assert world.admins["lothian"].evaluate("PreferenceContract", "ListPreferences", p.name)["version"] == 1
    refused(403, "only patient", cast.spec.evaluate, "PreferenceContract", "ListPreferences", p.name)
    refused(403, "only patient", world.admins["zmc"].evaluate, "PreferenceContract", "ListPreferences", p.name)


def test_preference_validation_names_the_field(world: World, cast: Cast):
    p = world.patient()
    base = {"effect": "allow", "grantee": {"kind": "anyone"}, "sections": ["*"], "purposes": ["research"]}
    for bad, field in [
        ({**base, "effect": "perhaps"}, "preference.effect"),
        ({**base, "grantee": {"kind": "friend"}}, "preference.grantee.kind"),
        ({**base, "grantee": {"kind": "user", "id": "nobody-known"}}, "preference.grantee.id: no user"),
        ({**base, "grantee": {"kind": "user", "id": p.name}}, "own record"),
        ({**base, "grantee": {"kind": "role", "id": "boss"}}, "preference.grantee.id"),
        ({**base, "grantee": {"kind": "hospital", "id": "NowhereMSP"}}, "preference.grantee.id: hospital"),
        ({**base, "grantee": {"kind": "anyone", "id": "x"}}, "preference.grantee.id"),
        ({**base, "sections": ["soul"]}, "preference.sections[0]"),
        ({**base, "purposes": ["marketing"]}, "preference.purposes[0]"),
        ({**base, "valid_until": "2000-01-01T00:00:00Z"}, "preference.valid_until: already past"),
        ({**base, "valid_from": "tomorrow"}, "preference.valid_from"),
        ({k: v for k, v in base.items() if k != "grantee"}, "preference.grantee: required"),
    ]:
        status = 404 if ("no user" in field or ": hospital" in field) else 400
        refused(status, field, p.submit, "PreferenceContract", "AddPreference",
                p.name, bad)
    refused(404, "pref_id", p.submit, "PreferenceContract", "WithdrawPreference", p.name, "p-none")


def test_preference_history_is_complete_and_paginated(world: World):
    p = world.patient()
    ids = []
    for purpose in ("research", "insurance", "audit"):
        out = p.submit("PreferenceContract", "AddPreference", p.name, {
            "effect": "deny", "grantee": "anyone", "sections": ["*"], "purposes": [purpose]})
        ids.append(out["pref_id"])
    p.submit("PreferenceContract", "WithdrawPreference", p.name, ids[1])
    replaced = p.submit("PreferenceContract", "AddPreference", p.name, {
        "pref_id": ids[0], "effect": "deny", "grantee": "anyone", "sections": ["imaging"], "purposes": ["research"]})
    assert replaced["change"] == "replaced" and replaced["version"] == 5
    entries, bookmark = [], ""
    while True:
        page = p.evaluate("PreferenceContract", "PreferenceHistory", p.name, 2, bookmark)
        assert page["count"] <= 2
        entries += page["records"]
        bookmark = page["bookmark"]
        if not bookmark:
            break
    assert [(e["version"], e["change"], e["pref_id"]) for e in entries] == [
        (1, "added", ids[0]), (2, "added", ids[1]), (3, "added", ids[2]), (4, "withdrawn", ids[1]),
        (5, "replaced", ids[0])]
    current = p.evaluate("PreferenceContract", "ListPreferences", p.name)
    assert sorted(current["rules"]) == sorted([ids[0], ids[2]]) and current["rules"][ids[0]]["sections"] == ["imaging"]
