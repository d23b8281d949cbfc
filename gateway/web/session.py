"""The web pages' sign-in state: one signed cookie bound to an auth service session.

The cookie (Flask's signed session, ``serums_web``) holds the auth session id, the pseudonymous
user id and role, the wallet session key and when it was last used — never a secret the user
typed. It is HttpOnly, SameSite=Strict, and Secure whenever the request came over TLS (or
``SESSION_COOKIE_SECURE`` says so always). Every page request checks the auth service's session
row (logout, revocation, maximum age, suspension on chain) exactly as the API's tokens are
checked, plus an idle timeout (the API's refresh lifetime): an ended session sends the browser
back to the sign-in page with the reason.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, abort, g, has_request_context, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

import auth

from .. import problems as P
from ..flow import Actor
from ..security import services

KEY = "u"
#: which pages each role may open (a blueprint name → roles)
AREAS = {
    "web_patient": ("patient",),
    "web_clinician": ("gp", "specialist", "nurse", "insurer", "researcher"),
    "web_oncology": ("gp", "specialist", "nurse"),
    "web_auditor": ("auditor",),
    "web_admin": ("hospital_admin",),
    "web_researcher": ("researcher",),
    "web_studio": ("researcher", "hospital_admin"),  # the fabrication studio (gateway.studio.STUDIO_ROLES)
}
HOME = {"patient": "web_patient.home", "auditor": "web_auditor.trail", "hospital_admin": "web_admin.users",
        "researcher": "web_researcher.home"}


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, Secure over TLS even when the app is also served in clear."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or (has_request_context() and request.is_secure)


def home_endpoint(role: str) -> str:
    return HOME.get(role, "web_clinician.home")


def sign_in(result: auth.LoginResult) -> None:
    """Bind the browser to a completed login (a fresh cookie: no fixation of an earlier one)."""
    session.clear()
    wsk = result.wallet_session_key
    session[KEY] = {
        "sid": result.session_id, "sub": result.user.user_id, "role": result.user.role,
        "hospital": result.user.hospital, "msp": result.user.msp_id, "name": result.user.username,
        "wsk": base64.b64encode(wsk).decode() if wsk else None, "seen": services().auth.clock(),
        "own_key": result.user.key_custody != "wallet",
    }
    session.permanent = False


def sign_out(everywhere: bool = False) -> None:
    """End this session (or every session of the user) in the auth service, and forget the cookie."""
    data = session.get(KEY)
    session.clear()
    if not data:
        return
    svc = services().auth
    if everywhere:
        svc.revoke_sessions(data["sub"])
    else:
        svc.logout(data["sid"])


def _signer_of(data: dict[str, Any]) -> Callable:
    """The session's signer, opened once per request (an actor lives for one request) when first needed."""
    opened: list = []

    def signer():
        if not data.get("wsk"):
            raise auth.WalletNotHeld("This session cannot sign: you hold your own key.")
        if not opened:
            opened.append(services().auth.signer_for_session(data["sid"], base64.b64decode(data["wsk"])))
        return opened[0]

    return signer


def current() -> Actor | None:
    """The signed-in user of this request, checked against the auth service; None when signed out
    (``g.session_ended`` then says why, if a session had been there)."""
    if "web_actor" in g:
        return g.web_actor
    data = session.get(KEY)
    actor = None
    if data:
        svc = services().auth
        now = svc.clock()
        try:
            if now - float(data.get("seen", 0)) > svc.config.refresh_ttl:
                raise auth.TokenExpired("You were away too long.")
            svc.sessions.check_claims({"sid": data["sid"], "sub": data["sub"], "exp": now + 1})
        except auth.AuthError as exc:
            g.session_ended = exc.detail
            session.clear()
        else:
            data["seen"] = now
            session.modified = True
            actor = Actor(data["sub"], data["role"], data["hospital"], data["msp"], data["sid"], _signer_of(data))
            g.web_name = data.get("name", "")
    g.web_actor = actor
    return actor


def sign_in_redirect():
    reason = getattr(g, "session_ended", None)
    args = {"next": request.path} if request.method == "GET" else {}
    if reason:
        args["ended"] = "1"
    return redirect(url_for("web.sign_in", **args))


def guard_area(blueprint: str):
    """A ``before_request`` for a role's blueprint: sign in first; other roles get 403."""

    def check():
        actor = current()
        if actor is None:
            return sign_in_redirect()
        if actor.role not in AREAS[blueprint]:
            abort(403, f"These pages are for {' or '.join(AREAS[blueprint])} users; you are signed in as "
                       f"{P.article(actor.role)} {actor.role.replace('_', ' ')}.")
        return None

    return check


def holds_own_key(a: Actor) -> bool:
    """Whether the signed-in user holds their own key (custody ``exported``: the server cannot sign
    for them; their browser does), as recorded when they signed in."""
    data = session.get(KEY) or {}
    if "own_key" in data:
        return bool(data["own_key"])
    me = services().auth.get_user(a.user_id)
    return bool(me and me.key_custody != "wallet")


def actor() -> Actor:
    a = current()
    assert a is not None, "guarded by guard_area"
    return a


def signed_in(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        if current() is None:
            return sign_in_redirect()
        return view(*args, **kwargs)

    return wrapper
