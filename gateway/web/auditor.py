"""An auditor's pages: the trail (patient, user, kind, time range; page by page; CSV), the
break-glass review queue (justified / unjustified — which revokes), ledger verification."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from flask import Blueprint, Response, render_template, request

from .. import flow
from .. import ledger as L
from .. import problems as P
from .. import vocab as V
from ..security import services
from .common import attempt, status_of
from .patient import bookmark_arg
from .session import actor

bp = Blueprint("web_auditor", __name__, url_prefix="/auditor")
CSV_LIMIT = 5000


def _query() -> dict:
    """The trail's filters from the query string (a username is looked up; dates are UTC days)."""
    args = request.args
    kind = args.get("kind", "decision")
    q: dict = {"kind": kind if kind in V.AUDIT_KINDS else "decision"}
    if args.get("patient", "").strip():
        q["patient"] = args["patient"].strip()
    if args.get("user", "").strip():
        name = args["user"].strip()
        user = services().auth.find_user(name)
        q["user"] = user.user_id if user else name
    for k in ("start", "end"):
        raw = args.get(k, "").strip()
        if raw:
            try:
                q[k] = dt.datetime.fromisoformat(raw).replace(tzinfo=dt.UTC)
            except ValueError:
                raise P.Problem(P.VALIDATION, f"{k}: not a date (YYYY-MM-DD)") from None
    if "patient" in q and "user" in q:
        raise P.Problem(P.VALIDATION, "filter by a patient or by a user, not both")
    return q


def _filters() -> str:
    keep = {k: v for k, v in request.args.items() if k in ("patient", "user", "kind", "start", "end") and v}
    return urlencode(keep)


@bp.get("/")
@bp.get("/trail")
def trail():
    a = actor()
    page, problem = attempt(lambda: L.page(flow.audit_page(services(), a, _query(), 50, bookmark_arg())))
    return render_template("web_auditor/trail.html", page=page, problem=problem, args=request.args,
                           filters=_filters()), status_of(problem) if problem else 200


@bp.get("/trail.csv")
def trail_csv():
    a = actor()
    query = _query()
    items: list[dict] = []
    bookmark = ""
    while len(items) < CSV_LIMIT:
        page = flow.audit_page(services(), a, query, 200, bookmark)
        items.extend(page["records"])
        bookmark = page.get("bookmark") or ""
        if not bookmark:
            break
    return Response(flow.trail_csv(items), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="serums-{query["kind"]}.csv"'})


def _reviews(problem=None, done=None, status: int = 200):
    a = actor()
    page, p = attempt(lambda: flow.audit_page(services(), a, {"kind": "break-glass"}, 200, ""))
    items = [r["record"] for r in (page or {}).get("records", [])]
    pending = [r for r in items if not r.get("review")]
    reviewed = [r for r in items if r.get("review")]
    return render_template("web_auditor/reviews.html", pending=pending, reviewed=reviewed, problem=problem or p,
                           done=done), status


@bp.get("/break-glass")
def reviews():
    return _reviews()


@bp.post("/break-glass/<grant_id>/review")
def review(grant_id: str):
    outcome = request.form.get("outcome", "")
    tx, problem = attempt(lambda: L.submit(actor().contract(services(), "TransportContract"), "ReviewBreakGlass",
                                           grant_id, outcome))
    if problem is not None:
        return _reviews(problem, status=status_of(problem))
    revoked = " The grant was revoked: its tokens no longer work." if tx.result.get("status") == "revoked" else ""
    return _reviews(done=f"Recorded as {outcome} in transaction {tx.transaction_id[:16]}….{revoked}")


@bp.route("/ledger", methods=["GET", "POST"])
def ledger():
    """Run the verification of every peer's chain (POST), or show the page (GET)."""
    report, problem = None, None
    if request.method == "POST":
        report, problem = attempt(lambda: services().verify_ledger())
    return render_template("web_auditor/ledger.html", report=report, problem=problem,
                           checked_at=dt.datetime.now(dt.UTC).isoformat())


@bp.get("/blocks")
def blocks():
    """The block explorer: blocks newest first, each transaction with its creator, function,
    endorsers, validation code and event."""
    before = request.args.get("before", "")
    page, problem = attempt(lambda: flow.recent_blocks(services(), actor(), 10,
                                                       int(before) if before.isdigit() else None))
    return render_template("web_auditor/blocks.html", page=page, problem=problem), status_of(problem) if problem else 200
