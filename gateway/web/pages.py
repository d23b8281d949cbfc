"""Sign-in (username → textual key or picture grid → TOTP or recovery code), sign-out, the
front page. The same FlexPass calls as ``/auth/login`` and ``/auth/login/complete``."""

from __future__ import annotations

import base64

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from auth import LoginRequest

from .. import problems as P
from ..notifications import KINDS
from ..security import services
from . import session as S
from .common import attempt, install_filters, status_of

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/static/web")
install_filters(bp)

CHALLENGE = "challenge"
ENDED_APPROVALS = ("approval-denied", "approval-expired", "approval-not-found")


def _safe_next(target: str | None) -> str | None:
    """Only a path of this site (``/x``, never ``//host`` or a URL) is followed after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.get("/")
def index():
    actor = S.current()
    if actor is None:
        return redirect(url_for("web.sign_in"))
    return redirect(url_for(S.home_endpoint(actor.role)))


@bp.get("/sign-in")
def sign_in():
    ended = request.args.get("ended") == "1"
    return render_template("web/sign_in.html", next=_safe_next(request.args.get("next")), ended=ended)


@bp.post("/sign-in/key")
def key():
    """Step 1b: the key page for the chosen method — a text field, or the picture grid."""
    username = request.form.get("username", "").strip()
    method = request.form.get("method", "text")
    nxt = _safe_next(request.form.get("next"))
    if not username:
        return render_template("web/sign_in.html", next=nxt, error="Enter your username."), 400
    grid = services().auth.login_grid(username) if method == "graphical" else None
    return render_template("web/key.html", username=username, method="graphical" if grid else "text",
                           grid=grid, next=nxt)


@bp.post("/sign-in/verify")
def verify():
    """Step 1c: check the key; on success the second factor is asked for."""
    username = request.form.get("username", "").strip()
    method = request.form.get("method", "text")
    nxt = _safe_next(request.form.get("next"))
    req = LoginRequest(username, method, text_key=request.form.get("text_key") if method == "text" else None,
                       selection=request.form.getlist("selection") if method == "graphical" else None,
                       client_addr=request.remote_addr, attempt_id=request.form.get("attempt_id") or None)
    challenge, problem = attempt(lambda: services().auth.begin_login(req))
    if problem is not None or challenge is None:
        grid = services().auth.login_grid(username) if method == "graphical" else None
        return render_template("web/key.html", username=username, method=method, grid=grid, next=nxt,
                               problem=problem), status_of(problem)
    session[CHALLENGE] = {"token": challenge.token, "next": nxt, "username": username}
    return redirect(url_for("web.second_factor"))


@bp.route("/sign-in/second-factor", methods=["GET", "POST"])
def second_factor():
    pending = session.get(CHALLENGE)
    if not pending:
        return redirect(url_for("web.sign_in"))
    if request.method == "GET":
        return render_template("web/second_factor.html", username=pending["username"], push=pending.get("approval"))
    code = request.form.get("code", "").replace(" ", "")
    kind = request.form.get("kind", "totp")
    if kind == "push" and pending.get("approval"):
        factor = {"approval_id": pending["approval"]["id"]}
    else:
        factor = {"recovery_code": code} if kind == "recovery" else {"totp_code": code}
    result, problem = attempt(lambda: services().auth.complete_login(pending["token"], **factor))
    if problem is not None or result is None:
        if problem is not None and problem.type.slug in ENDED_APPROVALS:  # offer a new approval request
            pending.pop("approval", None)
            session[CHALLENGE] = pending
        return render_template("web/second_factor.html", username=pending["username"], problem=problem,
                               kind=kind, push=pending.get("approval")), status_of(problem)
    S.sign_in(result)
    return redirect(pending.get("next") or url_for(S.home_endpoint(result.user.role)))


@bp.post("/sign-in/push")
def push():
    """Ask this user's signed-in sessions to approve the login; this page shows the number to type there."""
    pending = session.get(CHALLENGE)
    if not pending:
        return redirect(url_for("web.sign_in"))
    req, problem = attempt(lambda: services().auth.request_approval(pending["token"]))
    if req is not None:
        pending["approval"] = {"id": req.approval_id, "match": req.match_code, "expires_at": req.expires_at}
        session[CHALLENGE] = pending
    return render_template("web/second_factor.html", username=pending["username"], problem=problem,
                           push=pending.get("approval")), status_of(problem) if problem else 200


@bp.route("/approvals", methods=["GET", "POST"])
@S.signed_in
def approvals():
    """Sign-ins of mine waiting for this session's approval: type the number the new device shows."""
    actor = S.current()
    auth = services().auth
    done, problem = None, None
    if request.method == "POST":
        approve = request.form.get("decision") == "approve"
        _, problem = attempt(lambda: auth.decide_approval(actor.session_id, request.form.get("approval_id", ""),
                                                         approve=approve, match_code=request.form.get("match_code")))
        if problem is None:
            done = "Approved: the other device is signing in." if approve else "Refused: that sign-in is stopped."
    pending = auth.pending_approvals(actor.session_id)
    return render_template("web/approvals.html", pending=pending, done=done, problem=problem), \
        status_of(problem) if problem else 200


@bp.post("/sign-out")
def sign_out():
    S.sign_out(everywhere=request.form.get("everywhere") == "1")
    return redirect(url_for("web.signed_out"))


@bp.get("/signed-out")
def signed_out():
    return render_template("web/signed_out.html")


# ----------------------------------------------------------------------------- notifications (everyone)


def notifications_store():
    return current_app.extensions["serums_notifications"]


@bp.app_context_processor
def _unread():
    """The unread count in every signed-in page's navigation."""
    actor = g.get("web_actor")
    return {"unread": notifications_store().unread_count(actor.user_id) if actor else 0}


def _notifications_page(done=None, problem=None, status: int = 200):
    actor = S.current()
    store = notifications_store()
    return render_template("web/notifications.html", notes=store.list(actor.user_id), kinds=KINDS,
                           chosen=store.kinds(actor.user_id), done=done, problem=problem), status


@bp.get("/notifications")
@S.signed_in
def notifications():
    return _notifications_page()


@bp.post("/notifications/read")
@S.signed_in
def mark_read():
    which = request.form.get("id", "")
    actor = S.current()
    store = notifications_store()
    n = store.mark_read(actor.user_id, int(which) if which.isdigit() else None)
    if request.headers.get("HX-Request") and which.isdigit():  # htmx: just this notification and the count
        note = next((x for x in store.list(actor.user_id) if x.id == int(which)), None)
        return render_template("web/_note.html", n=note, kinds=KINDS, unread=store.unread_count(actor.user_id),
                               oob=True)
    return _notifications_page(done=f"{n} marked as read.")


@bp.post("/notifications/kinds")
@S.signed_in
def choose_kinds():
    _, problem = attempt(lambda: notifications_store().set_kinds(S.current().user_id, request.form.getlist("kinds")))
    if problem is not None:
        return _notifications_page(problem=problem, status=status_of(problem))
    return _notifications_page(done="Saved: you will be told about the kinds you ticked.")


# ----------------------------------------------------------------------------- enrolment from an invitation


def secret_form(template: str, problem=None, status: int = 200, **values):
    """A page with the secret's fields (``web/_secret_fields.html``): the enrolment from an
    invitation, and the admin's enrolment desk."""
    cfg = services().auth.config
    return render_template(template, library=services().auth.image_library(), problem=problem,
                           min_images=cfg.graphical_min_images, max_images=cfg.graphical_max_images,
                           values=values), status


def chosen_secret() -> tuple[str, list[str]]:
    """The textual key (typed twice, the same) and the pictures the person chose on the form."""
    text_key = request.form.get("text_key", "")
    if text_key != request.form.get("text_key_again", ""):
        raise P.Problem(P.VALIDATION, "The two textual keys differ: type the same sentence twice.")
    return text_key, request.form.getlist("images")


def enrolled_page(reg, text_key: str, images: list[str], *, desk: bool = False):
    """The answer to an enrolment, shown once: the keys, the TOTP QR code, the recovery codes."""
    qr = "data:image/png;base64," + base64.b64encode(reg.totp.qr_png).decode()
    return render_template("web/enrolled.html", reg=reg, text_key=text_key, qr=qr, desk=desk,
                           images=[i for i in services().auth.image_library() if i.id in images])


@bp.get("/enrol")
def enrol():
    return secret_form("web/enrol.html", code=request.args.get("code", ""))


@bp.post("/enrol/strength")
def key_strength():
    """Live feedback on the textual key being typed (htmx); nothing is stored."""
    report = services().auth.assess_key(request.form.get("text_key", ""), username=request.form.get("username", ""),
                                        images=request.form.getlist("images"))
    return render_template("web/_strength.html", report=report,
                           explanation=report.explain(services().auth.config.min_key_length))


@bp.post("/enrol")
def enrol_submit():
    """Accept the invitation: the chosen textual key and pictures become the FlexPass secret; the
    TOTP set-up (QR code) and the recovery codes are shown once, on this answer only."""
    code = request.form.get("code", "").strip()
    images = request.form.getlist("images")
    secret, problem = attempt(chosen_secret)
    reg = None
    if secret is not None:
        reg, problem = attempt(lambda: services().accept_invitation(code, *secret))
    if problem is not None or reg is None or secret is None:
        return secret_form("web/enrol.html", problem, status_of(problem), code=code, images=images)
    return enrolled_page(reg, *secret)
