"""``/admin``: a hospital admin's desk for their own hospital — users (enrol, invite, list,
suspend, reinstate, change role: on chain and in the directory), treating relationships, and the hospital's
generic access rules (step 1). Every change is a transaction signed with the admin's own key."""

from __future__ import annotations

from flask_smorest import Blueprint

import auth

from .. import flow
from .. import ledger as L
from .. import problems as P
from .. import schemas as S
from ..security import actor, my_contract, principal, roles_required, services, signer
from .auth import registration_json
from .common import iso, tx_json, when

bp = Blueprint("admin", __name__, url_prefix="/admin",
               description="Hospital admins: users, treating relationships, generic rules (step 1)")

admins = roles_required("hospital_admin")


def _patient_ref(chi: str | None) -> str | None:
    if chi is None:
        return None
    return services().vault(principal().hospital).find_patient(chi)


def _user_json(chain: dict | None, user: auth.AuthUser | None) -> dict:
    doc = chain or {}
    return {
        "user_id": doc.get("id") or (user.user_id if user else None),
        "username": user.username if user else None,
        "role": doc.get("role") or (user.role if user else None),
        "hospital": user.hospital if user else services().hospital_of(doc["hospital"]),
        "status": doc.get("status") or (user.status if user else None),
        "chain": chain, "directory_status": user.status if user else None,
    }


@bp.route("/users", methods=["GET"])
@admins
@bp.arguments(S.UsersQuery, location="query")
@bp.response(200, S.UsersOut)
def list_users(query):
    """My hospital's users as the chain registers them, with their directory entry (username)."""
    svc = services()
    page = L.evaluate(my_contract("UserContract"), "ListUsers", principal().msp, query["page_size"], query["bookmark"])
    records = [_user_json(doc, svc.auth.get_user(doc["id"])) for doc in page["records"]]
    return {"records": records, "count": len(records), "bookmark": L.encode_bookmark(page["bookmark"])}


@bp.route("/users", methods=["POST"])
@admins
@bp.arguments(S.EnrolIn)
@bp.response(201, S.RegistrationOut)
def enrol(body):
    """Enrol a user at the desk (they type their secret): directory entry and certificate,
    registration on chain signed by me, treating relationships. A patient is found in our vault by
    their CHI; their id is the vault's reference. The TOTP provisioning and recovery codes are
    shown once."""
    svc = services()
    p = principal()
    reg = svc.enrol(svc.user_identity(p.user_id), signer(), p.hospital, body["username"], body["role"],
                    body["text_key"], body["images"], user_id=_patient_ref(body.get("chi")),
                    treating=body["treating"], custody=body["custody"])
    return registration_json(reg)


@bp.route("/invitations", methods=["POST"])
@admins
@bp.arguments(S.InviteIn)
@bp.response(201, S.InvitationOut)
def invite(body):
    """An invitation code for a new user, who enrols with it at ``POST /auth/register``."""
    p = principal()
    inv = services().invite(p.hospital, body["username"], body["role"], user_id=_patient_ref(body.get("chi")),
                            treating=body["treating"], ttl=body["ttl_hours"] * 3600.0)
    return {"code": inv.code, "username": inv.username, "role": inv.role, "hospital": inv.hospital,
            "expires_at": when(inv.expires_at)}


@bp.route("/users/<string:user_id>", methods=["GET"])
@admins
@bp.response(200, S.UserOut)
def get_user(user_id: str):
    """One user of my hospital."""
    doc = L.evaluate(my_contract("UserContract"), "GetUser", user_id)
    return _user_json(doc, services().auth.get_user(user_id))


@bp.route("/users/<string:user_id>/suspend", methods=["POST"])
@admins
@bp.arguments(S.SuspendIn)
@bp.response(200, S.UserOut)
def suspend(body, user_id: str):
    """Suspend a user on chain (every decision denies them; their grants stop being live) and in
    the directory (their sessions end now)."""
    return _user_json(*flow.suspend_user(services(), actor(), user_id, body["reason"]))


@bp.route("/users/<string:user_id>/role", methods=["POST"])
@admins
@bp.arguments(S.RoleIn)
@bp.response(200, S.UserOut)
def change_role(body, user_id: str):
    """Give a user of my hospital another role: recorded on chain (``UserContract:UpdateUser``, signed
    by me, with the new certificate the role needs — same key) and in the directory; their sessions
    end and they sign in again in the new role."""
    return _user_json(*flow.change_role(services(), actor(), user_id, body["role"]))


@bp.route("/users/<string:user_id>/reinstate", methods=["POST"])
@admins
@bp.response(200, S.UserOut)
def reinstate(user_id: str):
    """Reinstate a suspended user (grants made before the suspension stay dead)."""
    return _user_json(*flow.reinstate_user(services(), actor(), user_id))


@bp.route("/users/<string:user_id>/unlock", methods=["POST"])
@admins
@bp.response(204)
def unlock(user_id: str):
    """Clear a user's login throttle (after too many failed attempts)."""
    svc = services()
    user = svc.auth.get_user(user_id)
    if user is None or user.hospital != principal().hospital:
        raise P.Problem(P.NOT_FOUND, f"no user {user_id!r} in your hospital's directory")
    svc.auth.unlock(user.username)


# --------------------------------------------------------------------------- treating relationships


@bp.route("/treatments", methods=["POST"])
@admins
@bp.arguments(S.TreatmentIn)
@bp.response(201, S.TxOut)
def add_treatment(body):
    """Record that a clinician treats one of our patients (from ``start``, default now, until
    ``end``, default open)."""
    return tx_json(L.submit(my_contract("UserContract"), "AddTreatment", body["patient_id"], body["clinician_id"],
                            iso(body.get("start")), iso(body.get("end"))))


@bp.route("/treatments/index", methods=["POST"])
@admins
@bp.response(200, S.IndexedOut)
def index_treatments():
    """Upgrade path: add our patients' treating relationships recorded before the chain indexed them
    by clinician ("my patients") to that index — ``UserContract:IndexTreatments``, page by page."""
    return flow.index_treatments(services(), actor())


@bp.route("/treatments/<string:patient_id>", methods=["GET"])
@admins
@bp.response(200, S.RecordsOut)
def list_treatments(patient_id: str):
    """A patient's treating relationships."""
    return {"records": L.evaluate(my_contract("UserContract"), "ListTreatments", patient_id)}


@bp.route("/treatments/<string:patient_id>/<string:clinician_id>", methods=["DELETE"])
@admins
@bp.response(200, S.TxOut)
def end_treatment(patient_id: str, clinician_id: str):
    """End a treating relationship now; the clinician's grants that rested on it are revoked."""
    return tx_json(L.submit(my_contract("UserContract"), "EndTreatment", patient_id, clinician_id))


# --------------------------------------------------------------------------- generic rules (step 1)


@bp.route("/policy", methods=["GET"])
@admins
@bp.response(200, S.PolicyOut)
def get_policy():
    """My hospital's rules and settings (one versioned record on chain)."""
    return L.evaluate(my_contract("PolicyContract"), "GetPolicy", principal().msp)


@bp.route("/policy/history", methods=["GET"])
@admins
@bp.response(200, S.RecordsOut)
def policy_history():
    """Every version of my hospital's rules, oldest first."""
    return {"records": L.evaluate(my_contract("PolicyContract"), "PolicyHistory", principal().msp)}


def _rule(body: dict, rule_id: str | None = None) -> dict:
    rule = {k: v for k, v in body.items() if k not in ("valid_from", "valid_until")}
    for k in ("valid_from", "valid_until"):
        if body.get(k) is not None:
            rule[k] = body[k].isoformat()
    if rule_id:
        rule["rule_id"] = rule_id
    return rule


@bp.route("/policy/rules", methods=["POST"])
@admins
@bp.arguments(S.RuleIn)
@bp.response(201, S.TxOut)
def add_rule(body):
    """Add a rule (its id is generated)."""
    return tx_json(L.submit(my_contract("PolicyContract"), "PutRule", _rule(body)))


@bp.route("/policy/rules/<string:rule_id>", methods=["PUT"])
@admins
@bp.arguments(S.RuleIn)
@bp.response(200, S.TxOut)
def put_rule(body, rule_id: str):
    """Add or replace the rule with this id."""
    return tx_json(L.submit(my_contract("PolicyContract"), "PutRule", _rule(body, rule_id)))


@bp.route("/policy/rules/<string:rule_id>", methods=["DELETE"])
@admins
@bp.response(200, S.TxOut)
def remove_rule(rule_id: str):
    """Remove a rule (it no longer applies to new requests)."""
    return tx_json(L.submit(my_contract("PolicyContract"), "RemoveRule", rule_id))


@bp.route("/policy/settings", methods=["PUT"])
@admins
@bp.arguments(S.SettingsIn)
@bp.response(200, S.TxOut)
def put_settings(body):
    """The default maximum grant duration and the break-glass grant duration (seconds)."""
    return tx_json(L.submit(my_contract("PolicyContract"), "SetPolicySettings", body))
