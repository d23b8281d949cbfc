"""``/patients/me``: a patient acting on themselves — their record, their preferences (step 2,
each change a transaction signed with their own key, also offline), share codes (step 3), who saw
what and why, break-glass notices, the grants on their record."""

from __future__ import annotations

import json

from flask import Response
from flask_smorest import Blueprint

from .. import flow
from .. import ledger as L
from .. import schemas as S
from ..people import with_who
from ..security import actor, my_contract, principal, roles_required, services
from .common import preference_arg, trail_args, tx_json, when

bp = Blueprint("patients", __name__, url_prefix="/patients/me",
               description="A patient's own record, preferences, share codes and access log")

patient_only = roles_required("patient")
OFFLINE_FUNCTIONS = flow.OFFLINE_FUNCTIONS
OWN_RECORD = flow.OWN_RECORD


def _contract(name: str):
    return my_contract(name)


def _reader(name: str):
    """A contract to read my own things with (as myself; holding my own key, as my hospital's admin:
    evaluations write nothing in anyone's name — see :meth:`gateway.flow.Actor.reader`)."""
    return actor().reader(services(), name)


@bp.route("/record", methods=["GET"])
@patient_only
@bp.arguments(S.RecordQuery, location="query")
@bp.response(200, S.ReleaseOut)
def my_record(query):
    """My record, from my hospital's vault — through the same gate as everyone: the chain grants me
    my own record (``own-record``), the vault mints a token and redeems it, and the access is
    logged on chain (so my own reads are in my access log too). Holding my own key, I sign that
    request myself (``/record/prepare``, then ``/preferences/endorse`` and ``/preferences/submit``)
    and fetch the release here with ``grant_id``, the grant the committed request made."""
    if query.get("grant_id"):
        return flow.own_record_release(services(), actor(), query["grant_id"], query["format"])
    return flow.own_record(services(), actor(), query["sections"], query["format"])


@bp.route("/record/prepare", methods=["POST"])
@patient_only
@bp.arguments(S.PrepareRecordIn)
@bp.response(201, S.PreparedOut)
def prepare_record(body):
    """Offline signing, 1/3, of the request for my own record (I hold my own key): endorse and
    submit it as a preference change; the committed request's ``result.grant_id`` releases the
    record at ``GET /record?grant_id=``."""
    return flow.prepare_offline(services(), actor(), "own-record", sections=body["sections"])


# --------------------------------------------------------------------------- preferences (step 2)


@bp.route("/preferences", methods=["GET"])
@patient_only
@bp.response(200, S.PreferencesOut)
def list_preferences():
    """My current preferences (versioned on chain)."""
    return L.evaluate(_reader("PreferenceContract"), "ListPreferences", principal().user_id)


@bp.route("/preferences", methods=["POST"])
@patient_only
@bp.arguments(S.PreferenceIn)
@bp.response(201, S.TxOut)
def add_preference(body):
    """Add (or, with ``pref_id``, replace) a preference: a transaction signed with my key. The
    result lists the grants this change revoked at once."""
    tx = L.submit(_contract("PreferenceContract"), "AddPreference", principal().user_id, preference_arg(body))
    return tx_json(tx)


@bp.route("/preferences/<string:pref_id>", methods=["DELETE"])
@patient_only
@bp.response(200, S.TxOut)
def withdraw_preference(pref_id: str):
    """Withdraw a preference (a transaction signed with my key)."""
    tx = L.submit(_contract("PreferenceContract"), "WithdrawPreference", principal().user_id, pref_id)
    return tx_json(tx)


@bp.route("/consent", methods=["GET"])
@patient_only
@bp.response(200, S.FhirBundleOut, content_type="application/fhir+json")
def my_consent():
    """My current preferences as FHIR R5 ``Consent`` resources, one per preference, in a collection
    ``Bundle`` (``application/fhir+json``): ``decision`` permit/deny, and a ``provision`` with the
    validity ``period``, the ``actor`` (a person, a role, a hospital; none for anyone), the
    ``purpose`` (HL7 v3 ActReason) and the record sections as codes (``urn:serums:section``) —
    beside the record's FHIR export (``GET /record?format=fhir``)."""
    return Response(json.dumps(flow.consent_bundle(services(), actor())), mimetype="application/fhir+json")


@bp.route("/preferences/preview", methods=["POST"])
@patient_only
@bp.arguments(S.PreviewIn)
@bp.response(200, S.PreviewOut)
def preview_preferences(body):
    """What a given requester would get of my record for a purpose under my hospital's rules and my
    preferences now — per section, with the reason — an evaluation: nothing is written or logged."""
    return flow.preview_preferences(services(), actor(), body["requester"], body["sections"], body["purpose"])


@bp.route("/preferences/history", methods=["GET"])
@patient_only
@bp.arguments(S.HistoryQuery, location="query")
@bp.response(200, S.PageOut)
def preference_history(query):
    """Every change of my preferences, oldest first."""
    return L.page(L.evaluate(_reader("PreferenceContract"), "PreferenceHistory", principal().user_id,
                             query["page_size"], query["bookmark"]))


@bp.route("/preferences/prepare", methods=["POST"])
@patient_only
@bp.arguments(S.PreparePreferenceIn)
@bp.response(201, S.PreparedOut)
def prepare_preference(body):
    """Offline signing, 1/3: the proposal for my device to sign (the server never needs my key).
    Sign ``digest`` and send the proposal with the signature to ``/preferences/endorse``."""
    pref = preference_arg(body["preference"]) if body["action"] == "add" else None
    return flow.prepare_offline(services(), actor(), body["action"], preference=pref, pref_id=body.get("pref_id"))


@bp.route("/preferences/endorse", methods=["POST"])
@patient_only
@bp.arguments(S.EndorseIn)
@bp.response(200, S.EndorsedOut)
def endorse_preference(body):
    """Offline signing, 2/3: the signed proposal is endorsed by the peers; sign the transaction's
    ``digest`` and send it to ``/preferences/submit``. Any proposal prepared here (a preference
    change, the own-record request, a revocation) is endorsed and submitted by these two."""
    return flow.endorse_offline(services(), actor(), L.unb64(body["proposal"], "proposal"),
                                L.unb64(body["signature"], "signature"))


@bp.route("/preferences/submit", methods=["POST"])
@patient_only
@bp.arguments(S.SubmitIn)
@bp.response(200, S.TxOut)
def submit_preference(body):
    """Offline signing, 3/3: the signed transaction is ordered; answers once it is committed."""
    return flow.submit_offline(services(), actor(), L.unb64(body["transaction"], "transaction"),
                               L.unb64(body["signature"], "signature"))


# --------------------------------------------------------------------------- share codes (step 3)


@bp.route("/share-codes", methods=["POST"])
@patient_only
@bp.arguments(S.ShareCodeIn)
@bp.response(201, S.ShareCodeOut)
def share_code(body):
    """A short-lived, single-use code to tell a doctor (step 3): they exchange it for my id."""
    p = principal()
    code = services().store.create_share_code(p.user_id, p.hospital, body["ttl_seconds"])
    return {"code": code.code, "expires_at": when(code.expires_at)}


# --------------------------------------------------------------------------- the trail


@bp.route("/access-log", methods=["GET"])
@patient_only
@bp.arguments(S.TrailQuery, location="query")
@bp.response(200, S.PageOut)
def access_log(query):
    """Who saw what, when and why: my trail on chain (``kind``: access — what was released —,
    decision, grant, refusal, revocation, break-glass, cohort); each entry's ``who`` names the
    person (display name, role, hospital) from the hospital's directory."""
    page = L.page(L.evaluate(_reader("AuditContract"), "AuditByPatient", principal().user_id, *trail_args(query)))
    return {**page, "records": with_who(services(), page.get("records") or [])}


@bp.route("/break-glass", methods=["GET"])
@patient_only
@bp.arguments(S.HistoryQuery, location="query")
@bp.response(200, S.PageOut)
def break_glass_notices(query):
    """Emergency (break-glass) accesses to my record, granted or not, with their review."""
    return L.page(L.evaluate(_reader("AuditContract"), "AuditByPatient", principal().user_id, "break-glass", "",
                             "", query["page_size"], query["bookmark"]))


@bp.route("/grants", methods=["GET"])
@patient_only
@bp.arguments(S.HistoryQuery, location="query")
@bp.response(200, S.PageOut)
def my_grants(query):
    """The grants made on my record, with their current status."""
    return L.page(L.evaluate(_reader("AuditContract"), "AuditByPatient", principal().user_id, "grant", "", "",
                             query["page_size"], query["bookmark"]))


@bp.route("/grants/<string:grant_id>/revoke", methods=["POST"])
@patient_only
@bp.arguments(S.RevokeIn)
@bp.response(200, S.TxOut)
def revoke_grant(body, grant_id: str):
    """Revoke a grant on my record: its tokens stop working at once."""
    return tx_json(L.submit(_contract("TransportContract"), "Revoke", grant_id, body["reason"]))


@bp.route("/grants/<string:grant_id>/revoke/prepare", methods=["POST"])
@patient_only
@bp.arguments(S.RevokeIn)
@bp.response(201, S.PreparedOut)
def prepare_revoke(body, grant_id: str):
    """Offline signing, 1/3, of a revocation (I hold my own key): endorse and submit it as a
    preference change."""
    return flow.prepare_offline(services(), actor(), "revoke", grant_id=grant_id, reason=body["reason"])


@bp.route("/treatments", methods=["GET"])
@patient_only
@bp.response(200, S.RecordsOut)
def my_treatments():
    """The clinicians recorded as treating me, each with ``who`` (display name, role, hospital)."""
    return {"records": with_who(services(), L.evaluate(_reader("UserContract"), "ListTreatments",
                                                       principal().user_id))}


__all__ = ["bp"]
