"""A clinician's pages (gp, specialist, nurse; insurers and researchers use the same request pages):
the patients I treat (from the chain's clinician → patient index), redeem a share code (step 3), request access (step 5) and read the chain's decision per section
(step 6) with the token (steps 7–8), open the released record with the withheld sections marked
(steps 9–10), break the glass, my requests and grants."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, render_template, request, session

from .. import flow
from .. import ledger as L
from .. import problems as P
from ..security import CLINICIANS, services
from ..vocab import MAX_GRANT_SECONDS, MAX_PAGE_SIZE
from .common import attempt, form_list, record_tables, status_of
from .session import actor

bp = Blueprint("web_clinician", __name__, url_prefix="/clinician")
RECENT = "patients"


def _remember(patient_id: str, hospital: str | None, via: str) -> None:
    """The patients this browser session dealt with (ids only), for the "my patients" list."""
    seen = [p for p in session.get(RECENT, []) if p["id"] != patient_id]
    session[RECENT] = [{"id": patient_id, "hospital": hospital or "", "via": via}, *seen][:20]


def _home(problem=None, status: int = 200):
    a = actor()
    page, p = attempt(lambda: _recent_trail(a, "grant"))
    live = [r["record"] for r in (page or {}).get("records", []) if r.get("record", {}).get("live")]
    treating, p2 = attempt(lambda: flow.my_patients(services(), a)) if a.role in CLINICIANS else (None, None)
    return render_template("web_clinician/home.html", patients=session.get(RECENT, []), live=live,
                           treating=(treating or {}).get("records", []), problem=problem or p or p2,
                           can_break_glass=a.role in CLINICIANS), status


#: How far back a clinician's own pages look: no grant lives longer than the chain's ceiling.
RECENT_DAYS = MAX_GRANT_SECONDS // 86400
#: At most this many entries are read for one page (pages of the chain's maximum size).
RECENT_LIMIT = 1000


def _recent_trail(a, kind: str) -> dict:
    """The clinician's own trail of the last :data:`RECENT_DAYS` days, newest first. The chain's
    index runs oldest first, so every page of the window is read (up to :data:`RECENT_LIMIT`
    entries, the newest kept): a first page alone would hide the recent grants of a busy clinician."""
    contract = a.contract(services(), "AuditContract")
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=RECENT_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    records: list = []
    bookmark, truncated = "", False
    while True:
        doc = L.evaluate(contract, "AuditByUser", a.user_id, kind, start, "", MAX_PAGE_SIZE, bookmark)
        records += doc.get("records", [])
        if len(records) > RECENT_LIMIT:
            records, truncated = records[-RECENT_LIMIT:], True
        bookmark = doc.get("bookmark") or ""
        if not bookmark or not doc.get("records"):
            break
    return {"records": records[::-1], "days": RECENT_DAYS, "truncated": truncated}


@bp.get("/")
def home():
    return _home()


@bp.post("/redeem")
def redeem():
    """Step 3: the patient's share code → their pseudonymous id; then the request form."""
    code = request.form.get("code", "").strip()
    found, problem = attempt(lambda: flow.redeem_share_code(services(), actor(), code, request.remote_addr))
    if problem is not None or found is None:
        return _home(problem, status_of(problem))
    patient_id, hospital = found
    _remember(patient_id, hospital, "share code")
    return _request_form(patient_id, hospital, notice="The share code was accepted. Now ask for what you need.")


def _request_form(patient_id: str, hospital: str | None, problem=None, notice=None, status: int = 200):
    return render_template("web_clinician/request.html", patient_id=patient_id, hospital=hospital, problem=problem,
                           notice=notice, form=request.form), status


@bp.get("/request")
def request_form():
    return _request_form(request.args.get("patient", ""), request.args.get("hospital") or None)


@bp.post("/request")
def request_access():
    """Steps 5–8: the chain's decision per section, with reasons and the transaction id."""
    return _decide(break_glass=False)


def _decide(break_glass: bool):
    a = actor()
    patient_id = request.form.get("patient_id", "").strip()
    hospital = request.form.get("hospital") or None
    sections = form_list("sections")
    if break_glass and request.form.get("understood") != "yes":
        problem = P.Problem(P.VALIDATION, "Tick the box to confirm that this is an emergency and that you "
                                          "understand the access is reported to the patient and reviewed.")
        return render_template("web_clinician/break_glass.html", patient_id=patient_id, problem=problem,
                               form=request.form), 422
    decision, problem = attempt(lambda: flow.request_access(
        services(), a, patient_id, hospital, sections=sections, purpose=request.form.get("purpose", "treatment"),
        justification=request.form.get("justification", "direct-care"),
        justification_text=request.form.get("justification_text") or None, break_glass=break_glass))
    if problem is not None or decision is None:
        if break_glass:
            return render_template("web_clinician/break_glass.html", patient_id=patient_id, problem=problem,
                                   form=request.form), status_of(problem)
        return _request_form(patient_id, hospital, problem, status=status_of(problem))
    _remember(patient_id, hospital, "break-glass" if break_glass else "request")
    return render_template("web_clinician/decision.html", d=decision)


@bp.get("/break-glass")
def break_glass_form():
    return render_template("web_clinician/break_glass.html", patient_id=request.args.get("patient", ""), form={})


@bp.post("/break-glass")
def break_glass():
    if actor().role not in CLINICIANS:
        abort(403, "Only clinicians (GP, specialist, nurse) may break the glass.")
    return _decide(break_glass=True)


def _record_page(run):
    data, problem = attempt(run)
    if problem is not None:
        return render_template("web_clinician/record.html", data=None, problem=problem, tables={}), status_of(problem)
    return render_template("web_clinician/record.html", data=data, tables=record_tables(data), problem=None)


@bp.post("/record")
def open_record():
    """Steps 9–10: present the token; only the granted sections come back, the rest withheld."""
    return _record_page(lambda: flow.fetch_record(services(), actor(), request.form.get("token", "")))


@bp.post("/grants/<grant_id>/open")
def open_grant(grant_id: str):
    """A fresh token for one of my live grants, presented at once."""
    a = actor()
    return _record_page(lambda: flow.fetch_record(services(), a, flow.mint_token(services(), a, grant_id)["token"]))


@bp.post("/grants/<grant_id>/relinquish")
def relinquish(grant_id: str):
    _, problem = attempt(lambda: flow.revoke_grant(services(), actor(), grant_id, "relinquished"))
    return _home(problem, status_of(problem) if problem else 200)


@bp.get("/requests")
def my_requests():
    a = actor()
    page, problem = attempt(lambda: _recent_trail(a, "decision"))
    return render_template("web_clinician/requests.html", page=page, problem=problem)


__all__ = ["bp"]
