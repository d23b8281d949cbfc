"""A patient's pages: my record by section (and its FHIR download), my preferences (step 2) with
their history, a share code for my doctor (step 3), who saw what and who was refused, the live
grants on my record with revoke."""

from __future__ import annotations

import datetime as dt
import io
import json

import qrcode
import qrcode.image.svg
from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup

from .. import flow
from .. import ledger as L
from .. import problems as P
from .. import vocab as V
from ..api.common import preference_arg
from ..security import services
from .common import attempt, form_list, record_tables, status_of
from .session import actor, holds_own_key

bp = Blueprint("web_patient", __name__, url_prefix="/patient")
RECENT_DAYS = 30
TRAIL_KINDS = {"access": "Who saw my record", "decision": "Every request, granted or refused",
               "break-glass": "Emergency (break-glass) accesses", "revocation": "Revocations"}


def bookmark_arg() -> str:
    try:
        return L.decode_bookmark(request.args.get("bookmark", ""))
    except ValueError:
        return ""


@bp.get("/")
def home():
    a = actor()
    # the trail comes oldest first: the latest are the last of a page of the most recent weeks
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=RECENT_DAYS)).isoformat()
    recent, problem = attempt(lambda: flow.patient_trail(services(), a, a.user_id, "access", 200, start=since))
    bg, _ = attempt(lambda: flow.patient_trail(services(), a, a.user_id, "break-glass", 200, start=since))
    latest = list(reversed((recent or {}).get("records", [])))[:5]
    emergencies = [r["record"] for r in reversed((bg or {}).get("records", []))]
    return render_template("web_patient/home.html", recent={"records": latest}, emergencies=emergencies,
                           problem=problem, days=RECENT_DAYS)


def _record(a, record_format: str = "json"):
    """My record: requested and released at once when the server holds my key; when I hold it, my
    browser signed the request and ``?grant_id=`` names the grant the chain made me (no grant yet:
    None, the page offers to sign the request)."""
    if not holds_own_key(a) or request.method == "POST":  # POST: the form without JavaScript (refused: "Key held by the user")
        return flow.own_record(services(), a, list(V.SECTIONS), record_format)
    grant = request.args.get("grant_id", "")
    if not grant:
        if request.args.get("signed"):
            raise P.Problem(flow.OWN_RECORD, "the chain did not grant your own record")
        return None
    return flow.own_record_release(services(), a, grant, record_format)


@bp.route("/record", methods=["GET", "POST"])
def record():
    a = actor()
    data, problem = attempt(lambda: _record(a))
    return render_template("web_patient/record.html", data=data, problem=problem, tables=record_tables(data),
                           own_key=holds_own_key(a), grant=request.args.get("grant_id", "")), status_of(problem) if problem else 200


@bp.get("/record.fhir.json")
def record_fhir():
    a = actor()
    data, problem = attempt(lambda: _record(a, "fhir"))
    if data is None:
        return problem.response() if problem is not None else redirect(url_for(".record"))
    return Response(json.dumps(data["record"], indent=1), mimetype="application/fhir+json",
                    headers={"Content-Disposition": 'attachment; filename="my-record.fhir.json"'})


# ----------------------------------------------------------------------------- preferences (step 2)


def _preferences_page(problem=None, done=None, status: int = 200, preview=None):
    a = actor()
    svc = services()
    prefs, p1 = attempt(lambda: L.evaluate(a.reader(svc, "PreferenceContract"), "ListPreferences", a.user_id))
    history, p2 = attempt(lambda: L.evaluate(a.reader(svc, "PreferenceContract"), "PreferenceHistory", a.user_id,
                                             50, ""))
    return render_template("web_patient/preferences.html", prefs=(prefs or {}).get("rules", {}), own_key=holds_own_key(a),
                           history=list(reversed((history or {}).get("records", []))), problem=problem or p1 or p2,
                           done=done, hospitals=svc.hospitals, preview=preview, asked=request.form), status


def _date(name: str) -> dt.datetime | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    return dt.datetime.fromisoformat(raw).replace(tzinfo=dt.UTC)


@bp.get("/preferences.fhir.json")
def preferences_fhir():
    """My current preferences as FHIR R5 Consent resources."""
    bundle = flow.consent_bundle(services(), actor())
    return Response(json.dumps(bundle, indent=1), mimetype="application/fhir+json",
                    headers={"Content-Disposition": 'attachment; filename="my-consents.fhir.json"'})


@bp.get("/preferences")
def preferences():
    tx = request.args.get("signed", "")
    done = f"Signed in your browser and recorded on the ledger in transaction {tx[:16]}…" if tx else None
    return _preferences_page(done=done)


# ----------------------------------------------------------------------------- signing in the browser (own key)
# The browser signs with the patient's key, kept in its own store (static/sign.js); these three
# answer JSON to that script: the proposal to sign, then the transaction to sign, then the commit.
# What is signed is one of flow.OFFLINE_ACTIONS: a preference added or withdrawn, the own-record
# request, a revocation.


def _json(run):
    data, problem = attempt(run)
    return problem.response() if problem is not None else jsonify(data)


#: the parameters of each action, from the form that asked for it
_SIGNED_PARAMS = {
    "add": lambda: {"preference": _preference_from_form()},
    "withdraw": lambda: {"pref_id": request.form.get("pref_id", "")},
    "own-record": lambda: {},
    "revoke": lambda: {"grant_id": request.form.get("grant_id", "")},
}


@bp.post("/sign/prepare")
def prepare_signed():
    action = request.form.get("action", "")
    params = _SIGNED_PARAMS.get(action, dict)
    return _json(lambda: flow.prepare_offline(services(), actor(), action, **params()))


@bp.post("/sign/endorse")
def endorse_signed():
    body = request.get_json(silent=True) or {}
    return _json(lambda: flow.endorse_offline(services(), actor(), L.unb64(body.get("proposal", ""), "proposal"),
                                              L.unb64(body.get("signature", ""), "signature")))


@bp.post("/sign/submit")
def submit_signed():
    body = request.get_json(silent=True) or {}
    return _json(lambda: flow.submit_offline(services(), actor(), L.unb64(body.get("transaction", ""), "transaction"),
                                             L.unb64(body.get("signature", ""), "signature")))


def _preference_from_form() -> dict:
    """The preference the editor's form describes, as ``PreferenceContract:AddPreference`` takes it."""
    kind = request.form.get("grantee_kind", "anyone")
    grantee = {"kind": kind}
    if kind != "anyone":
        grantee["id"] = request.form.get(f"grantee_{kind}", "").strip()
    if kind == "user":  # a person is named by their username; the chain knows their pseudonymous id
        user = services().auth.find_user(grantee["id"])
        if user is None:
            raise P.Problem(P.NOT_FOUND, f"nobody is called {grantee['id']!r} on this network")
        grantee["id"] = user.user_id
    return preference_arg({"effect": request.form.get("effect", "deny"), "grantee": grantee,
                           "sections": form_list("sections"), "purposes": form_list("purposes"),
                           "valid_from": _date("valid_from"), "valid_until": _date("valid_until")})


@bp.post("/preferences")
def add_preference():
    a = actor()
    pref, problem = attempt(_preference_from_form)
    if problem is None:
        tx, problem = attempt(lambda: flow.add_preference(services(), a, pref))
    if problem is not None:
        return _preferences_page(problem, status=status_of(problem))
    revoked = tx.result.get("revoked_grants") or []
    done = (f"Saved. Recorded on the ledger in transaction {tx.transaction_id[:16]}…"
            + (f" {len(revoked)} grant(s) it no longer allows were revoked at once." if revoked else ""))
    return _preferences_page(done=done)


def _preview_requester() -> dict:
    """The requester the preview form describes: a person (by username) or a role at a hospital."""
    if request.form.get("preview_kind") == "user":
        name = request.form.get("preview_user", "").strip()
        user = services().auth.find_user(name) if name else None
        if user is None:
            raise P.Problem(P.NOT_FOUND, f"nobody is called {name!r} on this network")
        return {"user": user.user_id}
    return {"role": request.form.get("preview_role", ""), "hospital": request.form.get("preview_hospital", ""),
            "treating": request.form.get("preview_treating") == "yes"}


@bp.post("/preferences/preview")
def preview_preferences():
    """What a given requester would get under my hospital's rules and my choices now (nothing is written)."""
    a = actor()
    section = request.form.get("preview_section") or "*"
    result, problem = attempt(lambda: flow.preview_preferences(
        services(), a, _preview_requester(), [section], request.form.get("preview_purpose", "treatment")))
    if problem is not None:
        return _preferences_page(problem, status=status_of(problem))
    return _preferences_page(preview=result)


@bp.post("/preferences/<pref_id>/withdraw")
def withdraw_preference(pref_id: str):
    tx, problem = attempt(lambda: flow.withdraw_preference(services(), actor(), pref_id))
    if problem is not None:
        return _preferences_page(problem, status=status_of(problem))
    return _preferences_page(done=f"Withdrawn. Recorded on the ledger in transaction {tx.transaction_id[:16]}…")


# ----------------------------------------------------------------------------- share code (step 3)


@bp.get("/share")
def share():
    return render_template("web_patient/share.html", code=None)


@bp.post("/share")
def new_share_code():
    a = actor()
    minutes = request.form.get("minutes", "15")
    ttl = 60 * (int(minutes) if minutes.isdigit() and 1 <= int(minutes) <= 60 else 15)
    code, problem = attempt(lambda: services().store.create_share_code(a.user_id, a.hospital, ttl))
    qr = None
    if code is not None:
        img = qrcode.make(code.code, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
        buf = io.BytesIO()
        img.save(buf)
        svg = buf.getvalue().decode()
        qr = Markup(svg[svg.index("<svg"):].replace("<svg", '<svg role="img" aria-label="QR code of the share code"', 1))
    return render_template("web_patient/share.html", code=code, qr=qr, problem=problem)


# ----------------------------------------------------------------------------- the trail, grants


@bp.get("/access-log")
def access_log():
    a = actor()
    kind = request.args.get("kind", "access")
    kind = kind if kind in TRAIL_KINDS else "access"
    page, problem = attempt(lambda: flow.patient_trail(services(), a, a.user_id, kind, 25, bookmark_arg()))
    return render_template("web_patient/access_log.html", page=page, kind=kind, kinds=TRAIL_KINDS, problem=problem)


def _grants_page(problem=None, done=None, status: int = 200):
    a = actor()
    page, p = attempt(lambda: flow.patient_trail(services(), a, a.user_id, "grant", 100))
    grants = [r["record"] for r in (page or {}).get("records", []) if r.get("record", {}).get("live")]
    return render_template("web_patient/grants.html", grants=grants, problem=problem or p, done=done,
                           own_key=holds_own_key(a)), status


REVOKED = "Revoked: the tokens of this grant stopped working at once."


@bp.get("/grants")
def grants():
    tx = request.args.get("signed", "")
    return _grants_page(done=f"{REVOKED} Signed in your browser, transaction {tx[:16]}…" if tx else None)


@bp.post("/grants/<grant_id>/revoke")
def revoke(grant_id: str):
    tx, problem = attempt(lambda: flow.revoke_grant(services(), actor(), grant_id, "patient-request"))
    if problem is not None:
        return _grants_page(problem, status=status_of(problem))
    return _grants_page(done=REVOKED)
