"""``/doctors``: requesting access (step 5) and getting the decision with its reasons and, when
something was granted, the token (steps 6–8); fetching a record with the token (steps 9–10);
my grants; break-glass.

Requests are signed with the requester's own identity. The token is minted by the vault of the
*patient's* hospital (the only vault the chain lets bind tokens to the patient's grants) and is
bound to the requester: anyone else presenting it is refused, and the refusal is logged on chain.
Clinicians (gp, specialist, nurse) may break the glass; insurers and researchers may request
access too (the chain's rules and the patient's preferences decide).
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from vault import VaultError

from .. import ledger as L
from .. import problems as P
from .. import schemas as S
from ..security import CLINICIANS, REQUESTERS, my_contract, principal, roles_required, services
from .common import release_json, trail_args, tx_json

bp = Blueprint("doctors", __name__, url_prefix="/doctors",
               description="Access requests, tokens, records, grants and break-glass (clinicians; insurers and "
                           "researchers may request too)")

requesters = roles_required(*REQUESTERS)
clinicians = roles_required(*CLINICIANS)


def _patient(body: dict) -> tuple[str, str | None]:
    if "share_code" in body:
        return services().store.redeem_share_code(body["share_code"], principal().user_id)
    return body["patient_id"], None


def _transient(body: dict) -> dict[str, bytes] | None:
    text = body.get("justification_text")
    return {"justification": text.encode("utf-8")} if text else None


def _decide_and_mint(fn: str, patient_id: str, hospital: str | None, args: list[Any], body: dict) -> dict:
    """Submit the request (steps 5-6), then have the patient's vault mint the token (7-8)."""
    svc = services()
    transport = my_contract("TransportContract")
    tx = L.submit(transport, fn, patient_id, *args, transient=_transient(body))
    d = tx.result
    out = {**d, "patient_id": patient_id, "transaction_id": tx.transaction_id, "block": tx.block_number,
           "token": None}
    if d.get("grant_id"):
        try:
            hospital = hospital or svc.patient_hospital(patient_id, transport, d["request_id"])
            minted = svc.vault(hospital).mint_token(d["grant_id"])
            out["token"] = {"token": minted.token, "token_hash": minted.token_hash,
                            "expires_at": minted.claims.expires_at.isoformat(), "hospital": hospital}
        except (VaultError, P.Problem) as exc:  # the decision stands; a token can be minted again later
            detail = exc.message if isinstance(exc, VaultError) else exc.detail
            slug = exc.type if isinstance(exc, VaultError) else exc.type.slug
            out["token_error"] = {"type": f"/problems/{slug}", "detail": detail}
    return out


@bp.route("/share-codes/redeem", methods=["POST"])
@requesters
@bp.arguments(S.RedeemShareIn)
@bp.response(200, S.PatientRefOut)
def redeem_share_code(body):
    """Step 3: exchange a patient's share code for their pseudonymous id (the code is used up)."""
    pid, hospital = services().store.redeem_share_code(body["code"], principal().user_id)
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
    return _decide_and_mint("RequestAccess", pid, hospital, [body["sections"], body["purpose"], body["justification"]],
                            body)


@bp.route("/break-glass", methods=["POST"])
@clinicians
@bp.arguments(S.BreakGlassIn)
@bp.response(201, S.DecisionOut)
def break_glass(body):
    """Emergency access without the patient's consent: purpose ``emergency``, a coded justification
    (``other`` needs text, of which only the hash is kept), a short grant, flagged for the patient
    and the auditors. A hospital's deny rules still apply."""
    pid, hospital = _patient(body)
    return _decide_and_mint("BreakGlass", pid, hospital, [body["sections"], body["justification"]], body)


@bp.route("/records", methods=["POST"])
@requesters
@bp.arguments(S.RecordIn)
@bp.response(200, S.ReleaseOut)
def fetch_record(body):
    """Steps 9–10: present the token; the vault checks it (signature, expiry, that it is mine, the
    grant live on chain, its binding), returns only the granted sections — the others withheld —
    and logs the access on chain before answering."""
    p = principal()
    hospital, v = services().vault_for_token(body["token"], p.hospital)
    release = v.redeem(body["token"], p.user_id, fhir=body["format"] == "fhir")
    return release_json(release, hospital, body["format"], evidence={"token_hash": release.token_hash,
                                                                     "access_digest": release.digest})


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
    svc = services()
    p = principal()
    g = L.evaluate(my_contract("TransportContract"), "GetGrant", grant_id)
    if g.get("requester_id") != p.user_id:
        raise P.Problem(P.FORBIDDEN, "tokens are minted for the grant's requester only")
    hospital = svc.hospital_of(g["patient_hospital"])
    minted = svc.vault(hospital).mint_token(grant_id)
    return {"token": minted.token, "token_hash": minted.token_hash,
            "expires_at": minted.claims.expires_at.isoformat(), "hospital": hospital}


@bp.route("/grants/<string:grant_id>/relinquish", methods=["POST"])
@requesters
@bp.response(200, S.TxOut)
def relinquish(grant_id: str):
    """Give a grant up (revoked with reason ``relinquished``)."""
    return tx_json(L.submit(my_contract("TransportContract"), "Revoke", grant_id, "relinquished"))
