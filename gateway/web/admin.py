"""A hospital admin's pages: the hospital's users (suspend with a reason, reinstate, change role),
enrolment at the desk and invitations, treating relationships, and the hospital's generic access
rules (step 1) with their history. Every change is signed with the admin's key."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from .. import flow
from .. import ledger as L
from .. import problems as P
from .. import vocab as V
from ..security import services
from .common import attempt, form_list, status_of
from .pages import chosen_secret, enrolled_page, secret_form
from .session import actor

bp = Blueprint("web_admin", __name__, url_prefix="/hospital-admin")


def _users(problem=None, done=None, status: int = 200):
    a = actor()
    svc = services()
    page, p = attempt(lambda: L.evaluate(a.contract(svc, "UserContract"), "ListUsers", a.msp, 200, ""))
    users = []
    for doc in (page or {}).get("records", []):
        entry = svc.auth.get_user(doc["id"])
        users.append({**doc, "username": entry.username if entry else ""})
    return render_template("web_admin/users.html", users=users, problem=problem or p, done=done), status


@bp.get("/")
@bp.get("/users")
def users():
    return _users()


@bp.post("/users/<user_id>/suspend")
def suspend(user_id: str):
    reason = request.form.get("reason", "administrative")
    _, problem = attempt(lambda: flow.suspend_user(services(), actor(), user_id, reason))
    if problem is not None:
        return _users(problem, status=status_of(problem))
    return _users(done="Suspended: their sessions ended and every request of theirs is now refused.")


@bp.post("/users/<user_id>/role")
def change_role(user_id: str):
    role = request.form.get("role", "")
    changed, problem = attempt(lambda: flow.change_role(services(), actor(), user_id, role))
    if problem is not None or changed is None:
        return _users(problem, status=status_of(problem))
    label = V.ROLE_LABELS.get(role, role)
    return _users(done=f"{changed[1].username} is now {P.article(label)} {label}, recorded on the ledger; their sessions "
                       "ended and they sign in again.")


@bp.post("/users/<user_id>/reinstate")
def reinstate(user_id: str):
    _, problem = attempt(lambda: flow.reinstate_user(services(), actor(), user_id))
    if problem is not None:
        return _users(problem, status=status_of(problem))
    return _users(done="Reinstated.")


def _rules(problem=None, done=None, status: int = 200):
    a = actor()
    svc = services()
    policy, p1 = attempt(lambda: L.evaluate(a.contract(svc, "PolicyContract"), "GetPolicy", a.msp))
    history, p2 = attempt(lambda: L.evaluate(a.contract(svc, "PolicyContract"), "PolicyHistory", a.msp))
    return render_template("web_admin/rules.html", policy=policy or {}, history=list(reversed(history or [])),
                           problem=problem or p1 or p2, done=done), status


@bp.get("/rules")
def rules():
    return _rules()


@bp.post("/rules")
def put_rule():
    form = request.form
    rule: dict = {"effect": form.get("effect", "allow"), "roles": form_list("roles"), "sections": form_list("sections"),
                  "purposes": form_list("purposes"), "same_hospital": form.get("same_hospital") == "1",
                  "treating_required": form.get("treating_required") == "1",
                  "consent_required": form.get("consent_required") == "1"}
    if form.get("rule_id", "").strip():
        rule["rule_id"] = form["rule_id"].strip()
    hours = form.get("max_hours", "").strip()
    if hours:
        if not hours.isdigit() or not 1 <= int(hours) <= V.MAX_GRANT_SECONDS // 3600:
            return _rules(P.Problem(P.VALIDATION, "longest grant: a whole number of hours, at least 1"), status=422)
        rule["max_grant_seconds"] = int(hours) * 3600
    tx, problem = attempt(lambda: L.submit(actor().contract(services(), "PolicyContract"), "PutRule", rule))
    if problem is not None:
        return _rules(problem, status=status_of(problem))
    return _rules(done=f"Published in transaction {tx.transaction_id[:16]}…")


@bp.post("/rules/<rule_id>/remove")
def remove_rule(rule_id: str):
    tx, problem = attempt(lambda: L.submit(actor().contract(services(), "PolicyContract"), "RemoveRule", rule_id))
    if problem is not None:
        return _rules(problem, status=status_of(problem))
    return _rules(done=f"Removed in transaction {tx.transaction_id[:16]}…")


# ----------------------------------------------------------------------------- invitations


@bp.get("/invitations")
def invitations():
    return render_template("web_admin/invitations.html", invitation=None, problem=None, form={})


def _newcomer() -> dict:
    """Who is being enrolled or invited, from the form: username, role, a patient's vault reference
    (found by their CHI) and treating relationships (existing users named by username)."""
    a = actor()
    svc = services()
    form = request.form
    chi = form.get("chi", "").strip()
    treating = []
    for name in filter(None, (n.strip() for n in form.get("treating", "").split(","))):
        user = svc.auth.find_user(name)
        if user is None:
            raise P.Problem(P.NOT_FOUND, f"treating: nobody is called {name!r}")
        treating.append(user.user_id)
    return {"username": form.get("username", "").strip(), "role": form.get("role", ""),
            "user_id": svc.vault(a.hospital).find_patient(chi) if chi else None, "treating": treating}


@bp.post("/invitations")
def invite():
    """An invitation code for a new user of this hospital, who enrols with it later (``/enrol``)."""
    a = actor()
    hours = request.form.get("hours", "72")
    invitation, problem = attempt(lambda: services().invite(
        a.hospital, **_newcomer(), ttl=3600.0 * (int(hours) if hours.isdigit() else 72)))
    return render_template("web_admin/invitations.html", invitation=invitation, problem=problem,
                           form=request.form), status_of(problem) if problem else 200


# ----------------------------------------------------------------------------- enrolment at the desk


@bp.get("/desk")
def desk():
    return secret_form("web_admin/desk.html")


@bp.post("/desk")
def enrol_at_desk():
    """Enrol a person who is here, in person: the admin fills in who they are; they type their own
    textual key and pick their pictures on this screen; the registration on chain is signed by the
    admin; the TOTP set-up and recovery codes are then shown once, for them to keep."""
    a = actor()
    svc = services()
    form = request.form

    def run():
        text_key, images = chosen_secret()
        who = _newcomer()
        reg = svc.enrol(svc.user_identity(a.user_id, a.role), a.signer(), a.hospital, who.pop("username"),
                        who.pop("role"), text_key, images, **who)
        return reg, text_key, images

    done, problem = attempt(run)
    if problem is not None or done is None:
        return secret_form("web_admin/desk.html", problem, status_of(problem), **{
            k: form.get(k, "") for k in ("username", "role", "chi", "treating")}, images=form.getlist("images"))
    return enrolled_page(*done, desk=True)


# ----------------------------------------------------------------------------- treating relationships


def _patient_id(value: str) -> str:
    """A patient by CHI (found in our vault) or by their pseudonymous id."""
    value = value.strip()
    if services().auth.get_user(value) is not None:
        return value
    return services().vault(actor().hospital).find_patient(value)


def _treatments(patient: str = "", problem=None, done=None, status: int = 200):
    records = []
    if patient and problem is None:
        records, problem = attempt(lambda: L.evaluate(actor().contract(services(), "UserContract"), "ListTreatments",
                                                      _patient_id(patient)))
    return render_template("web_admin/treatments.html", patient=patient, records=records or [], problem=problem,
                           done=done), status if problem is None else status_of(problem)


@bp.get("/treatments")
def treatments():
    return _treatments(request.args.get("patient", ""))


@bp.post("/treatments")
def add_treatment():
    form = request.form

    def run():
        clinician = services().auth.find_user(form.get("clinician", "").strip())
        if clinician is None:
            raise P.Problem(P.NOT_FOUND, f"nobody is called {form.get('clinician', '')!r}")
        return L.submit(actor().contract(services(), "UserContract"), "AddTreatment",
                        _patient_id(form.get("patient", "")), clinician.user_id, "", "")

    tx, problem = attempt(run)
    return _treatments(form.get("patient", ""), problem,
                       None if problem else f"Recorded in transaction {tx.transaction_id[:16]}…")


@bp.post("/treatments/end")
def end_treatment():
    form = request.form
    tx, problem = attempt(lambda: L.submit(actor().contract(services(), "UserContract"), "EndTreatment",
                                           _patient_id(form.get("patient", "")), form.get("clinician_id", "")))
    return _treatments(form.get("patient", ""), problem,
                       None if problem else "Ended: the clinician's grants that rested on it were revoked.")
