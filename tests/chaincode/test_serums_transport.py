"""TransportContract on the embedded node: the decision matrix, grants and tokens, the access log,
revocation, expiry, break-glass and research cohorts."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from chaincode.serums import decide
from chaincode.serums.decision import Party
from chaincode.serums.records import pref_from_doc, rule_from_doc

from .conftest import Cast, World, refused, uid

ONCO = "oncology.treatment"


def h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def allow(kind: str, grantee: str = "", sections=("*",), purposes=("*",), **kw) -> dict:
    g = {"kind": kind, "id": grantee} if kind != "anyone" else {"kind": "anyone"}
    return {"effect": "allow", "grantee": g, "sections": list(sections), "purposes": list(purposes), **kw}


def deny(kind: str, grantee: str = "", sections=("*",), purposes=("*",), **kw) -> dict:
    return {**allow(kind, grantee, sections, purposes, **kw), "effect": "deny"}


def reasons(result: dict) -> dict[str, str]:
    return result["reasons"]


# --------------------------------------------------------------------------- the decision matrix


def matrix(cast: Cast, t0: dt.datetime):
    """(requester, purpose, patient preferences, treating, sections → expected reason) under the
    baseline rules of the patient's hospital (Lothian)."""
    spec, nurse, zspec, znurse = cast.spec, cast.nurse, cast.zspec, cast.znurse
    return [
        ("treating specialist", spec, "treatment", [], True,
         {ONCO: "hospital-rule", "conditions": "hospital-rule", "imaging": "hospital-rule",
          "demographics": "no-rule", "documents": "rule-not-yet-valid"}),
        ("specialist not treating", spec, "treatment", [], False,
         {ONCO: "not-treating", "imaging": "hospital-rule", "contact": "no-rule"}),
        ("treating specialist of another hospital", zspec, "treatment", [], True,
         {ONCO: "hospital-rule", "demographics": "no-rule"}),
        ("local nurse", nurse, "treatment", [], False,
         {"demographics": "hospital-rule", "contact": "hospital-rule", ONCO: "no-rule"}),
        ("nurse of another hospital", znurse, "treatment", [], False,
         {"demographics": "other-hospital", "admissions": "other-hospital"}),
        ("nurse of another hospital with the patient's consent", znurse, "treatment",
         [allow("hospital", "ZmcMSP", ["demographics"], ["treatment"])], False,
         {"demographics": "patient-consent", "contact": "other-hospital"}),
        ("wrong purpose", spec, "insurance", [], True, {ONCO: "no-rule"}),
        ("patient denies the specialist", spec, "treatment", [deny("user", "<spec>")], True,
         {ONCO: "patient-deny", "imaging": "patient-deny"}),
        ("patient denies one section only", spec, "treatment",
         [deny("role", "specialist", ["oncology.toxicity"], ["treatment"])], True,
         {ONCO: "hospital-rule", "oncology.toxicity": "patient-deny"}),
        ("deny beats the patient's own allow", spec, "treatment",
         [allow("anyone"), deny("user", "<spec>", ["conditions"])], True,
         {"conditions": "patient-deny", "demographics": "patient-consent"}),
        ("researcher without consent", cast.researcher, "research", [], False,
         {"conditions": "consent-required", "demographics": "hospital-rule-deny", ONCO: "no-rule"}),
        ("researcher with consent", cast.researcher, "research", [allow("role", "researcher", purposes=["research"])],
         False, {"conditions": "patient-consent", "comorbidities": "patient-consent",
                 "demographics": "hospital-rule-deny", "documents": "hospital-rule-deny", ONCO: "patient-consent"}),
        ("consent for another purpose", cast.researcher, "research", [allow("anyone", purposes=["treatment"])],
         False, {"conditions": "consent-required"}),
        ("insurer even with consent", cast.insurer, "insurance", [allow("anyone")], False,
         {"conditions": "hospital-rule-deny", "demographics": "hospital-rule-deny"}),
        ("expired consent", cast.researcher, "research",
         [allow("role", "researcher", valid_from=(t0 - dt.timedelta(days=3)).isoformat(),
                valid_until=(t0 + dt.timedelta(seconds=30)).isoformat())], False,
         {"conditions": "consent-required"}),
    ]


@pytest.fixture(scope="module")
def matrix_results(world: World, cast: Cast):
    out = []
    t0 = dt.datetime.now(dt.UTC)
    for name, requester, purpose, prefs, treating, expected in matrix(cast, t0):
        prefs = [_resolve(p, cast) for p in prefs]
        p = world.patient("lothian", prefs)
        if treating:
            world.treat(p, requester)
        at = t0 + dt.timedelta(seconds=40) if name == "expired consent" else None
        r = requester.submit("TransportContract", "RequestAccess", p.name, sorted(expected), purpose, "", at=at)
        out.append((name, requester, purpose, p, treating, expected, r, at))
    return out


def _resolve(pref: dict, cast: Cast) -> dict:
    if pref["grantee"].get("id") == "<spec>":
        return {**pref, "grantee": {"kind": "user", "id": cast.spec.name}}
    return pref


@pytest.mark.parametrize("case", range(15))
def test_decision_matrix(world: World, cast: Cast, matrix_results, case: int):
    name, requester, purpose, p, treating, expected, r, at = matrix_results[case]
    assert reasons(r) == expected, name
    granted = sorted(s for s, why in expected.items() if why in ("hospital-rule", "patient-consent"))
    assert r["granted"] == granted, name
    assert r["outcome"] == ("denied" if not granted else "granted" if len(granted) == len(expected) else "partial")
    # the chain recorded exactly this decision, denials included
    rec = p.evaluate("TransportContract", "GetRequest", r["request_id"])
    assert {d["section"]: d["reason"] for d in rec["decision"]} == r["reasons"]
    assert rec["requester_id"] == requester.name and rec["purpose"] == purpose
    assert rec["treating"] == treating
    # and it is what the pure decision function says on the same inputs
    policy = p.evaluate("PolicyContract", "GetPolicy", "LothianMSP")
    prefs = p.evaluate("PreferenceContract", "ListPreferences", p.name)
    pure = decide(Party(requester.name, requester.role, requester.msp), Party(p.name, "patient", "LothianMSP"),
                  sorted(expected), purpose, at or dt.datetime.fromisoformat(rec["created_at"]),
                  rules=[rule_from_doc(d) for d in policy["rules"].values()],
                  preferences=[pref_from_doc(d) for d in prefs["rules"].values()], treating=treating)
    assert pure.to_json() == rec["decision"], name


def test_expired_and_future_rules_on_chain(world: World, cast: Cast):
    p = world.patient()
    world.treat(p, cast.spec)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)  # imaging-temp ended at +2 days
    r = cast.spec.submit("TransportContract", "RequestAccess", p.name, ["imaging", "conditions"], "treatment", "",
                         at=later)
    assert reasons(r) == {"imaging": "rule-expired", "conditions": "hospital-rule"}
    much_later = dt.datetime.now(dt.UTC) + dt.timedelta(days=366)  # documents-later starts at +365 days
    r = cast.spec.submit("TransportContract", "RequestAccess", p.name, ["documents"], "treatment", "", at=much_later)
    assert reasons(r) == {"documents": "hospital-rule"}


def test_a_patient_always_sees_their_own_record(world: World):
    p = world.patient("lothian", [deny("anyone")])
    r = p.submit("TransportContract", "RequestAccess", p.name, ["*"], "treatment", "patient-request")
    assert r["outcome"] == "granted" and set(reasons(r).values()) == {"own-record"} and len(r["granted"]) == 11


def test_request_arguments_are_checked_and_named(world: World, cast: Cast):
    p = world.patient()
    c = cast.spec
    refused(400, "sections[1]", c.submit, "TransportContract", "RequestAccess", p.name, ["conditions", "xray"],
            "treatment", "")
    refused(400, "sections: expected a non-empty list", c.submit, "TransportContract", "RequestAccess", p.name, [],
            "treatment", "")
    refused(400, "argument 'sections'", c.submit, "TransportContract", "RequestAccess", p.name, "conditions,contact",
            "treatment", "")
    refused(400, "purpose", c.submit, "TransportContract", "RequestAccess", p.name, ["conditions"], "curiosity", "")
    refused(400, "justification", c.submit, "TransportContract", "RequestAccess", p.name, ["conditions"], "treatment",
            "the patient asked me to look, they have chest pain")
    refused(404, "patient: no user", c.submit, "TransportContract", "RequestAccess", "pat-nobody", ["conditions"],
            "treatment", "")
    refused(404, "is not a patient", c.submit, "TransportContract", "RequestAccess", cast.nurse.name, ["conditions"],
            "treatment", "")
    refused(400, "patient", c.submit, "TransportContract", "RequestAccess", "x", ["conditions"], "treatment", "")


# --------------------------------------------------------------------------- grants, tokens, access log


@pytest.fixture
def granted(world: World, cast: Cast):
    p = world.patient()
    world.treat(p, cast.spec)
    t = cast.spec.tx("TransportContract", "RequestAccess", p.name, [ONCO, "conditions", "contact"], "treatment",
                     "direct-care")
    return p, t


def test_grant_token_and_access_log(world: World, cast: Cast, granted):
    p, t = granted
    r = t.result
    assert r["outcome"] == "partial" and r["granted"] == ["conditions", ONCO]
    name, ev = cast.spec.event(t.status)
    assert name == "AccessGranted"
    assert ev["grant_id"] == r["grant_id"] and ev["patient"] == p.name and ev["sections"] == ["conditions", ONCO]
    assert ev["denied"] == [{"section": "contact", "reason": "no-rule"}] and ev["expires_at"] == r["expires_at"]
    assert ev["requester_hospital"] == "LothianMSP" and ev["patient_hospital"] == "LothianMSP"
    gid = r["grant_id"]
    # expiry: the clinical rule's 8 hours
    created = dt.datetime.fromisoformat(cast.spec.evaluate("TransportContract", "GetGrant", gid)["created_at"])
    assert dt.datetime.fromisoformat(r["expires_at"]) - created == dt.timedelta(hours=8)
    token = h("token-" + gid)
    # only the vault of the patient's hospital binds tokens
    refused(403, "only the vault of LothianMSP", cast.zvault.submit, "TransportContract", "BindToken", gid, token)
    refused(403, "vault", cast.spec.submit, "TransportContract", "BindToken", gid, token)
    refused(400, "token_hash", cast.vault.submit, "TransportContract", "BindToken", gid, "not-a-hash")
    refused(404, "grant_id", cast.vault.submit, "TransportContract", "BindToken", "g-unknown", token)
    t2 = cast.vault.tx("TransportContract", "BindToken", gid, token)
    assert t2.result["token_hashes"] == [token]
    name, ev = cast.vault.event(t2.status)
    assert name == "TokenBound" and ev["token_hash"] == token and ev["vault_id"] == cast.vault.name
    refused(409, "already bound", cast.vault.submit, "TransportContract", "BindToken", gid, token)
    # step 9: what the vault checks
    check = cast.vault.evaluate("TransportContract", "CheckGrant", gid)
    assert check["live"] and check["sections"] == ["conditions", ONCO] and check["purpose"] == "treatment"
    assert check["requester_id"] == cast.spec.name and check["token_hashes"] == [token]
    assert check["expires_at"] == r["expires_at"]
    refused(403, "only the patient, the requester, the vault", cast.zvault.evaluate, "TransportContract",
            "CheckGrant", gid)
    # step 10: the access log
    digest = h("the masked record")
    t3 = cast.vault.tx("TransportContract", "LogAccess", gid, token, [ONCO], digest)
    assert t3.result["anomalies"] == [] and t3.result["sections_returned"] == [ONCO]
    name, ev = cast.vault.event(t3.status)
    assert name == "AccessLogged" and ev["digest"] == digest and ev["grant_id"] == gid
    # what the chain would not have allowed is still logged, and flagged
    odd = cast.vault.submit("TransportContract", "LogAccess", gid, h("other token"), ["contact"], digest)
    assert odd["anomalies"] == ["token-not-bound", "sections-outside-grant:contact"]
    refused(403, "only the vault of LothianMSP", cast.zvault.submit, "TransportContract", "LogAccess", gid, token,
            [ONCO], digest)
    refused(400, "digest", cast.vault.submit, "TransportContract", "LogAccess", gid, token, [ONCO], "x")
    refused(400, "sections_returned[0]", cast.vault.submit, "TransportContract", "LogAccess", gid, token, ["x"],
            digest)
    accesses = p.evaluate("AuditContract", "AuditByPatient", p.name, "access", "", "", 10, "")
    assert [a["record"]["anomalies"] for a in accesses["records"]] == [[], odd["anomalies"]]


def test_revocation_takes_effect_on_the_next_check(world: World, cast: Cast, granted):
    p, t = granted
    gid = t.result["grant_id"]
    token = h("tok" + gid)
    cast.vault.submit("TransportContract", "BindToken", gid, token)
    assert cast.vault.evaluate("TransportContract", "CheckGrant", gid)["live"]
    refused(403, "only the patient", cast.nurse.submit, "TransportContract", "Revoke", gid, "patient-request")
    refused(400, "reason", p.submit, "TransportContract", "Revoke", gid, "because")
    rt = p.tx("TransportContract", "Revoke", gid, "patient-request")
    name, ev = p.event(rt.status)
    assert name == "GrantRevoked" and ev["grant_id"] == gid and ev["revoked_by"] == p.name
    assert ev["token_hashes"] == [token] and ev["requester_id"] == cast.spec.name
    check = cast.vault.evaluate("TransportContract", "CheckGrant", gid)
    assert not check["live"] and check["status"] == "revoked" and check["not_live_reason"] == "revoked"
    refused(409, "not live (revoked)", cast.vault.submit, "TransportContract", "BindToken", gid, h("another"))
    refused(409, "already revoked", world.admins["lothian"].submit, "TransportContract", "Revoke", gid, "other")
    late = cast.vault.submit("TransportContract", "LogAccess", gid, token, [ONCO], h("x"))
    assert late["anomalies"] == ["grant-not-live:revoked"]
    revs = p.evaluate("AuditContract", "AuditByPatient", p.name, "revocation", "", "", 10, "")
    assert [r["id"] for r in revs["records"]] == [gid]


def test_admins_of_either_hospital_and_the_requester_revoke(world: World, cast: Cast):
    p = world.patient()
    world.treat(p, cast.zspec)
    grants = [cast.zspec.submit("TransportContract", "RequestAccess", p.name, [ONCO], "treatment", "")["grant_id"]
              for _ in range(3)]
    world.admins["zmc"].submit("TransportContract", "Revoke", grants[0], "misuse-suspected")
    world.admins["lothian"].submit("TransportContract", "Revoke", grants[1], "administrative")
    cast.zspec.submit("TransportContract", "Revoke", grants[2], "relinquished")
    by = [p.evaluate("TransportContract", "GetGrant", g)["revoked_by"] for g in grants]
    assert by[0].startswith("admin:ZmcMSP:") and by[1].startswith("admin:LothianMSP:") and by[2] == cast.zspec.name
    refused(403, "only the patient", world.admins["fcrb"].submit, "TransportContract", "Revoke", grants[0], "other")


def test_expiry_and_clock_skew(world: World, cast: Cast, granted):
    p, t = granted
    gid = t.result["grant_id"]
    expires = dt.datetime.fromisoformat(t.result["expires_at"])
    just_before = expires - dt.timedelta(seconds=1)
    assert cast.vault.evaluate("TransportContract", "CheckGrant", gid, at=just_before)["live"]
    after = cast.vault.evaluate("TransportContract", "CheckGrant", gid, at=expires)
    assert (after["live"], after["status"]) == (False, "expired")
    refused(409, "not live (expired)", cast.vault.submit, "TransportContract", "BindToken", gid, h("t"), at=expires)
    refused(409, "already expired", p.submit, "TransportContract", "Revoke", gid, "other", at=expires)
    # a grant is not live long before it was made (a requester's clock cannot stretch it)
    early = dt.datetime.fromisoformat(p.evaluate("TransportContract", "GetGrant", gid)["created_at"])
    assert not cast.vault.evaluate("TransportContract", "CheckGrant", gid,
                                   at=early - dt.timedelta(minutes=10))["live"]
    assert cast.vault.evaluate("TransportContract", "CheckGrant", gid, at=early - dt.timedelta(minutes=1))["live"]


def test_preference_changes_invalidate_affected_grants_only(world: World, cast: Cast):
    p = world.patient("lothian", [allow("role", "researcher", ["conditions"], ["research"])])
    world.treat(p, cast.spec)
    spec_grant = cast.spec.submit("TransportContract", "RequestAccess", p.name, [ONCO], "treatment", "")["grant_id"]
    nurse_grant = cast.nurse.submit("TransportContract", "RequestAccess", p.name, ["demographics"], "treatment",
                                    "")["grant_id"]
    research = cast.researcher.submit("TransportContract", "RequestAccess", p.name, ["conditions"], "research",
                                      "research-protocol")
    assert reasons(research) == {"conditions": "patient-consent"}
    # a deny aimed at the specialist revokes the specialist's grant in the same transaction
    t = p.tx("PreferenceContract", "AddPreference", p.name, deny("user", cast.spec.name, [ONCO], ["treatment"]))
    assert t.result["revoked_grants"] == [spec_grant]
    name, ev = p.event(t.status)
    assert name == "PreferenceChanged" and ev["revoked_grants"] == [spec_grant] and ev["change"] == "added"
    assert ev["version"] == 2 and ev["effect"] == "deny"
    assert cast.vault.evaluate("TransportContract", "CheckGrant", spec_grant)["not_live_reason"] == "revoked"
    assert p.evaluate("TransportContract", "GetGrant", spec_grant)["revoke_reason"] == "consent-withdrawn"
    assert cast.vault.evaluate("TransportContract", "CheckGrant", nurse_grant)["live"]
    # withdrawing the consent the research grant rested on revokes it
    consent = p.evaluate("PreferenceContract", "ListPreferences", p.name)
    consent_id = next(k for k, v in consent["rules"].items() if v["effect"] == "allow")
    out = p.submit("PreferenceContract", "WithdrawPreference", p.name, consent_id)
    assert out["revoked_grants"] == [research["grant_id"]] and out["change"] == "withdrawn"
    assert cast.vault.evaluate("TransportContract", "CheckGrant", nurse_grant)["live"]
    # adding consent revokes nothing
    out = p.submit("PreferenceContract", "AddPreference", p.name, allow("anyone", sections=["contact"]))
    assert out["revoked_grants"] == []


# --------------------------------------------------------------------------- break-glass


def test_break_glass_trail(world: World, cast: Cast):
    p = world.patient("lothian", [deny("anyone")])
    doc = world.user("zmc", "gp")  # a GP of another hospital, no treating relationship, patient says no
    normal = doc.submit("TransportContract", "RequestAccess", p.name, ["conditions"], "emergency", "clinical-emergency")
    assert normal["outcome"] == "denied"
    refused(403, "break-glass is for clinicians", cast.researcher.submit, "TransportContract", "BreakGlass", p.name,
            ["conditions"], "clinical-emergency")
    refused(400, "justification: break-glass needs", doc.submit, "TransportContract", "BreakGlass", p.name,
            ["conditions"], "")
    refused(400, "justification", doc.submit, "TransportContract", "BreakGlass", p.name, ["conditions"], "referral")
    refused(400, "transient field", doc.submit, "TransportContract", "BreakGlass", p.name, ["conditions"], "other")
    text = b"found unconscious at the station, allergy status unknown"
    prop = doc.proposal("TransportContract", "BreakGlass", [p.name, ["*"], "other"], {"justification": text})
    tx = prop.endorse()
    assert text not in tx.payload  # the free text never enters the transaction
    status = tx.submit().status()
    assert status.successful
    world.synced(status.block_number)
    name, ev = doc.event(status)
    assert name == "BreakGlass" and ev["break_glass"] and ev["patient"] == p.name and ev["requester_id"] == doc.name
    assert len(ev["sections"]) == 11 and ev["justification"] == "other"
    gid = ev["grant_id"]
    g = p.evaluate("TransportContract", "GetGrant", gid)
    assert g["break_glass"] and g["live"] and g["justification_digest"] == hashlib.sha256(text).hexdigest()
    assert {d["reason"] for d in g["decision"]} == {"break-glass"}
    # short-lived: Lothian's break-glass duration (2 hours)
    assert dt.datetime.fromisoformat(g["expires_at"]) - dt.datetime.fromisoformat(g["created_at"]) == dt.timedelta(hours=2)
    # visible to the patient and to auditors
    mine = p.evaluate("AuditContract", "AuditByPatient", p.name, "break-glass", "", "", 10, "")
    assert [r["record"]["grant_id"] for r in mine["records"]] == [gid]
    seen = cast.auditor.evaluate("AuditContract", "AuditByTime", "break-glass", g["created_at"], "", 200, "")
    assert gid in [r["record"]["grant_id"] for r in seen["records"]]
    refused(403, "only auditors", p.evaluate, "AuditContract", "AuditByTime", "break-glass", "", "", 10, "")
    # retrospective review; an unjustified one is revoked
    refused(403, "auditor", world.admins["lothian"].submit, "TransportContract", "ReviewBreakGlass", gid, "justified")
    t = cast.auditor.tx("TransportContract", "ReviewBreakGlass", gid, "unjustified")
    assert t.result["status"] == "revoked" and t.result["review"]["outcome"] == "unjustified"
    assert p.event(t.status)[0] == "BreakGlassReviewed"
    assert p.evaluate("TransportContract", "GetGrant", gid)["revoke_reason"] == "break-glass-unjustified"


def test_break_glass_respects_the_hospitals_hard_limits(world: World, cast: Cast):
    admin = world.admins["fcrb"]
    admin.submit("PolicyContract", "PutRule", {"rule_id": "bg-no-docs", "effect": "deny", "roles": ["*"],
                                               "sections": ["documents"], "purposes": ["emergency"]})
    try:
        p = world.patient("fcrb")
        doc = world.user("fcrb", "nurse")
        r = doc.submit("TransportContract", "BreakGlass", p.name, ["documents", "conditions"], "patient-unconscious")
        assert reasons(r) == {"documents": "hospital-rule-deny", "conditions": "break-glass"}
    finally:
        admin.submit("PolicyContract", "RemoveRule", "bg-no-docs")


# --------------------------------------------------------------------------- research cohorts


def test_research_cohort(world: World, cast: Cast):
    yes = [world.patient("lothian", [allow("role", "researcher", purposes=["research"])]) for _ in range(3)]
    yes.append(world.patient("zmc", [allow("anyone", sections=["conditions", "comorbidities"], purposes=["research"])]))
    no = [world.patient("lothian"), world.patient("lothian", [deny("anyone", purposes=["research"])]),
          world.patient("lothian", [allow("anyone", sections=["conditions"], purposes=["research"])])]  # not every section
    candidates = [p.name for p in yes + no]
    secs = ["comorbidities", "conditions"]
    refused(400, "purpose: cohort grants are for 'research' only", cast.researcher.submit, "TransportContract",
            "RequestCohort", candidates, secs, "insurance", "")
    refused(403, "researcher or analytics", cast.spec.submit, "TransportContract", "RequestCohort", candidates, secs,
            "research", "")
    refused(400, "patients: duplicate", cast.researcher.submit, "TransportContract", "RequestCohort",
            candidates + candidates[:1], secs, "research", "")
    t = cast.researcher.tx("TransportContract", "RequestCohort", candidates, secs, "research", "research-protocol")
    c = t.result
    assert sorted(c["included"]) == sorted(p.name for p in yes) and c["excluded"] == 3 and c["size"] == 4
    name, ev = cast.researcher.event(t.status)
    assert name == "CohortGranted" and ev["size"] == 4 and "included" not in ev  # no patient list in events
    cid = c["cohort_id"]
    assert cast.vault.evaluate("TransportContract", "CheckCohortMember", cid, yes[0].name)["live"]
    assert cast.vault.evaluate("TransportContract", "CheckCohortMember", cid, no[0].name)["member_status"] == "not-member"
    members = cast.researcher.evaluate("TransportContract", "CohortMembers", cid, 3, "")
    assert members["count"] == 3 and members["bookmark"]
    # the patient sees the inclusion; withdrawing consent withdraws them from the cohort
    mine = yes[0].evaluate("AuditContract", "AuditByPatient", yes[0].name, "cohort", "", "", 10, "")
    assert mine["records"][0]["record"]["member_status"] == "active"
    consent = next(iter(yes[0].evaluate("PreferenceContract", "ListPreferences", yes[0].name)["rules"]))
    out = yes[0].submit("PreferenceContract", "WithdrawPreference", yes[0].name, consent)
    assert out["withdrawn_cohorts"] == [cid]
    m = cast.vault.evaluate("TransportContract", "CheckCohortMember", cid, yes[0].name)
    assert not m["live"] and m["member_status"] == "withdrawn"
    assert cast.vault.evaluate("TransportContract", "CheckCohortMember", cid, yes[1].name)["live"]
    cast.researcher.submit("TransportContract", "RevokeCohort", cid, "relinquished")
    assert not cast.vault.evaluate("TransportContract", "CheckCohortMember", cid, yes[1].name)["live"]
    refused(409, "already revoked", cast.researcher.submit, "TransportContract", "RevokeCohort", cid, "other")


# --------------------------------------------------------------------------- refusals and blob anchors


def test_vault_logs_refusals_and_anchors_blobs(world: World, cast: Cast, granted):
    p, t = granted
    gid = t.result["grant_id"]
    detail = "token presented by spe-x, expected spe-y"
    r = cast.vault.submit("TransportContract", "LogRefusal", gid, h("tok"), cast.nurse.name, "wrong-presenter", detail)
    assert r["grant_known"] and r["patient"] == p.name and r["detail_digest"] == h(detail)
    forged = cast.zvault.submit("TransportContract", "LogRefusal", "g-forged", h("tok"), "", "bad-signature", "")
    assert not forged["grant_known"] and forged["patient"] is None
    refused(403, "vault", cast.spec.submit, "TransportContract", "LogRefusal", gid, h("t"), "", "x", "")
    refused(400, "reason", cast.vault.submit, "TransportContract", "LogRefusal", gid, h("t"), "", "Bad Reason", "")
    refusals = p.evaluate("AuditContract", "AuditByPatient", p.name, "refusal", "", "", 10, "")
    assert [x["record"]["reason"] for x in refusals["records"]] == ["wrong-presenter"]
    by_nurse = cast.nurse.evaluate("AuditContract", "AuditByUser", cast.nurse.name, "refusal", "", "", 10, "")
    assert by_nurse["count"] >= 1
    blob = uid("blob")
    sha = h("encrypted bytes")
    a = cast.vault.submit("TransportContract", "AnchorBlob", blob, "ref-" + h(p.name)[:32], "imaging", sha, "fs",
                          sha, 1234)
    assert a["sha256"] == sha and a["vault_hospital"] == "LothianMSP"
    refused(409, "already anchored", cast.vault.submit, "TransportContract", "AnchorBlob", blob, "ref-x", "imaging",
            sha, "fs", sha, 1)
    refused(400, "section", cast.vault.submit, "TransportContract", "AnchorBlob", uid("b"), "ref-x", "xray", sha,
            "fs", sha, 1)
    assert cast.auditor.evaluate("TransportContract", "GetBlobAnchor", blob)["address"] == sha
    refused(403, "only vaults", p.evaluate, "TransportContract", "GetBlobAnchor", blob)



def test_denials_are_recorded_with_an_event(world: World, cast: Cast):
    p = world.patient()
    t = cast.insurer.tx("TransportContract", "RequestAccess", p.name, ["conditions", "contact"], "insurance",
                        "claim-assessment")
    assert t.status.successful and t.result["outcome"] == "denied" and t.result["grant_id"] is None
    name, ev = cast.insurer.event(t.status)
    assert name == "AccessDenied" and ev["grant_id"] is None and ev["sections"] == []
    assert ev["denied"] == [{"section": "conditions", "reason": "hospital-rule-deny"},
                            {"section": "contact", "reason": "hospital-rule-deny"}]
    assert ev["requester_role"] == "insurer" and ev["justification"] == "claim-assessment"
    rec = p.evaluate("TransportContract", "GetRequest", t.result["request_id"])
    assert rec["status"] == "denied" and rec["outcome"] == "denied"
    refused(404, "no grant", p.evaluate, "TransportContract", "GetGrant", t.result["request_id"])


def test_a_refusal_summary_is_one_entry_the_presenter_and_the_patients_see(world: World, cast: Cast, granted):
    p, t = granted
    gid = t.result["grant_id"]
    summary = {"presenter_id": cast.nurse.name, "window_start": "2026-01-01T12:00:00+00:00",
               "window_end": "2026-01-01T12:01:00+00:00", "count": 140,
               "reasons": {"token-malformed": 100, "token-presenter-mismatch": 40},
               "grant_ids": [gid, "g-forged"], "tokens": 101, "token_hashes_digest": h("hashes")}
    r = cast.vault.submit("TransportContract", "LogRefusalSummary", summary)
    assert r["summary"] and r["count"] == 140 and r["patients"] == [p.name] and r["vault_hospital"] == "LothianMSP"
    assert r["window_start"].startswith("2026-01-01T12:00:00")
    mine = p.evaluate("AuditContract", "AuditByPatient", p.name, "refusal", "", "", 50, "")
    assert any(x["record"].get("summary") and x["record"]["count"] == 140 for x in mine["records"])
    theirs = cast.nurse.evaluate("AuditContract", "AuditByUser", cast.nurse.name, "refusal", "", "", 50, "")
    assert any(x["record"].get("refusal_id") == r["refusal_id"] for x in theirs["records"])
    refused(403, "vault", cast.spec.submit, "TransportContract", "LogRefusalSummary", summary)
    refused(400, "sum to 139", cast.vault.submit, "TransportContract", "LogRefusalSummary",
            {**summary, "reasons": {"token-malformed": 99, "token-presenter-mismatch": 40}})
    refused(400, "window_end", cast.vault.submit, "TransportContract", "LogRefusalSummary",
            {**summary, "window_end": summary["window_start"]})
    refused(400, "at most 20", cast.vault.submit, "TransportContract", "LogRefusalSummary",
            {**summary, "grant_ids": [f"g-{i}" for i in range(21)]})
    refused(400, "summary.tokens", cast.vault.submit, "TransportContract", "LogRefusalSummary",
            {**summary, "tokens": 141})
