"""``/doctors``: my patients (treating relationships); requesting access (step 5) and getting the decision with its reasons and, when
something was granted, the token (steps 6–8); fetching a record with the token (steps 9–10);
my grants; break-glass.

Requests are signed with the requester's own identity. The token is minted by the vault of the
*patient's* hospital (the only vault the chain lets bind tokens to the patient's grants) and is
bound to the requester: anyone else presenting it is refused, and the refusal is logged on chain.
Clinicians (gp, specialist, nurse) may break the glass; insurers and researchers may request
access too (the chain's rules and the patient's preferences decide).
"""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from .. import flow
from .. import ledger as L
from .. import schemas as S
from ..security import CLINICIANS, REQUESTERS, actor, my_contract, principal, roles_required, services
from .common import trail_args, tx_json

bp = Blueprint("doctors", __name__, url_prefix="/doctors",
               description="Access requests, tokens, records, grants and break-glass (clinicians; insurers and "
                           "researchers may request too)")

requesters = roles_required(*REQUESTERS)
clinicians = roles_required(*CLINICIANS)


def _patient(body: dict) -> tuple[str, str | None]:
    if "share_code" in body:
        return flow.redeem_share_code(services(), actor(), body["share_code"], request.remote_addr)
    return body["patient_id"], None


@bp.route("/patients", methods=["GET"])
@clinicians
@bp.arguments(S.MyPatientsQuery, location="query")
@bp.response(200, S.PageOut)
def my_patients(query):
    """The patients I treat, as the hospitals' admins recorded the treating relationships (each with
    start, end, ``current`` and the patient's hospital): a range over the chain's clinician → patient
    index, paginated; ``current=false`` includes ended relationships."""
    return flow.my_patients(services(), actor(), current_only=query["current"], page_size=query["page_size"],
                            bookmark=query["bookmark"])


@bp.route("/share-codes/redeem", methods=["POST"])
@clinicians
@bp.arguments(S.RedeemShareIn)
@bp.response(200, S.PatientRefOut)
def redeem_share_code(body):
    """Step 3: exchange a patient's share code for their pseudonymous id (the code is used up).
    Clinicians only; wrong codes are throttled per user and per address (429 with Retry-After)."""
    pid, hospital = flow.redeem_share_code(services(), actor(), body["code"], request.remote_addr)
    return {"patient_id": pid, "hospital": hospital}


@bp.route("/requests", methods=["POST"])
@requesters
@bp.arguments(S.AccessRequestIn)
@bp.response(201, S.DecisionOut)
def request_access(body):
    """Steps 5–8: ask for sections of a patient's record for a purpose (with the patient's id or a
    share code). The chain decides per section and records the decision, denials included; when
    something is granted the response carries the token for ``POST /doctors/records``."""
    pid, hospital = _patient(body)
    return flow.request_access(services(), actor(), pid, hospital, sections=body["sections"], purpose=body["purpose"],
                               justification=body["justification"], justification_text=body.get("justification_text"))


@bp.route("/break-glass", methods=["POST"])
@clinicians
@bp.arguments(S.BreakGlassIn)
@bp.response(201, S.DecisionOut)
def break_glass(body):
    """Emergency access without the patient's consent: purpose ``emergency``, a coded justification
    (``other`` needs text, of which only the hash is kept), a short grant, flagged for the patient
    and the auditors. A hospital's deny rules still apply."""
    pid, hospital = _patient(body)
    return flow.request_access(services(), actor(), pid, hospital, sections=body["sections"], purpose="emergency",
                               justification=body["justification"], justification_text=body.get("justification_text"),
                               break_glass=True)


@bp.route("/records", methods=["POST"])
@requesters
@bp.arguments(S.RecordIn)
@bp.response(200, S.ReleaseOut)
def fetch_record(body):
    """Steps 9–10: present the token; the vault checks it (signature, expiry, that it is mine, the
    grant live on chain, its binding), returns only the granted sections — the others withheld —
    and logs the access on chain before answering."""
    return flow.fetch_record(services(), actor(), body["token"], body["format"])


@bp.route("/grants", methods=["GET"])
@requesters
@bp.arguments(S.GrantsQuery, location="query")
@bp.response(200, S.PageOut)
def my_grants(query):
    """My requests and grants (``kind``: grant, decision, break-glass, access, refusal, revocation)."""
    return L.page(L.evaluate(my_contract("AuditContract"), "AuditByUser", principal().user_id, *trail_args(query)))


@bp.route("/grants/<string:grant_id>", methods=["GET"])
@requesters
@bp.response(200, S.GrantOut)
def get_grant(grant_id: str):
    """One of my grants, with its current status and whether it is live."""
    return L.evaluate(my_contract("TransportContract"), "GetGrant", grant_id)


@bp.route("/grants/<string:grant_id>/tokens", methods=["POST"])
@requesters
@bp.response(201, S.TokenOut)
def mint_token(grant_id: str):
    """A fresh token for one of my live grants (tokens live 15 minutes at most; the grant longer)."""
    return flow.mint_token(services(), actor(), grant_id)


@bp.route("/grants/<string:grant_id>/relinquish", methods=["POST"])
@requesters
@bp.response(200, S.TxOut)
def relinquish(grant_id: str):
    """Give a grant up (revoked with reason ``relinquished``)."""
    return tx_json(L.submit(my_contract("TransportContract"), "Revoke", grant_id, "relinquished"))
