"""What several blueprints share: turning a vault release into a response, chain arguments,
the hospitals list."""

from __future__ import annotations

import contextlib
import datetime as _dt
from typing import Any

from flask_smorest import Blueprint

from .. import ledger as L
from .. import problems as P
from .. import schemas as S
from ..security import login_required, services


def when(epoch: float) -> str:
    """A Unix time as the ISO 8601 UTC timestamp every answer uses (``2026-01-31T09:30:00+00:00``)."""
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).isoformat(timespec="seconds")


def iso(value) -> str:
    """An optional datetime as the chain's ISO 8601 argument (``""`` = open)."""
    return value.isoformat() if value is not None else ""


def trail_args(query: dict) -> tuple:
    return (query["kind"], iso(query.get("start")), iso(query.get("end")), query["page_size"], query["bookmark"])


def preference_arg(body: dict) -> dict:
    """A preference as PreferenceContract:AddPreference takes it (hospital names become MSP ids)."""
    grantee = dict(body["grantee"])
    if grantee["kind"] == "anyone":
        grantee = {"kind": "anyone"}
    elif grantee["kind"] == "hospital":
        with contextlib.suppress(P.Problem):  # an unknown hospital: the chain says so, naming the field
            grantee["id"] = services().msp_of(grantee["id"])
    out: dict[str, Any] = {"effect": body["effect"], "grantee": grantee, "sections": body["sections"],
                           "purposes": body["purposes"]}
    if body.get("pref_id"):
        out["pref_id"] = body["pref_id"]
    for k in ("valid_from", "valid_until"):
        if body.get(k) is not None:
            out[k] = body[k].isoformat()
    return out


def tx_json(tx: L.TxResult) -> dict[str, Any]:
    return {"transaction_id": tx.transaction_id, "block": tx.block_number, "result": tx.result}


bp = Blueprint("hospitals", __name__, url_prefix="/hospitals", description="The hospitals of the network and their rules")


@bp.route("", methods=["GET"])
@login_required
@bp.response(200, S.HospitalsOut)
def hospitals():
    """The hospitals on this network and their registration on chain (public on the channel: read
    by the gateway's service identity, so users who hold their own keys see it too)."""
    svc = services()
    registered = {h["msp"]: h for h in L.evaluate(svc.service_contract("UserContract"), "ListHospitals")}
    return {"hospitals": [{"name": h.name, "msp": h.msp_id, "registered": registered.get(h.msp_id)}
                          for h in svc.network.hospitals]}


@bp.route("/<string:hospital>/policy", methods=["GET"])
@login_required
@bp.response(200, S.PolicyOut)
def hospital_policy(hospital: str):
    """A hospital's generic access rules (step 1) and settings: what patients base their preferences on."""
    svc = services()
    return L.evaluate(svc.service_contract("PolicyContract"), "GetPolicy", svc.msp_of(hospital))
