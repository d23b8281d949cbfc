"""The web pages people use: server-rendered Jinja templates, a small stylesheet and a vendored
htmx, all served by the gateway itself (no CDN, no JavaScript build). One blueprint per kind of
user, on top of the same application layer (:mod:`gateway.flow`) as the JSON API:

==================  ===================================================================
``/``, ``/sign-in``  sign-in (textual key or picture grid, then TOTP), sign-out
``/patient``         record by section (+FHIR), preferences and history, share code,
                     who saw what, grants with revoke
``/clinician``       redeem a share code, request access, the chain's decision, the
                     released record with withheld sections, break-glass, my grants
``/clinician/        the oncologist's dashboard: a granted patient's treatment, toxicity,
oncology``           comorbidities and admissions as SVG charts, the released predictor's risk
``/auditor``         the trail (filters, pages, CSV), break-glass reviews, ledger check
``/hospital-admin``  users (suspend, reinstate), generic rules and their history
``/studio``          the fabrication studio (researchers, hospital admins): data projects,
                     the rule editor (form and text in sync), samples, runs and their report
==================  ===================================================================

Security: the sign-in cookie of :mod:`gateway.web.session`; CSRF tokens (flask-wtf) on every
state-changing form; a Content-Security-Policy without inline script or style and with
``frame-ancestors 'none'``. Errors are the API's :class:`~gateway.problems.Problem` values,
shown inline with the same words.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, make_response, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from .. import problems as P
from ..errors import problem_of
from ..notifications import NotificationStore
from . import admin, auditor, clinician, oncology, pages, patient, researcher, studio
from .session import AREAS, CookieSessions, guard_area

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
BLUEPRINTS = (pages.bp, patient.bp, clinician.bp, oncology.bp, auditor.bp, admin.bp, researcher.bp, studio.bp)
CSRF_REFUSED = P.problem_type(
    "csrf-refused", 400, "Form refused",
    "The form was not sent by a page of this site, or it is too old. Go back, reload the page and try again.",
)

csrf = CSRFProtect()


def register_web(app: Flask) -> None:
    """Mount the pages on an app that already carries the API (:func:`gateway.api.register_api`)."""
    if not app.secret_key:
        # the cookie-signing key derives from the JWT secret (one server secret, two purposes)
        jwt_secret = app.extensions["serums_services"].auth.config.jwt_secret
        app.secret_key = hmac.new(jwt_secret, b"serums web session cookie", hashlib.sha256).digest()
    app.session_interface = CookieSessions()
    if app.config.get("SESSION_COOKIE_NAME") in (None, "session"):  # Flask's default name says nothing
        app.config["SESSION_COOKIE_NAME"] = "serums_web"
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the session
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # the JSON API uses bearer tokens: forms only
    csrf.init_app(app)
    store = NotificationStore(app.extensions["serums_services"].auth.engine)
    store.create_tables()
    app.extensions["serums_notifications"] = store
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.register_error_handler(CSRFError, _error_page)


def _protect_forms():
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


def _headers(resp):
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _error_page(exc: BaseException):
    if isinstance(exc, CSRFError):
        problem = P.Problem(CSRF_REFUSED)
    elif isinstance(exc, HTTPException) and exc.code == 413:  # an upload over MAX_CONTENT_LENGTH
        limit = request.max_content_length or 0
        problem = P.Problem(P.PAYLOAD_TOO_LARGE, f"what you sent is larger than the {limit / 2**20:g} MiB a form "
                                                 "accepts; send a smaller file (for a table: a sample of its rows)")
    elif isinstance(exc, HTTPException):
        pt = {403: P.FORBIDDEN, 404: P.NOT_FOUND, 405: P.METHOD_NOT_ALLOWED}.get(exc.code or 400, P.BAD_REQUEST)
        problem = P.Problem(pt, exc.description if exc.code in (403, 404) else "", status=exc.code)
    else:
        problem = problem_of(exc)
    if request.is_json:  # a program, not a browser form: the API's rendering of the same problem
        return problem.response()
    status = problem.status or problem.type.status
    return _headers(make_response(render_template("error.html", problem=problem), status))


for _bp in BLUEPRINTS:  # once, at import: a blueprint cannot change once an app registered it
    _bp.before_request(_protect_forms)
    if _bp.name in AREAS:
        _bp.before_request(guard_area(_bp.name))
    _bp.after_request(_headers)
    _bp.register_error_handler(Exception, _error_page)


__all__ = ["BLUEPRINTS", "CSP", "CSRF_REFUSED", "register_web"]
