"""UserContract on the embedded node: hospitals, users bound to certificates, suspension and
reinstatement, certificate renewal, treating relationships."""

from __future__ import annotations

import datetime as dt

from chaincode.serums import serums_chaincode

from .conftest import MSP, Cast, World, refused, uid


def test_hospitals_bootstrap_from_the_callers_organisation(world: World, cast: Cast):
    hospitals = cast.spec.evaluate("UserContract", "ListHospitals")
    assert sorted(h["msp"] for h in hospitals) == sorted(MSP.values())
    assert world.admins["zmc"].evaluate("UserContract", "GetHospital", "ZmcMSP")["name"] == "Zuyderland MC"
    refused(409, "already registered", world.admins["zmc"].submit, "UserContract", "RegisterHospital", "Again")
    refused(403, "hospital admin", cast.spec.submit, "UserContract", "RegisterHospital", "Mine")
    refused(403, "hospital admin", world.unregistered("lothian").submit, "UserContract", "RegisterHospital", "X")
    refused(404, "hospital", cast.spec.evaluate, "UserContract", "GetHospital", "NopeMSP")


def test_only_an_admin_of_the_users_own_hospital_manages_them(world: World, cast: Cast):
    nurse = world.user("lothian", "nurse")
    doc = cast.auditor.evaluate("UserContract", "GetUser", nurse.name)
    assert doc["hospital"] == "LothianMSP" and doc["role"] == "nurse" and doc["status"] == "active"
    assert doc["fingerprint"] == nurse.ident.fingerprint
    # another hospital's admin can neither suspend nor update nor register into Lothian
    refused(403, "only an admin of LothianMSP", world.admins["zmc"].submit, "UserContract", "SuspendUser",
            nurse.name, "investigation")
    refused(403, "only an admin of LothianMSP", world.admins["zmc"].submit, "UserContract", "UpdateUser",
            nurse.name, {"role": "gp"})
    # users registered by the zmc admin belong to zmc, whatever the certificate's CA
    z = world.user("zmc", "gp")
    assert cast.auditor.evaluate("UserContract", "GetUser", z.name)["hospital"] == "ZmcMSP"
    # clinicians cannot register users
    ident, _ = world.identity("lothian", "nurse")
    refused(403, "hospital admin", cast.spec.submit, "UserContract", "RegisterUser", uid(), "nurse", ident.fingerprint)


def test_registration_arguments_are_checked_and_named(world: World):
    admin = world.admins["lothian"]
    ident, _ = world.identity("lothian", "gp")
    fp = ident.fingerprint
    refused(400, "role", admin.submit, "UserContract", "RegisterUser", uid(), "surgeon", fp)
    refused(400, "user_id", admin.submit, "UserContract", "RegisterUser", "bad id!", "gp", fp)
    refused(400, "fingerprint", admin.submit, "UserContract", "RegisterUser", uid(), "gp", "abc")
    refused(400, "takes 3 argument(s)", admin.submit, "UserContract", "RegisterUser", uid(), "gp")
    user_id = uid()
    admin.submit("UserContract", "RegisterUser", user_id, "gp", fp)
    refused(409, "user_id", admin.submit, "UserContract", "RegisterUser", user_id, "gp", world.identity("lothian", "gp")[0].fingerprint)
    refused(409, "fingerprint", admin.submit, "UserContract", "RegisterUser", uid(), "gp", fp)


def test_callers_are_recognised_by_certificate_only(world: World, cast: Cast):
    me = cast.spec.evaluate("UserContract", "WhoAmI")
    assert me["user"]["id"] == cast.spec.name and me["msp"] == "LothianMSP" and not me["is_admin"]
    admin = world.admins["lothian"].evaluate("UserContract", "WhoAmI")
    assert admin["is_admin"] and admin["user"] is None
    # a second certificate for the same person is a stranger until registered
    stranger = world.unregistered("lothian", "specialist", user_id=cast.spec.name)
    assert stranger.evaluate("UserContract", "WhoAmI")["user"] is None
    p = world.patient()
    refused(403, "not bound to a registered user", stranger.submit, "TransportContract", "RequestAccess",
            p.name, ["conditions"], "treatment", "")
    # certificate attributes that contradict the registration are refused
    ident, signer = world.identity("lothian", None, attrs={"role": "specialist", "uid": "someone-else"})
    liar_id = uid("liar")
    world.admins["lothian"].submit("UserContract", "RegisterUser", liar_id, "specialist", ident.fingerprint)
    liar = world._actor(liar_id, "lothian", "specialist", ident, signer)
    refused(403, "uid attribute", liar.submit, "TransportContract", "RequestAccess", p.name, ["conditions"],
            "treatment", "")


def test_hospital_admin_by_attribute_and_by_registration(world: World):
    # a client certificate carrying role=hospital_admin acts as an admin of its own hospital only
    ident, signer = world.identity("zmc", "hospital_admin", uid("adm"))
    attr_admin = world._actor("attr-admin", "zmc", "hospital_admin", ident, signer)
    nurse_cert, _ = world.identity("zmc", "nurse")
    attr_admin.submit("UserContract", "RegisterUser", uid(), "nurse", nurse_cert.fingerprint)
    # registered as hospital_admin, then suspended: no longer an admin
    world.admins["zmc"].submit("UserContract", "RegisterUser", "adm-" + ident.fingerprint[:8], "hospital_admin",
                               ident.fingerprint)
    world.admins["zmc"].submit("UserContract", "SuspendUser", "adm-" + ident.fingerprint[:8], "investigation")
    refused(403, "hospital admin", attr_admin.submit, "UserContract", "RegisterUser", uid(), "nurse",
            world.identity("zmc", "nurse")[0].fingerprint)


def test_suspension_denies_and_kills_older_grants_even_after_reinstatement(world: World):
    doc = world.user("lothian", "specialist")
    p = world.patient()
    world.treat(p, doc)
    grant = doc.submit("TransportContract", "RequestAccess", p.name, ["conditions"], "treatment", "")["grant_id"]
    assert doc.evaluate("TransportContract", "CheckGrant", grant)["live"]
    t = world.admins["lothian"].tx("UserContract", "SuspendUser", doc.name, "investigation")
    assert doc.event(t.status) == ("UserSuspended", {"user_id": doc.name, "role": "specialist",
                                                     "hospital": "LothianMSP", "reason": "investigation",
                                                     "at": t.result["suspended_at"]})
    refused(409, "already suspended", world.admins["lothian"].submit, "UserContract", "SuspendUser", doc.name, "other")
    check = p.evaluate("TransportContract", "CheckGrant", grant)
    assert not check["live"] and check["not_live_reason"] == "requester-suspended"
    # a suspended user's request is recorded, and denied
    r = doc.submit("TransportContract", "RequestAccess", p.name, ["conditions"], "treatment", "")
    assert r["outcome"] == "denied" and r["denied"] == [{"section": "conditions", "reason": "requester-suspended"}]
    # nor can they do anything else
    refused(403, "suspended", doc.submit, "TransportContract", "Revoke", grant, "relinquished")
    world.admins["lothian"].submit("UserContract", "ReinstateUser", doc.name)
    check = p.evaluate("TransportContract", "CheckGrant", grant)
    assert not check["live"] and check["not_live_reason"] == "requester-suspended-since-grant"
    r = doc.submit("TransportContract", "RequestAccess", p.name, ["conditions"], "treatment", "")
    assert r["outcome"] == "granted" and p.evaluate("TransportContract", "CheckGrant", r["grant_id"])["live"]
    refused(409, "not suspended", world.admins["lothian"].submit, "UserContract", "ReinstateUser", doc.name)


def test_certificate_renewal_and_role_change(world: World):
    gp = world.user("lothian", "gp")
    new_ident, new_signer = world.identity("lothian", "gp", gp.name)
    world.admins["lothian"].submit("UserContract", "UpdateUser", gp.name, {"fingerprint": new_ident.fingerprint})
    renewed = world._actor(gp.name, "lothian", "gp", new_ident, new_signer)
    assert renewed.evaluate("UserContract", "WhoAmI")["user"]["id"] == gp.name
    assert gp.evaluate("UserContract", "WhoAmI")["user"] is None  # the old certificate is unbound
    # a grant made in one role is not live in another
    p = world.patient()
    world.treat(p, renewed)
    grant = renewed.submit("TransportContract", "RequestAccess", p.name, ["conditions"], "treatment", "")["grant_id"]
    ident2, _ = world.identity("lothian", None, attrs={})
    world.admins["lothian"].submit("UserContract", "UpdateUser", gp.name, {"role": "specialist",
                                                                           "fingerprint": ident2.fingerprint})
    assert p.evaluate("TransportContract", "CheckGrant", grant)["not_live_reason"] == "requester-role-changed"
    refused(400, "changes.role", world.admins["lothian"].submit, "UserContract", "UpdateUser", gp.name,
            {"role": "patient"})
    refused(400, "changes: unknown field(s) status", world.admins["lothian"].submit, "UserContract", "UpdateUser",
            gp.name, {"status": "active"})
    refused(404, "user_id", world.admins["lothian"].submit, "UserContract", "UpdateUser", "nobody-here", {"role": "gp"})


def test_reading_users(world: World, cast: Cast):
    p = world.patient()
    assert p.evaluate("UserContract", "GetUser", p.name)["id"] == p.name
    assert cast.vault.evaluate("UserContract", "GetUser", p.name)["role"] == "patient"
    refused(403, "only", cast.spec.evaluate, "UserContract", "GetUser", p.name)
    refused(403, "only", world.admins["zmc"].evaluate, "UserContract", "GetUser", p.name)
    page = world.admins["fcrb"].evaluate("UserContract", "ListUsers", "FcrbMSP", 1, "")
    assert page["count"] == 1 and page["bookmark"]
    refused(403, "only an admin of LothianMSP", world.admins["fcrb"].evaluate, "UserContract", "ListUsers",
            "LothianMSP", 10, "")
    refused(400, "page_size", cast.auditor.evaluate, "UserContract", "ListUsers", "FcrbMSP", 0, "")


def test_treating_relationships(world: World, cast: Cast):
    p = world.patient()
    doc = world.user("zmc", "specialist")
    # recorded by the patient's hospital (the data controller), for clinicians only
    refused(403, "only an admin of LothianMSP", world.admins["zmc"].submit, "UserContract", "AddTreatment",
            p.name, doc.name, "", "")
    refused(400, "clinician", world.admins["lothian"].submit, "UserContract", "AddTreatment", p.name,
            cast.researcher.name, "", "")
    refused(404, "patient", world.admins["lothian"].submit, "UserContract", "AddTreatment", cast.spec.name,
            doc.name, "", "")
    refused(400, "end: must be after start", world.admins["lothian"].submit, "UserContract", "AddTreatment",
            p.name, doc.name, "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z")
    refused(400, "start", world.admins["lothian"].submit, "UserContract", "AddTreatment", p.name, doc.name,
            "yesterday", "")
    refused(400, "has no time zone", world.admins["lothian"].submit, "UserContract", "AddTreatment", p.name,
            doc.name, "2026-01-01T00:00:00", "")
    rel = world.treat(p, doc)
    assert rel["clinician_hospital"] == "ZmcMSP" and rel["end"] is None
    # a cross-hospital treating specialist is granted under Lothian's rules
    r = doc.submit("TransportContract", "RequestAccess", p.name, ["oncology.treatment", "imaging"], "treatment", "")
    assert r["outcome"] == "granted"
    other = doc.submit("TransportContract", "RequestAccess", p.name, ["imaging"], "treatment", "")
    assert doc.evaluate("UserContract", "GetTreatment", p.name, doc.name)["clinician"] == doc.name
    assert [t["clinician"] for t in p.evaluate("UserContract", "ListTreatments", p.name)] == [doc.name]
    refused(403, "only patient", cast.spec.evaluate, "UserContract", "ListTreatments", p.name)
    # ending it revokes the grants that rested on it, and only those
    t = doc.tx("UserContract", "EndTreatment", p.name, doc.name)
    assert t.result["revoked_grants"] == [r["grant_id"]]
    name, ev = doc.event(t.status)
    assert name == "TreatmentEnded" and ev["revoked_grants"] == [r["grant_id"]]
    assert p.evaluate("TransportContract", "CheckGrant", r["grant_id"])["not_live_reason"] == "revoked"
    assert p.evaluate("TransportContract", "CheckGrant", other["grant_id"])["live"]
    g = p.evaluate("TransportContract", "GetGrant", r["grant_id"])
    assert g["revoke_reason"] == "no-longer-treating" and g["revoked_by"] == doc.name
    refused(409, "ended", world.admins["lothian"].submit, "UserContract", "EndTreatment", p.name, doc.name)
    r = doc.submit("TransportContract", "RequestAccess", p.name, ["oncology.treatment"], "treatment", "")
    assert r["denied"] == [{"section": "oncology.treatment", "reason": "not-treating"}]


def test_a_planned_relationship_ends_by_itself_and_caps_the_grant(world: World):
    p = world.patient()
    doc = world.user("lothian", "gp")
    now = dt.datetime.now(dt.UTC)
    end = now + dt.timedelta(hours=1)
    world.treat(p, doc, "", end.isoformat())
    r = doc.submit("TransportContract", "RequestAccess", p.name, ["conditions"], "treatment", "")
    # the rule allows 8 hours, the relationship ends in one: the grant ends with it
    assert r["expires_at"] == end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    later = doc.submit("TransportContract", "RequestAccess", p.name, ["conditions"], "treatment", "",
                       at=now + dt.timedelta(hours=2))
    assert later["denied"] == [{"section": "conditions", "reason": "not-treating"}]


def test_metadata_lists_every_contract():
    meta = serums_chaincode().metadata()
    assert set(meta["contracts"]) == {"UserContract", "PolicyContract", "PreferenceContract", "TransportContract",
                                      "BudgetContract", "AuditContract"}
