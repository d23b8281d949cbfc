"""The gateway's API through Flask's test client, against an embedded node in this process:
role checks, validation, enrolment (services and admin desk), invitations, suspension,
offline signing, rules, auth endpoints, and how ledger failures become problems."""

from __future__ import annotations

import base64
import datetime as dt
import json

import grpc
import pytest

from auth import Argon2Params, AuthConfig
from gateway import vocab as V
from gateway.app import create_app
from gateway.errors import commit_problem, gateway_error_problem
from gateway.services import GatewaySettings, Services
from gateway.store import GatewayStore
from network import CommitError, GatewayError

from .stack import IMAGES, KEY, Http, enrol


@pytest.fixture(scope="module")
def admin(world):
    return enrol(world.services, "lothian", "hospital_admin")


@pytest.fixture(scope="module")
def admin_token(app, admin):
    return Http(app.test_client()).login(admin)


def test_the_gateway_vocabulary_mirrors_the_chaincodes():
    from chaincode.serums import vocab as C
    from chaincode.serums.keys import AUDIT_KINDS

    for name in ("PERSON_ROLES", "SERVICE_ROLES", "CLINICIAN_ROLES", "SECTIONS", "PURPOSES", "JUSTIFICATIONS",
                 "BREAK_GLASS_JUSTIFICATIONS", "REVOKE_REASONS", "SUSPEND_REASONS", "REVIEW_OUTCOMES", "GRANTEE_KINDS",
                 "EFFECTS", "MAX_PAGE_SIZE"):
        assert getattr(V, name) == getattr(C, name), name
    assert V.AUDIT_KINDS == AUDIT_KINDS and C.ID_RE.pattern == V.ID_PATTERN


# --------------------------------------------------------------------------- role checks and validation


def test_every_api_operation_but_the_login_ones_needs_a_token(http):
    spec = http.get("/openapi.json").json
    public = {"/auth/images", "/auth/images/{image_id}.png", "/auth/key-strength", "/auth/register",
              "/auth/login/grid", "/auth/login", "/auth/login/complete", "/auth/login/push"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method == "parameters" or path in public or not path.startswith(("/auth", "/patients", "/doctors",
                                                                                  "/admin", "/audit", "/hospitals")):
                continue
            assert op.get("security") == [{"bearerAuth": []}], (method, path)
            r = http.call(method.upper(), path.replace("{", "x").replace("}", "x"))
            assert r.status == 401 and r.json["type"].startswith("/problems/"), (method, path, r)
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_wrong_role_is_forbidden_before_the_body_is_read(world, http):
    svc = world.services
    nurse = enrol(svc, "lothian", "nurse")
    tok = http.login(nurse)
    for method, path in (("GET", "/patients/me/record"), ("POST", "/admin/users"), ("GET", "/audit/trail"),
                         ("POST", "/doctors/break-glass")):
        r = http.call(method, path, token=tok, json={"garbage": True})
        if path == "/doctors/break-glass":  # nurses are clinicians: the body is checked instead
            assert r.status == 422, r
            continue
        assert r.status == 403 and r.json["type"] == "/problems/forbidden", (path, r)
        assert "nurse" in r.json["detail"]


def test_a_refresh_token_is_not_an_access_token(world, http):
    gp = enrol(world.services, "lothian", "gp")
    r = http.post("/auth/login", json={"username": gp.username, "method": "text", "text_key": KEY})
    r = http.post("/auth/login/complete", json={"challenge": r.json["challenge"], "totp_code": gp.totp()})
    refresh = r.json["refresh_token"]
    r = http.get("/doctors/grants", token=refresh)
    assert r.status in (401, 422) and r.headers["Content-Type"].startswith("application/problem+json"), r
    r = http.post("/auth/refresh", token=refresh)
    assert r.status == 200 and r.json["refresh_token"] != refresh
    r = http.post("/auth/refresh", token=refresh)  # reuse of a rotated refresh token ends the session
    assert r.status == 401 and r.json["type"] == "/problems/refresh-token-reused"


def test_bad_input_is_a_422_with_every_field_never_a_500(world, http):
    doc = enrol(world.services, "lothian", "specialist")
    tok = http.login(doc)
    r = http.post("/doctors/requests", token=tok, json={"sections": ["xray"], "purpose": "fun", "extra": 1})
    assert r.status == 422 and r.json["type"] == "/problems/validation-error"
    assert {"sections", "purpose", "extra"} <= set(r.json["errors"]["json"])
    r = http.post("/doctors/requests", token=tok, json={"patient_id": "p1", "share_code": "ABCD-EFGH-JKMN"})
    assert r.status == 422 and "exactly one" in r.json["detail"]
    # a lone surrogate in JSON is not text that can reach the ledger
    raw = '{"patient_id": "ab\\ud800cd"}'
    r = http.client.post("/doctors/requests", data=raw, content_type="application/json",
                         headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 422, r.get_json()
    r = http.get("/doctors/grants", token=tok, params={"bookmark": "%%%"})
    assert r.status == 422 and "bookmark" in r.json["errors"]["query"]
    r = http.post("/doctors/requests", token=tok, json={"patient_id": "no-such-patient"})
    assert r.status == 404 and r.json["type"] == "/problems/chain-not-found" and "patient" in r.json["detail"]


def test_problem_types_are_documented(http):
    for slug in ("chain-forbidden", "chain-conflict", "ledger-unavailable", "token-presenter-mismatch",
                 "record-token-expired", "grant-revoked", "share-code-invalid", "weak-key", "account-suspended",
                 "offline-signing-invalid"):
        r = http.get(f"/problems/{slug}")
        assert r.status == 200 and r.json["type"] == f"/problems/{slug}", slug


# --------------------------------------------------------------------------- enrolment


def test_enrolment_registers_on_chain_with_the_vault_reference_as_patient_id(world):
    svc = world.services
    _, ref = world.patient_ref("zmc", 0)
    spec = enrol(svc, "zmc", "specialist")
    pat = enrol(svc, "zmc", "patient", user_id=ref, treating=(spec.user_id,))
    assert pat.user_id == ref
    doc = svc.chain_user(ref)
    assert doc["role"] == "patient" and doc["hospital"] == "ZmcMSP"
    assert doc["fingerprint"] == pat.reg.user.certificate_fingerprint
    treat = svc.admin_contract("zmc", "UserContract").evaluate_json("GetTreatment", ref, spec.user_id)
    assert treat["clinician"] == spec.user_id and treat["end"] is None


def test_enrolment_refuses_before_writing_anything(world):
    svc = world.services
    from auth import InvalidInput
    from gateway.problems import Problem
    from vault import PatientNotFound

    with pytest.raises(PatientNotFound):  # not a patient of this hospital's vault
        svc.enrol(*svc.hospital_admin("lothian"), "lothian", "pat.ghost", "patient", KEY, IMAGES,
                  user_id="0" * 32)
    with pytest.raises(InvalidInput):  # a patient needs their vault reference
        svc.enrol(*svc.hospital_admin("lothian"), "lothian", "pat.ghost", "patient", KEY, IMAGES)
    with pytest.raises(Problem) as e:  # treating someone who does not exist
        svc.enrol(*svc.hospital_admin("lothian"), "lothian", "dr.ghost", "gp", KEY, IMAGES, treating=("u-nobody",))
    assert e.value.type.slug == "not-found"
    with pytest.raises(Problem) as e:  # another hospital's admin
        svc.enrol(*svc.hospital_admin("zmc"), "lothian", "dr.ghost", "gp", KEY, IMAGES)
    assert e.value.type.slug == "forbidden"
    assert svc.auth.find_user("pat.ghost") is None and svc.auth.find_user("dr.ghost") is None


def test_a_chain_refusal_discards_the_directory_entry(world):
    svc = world.services
    taken = enrol(svc, "lothian", "gp")
    # the same id again: the directory refuses it before the chain is asked
    from auth import UserExists

    with pytest.raises(UserExists):
        svc.enrol(*svc.hospital_admin("lothian"), "lothian", "dr.twin", "gp", KEY, IMAGES, user_id=taken.user_id)
    # an id the chain already has (a vault service identity) but the directory does not
    from gateway.problems import Problem

    with pytest.raises(Problem) as e:
        svc.enrol(*svc.hospital_admin("lothian"), "lothian", "dr.twin", "gp", KEY, IMAGES, user_id="vault-lothian")
    assert e.value.type.slug == "enrolment-refused" and "already registered" in e.value.detail
    assert svc.auth.find_user("dr.twin") is None and svc.auth.get_user("vault-lothian") is None


def test_ensure_vault_identity_is_idempotent(world):
    svc = world.services
    a = svc.ensure_vault_identity("lothian")
    b = svc.ensure_vault_identity("lothian")
    assert a[0].fingerprint == b[0].fingerprint == svc.chain_user("vault-lothian")["fingerprint"]
    assert svc.ensure_hospital("lothian", "NHS Lothian")["msp"] == "LothianMSP"


def test_admin_desk_enrols_lists_suspends_and_reinstates(world, app, admin_token):
    http = Http(app.test_client())
    _, ref = world.patient_ref("lothian", 2)
    r = http.post("/admin/users", token=admin_token,
                  json={"username": "nurse.desk", "role": "nurse", "text_key": KEY, "images": IMAGES})
    assert r.status == 201, r
    reg = r.json
    assert reg["recovery_codes"] and reg["totp_uri"].startswith("otpauth://") and base64.b64decode(reg["totp_qr_png"])
    chi = next(c for c, (h, rf) in world.patients.items() if rf == ref)
    r = http.post("/admin/users", token=admin_token,
                  json={"username": "pat.desk", "role": "patient", "chi": chi, "text_key": KEY, "images": IMAGES,
                        "treating": [reg["user_id"]]})
    assert r.status == 201 and r.json["user_id"] == ref, r
    r = http.get("/admin/users", token=admin_token, params={"page_size": 200})
    assert r.status == 200
    by_id = {u["user_id"]: u for u in r.json["records"]}
    assert by_id[reg["user_id"]]["username"] == "nurse.desk" and by_id["vault-lothian"]["username"] is None
    # the nurse logs in, then is suspended: on chain and in the directory, tokens stop at once
    from .stack import Account

    nurse = Account("nurse.desk", _reg(world, "nurse.desk", reg))
    ntok = http.login(nurse)
    assert http.get("/auth/me", token=ntok).status == 200
    r = http.post(f"/admin/users/{reg['user_id']}/suspend", token=admin_token, json={"reason": "leave"})
    assert r.status == 200 and r.json["status"] == "suspended" and r.json["directory_status"] == "suspended", r
    r = http.get("/auth/me", token=ntok)
    assert r.status in (401, 403) and r.headers["Content-Type"].startswith("application/problem+json")
    r = http.post(f"/admin/users/{reg['user_id']}/suspend", token=admin_token, json={})
    assert r.status == 409 and r.json["type"] == "/problems/chain-conflict"
    r = http.post(f"/admin/users/{reg['user_id']}/reinstate", token=admin_token)
    assert r.status == 200 and r.json["status"] == "active"
    # another hospital's user is not mine to suspend
    z = enrol(world.services, "zmc", "gp")
    r = http.post(f"/admin/users/{z.user_id}/suspend", token=admin_token, json={})
    assert r.status == 403 and r.json["type"] == "/problems/chain-forbidden"
    r = http.get(f"/admin/treatments/{ref}", token=admin_token)
    assert [t["clinician"] for t in r.json["records"]] == [reg["user_id"]]


def _reg(world, username, reg_json):
    """A Registration-like object for a user enrolled over HTTP (the stack's Account needs .totp)."""
    from types import SimpleNamespace

    user = world.services.auth.find_user(username)
    return SimpleNamespace(user=user, totp=SimpleNamespace(secret=reg_json["totp_secret"]),
                           recovery_codes=reg_json["recovery_codes"])


def test_invitation_of_a_patient_by_chi_then_registration(world, app, admin_token):
    http = Http(app.test_client())
    chi, ref = world.patient_ref("lothian", 3)
    r = http.post("/admin/invitations", token=admin_token,
                  json={"username": "pat.invited", "role": "patient", "chi": chi, "ttl_hours": 1})
    assert r.status == 201, r
    code = r.json["code"]
    r = http.post("/auth/register", json={"invitation_code": code, "text_key": "password123", "images": IMAGES})
    assert r.status == 422 and r.json["type"] == "/problems/weak-key" and r.json["reasons"]
    r = http.post("/auth/register", json={"invitation_code": code, "text_key": KEY, "images": IMAGES})
    assert r.status == 201 and r.json["user_id"] == ref, r
    assert world.services.chain_user(ref)["role"] == "patient"
    r = http.post("/auth/register", json={"invitation_code": code, "text_key": KEY, "images": IMAGES})
    assert r.status == 400 and r.json["type"] == "/problems/invitation-invalid"
    r = http.post("/admin/invitations", token=admin_token, json={"username": "x.y.z", "role": "patient"})
    assert r.status == 422 and "chi" in r.json["errors"]["json"]


# --------------------------------------------------------------------------- offline signing


def test_preferences_signed_offline_by_the_patients_device(world, app):
    http = Http(app.test_client())
    _, ref = world.patient_ref("zmc", 2)
    pat = enrol(world.services, "zmc", "patient", user_id=ref)
    tok = http.login(pat)
    device = world.services.auth.open_wallet_with_key(pat.username, KEY)  # stands for the key on the device
    pref = {"pref_id": "no-insurers", "effect": "deny", "grantee": {"kind": "role", "id": "insurer"},
            "sections": ["*"], "purposes": ["*"]}
    r = http.post("/patients/me/preferences/prepare", token=tok, json={"action": "add", "preference": pref})
    assert r.status == 201, r
    prepared = r.json
    digest = base64.b64decode(prepared["digest"])
    sig = base64.b64encode(device.sign_digest(digest)).decode()
    bad = base64.b64encode(world.services.hospital_admin("zmc")[1].sign_digest(digest)).decode()
    r = http.post("/patients/me/preferences/endorse", token=tok, json={"proposal": prepared["proposal"], "signature": bad})
    assert r.status == 422 and r.json["type"] == "/problems/offline-signing-invalid"
    r = http.post("/patients/me/preferences/endorse", token=tok,
                  json={"proposal": prepared["proposal"], "signature": sig})
    assert r.status == 200, r
    endorsed = r.json
    assert endorsed["result"]["change"] == "added"
    tx_sig = base64.b64encode(device.sign_digest(base64.b64decode(endorsed["digest"]))).decode()
    r = http.post("/patients/me/preferences/submit", token=tok,
                  json={"transaction": endorsed["transaction"], "signature": tx_sig})
    assert r.status == 200 and r.json["transaction_id"] == prepared["transaction_id"], r
    prefs = http.get("/patients/me/preferences", token=tok).json
    assert prefs["rules"]["no-insurers"]["effect"] == "deny"
    # another patient cannot push this patient's proposal through their own session
    other_ref = world.patient_ref("zmc", 3)[1]
    other = enrol(world.services, "zmc", "patient", user_id=other_ref)
    otok = http.login(other)
    r = http.post("/patients/me/preferences/endorse", token=otok,
                  json={"proposal": prepared["proposal"], "signature": sig})
    assert r.status == 422 and "not made for your identity" in r.json["detail"]
    r = http.post("/patients/me/preferences/endorse", token=tok, json={"proposal": "not base64!", "signature": sig})
    assert r.status == 422
    r = http.post("/patients/me/preferences/endorse", token=tok, json={"proposal": "AAAA", "signature": sig})
    assert r.status == 422 and r.json["type"] == "/problems/offline-signing-invalid"
    # and the online way withdraws it
    r = http.delete("/patients/me/preferences/no-insurers", token=tok)
    assert r.status == 200 and r.json["result"]["change"] == "withdrawn"
    hist = http.get("/patients/me/preferences/history", token=tok).json
    assert [h["change"] for h in hist["records"]] == ["added", "withdrawn"]


# --------------------------------------------------------------------------- rules (step 1)


def test_hospital_rules_and_settings(world, app, admin_token):
    http = Http(app.test_client())
    rule = {"roles": ["specialist"], "sections": ["imaging"], "purposes": ["treatment"], "treating_required": True,
            "valid_until": (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()}
    r = http.put("/admin/policy/rules/imaging-30d", token=admin_token, json=rule)
    assert r.status == 200 and r.json["result"]["rule_id"] == "imaging-30d", r
    r = http.post("/admin/policy/rules", token=admin_token, json={**rule, "effect": "deny", "roles": ["researcher"]})
    assert r.status == 201 and r.json["result"]["rule_id"].startswith("r-")
    generated = r.json["result"]["rule_id"]
    policy = http.get("/admin/policy", token=admin_token).json
    assert {"clin-treat", "imaging-30d", generated} <= set(policy["rules"])
    r = http.delete(f"/admin/policy/rules/{generated}", token=admin_token)
    assert r.status == 200
    r = http.delete(f"/admin/policy/rules/{generated}", token=admin_token)
    assert r.status == 404 and r.json["type"] == "/problems/chain-not-found" and "rule_id" in r.json["detail"]
    r = http.put("/admin/policy/settings", token=admin_token, json={"break_glass_seconds": 3600})
    assert r.status == 200 and r.json["result"]["settings"]["break_glass_seconds"] == 3600
    r = http.put("/admin/policy/settings", token=admin_token, json={"break_glass_seconds": 3600})
    assert r.status == 409 and "unchanged" in r.json["detail"]
    r = http.put("/admin/policy/settings", token=admin_token, json={})
    assert r.status == 422
    r = http.put("/admin/policy/rules/bad", token=admin_token,
                 json={**rule, "valid_until": "2001-01-01T00:00:00+00:00"})
    assert r.status == 400 and r.json["type"] == "/problems/chain-invalid-argument" and "valid_until" in r.json["detail"]
    hist = http.get("/admin/policy/history", token=admin_token).json["records"]
    assert len(hist) >= 4
    # everyone logged in reads a hospital's rules
    r = http.get("/hospitals/lothian/policy", token=admin_token)
    assert r.status == 200 and "imaging-30d" in r.json["rules"]
    r = http.get("/hospitals", token=admin_token)
    assert {h["name"] for h in r.json["hospitals"]} == {"lothian", "zmc", "fcrb"}
    assert all(h["registered"] for h in r.json["hospitals"])
    assert http.get("/hospitals/nowhere/policy", token=admin_token).json["type"] == "/problems/unknown-hospital"


# --------------------------------------------------------------------------- auth endpoints


def test_pictures_key_strength_and_grid(world, http):
    lib = http.get("/auth/images").json
    assert len(lib["images"]) == 96 and lib["min_images"] == 5
    png = http.get(lib["images"][0]["url"])
    assert png.status == 200 and png.content.startswith(b"\x89PNG") and "max-age" in png.headers["Cache-Control"]
    assert http.get("/auth/images/nothing.here.png").status == 404
    r = http.post("/auth/key-strength", json={"text_key": "password1234"})
    assert r.status == 200 and not r.json["accepted"] and r.json["reasons"]
    assert http.post("/auth/key-strength", json={"text_key": KEY}).json["accepted"]
    acc = enrol(world.services, "lothian", "gp")
    grid = http.get("/auth/login/grid", params={"username": acc.username}).json
    assert len(grid["images"]) == 36 and set(IMAGES) <= {i["id"] for i in grid["images"]}
    tok = http.login(acc, method="graphical")
    me = http.get("/auth/me", token=tok).json
    assert me["login_method"] == "graphical" and me["chain"]["id"] == acc.user_id


def test_push_approval_from_a_logged_in_session_then_logout(world, http):
    acc = enrol(world.services, "lothian", "specialist")
    first = http.login(acc)
    r = http.post("/auth/login", json={"username": acc.username, "method": "text", "text_key": KEY})
    ch = r.json
    assert "push" in ch["factors"]
    push = http.post("/auth/login/push", json={"challenge": ch["challenge"]}).json
    r = http.post("/auth/login/complete", json={"challenge": ch["challenge"], "approval_id": push["approval_id"]})
    assert r.status == 202 and r.json["type"] == "/problems/approval-pending"
    pending = http.get("/auth/approvals", token=first).json["approvals"]
    assert [a["approval_id"] for a in pending] == [push["approval_id"]]
    r = http.post(f"/auth/approvals/{push['approval_id']}", token=first,
                  json={"approve": True, "match_code": push["match_code"]})
    assert r.status == 204
    r = http.post("/auth/login/complete", json={"challenge": ch["challenge"], "approval_id": push["approval_id"]})
    assert r.status == 200 and r.json["role"] == "specialist"
    second = r.json["access_token"]
    assert http.post("/auth/logout", token=first).status == 204
    assert http.get("/auth/me", token=first).json["type"] == "/problems/token-revoked"
    assert http.get("/auth/me", token=second).status == 200


def test_wrong_credentials_and_throttling_are_problems(world, http):
    acc = enrol(world.services, "lothian", "nurse")
    r = http.post("/auth/login", json={"username": acc.username, "method": "text", "text_key": "wrong key entirely"})
    assert r.status == 401 and r.json["type"] == "/problems/invalid-credentials"
    r = http.post("/auth/login", json={"username": "nobody.here", "method": "text", "text_key": "whatever"})
    assert r.status == 401 and r.json["type"] == "/problems/invalid-credentials"
    r = http.post("/auth/login", json={"username": acc.username, "method": "graphical"})
    assert r.status == 422 and "selection" in r.json["errors"]["json"]


# --------------------------------------------------------------------------- share codes


def test_share_codes_are_single_use_and_expire(world):
    store = world.services.store
    code = store.create_share_code("pat-1", "lothian", 60)
    assert len(code.code) == 14 and code.code.count("-") == 2
    assert store.redeem_share_code(code.code.lower().replace("-", " "), "u-doc") == ("pat-1", "lothian")
    from gateway.problems import Problem

    with pytest.raises(Problem):
        store.redeem_share_code(code.code, "u-doc")
    now = [1_000_000.0]
    timed = GatewayStore(store.engine, b"k" * 32, clock=lambda: now[0])
    c = timed.create_share_code("pat-2", "zmc", 60)
    now[0] += 61
    with pytest.raises(Problem) as e:
        timed.redeem_share_code(c.code, "u-doc-timed")  # own throttle counter: this clock is fake
    assert e.value.type.slug == "share-code-invalid"


# --------------------------------------------------------------------------- ledger failures


def test_an_unreachable_ledger_is_a_503_never_a_500(world, tmp_path):
    settings = GatewaySettings(world.services.settings.data_dir, node_address="127.0.0.1:1")
    dead = Services.open(settings, auth_config=world.services.auth.config)
    try:
        http = Http(create_app({"TESTING": True}, services=dead).test_client())
        acc = enrol(world.services, "lothian", "gp")
        r = http.post("/auth/login", json={"username": acc.username, "method": "text", "text_key": KEY})
        assert r.status == 503 and r.json["type"] == "/problems/suspension-check-unavailable", r
        assert r.headers["Retry-After"]
    finally:
        dead.close()


def test_ledger_errors_map_to_problems(app):
    with app.test_request_context():
        r = gateway_error_problem(GatewayError(grpc.StatusCode.UNAVAILABLE, "connection refused"))
        assert r.status_code == 503 and json.loads(r.data)["type"] == "/problems/ledger-unavailable"
        e = GatewayError(grpc.StatusCode.UNKNOWN, "chaincode response 403, only the patient may do this")
        r = gateway_error_problem(e)
        assert r.status_code == 403 and json.loads(r.data)["detail"] == "only the patient may do this"
        r = gateway_error_problem(GatewayError(grpc.StatusCode.UNKNOWN, "chaincode response 500, internal"))
        assert r.status_code == 502
        r = commit_problem(CommitError("tx1", 11, 7))
        body = json.loads(r.data)
        assert r.status_code == 409 and body["code"] == "MVCC_READ_CONFLICT" and body["transaction_id"] == "tx1"


def test_fast_argon_is_only_for_tests():
    assert not Argon2Params(memory_kib=1024, iterations=1, parallelism=1).meets_owasp()
    assert AuthConfig.ephemeral().argon2.meets_owasp()
