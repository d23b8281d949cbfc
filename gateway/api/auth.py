"""``/auth``: FlexPass enrolment by invitation, login (textual or graphical key, then a second
factor), push approvals, token refresh, logout and who-am-I."""

from __future__ import annotations

import base64

from flask import Response, request, url_for
from flask_jwt_extended import get_jwt, jwt_required
from flask_smorest import Blueprint

from auth import LoginRequest
from auth.images import render_png

from .. import problems as P
from .. import schemas as S
from ..security import flask_auth, login_required, principal, services
from .common import when

bp = Blueprint("auth", __name__, url_prefix="/auth", description="Enrolment, login, second factors, sessions")


def _tokens(pair) -> dict:
    """An access/refresh token pair as the API answers it (expiry times in ISO 8601)."""
    return {**pair.to_json(), "access_expires_at": when(pair.access_expires_at),
            "refresh_expires_at": when(pair.refresh_expires_at)}


def _image(i) -> dict:
    return {"id": i.id, "label": i.label, "theme": i.theme, "url": url_for("auth.image_png", image_id=i.id)}


def registration_json(reg) -> dict:
    return {
        "user_id": reg.user.user_id, "username": reg.user.username, "role": reg.user.role,
        "hospital": reg.user.hospital, "certificate_pem": reg.certificate_pem.decode(),
        "totp_secret": reg.totp.secret, "totp_uri": reg.totp.uri,
        "totp_qr_png": base64.b64encode(reg.totp.qr_png).decode(), "recovery_codes": list(reg.recovery_codes),
        "exported_key_pem": reg.exported_key_pem.decode() if reg.exported_key_pem else None,
    }


@bp.route("/images", methods=["GET"])
@bp.response(200, S.ImagesOut)
def images():
    """The picture library a graphical key is chosen from (at enrolment)."""
    cfg = services().auth.config
    return {"images": [_image(i) for i in services().auth.image_library()],
            "min_images": cfg.graphical_min_images, "max_images": cfg.graphical_max_images}


@bp.route("/images/<string:image_id>.png", methods=["GET"])
@bp.response(200, content_type="image/png", description="The picture as a PNG (128×128)")
@bp.alt_response(404, schema=S.ProblemSchema, description="No such picture")
def image_png(image_id: str):
    """One picture of the library."""
    try:
        data = render_png(image_id)
    except KeyError:
        raise P.Problem(P.NOT_FOUND, f"no picture {image_id!r} in the library") from None
    resp = Response(data, mimetype="image/png")
    resp.headers["Cache-Control"] = "public, max-age=86400"
    return resp


@bp.route("/key-strength", methods=["POST"])
@bp.arguments(S.KeyStrengthIn)
@bp.response(200, S.StrengthOut)
def key_strength(body):
    """Live feedback on a candidate textual key (nothing is stored)."""
    svc = services().auth
    report = svc.assess_key(body["text_key"], username=body["username"], hospital=body["hospital"],
                            role=body["role"], images=body["images"])
    return {**report.__dict__, "explanation": report.explain(svc.config.min_key_length)}


@bp.route("/register", methods=["POST"])
@bp.arguments(S.RegisterIn)
@bp.response(201, S.RegistrationOut)
def register(body):
    """Accept an invitation: choose the secret (textual key + pictures); get the TOTP provisioning
    (secret, otpauth URI, QR code) and the recovery codes — shown once."""
    pem = body.get("public_key_pem")
    reg = services().accept_invitation(body["invitation_code"], body["text_key"], body["images"],
                                       custody=body["custody"], public_key_pem=pem.encode() if pem else None)
    return registration_json(reg)


@bp.route("/login/grid", methods=["GET"])
@bp.arguments(S.GridQuery, location="query")
@bp.response(200, S.GridOut)
def login_grid(query):
    """The user's 36 pictures, freshly shuffled, for a graphical login (unknown usernames get a
    stable decoy grid)."""
    grid = services().auth.login_grid(query["username"])
    return {"images": [_image(i) for i in grid.images], "attempt_id": grid.attempt_id}


@bp.route("/login", methods=["POST"])
@bp.arguments(S.LoginIn)
@bp.response(200, S.ChallengeOut)
def login(body):
    """Step one: username and the textual key or the selected pictures. Answers a challenge to
    complete with a second factor."""
    ch = services().auth.begin_login(LoginRequest(
        body["username"], body["method"], text_key=body.get("text_key"), selection=body.get("selection"),
        client_addr=request.remote_addr, attempt_id=body.get("attempt_id")))
    return {"challenge": ch.token, "method": ch.method, "factors": list(ch.factors), "expires_at": when(ch.expires_at)}


@bp.route("/login/complete", methods=["POST"])
@bp.arguments(S.LoginCompleteIn)
@bp.response(200, S.TokensOut)
def login_complete(body):
    """Step two: a TOTP code, a recovery code, or the id of a push approval (202 while it is pending)."""
    result = services().auth.complete_login(body["challenge"], totp_code=body.get("totp_code"),
                                            recovery_code=body.get("recovery_code"),
                                            approval_id=body.get("approval_id"))
    pair = flask_auth().issue_tokens(result)
    return {**_tokens(pair), "user_id": result.user.user_id, "role": result.user.role,
            "hospital": result.user.hospital}


@bp.route("/login/push", methods=["POST"])
@bp.arguments(S.PushIn)
@bp.response(201, S.PushOut)
def login_push(body):
    """Ask the user's other logged-in sessions to approve this login; show ``match_code`` here."""
    push = services().auth.request_approval(body["challenge"])
    return {"approval_id": push.approval_id, "match_code": push.match_code, "expires_at": when(push.expires_at)}


@bp.route("/approvals", methods=["GET"])
@login_required
@bp.response(200, S.ApprovalsOut)
def approvals():
    """Logins of this user waiting for an approval from this session."""
    pending = services().auth.pending_approvals(principal().session_id)
    return {"approvals": [{"approval_id": a.approval_id, "created_at": when(a.created_at),
                           "expires_at": when(a.expires_at), "client_addr": a.client_addr, "method": a.method}
                          for a in pending]}


@bp.route("/approvals/<string:approval_id>", methods=["POST"])
@login_required
@bp.arguments(S.ApprovalDecisionIn)
@bp.response(204)
def decide_approval(body, approval_id: str):
    """Approve (typing the number the new device shows) or deny a pending login."""
    services().auth.decide_approval(principal().session_id, approval_id, approve=body["approve"],
                                    match_code=body.get("match_code"))


@bp.route("/refresh", methods=["POST"])
@jwt_required(refresh=True)
@bp.doc(security=[{"bearerAuth": []}], description="Present the refresh token as the bearer token.")
@bp.response(200, S.TokensOut)
def refresh():
    """Rotate the refresh token (a rotated token presented again ends the whole session)."""
    pair = flask_auth().refresh()
    claims = get_jwt()
    user = services().auth.get_user(claims["sub"])
    return {**_tokens(pair), "user_id": claims["sub"], "role": user.role if user else None,
            "hospital": user.hospital if user else None}


@bp.route("/logout", methods=["POST"])
@jwt_required(verify_type=False)
@bp.doc(security=[{"bearerAuth": []}])
@bp.response(204)
def logout():
    """End the session: every token of it stops working at once."""
    flask_auth().logout()


@bp.route("/me", methods=["GET"])
@login_required
@bp.response(200, S.MeOut)
def me():
    """The logged-in user, their session, and how the chain records them."""
    p = principal()
    svc = services()
    user = svc.auth.get_user(p.user_id)
    if user is None:
        raise P.Problem(P.UNAUTHORIZED, "the user no longer exists")
    claims = get_jwt()
    try:
        chain = svc.chain_user(p.user_id)
    except Exception:  # noqa: BLE001 - the directory view is still useful when the ledger is away
        chain = None
    return {"user_id": user.user_id, "username": user.username, "role": user.role, "hospital": user.hospital,
            "msp": user.msp_id, "status": user.status, "key_custody": user.key_custody, "session_id": p.session_id,
            "second_factor": claims.get("mfa"), "login_method": claims.get("fp"), "chain": chain}
