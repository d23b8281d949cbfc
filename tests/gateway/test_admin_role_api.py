"""A hospital admin changes a user's role through the JSON API: recorded on chain with the new
certificate the role needs (same key), in the directory, the user's sessions ended; they sign in
again in the new role and the chain takes their transactions as such. Refusals change nothing."""

from __future__ import annotations

import pytest

from gateway import ledger as L
from network import GatewayError

from .stack import Http, enrol


def test_an_admin_changes_a_users_role_on_chain_and_in_the_directory(world, app):
    http = Http(app.test_client())
    svc = world.services
    admin = enrol(svc, "lothian", "hospital_admin")
    atok = http.login(admin)
    nurse = enrol(svc, "lothian", "nurse")
    ntok = http.login(nurse)
    before = svc.auth.get_user(nurse.user_id)
    old_certificate = svc.auth.identity_of(nurse.user_id)

    r = http.post(f"/admin/users/{nurse.user_id}/role", token=atok, json={"role": "specialist"})
    assert r.status == 200, r
    assert r.json["role"] == "specialist" and r.json["chain"]["role"] == "specialist"
    after = svc.auth.get_user(nurse.user_id)
    assert after.role == "specialist" and after.certificate_fingerprint != before.certificate_fingerprint
    assert r.json["chain"]["fingerprint"] == after.certificate_fingerprint  # the chain binds the new certificate
    assert svc.auth.identity_of(nurse.user_id).attributes["role"] == "specialist"
    history = L.evaluate(svc.admin_contract("lothian", "UserContract"), "GetUser", nurse.user_id)
    assert history["version"] >= 2
    # the old session has ended; signing in again gives the new role, and the chain accepts the new certificate
    assert http.get("/auth/me", token=ntok).status == 401
    stok = http.login(nurse)
    me = http.get("/auth/me", token=stok).json
    assert me["role"] == "specialist"
    assert http.get("/doctors/grants", token=stok).status == 200  # the chain reads as this specialist
    # (the old certificate, whose role attribute contradicts the chain, is no longer bound to them)
    signer = svc.auth.open_wallet_with_key(nurse.username, nurse.key)  # the same key as before
    with pytest.raises(GatewayError, match="may read this"):
        L.evaluate(svc.contract(old_certificate, signer, "AuditContract"), "AuditByUser", nurse.user_id, "decision",
                   "", "", 10, "")

    # refusals: the same role, a patient's role, into a patient, another hospital's user, a user not there
    r = http.post(f"/admin/users/{nurse.user_id}/role", token=atok, json={"role": "specialist"})
    assert r.status == 422 and "already" in r.json["detail"]
    r = http.post(f"/admin/users/{nurse.user_id}/role", token=atok, json={"role": "patient"})
    assert r.status == 422 and "role" in r.json["errors"]["json"]
    z = enrol(svc, "zmc", "gp")
    r = http.post(f"/admin/users/{z.user_id}/role", token=atok, json={"role": "nurse"})
    assert r.status == 404 and svc.chain_user(z.user_id)["role"] == "gp"
    r = http.post("/admin/users/u-nobody-here/role", token=atok, json={"role": "nurse"})
    assert r.status == 404
    r = http.post(f"/admin/users/{nurse.user_id}/role", token=stok, json={"role": "gp"})
    assert r.status == 403  # not an admin
    assert svc.chain_user(nurse.user_id)["role"] == "specialist"



def test_an_admin_indexes_relationships_recorded_before_the_clinician_index(world, app):
    http = Http(app.test_client())
    admin = enrol(world.services, "zmc", "hospital_admin")
    tok = http.login(admin)
    r = http.post("/admin/treatments/index", token=tok)
    assert r.status == 200 and r.json["indexed"] == 0 and r.json["read"] >= 0  # all recorded since are indexed
    clinician = enrol(world.services, "zmc", "gp")
    r = http.post("/admin/treatments/index", token=http.login(clinician))
    assert r.status == 403
