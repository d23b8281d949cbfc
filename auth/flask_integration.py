"""JWT sessions for a Flask app (flask-jwt-extended), bound to the auth service's sessions.

``configure_flask(app, service)`` is all the gateway calls. It sets up the JWT manager, and:

- every token is checked against its session on every request (blocklist callback): logout,
  revocation, the session's maximum age, local suspension and the chain's ``is_suspended`` all
  refuse it at once; expiry is also checked against the service's clock;
- access tokens carry ``sub`` (pseudonymous user id), ``role``, ``hospital``, ``msp``, ``sid``,
  ``fp`` (FlexPass method), ``mfa`` (second factor), ``amr`` (RFC 8176), and ``wsk`` (the
  session wallet key, when the server holds the user's wallet): the claims the gateway's
  authorisation and the vault's token binding need;
- refresh tokens rotate (:meth:`FlaskAuth.refresh`); reuse revokes the session;
- every auth failure becomes an RFC 9457 ``application/problem+json`` response with a stable
  ``type`` (and ``WWW-Authenticate`` / ``Retry-After`` where they apply).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, jsonify
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    verify_jwt_in_request,
)

from network import Signer

from .errors import (
    AuthenticationRequired,
    AuthError,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    WalletNotHeld,
)
from .records import AuthUser, LoginResult
from .service import AuthService

PROBLEM_JSON = "application/problem+json"
_G_ERROR = "_serums_auth_error"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_expires_at: float
    refresh_expires_at: float
    session_id: str
    token_type: str = "Bearer"

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "access_expires_at": int(self.access_expires_at),
            "refresh_expires_at": int(self.refresh_expires_at),
            "session_id": self.session_id,
        }


def problem_response(err: AuthError, *, base: str = "/problems/") -> Response:
    """An :class:`AuthError` as an RFC 9457 problem+json response."""
    resp = jsonify(err.problem(base=base))
    resp.status_code = err.status
    resp.mimetype = PROBLEM_JSON
    if err.status == 401:
        code = "invalid_token" if err.slug.startswith(("token-", "refresh-")) else None
        resp.headers["WWW-Authenticate"] = f'Bearer error="{code}"' if code else "Bearer"
    if err.retry_after_seconds is not None:
        resp.headers["Retry-After"] = str(err.retry_after_seconds)
    return resp


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


class FlaskAuth:
    """The JWT side of the auth service inside one Flask app."""

    def __init__(self, app: Flask, service: AuthService, *, problem_base: str = "/problems/"):
        self.app = app
        self.service = service
        self.problem_base = problem_base
        self.jwt = JWTManager()
        self.jwt.init_app(app)
        self._register_callbacks()

    # ------------------------------------------------------------------ issuing

    def issue_tokens(self, result: LoginResult) -> TokenPair:
        """Access + refresh token for a completed login (call inside an app or request context)."""
        grant = self.service.sessions.issue_refresh(result.session_id)
        return self._pair(result.user, result.session_id, result.method, result.second_factor,
                          result.amr, result.wallet_session_key, grant.jti, grant.expires_at, fresh=True)

    def refresh(self) -> TokenPair:
        """Rotate the presented refresh token (call in a ``@jwt_required(refresh=True)`` view)."""
        claims = get_jwt()
        if claims.get("type") != "refresh":
            raise TokenInvalid("A refresh token is required.")
        grant = self.service.sessions.rotate(claims["sid"], claims["jti"])
        user = self.service.get_user(claims["sub"])
        if user is None:
            raise TokenRevoked("The user no longer exists.")
        return self._pair(user, claims["sid"], claims.get("fp", ""), claims.get("mfa", ""), claims.get("amr", []),
                          _unb64(claims.get("wsk")), grant.jti, grant.expires_at, fresh=False)

    def _pair(
        self, user: AuthUser, sid: str, method: str, factor: str, amr: Iterable[str], wallet_key: bytes | None,
        refresh_jti: str, refresh_expires_at: float, *, fresh: bool,
    ) -> TokenPair:
        cfg = self.service.config
        now = self.service.clock()
        session = self.service.sessions.get(sid)
        session_end = session.expires_at if session else now
        access_exp = min(now + cfg.access_ttl, session_end)
        claims: dict[str, Any] = {
            "role": user.role, "hospital": user.hospital, "msp": user.msp_id, "sid": sid,
            "fp": method, "mfa": factor, "amr": list(amr), "exp": int(access_exp),
        }
        refresh_claims: dict[str, Any] = {"sid": sid, "fp": method, "mfa": factor, "amr": list(amr),
                                          "jti": refresh_jti, "exp": int(refresh_expires_at)}
        if wallet_key is not None:
            claims["wsk"] = refresh_claims["wsk"] = _b64(wallet_key)
        access = create_access_token(identity=user.user_id, additional_claims=claims, fresh=fresh,
                                     expires_delta=dt.timedelta(seconds=cfg.access_ttl))
        refresh = create_refresh_token(identity=user.user_id, additional_claims=refresh_claims,
                                       expires_delta=dt.timedelta(seconds=cfg.refresh_ttl))
        return TokenPair(access, refresh, int(access_exp), int(refresh_expires_at), sid)

    # ------------------------------------------------------------------ current request

    def logout(self) -> None:
        """End the session of the presented token (access or refresh)."""
        self.service.logout(get_jwt()["sid"])

    def current_user(self) -> AuthUser:
        verify_jwt_in_request()
        user = self.service.get_user(get_jwt()["sub"])
        if user is None:
            raise TokenRevoked("The user no longer exists.")
        return user

    def current_signer(self) -> Signer:
        """The logged-in user's Fabric signer (their wallet, opened for this session only)."""
        claims = get_jwt()
        wallet_key = _unb64(claims.get("wsk"))
        if wallet_key is None:
            raise WalletNotHeld("This session cannot sign: the user holds their own key, or logged in with a "
                                "method that does not unlock the wallet.")
        return self.service.signer_for_session(claims["sid"], wallet_key)

    # ------------------------------------------------------------------ callbacks

    def _register_callbacks(self) -> None:
        jwt = self.jwt
        service = self.service

        @jwt.token_in_blocklist_loader
        def _blocked(_header: dict, payload: dict) -> bool:
            try:
                service.sessions.check_claims(payload)
            except AuthError as err:
                setattr(g, _G_ERROR, err)
                return True
            return False

        @jwt.revoked_token_loader
        def _revoked(_header: dict, _payload: dict) -> Response:
            err = getattr(g, _G_ERROR, None) or TokenRevoked("This session has ended; please log in again.")
            return problem_response(err, base=self.problem_base)

        @jwt.expired_token_loader
        def _expired(_header: dict, _payload: dict) -> Response:
            return problem_response(TokenExpired("The token has expired."), base=self.problem_base)

        @jwt.invalid_token_loader
        def _invalid(reason: str) -> Response:
            return problem_response(TokenInvalid(f"The token is not valid: {reason}."), base=self.problem_base)

        @jwt.unauthorized_loader
        def _missing(reason: str) -> Response:
            return problem_response(AuthenticationRequired(f"Authentication required: {reason}."),
                                    base=self.problem_base)

        @jwt.needs_fresh_token_loader
        def _needs_fresh(_header: dict, _payload: dict) -> Response:
            err = AuthenticationRequired("This action needs a fresh login, not a refreshed token.")
            return problem_response(err, base=self.problem_base)

        @jwt.token_verification_failed_loader
        def _verification_failed(_header: dict, _payload: dict) -> Response:
            return problem_response(TokenInvalid("The token was refused."), base=self.problem_base)

        @jwt.user_lookup_loader
        def _lookup(_header: dict, payload: dict) -> AuthUser | None:
            return service.get_user(payload["sub"])

        @jwt.user_lookup_error_loader
        def _lookup_error(_header: dict, _payload: dict) -> Response:
            return problem_response(TokenRevoked("The user no longer exists."), base=self.problem_base)


def configure_flask(
    app: Flask,
    service: AuthService,
    *,
    token_location: tuple[str, ...] = ("headers",),
    register_error_handler: bool = True,
    problem_base: str = "/problems/",
) -> FlaskAuth:
    """Configure ``app`` for FlexPass JWT sessions; returns the :class:`FlaskAuth` to issue,
    refresh and revoke tokens. With ``register_error_handler``, any :class:`AuthError` raised in
    a view becomes a problem+json response."""
    cfg = service.config
    app.config["JWT_SECRET_KEY"] = cfg.jwt_secret
    app.config["JWT_ALGORITHM"] = "HS256"
    app.config["JWT_DECODE_ALGORITHMS"] = ["HS256"]
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = dt.timedelta(seconds=cfg.access_ttl)
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = dt.timedelta(seconds=cfg.refresh_ttl)
    app.config["JWT_ENCODE_ISSUER"] = app.config["JWT_DECODE_ISSUER"] = cfg.jwt_issuer
    app.config["JWT_ENCODE_AUDIENCE"] = app.config["JWT_DECODE_AUDIENCE"] = cfg.jwt_audience
    app.config["JWT_IDENTITY_CLAIM"] = "sub"
    app.config.setdefault("JWT_TOKEN_LOCATION", list(token_location))
    if "cookies" in app.config["JWT_TOKEN_LOCATION"]:
        app.config.setdefault("JWT_COOKIE_SECURE", True)
        app.config.setdefault("JWT_COOKIE_SAMESITE", "Strict")
        app.config.setdefault("JWT_COOKIE_CSRF_PROTECT", True)
    auth = FlaskAuth(app, service, problem_base=problem_base)
    app.extensions["serums-auth"] = auth
    if register_error_handler:
        app.register_error_handler(AuthError, lambda err: problem_response(err, base=problem_base))
    return auth


__all__ = ["PROBLEM_JSON", "FlaskAuth", "TokenPair", "configure_flask", "problem_response"]
