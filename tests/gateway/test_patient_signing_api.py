"""A patient who holds their own key, through the JSON API: the own-record request and a
revocation are prepared by the server, signed on the device and submitted; the release follows
the committed request (``GET /patients/me/record?grant_id=``); their preferences download as FHIR
Consent; and a clinician treating them finds them among "my patients"."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from fhir.resources.bundle import Bundle

from gateway import flow
from network import Signer
from vault import VaultError

from .stack import IMAGES, KEY, Account, Http, enrol


@pytest.fixture(scope="module")
def own_key(world) -> tuple[Account, Signer]:
    """A patient of lothian who holds their own key (custody exported): the account and the device's signer."""
    _, ref = world.patient_ref("lothian", 0)
    device = Signer.generate()
    public = device.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    svc = world.services
    reg = svc.enrol(*svc.hospital_admin("lothian"), "lothian", "own.key", "patient", KEY, IMAGES, user_id=ref,
                    custody="exported", public_key_pem=public)
    return Account("own.key", reg), device


def signed(http: Http, tok: str, device: Signer, prepare: str, body: dict) -> dict:
    """prepare → sign → endorse → sign → submit, as a device does; the committed transaction."""
    r = http.post(prepare, token=tok, json=body)
    assert r.status == 201, r
    sig = base64.b64encode(device.sign_digest(base64.b64decode(r.json["digest"]))).decode()
    r = http.post("/patients/me/preferences/endorse", token=tok, json={"proposal": r.json["proposal"], "signature": sig})
    assert r.status == 200, r
    tx_sig = base64.b64encode(device.sign_digest(base64.b64decode(r.json["digest"]))).decode()
    r = http.post("/patients/me/preferences/submit", token=tok, json={"transaction": r.json["transaction"],
                                                                      "signature": tx_sig})
    assert r.status == 200, r
    return r.json


def test_own_key_patient_reads_their_record_and_revokes_by_signing_on_their_device(world, app, own_key):
    http = Http(app.test_client())
    pat, device = own_key
    tok = http.login(pat)
    r = http.get("/patients/me/record", token=tok)
    assert r.status == 409 and r.json["title"] == "Key held by the user"  # the server cannot sign for them

    done = signed(http, tok, device, "/patients/me/record/prepare", {"sections": ["demographics", "conditions"]})
    grant_id = done["result"]["grant_id"]
    assert grant_id and done["result"]["request_id"] == grant_id
    r = http.get("/patients/me/record", token=tok, params={"grant_id": grant_id})
    assert r.status == 200, r
    assert sorted(r.json["sections"]) == ["conditions", "demographics"] and "demographics" in r.json["record"]["sections"]
    access = http.get("/patients/me/access-log", token=tok, params={"kind": "access"}).json["records"]
    assert any(a["record"].get("grant_id") == grant_id for a in access)  # logged on chain like every release
    r = http.get("/patients/me/record", token=tok, params={"grant_id": grant_id, "format": "fhir"})
    assert r.status == 200 and r.json["record"]["resourceType"] == "Bundle"

    # a nurse's grant on their record is not released to them, and they revoke it, signing on the device
    nurse = enrol(world.services, "lothian", "nurse")
    nurse_actor = _actor(world, nurse)
    d = flow.request_access(world.services, nurse_actor, pat.user_id, "lothian", sections=["demographics"],
                            purpose="treatment", justification="direct-care")
    r = http.get("/patients/me/record", token=tok, params={"grant_id": d["grant_id"]})
    assert r.status == 403 and "not one of your own-record grants" in r.json["detail"]
    r = http.post(f"/patients/me/grants/{d['grant_id']}/revoke", token=tok, json={})
    assert r.status == 409 and r.json["title"] == "Key held by the user"
    done = signed(http, tok, device, f"/patients/me/grants/{d['grant_id']}/revoke/prepare", {})
    assert done["result"]["status"] == "revoked"
    r = http.post("/patients/me/record/prepare", token=tok, json={"sections": ["nonsense"]})
    assert r.status == 422
    with pytest.raises(VaultError, match="(?i)revoked|not live"):
        flow.fetch_record(world.services, nurse_actor, d["token"]["token"])


def _actor(world, account: Account) -> flow.Actor:
    user = account.reg.user
    signer = world.services.auth.open_wallet_with_key(account.username, account.key)
    return flow.Actor(user.user_id, user.role, user.hospital, user.msp_id, "", lambda: signer)


def test_preferences_download_as_fhir_r5_consent_through_the_api(app, own_key):
    http = Http(app.test_client())
    pat, device = own_key
    tok = http.login(pat)
    pref = {"pref_id": "no-insurers", "effect": "deny", "grantee": {"kind": "role", "id": "insurer"},
            "sections": ["contact", "conditions"], "purposes": ["insurance"],
            "valid_until": "2030-01-01T00:00:00+00:00"}
    signed(http, tok, device, "/patients/me/preferences/prepare", {"action": "add", "preference": pref})
    r = http.get("/patients/me/consent", token=tok)
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/fhir+json")
    Bundle.model_validate(r.json)  # a valid FHIR R5 Bundle
    consent = {e["resource"]["id"]: e["resource"] for e in r.json["entry"]}["no-insurers"]
    assert consent["resourceType"] == "Consent" and consent["decision"] == "deny"
    assert consent["subject"]["identifier"]["value"] == pat.user_id
    provision = consent["provision"][0]
    assert provision["actor"][0]["role"]["coding"][0]["code"] == "insurer"
    assert provision["purpose"][0]["code"] == "COVERAGE"
    assert sorted(c["coding"][0]["code"] for c in provision["code"]) == ["conditions", "contact"]
    assert provision["period"]["end"].startswith("2030-01-01")
    r = http.get("/patients/me/consent")
    assert r.status == 401


def test_my_patients_come_from_the_chains_treating_index(world, app, own_key):
    http = Http(app.test_client())
    svc = world.services
    pat, _ = own_key
    spec = enrol(svc, "lothian", "specialist")
    admin = enrol(svc, "lothian", "hospital_admin")
    atok, stok = http.login(admin), http.login(spec)
    assert http.get("/doctors/patients", token=stok).json["records"] == []
    r = http.post("/admin/treatments", token=atok, json={"patient_id": pat.user_id, "clinician_id": spec.user_id})
    assert r.status == 201, r
    mine = http.get("/doctors/patients", token=stok).json
    assert [(t["patient"], t["hospital"], t["current"]) for t in mine["records"]] == [(pat.user_id, "lothian", True)]
    r = http.delete(f"/admin/treatments/{pat.user_id}/{spec.user_id}", token=atok)
    assert r.status == 200
    assert http.get("/doctors/patients", token=stok).json["records"] == []
    ended = http.get("/doctors/patients", token=stok, params={"current": "false"}).json["records"]
    assert [t["current"] for t in ended] == [False]
    assert http.get("/doctors/patients", token=atok).status == 403  # for clinicians
