"""JWT sessions through a small Flask app: claims, expiry, rotation, reuse, logout, suspension."""

from __future__ import annotations

import time

import pytest
from flask import Flask, jsonify, request
from flask_jwt_extended import create_access_token, current_user, get_jwt, jwt_required

from auth import (
    PROBLEM_JSON,
    AuthConfig,
    LoginRequest,
    configure_flask,
)
from network import verify

from .conftest import FAST, IMAGES, KEY, register, totp_now


def make_app(service) -> tuple[Flask, object]:
    app = Flask("auth-test")
    app.testing = True
    flask_auth = configure_flask(app, service)

    @app.post("/login")
    def begin():
        body = request.get_json()
        challenge = service.begin_login(LoginRequest(
            body["username"], body["method"], text_key=body.get("key"), selection=body.get("selection"),
            client_addr=request.remote_addr,
        ))
        return jsonify(token=challenge.token, factors=list(challenge.factors))

    @app.post("/login/complete")
    def complete():
        body = request.get_json()
        result = service.complete_login(body["token"], totp_code=body.get("totp"))
        return jsonify(flask_auth.issue_tokens(result).to_json())

    @app.post("/refresh")
    @jwt_required(refresh=True)
    def refresh():
        return jsonify(flask_auth.refresh().to_json())

    @app.post("/logout")
    @jwt_required(verify_type=False)
    def logout():
        flask_auth.logout()
        return "", 204

    @app.get("/me")
    @jwt_required()
    def me():
        claims = get_jwt()
        return jsonify(user=current_user.username, claims={k: claims[k] for k in claims if k != "wsk"},
                       has_wallet_key="wsk" in claims)

    @app.post("/sign")
    @jwt_required(fresh=False)
    def sign():
        return jsonify(signature=flask_auth.current_signer().sign(request.get_data()).hex())

    return app, flask_auth


@pytest.fixture
def env(service, doctor):
    app, flask_auth = make_app(service)
    return app.test_client(), service, doctor


def http_login(client, service, reg, *, method="text"):
    service.clock.advance(service.config.totp_interval)
    body = {"username": reg.user.username, "method": method}
    body.update({"key": KEY} if method == "text" else {"selection": IMAGES})
    r = client.post("/login", json=body)
    assert r.status_code == 200, r.json
    r = client.post("/login/complete", json={"token": r.json["token"], "totp": totp_now(service, reg)})
    assert r.status_code == 200, r.json
    return r.json


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(resp, status: int, slug: str) -> dict:
    assert resp.status_code == status, resp.json
    assert resp.mimetype == PROBLEM_JSON
    body = resp.json
    assert body["type"] == f"/problems/{slug}" and body["status"] == status and body["detail"]
    return body


def test_login_yields_tokens_with_role_and_hospital_claims(env):
    client, service, doctor = env
    tokens = http_login(client, service, doctor.reg)
    assert tokens["token_type"] == "Bearer"
    assert tokens["access_expires_at"] <= service.clock() + service.config.access_ttl + 1
    r = client.get("/me", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200
    claims = r.json["claims"]
    assert r.json["user"] == "dr.smith" and r.json["has_wallet_key"]
    assert claims["sub"] == doctor.reg.user.user_id and claims["role"] == "specialist"
    assert claims["hospital"] == "lothian" and claims["msp"] == "LothianMSP"
    assert claims["sid"] == tokens["session_id"] and claims["fp"] == "text" and claims["mfa"] == "totp"
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["type"] == "access" and claims["fresh"] is True
    assert claims["iss"] == "serums" and claims["aud"] == "serums-gateway"
    # a refresh token is not an access token
    assert_problem(client.get("/me", headers=bearer(tokens["refresh_token"])), 401, "token-invalid")


def test_errors_are_problem_json(env):
    client, service, doctor = env
    body = assert_problem(client.get("/me"), 401, "authentication-required")
    assert body["title"]
    r = client.post("/login", json={"username": "dr.smith", "method": "text", "key": "wrong wrong wrong"})
    assert_problem(r, 401, "invalid-credentials")
    r = client.post("/login", json={"username": "dr nobody", "method": "text", "key": "x"})
    assert_problem(r, 422, "invalid-input")
    for _ in range(5):
        client.post("/login", json={"username": "dr.smith", "method": "text", "key": "wrong wrong wrong"})
    r = client.post("/login", json={"username": "dr.smith", "method": "text", "key": KEY})
    body = assert_problem(r, 429, "login-throttled")
    assert int(r.headers["Retry-After"]) == body["retry_after"] >= 1
    assert_problem(client.get("/me", headers=bearer("not.a.jwt")), 401, "token-invalid")


def test_access_token_expires_after_its_lifetime(env):
    client, service, doctor = env
    tokens = http_login(client, service, doctor.reg)
    service.clock.advance(service.config.access_ttl - 5)
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 200
    service.clock.advance(10)
    r = client.get("/me", headers=bearer(tokens["access_token"]))
    assert_problem(r, 401, "token-expired")
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    # the refresh token still works and yields a working access token (not fresh)
    fresh = client.post("/refresh", headers=bearer(tokens["refresh_token"]))
    assert fresh.status_code == 200
    r = client.get("/me", headers=bearer(fresh.json["access_token"]))
    assert r.status_code == 200 and r.json["claims"]["fresh"] is False


def test_expired_signature_is_refused_by_the_jwt_layer(env):
    client, service, doctor = env
    tokens = http_login(client, service, doctor.reg)
    app = client.application
    with app.app_context():
        stale = create_access_token(identity=doctor.reg.user.user_id,
                                    additional_claims={"sid": tokens["session_id"], "exp": int(time.time()) - 5})
    assert_problem(client.get("/me", headers=bearer(stale)), 401, "token-expired")


def test_forged_or_foreign_tokens_are_refused(env, make_service):
    client, service, doctor = env
    tokens = http_login(client, service, doctor.reg)
    header, payload, sig = tokens["access_token"].split(".")
    tampered = f"{header}.{payload}.{sig[:-4]}AAAA"
    assert_problem(client.get("/me", headers=bearer(tampered)), 401, "token-invalid")
    other = make_service(AuthConfig.ephemeral(argon2=FAST, wallet_kdf=FAST))
    other_reg = register(other)
    other_app, _ = make_app(other)
    foreign = http_login(other_app.test_client(), other, other_reg)
    assert_problem(client.get("/me", headers=bearer(foreign["access_token"])), 401, "token-invalid")


def test_refresh_rotation_and_reuse_revokes_the_family(env):
    client, service, doctor = env
    first = http_login(client, service, doctor.reg)
    second = client.post("/refresh", headers=bearer(first["refresh_token"])).json
    assert second["refresh_token"] != first["refresh_token"] and second["session_id"] == first["session_id"]
    third = client.post("/refresh", headers=bearer(second["refresh_token"])).json
    assert client.get("/me", headers=bearer(third["access_token"])).status_code == 200
    # the first refresh token is presented again: stolen copy
    r = client.post("/refresh", headers=bearer(first["refresh_token"]))
    assert_problem(r, 401, "refresh-token-reused")
    # every token of the session is dead now, including the newest ones
    assert_problem(client.get("/me", headers=bearer(third["access_token"])), 401, "token-revoked")
    assert_problem(client.post("/refresh", headers=bearer(third["refresh_token"])), 401, "token-revoked")
    # an access token cannot be used to refresh
    other = http_login(client, service, doctor.reg)
    assert_problem(client.post("/refresh", headers=bearer(other["access_token"])), 401, "token-invalid")


def test_logout_revokes_access_and_refresh_tokens(env):
    client, service, doctor = env
    tokens = http_login(client, service, doctor.reg)
    other = http_login(client, service, doctor.reg)
    assert client.post("/logout", headers=bearer(tokens["access_token"])).status_code == 204
    assert_problem(client.get("/me", headers=bearer(tokens["access_token"])), 401, "token-revoked")
    assert_problem(client.post("/refresh", headers=bearer(tokens["refresh_token"])), 401, "token-revoked")
    # other sessions are not affected
    assert client.get("/me", headers=bearer(other["access_token"])).status_code == 200


def test_idle_timeout_and_maximum_session_age(env):
    client, service, doctor = env
    cfg = service.config
    tokens = http_login(client, service, doctor.reg)
    service.clock.advance(cfg.refresh_ttl + 1)
    assert_problem(client.post("/refresh", headers=bearer(tokens["refresh_token"])), 401, "token-expired")
    tokens = http_login(client, service, doctor.reg)
    refreshed = tokens
    for _ in range(int(cfg.session_max_age // (cfg.refresh_ttl / 2)) + 2):
        service.clock.advance(cfg.refresh_ttl / 2)
        r = client.post("/refresh", headers=bearer(refreshed["refresh_token"]))
        if r.status_code != 200:
            break
        refreshed = r.json
        assert refreshed["access_expires_at"] <= refreshed["refresh_expires_at"]
    assert_problem(r, 401, "token-expired")
    assert service.clock() - service.sessions.get(tokens["session_id"]).created_at >= cfg.session_max_age


def test_chain_suspension_stops_tokens_within_the_cache_ttl(make_service):
    suspended: set[str] = set()
    service = make_service(is_suspended=lambda uid: uid in suspended)
    reg = register(service)
    app, _ = make_app(service)
    client = app.test_client()
    tokens = http_login(client, service, reg)
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 200
    suspended.add(reg.user.user_id)
    ttl = service.config.suspension_cache_ttl
    assert ttl < service.config.access_ttl
    service.clock.advance(ttl + 1)
    assert_problem(client.get("/me", headers=bearer(tokens["access_token"])), 403, "account-suspended")
    assert_problem(client.post("/refresh", headers=bearer(tokens["refresh_token"])), 403, "account-suspended")
    suspended.clear()  # reinstated on chain: old sessions stay revoked, a new login works
    service.clock.advance(ttl + 1)
    assert_problem(client.get("/me", headers=bearer(tokens["access_token"])), 403, "account-suspended")
    assert client.get("/me", headers=bearer(http_login(client, service, reg)["access_token"])).status_code == 200


def test_local_suspension_and_chain_event_take_effect_at_once(env):
    client, service, doctor = env
    tokens = http_login(client, service, doctor.reg)
    service.notify_suspended(doctor.reg.user.user_id)
    assert_problem(client.get("/me", headers=bearer(tokens["access_token"])), 403, "account-suspended")
    tokens = http_login(client, service, doctor.reg)
    service.suspend(doctor.reg.user.user_id)
    assert_problem(client.get("/me", headers=bearer(tokens["access_token"])), 403, "account-suspended")


def test_unreachable_chain_uses_recent_answer_then_fails_closed(make_service):
    state = {"down": False}

    def is_suspended(uid: str) -> bool:
        if state["down"]:
            raise ConnectionError("peer unreachable")
        return False

    service = make_service(is_suspended=is_suspended)
    reg = register(service)
    app, _ = make_app(service)
    client = app.test_client()
    tokens = http_login(client, service, reg)
    state["down"] = True
    service.clock.advance(service.config.suspension_cache_ttl + 1)
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 200  # stale but recent
    service.clock.advance(service.config.suspension_stale_grace)
    r = client.get("/me", headers=bearer(tokens["access_token"]))
    assert_problem(r, 503, "suspension-check-unavailable")
    assert "Retry-After" in r.headers


def test_session_signs_with_the_users_fabric_key(env):
    client, service, doctor = env
    tokens = http_login(client, service, doctor.reg, method="graphical")
    r = client.post("/sign", data=b"proposal digest", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200
    identity = service.identity_of(doctor.reg.user.user_id)
    assert verify(identity.public_key, b"proposal digest", bytes.fromhex(r.json["signature"]))
    client.post("/logout", headers=bearer(tokens["access_token"]))
    assert client.post("/sign", data=b"x", headers=bearer(tokens["access_token"])).status_code == 401
