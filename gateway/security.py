"""Who is calling: the access token's claims, role checks on every endpoint, the caller's ledger identity.

``@roles_required("patient")`` (or ``@login_required``) goes right under ``@bp.route``: the token
is verified first (401 problems from auth), then its ``role`` claim (403 ``forbidden``), before the
request body is even parsed. The chain checks again with the caller's certificate: the gateway's
check is the early, clear refusal, the chain's is the one that cannot be bypassed.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import current_app, g
from flask_jwt_extended import get_jwt, verify_jwt_in_request
from flask_smorest.utils import deepupdate

from network import Contract, Signer

from . import problems as P

PERSON_ROLES = ("patient", "gp", "specialist", "nurse", "insurer", "researcher", "auditor", "hospital_admin")
CLINICIANS = ("gp", "specialist", "nurse")
REQUESTERS = ("gp", "specialist", "nurse", "insurer", "researcher")

SECURITY_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "The access token from POST /auth/login/complete (or /auth/refresh)."}


def _problem_ref(description: str) -> dict:
    return {"description": description,
            "content": {P.PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


@dataclass(frozen=True)
class Principal:
    """The caller: pseudonymous user id, role, hospital (name) and MSP, from the access token."""

    user_id: str
    role: str
    hospital: str
    msp: str
    session_id: str


def _principal_from(c: dict) -> Principal:
    return Principal(c["sub"], c.get("role", ""), c.get("hospital", ""), c.get("msp", ""), c.get("sid", ""))


def principal() -> Principal:
    """The caller (the token is verified once per request: by the role check, or here)."""
    p = getattr(g, "serums_principal", None)
    if p is None:
        try:
            claims = get_jwt()
        except RuntimeError:  # not verified yet in this request
            verify_jwt_in_request()
            claims = get_jwt()
        p = _principal_from(claims)
        g.serums_principal = p
    return p


def services():
    return current_app.extensions["serums_services"]


def flask_auth():
    return current_app.extensions["serums-auth"]


def signer() -> Signer:
    """The caller's Fabric signer: their wallet, opened for this session only."""
    s = getattr(g, "serums_signer", None)
    if s is None:
        s = flask_auth().current_signer()
        g.serums_signer = s
    return s


def my_contract(contract_name: str) -> Contract:
    """A contract of the ``serums`` chaincode as the caller (their certificate and signer)."""
    p = principal()
    return services().user_contract(p.user_id, signer(), contract_name, p.role)


def actor():
    """The caller as the application layer's :class:`gateway.flow.Actor` (signs with their session's wallet)."""
    from .flow import Actor

    p = principal()
    return Actor(p.user_id, p.role, p.hospital, p.msp, p.session_id, signer)


def roles_required(*roles: str) -> Callable:
    """Require a valid access token whose ``role`` claim is one of ``roles`` (any role when empty)."""

    def decorator(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any):
            verify_jwt_in_request()
            claims = get_jwt()
            if claims.get("type") != "access":
                raise P.Problem(P.UNAUTHORIZED, "an access token is required (not a refresh token)")
            role = claims.get("role")
            if roles and role not in roles:
                raise P.Problem(P.FORBIDDEN, f"this endpoint is for {', '.join(roles)} users; you are logged in as "
                                             f"{P.article(role or '')} {role}")
            g.serums_principal = _principal_from(claims)
            return fn(*args, **kwargs)

        wrapper._apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))  # type: ignore[attr-defined]
        wrapper._apidoc["manual_doc"] = deepupdate(  # type: ignore[attr-defined]
            deepcopy(wrapper._apidoc.get("manual_doc", {})),  # type: ignore[attr-defined]
            {"security": [{"bearerAuth": []}],
             "responses": {"401": _problem_ref("Not logged in, or the session ended"),
                           "403": _problem_ref(f"Not allowed for this role (allowed: {', '.join(roles) or 'any'})")}},
        )
        return wrapper

    return decorator


login_required = roles_required()

__all__ = ["CLINICIANS", "PERSON_ROLES", "REQUESTERS", "SECURITY_SCHEME", "Principal", "actor", "flask_auth",
           "login_required",
           "my_contract", "principal", "roles_required", "services", "signer"]
