"""A hospital admin's pages: the hospital's users (suspend with a reason, reinstate) and its
generic access rules (step 1) with their history. Every change is signed with the admin's key."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from .. import flow
from .. import ledger as L
from .. import problems as P
from .. import vocab as V
from ..security import services
from .common import attempt, form_list, status_of
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


@bp.post("/invitations")
def invite():
    """An invitation code for a new user of this hospital (a patient is found in our vault by their
    CHI; treating relationships name existing users by username)."""
    a = actor()
    svc = services()
    form = request.form

    def run():
        chi = form.get("chi", "").strip()
        user_id = svc.vault(a.hospital).find_patient(chi) if chi else None
        treating = []
        for name in filter(None, (n.strip() for n in form.get("treating", "").split(","))):
            user = svc.auth.find_user(name)
            if user is None:
                raise P.Problem(P.NOT_FOUND, f"treating: nobody is called {name!r}")
            treating.append(user.user_id)
        hours = form.get("hours", "72")
        return svc.invite(a.hospital, form.get("username", "").strip(), form.get("role", ""), user_id=user_id,
                          treating=treating, ttl=3600.0 * (int(hours) if hours.isdigit() else 72))

    invitation, problem = attempt(run)
    return render_template("web_admin/invitations.html", invitation=invitation, problem=problem,
                           form=form), status_of(problem) if problem else 200


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
