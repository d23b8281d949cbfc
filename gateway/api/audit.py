"""``/audit``: auditors read everything the chain holds — decisions (denials included), grants,
accesses, refusals, revocations, break-glass — by patient, by user or by time, page by page;
preference histories; break-glass reviews; ledger verification; exports as JSON or CSV."""

from __future__ import annotations

import json

from flask import Response
from flask_smorest import Blueprint

from .. import flow
from .. import ledger as L
from .. import problems as P
from .. import schemas as S
from ..security import actor, my_contract, principal, roles_required, services
from .common import tx_json

bp = Blueprint("audit", __name__, url_prefix="/audit",
               description="Auditors: the whole trail, preference histories, reviews, ledger verification, exports")

auditors = roles_required("auditor")
EXPORT_PAGE = 200
LEDGER_UNVERIFIABLE = P.problem_type(
    "ledger-unverifiable", 503, "Ledger not verifiable here",
    "This gateway has no access to the node's block stores (the ledger runs elsewhere).",
)


def _page(query: dict, page_size: int, bookmark: str) -> dict:
    return flow.audit_page(services(), actor(), query, page_size, bookmark)


@bp.route("/trail", methods=["GET"])
@auditors
@bp.arguments(S.AuditQuery, location="query")
@bp.response(200, S.PageOut)
def trail(query):
    """One page of the trail: of a ``patient``, of a ``user``, or of everyone by time; ``kind`` one of
    decision, grant, break-glass, access, refusal, revocation, cohort; ``[start, end)`` optional;
    pass ``bookmark`` back for the next page."""
    return L.page(_page(query, query["page_size"], query["bookmark"]))


@bp.route("/export", methods=["GET"])
@auditors
@bp.arguments(S.ExportQuery, location="query")
@bp.response(200, content_type="application/json", description="The records as a JSON document (format=json)")
@bp.alt_response(200, content_type="text/csv", description="The records as CSV (format=csv)", success=True)
def export(query):
    """The trail (same filters as ``/audit/trail``) as a download, up to ``limit`` records, all pages."""
    items: list[dict] = []
    bookmark = query["bookmark"]
    while len(items) < query["limit"]:
        page = _page(query, min(EXPORT_PAGE, query["limit"] - len(items)), bookmark)
        items.extend(page["records"])
        bookmark = page["bookmark"]
        if not bookmark:
            break
    name = f"serums-{query['kind']}-{'patient' if 'patient' in query else 'user' if 'user' in query else 'all'}"
    if query["format"] == "json":
        body = json.dumps({"kind": query["kind"], "count": len(items), "bookmark": L.encode_bookmark(bookmark),
                           "records": items},
                          indent=1)
        resp = Response(body, mimetype="application/json")
        resp.headers["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return resp
    resp = Response(flow.trail_csv(items), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    resp.headers["X-Next-Bookmark"] = L.encode_bookmark(bookmark)
    return resp


@bp.route("/grants/<string:grant_id>", methods=["GET"])
@auditors
@bp.response(200, S.GrantOut)
def get_grant(grant_id: str):
    """A grant (or a denied request) with its decision, status, tokens, revocation and review."""
    return L.evaluate(my_contract("TransportContract"), "GetRequest", grant_id)


@bp.route("/grants/<string:grant_id>/review", methods=["POST"])
@auditors
@bp.arguments(S.ReviewIn)
@bp.response(200, S.TxOut)
def review(body, grant_id: str):
    """Review a break-glass grant: justified, unjustified (revokes it while active) or referred."""
    return tx_json(L.submit(my_contract("TransportContract"), "ReviewBreakGlass", grant_id, body["outcome"]))


@bp.route("/users/<string:user_id>", methods=["GET"])
@auditors
@bp.response(200, S.RecordsOut)
def get_user(user_id: str):
    """A user as the chain records them."""
    return {"records": [L.evaluate(my_contract("UserContract"), "GetUser", user_id)]}


@bp.route("/patients/<string:patient_id>/preferences", methods=["GET"])
@auditors
@bp.response(200, S.PreferencesOut)
def preferences(patient_id: str):
    """A patient's current preferences."""
    return L.evaluate(my_contract("PreferenceContract"), "ListPreferences", patient_id)


@bp.route("/patients/<string:patient_id>/preferences/history", methods=["GET"])
@auditors
@bp.arguments(S.HistoryQuery, location="query")
@bp.response(200, S.PageOut)
def preference_history(query, patient_id: str):
    """Every change of a patient's preferences, with the grants each revoked."""
    return L.page(L.evaluate(my_contract("PreferenceContract"), "PreferenceHistory", patient_id, query["page_size"],
                             query["bookmark"]))


@bp.route("/ledger/verify", methods=["GET"])
@auditors
@bp.response(200, S.VerifyOut)
def verify():
    """Re-check every peer's chain from its blocks: hash chain, data hashes, orderer and endorser
    signatures, endorsement policies, MVCC, validation codes, the state rebuilt from the blocks.
    ``ok`` false names the first inconsistency of each peer."""
    principal()
    report = services().verify_ledger()
    return {"ok": report.ok, "orderer_height": report.orderer_height,
            "peers": {k: vars(v) for k, v in report.peers.items()}, "problems": [str(p) for p in report.problems]}
