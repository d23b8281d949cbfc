"""PreferenceContract (step 2): the patient's own rules, written only with the patient's own key.

A preference allows or denies a grantee (one user, a role, a hospital, or anyone) some record
sections for some purposes, within an optional validity window. The patient's preferences form
one versioned document; every change is also logged (``preflog``) for the paginated history.

A change that removes consent takes effect at once: every active grant and research cohort
membership of the patient is re-evaluated against the old and the new preferences, and those
that some section was allowed before and is denied now are revoked (grants) or withdrawn (cohort
memberships) in the same transaction; the PreferenceChanged event lists them. A concurrent
request for the same patient either sees the new preferences or makes this transaction fail
(MVCC/phantom conflict, to be retried): no grant slips through on withdrawn consent.
"""

from __future__ import annotations

import json

from chaincode import InvalidArgument, NotFound, evaluate, transaction

from . import keys
from .common import (
    ACTIVE,
    SerumsContext,
    SerumsContract,
    index_entry,
    load_hospital,
    load_patient,
    load_user,
    require_patient_reader,
)
from .records import GRANT_ACTIVE, active_grants_of_patient, empty_prefs, revoke_grant
from .records import evaluate as evaluate_access
from .vocab import (
    EFFECTS,
    GRANTEE_KINDS,
    SECTIONS,
    WILDCARD,
    check_bool,
    check_choice,
    check_id,
    check_msp,
    check_object,
    check_page,
    check_purpose,
    check_purposes,
    check_role,
    check_sections,
    fmt_time,
    parse_time,
)

PREF_FIELDS = ("pref_id", "effect", "grantee", "sections", "purposes", "valid_from", "valid_until")


def parse_preference(ctx: SerumsContext, patient: dict, pref: dict) -> dict:
    check_object(pref, "preference", PREF_FIELDS, required=("effect", "grantee", "sections", "purposes"))
    pid = pref.get("pref_id") or ""
    pid = check_id(pid, "preference.pref_id") if pid else "p-" + ctx.tx_id[:16]
    g = pref["grantee"]
    if g == "anyone":
        g = {"kind": "anyone"}
    check_object(g, "preference.grantee", ("kind", "id"), required=("kind",))
    kind = check_choice(g["kind"], "preference.grantee.kind", GRANTEE_KINDS)
    gid = g.get("id", "")
    if kind == "anyone":
        if gid not in ("", None):
            raise InvalidArgument("preference.grantee.id: must be empty for kind 'anyone'")
        gid = ""
    elif kind == "user":
        gid = check_id(gid, "preference.grantee.id")
        if gid == patient["id"]:
            raise InvalidArgument("preference.grantee.id: a patient always has access to their own record")
        load_user(ctx, gid, "preference.grantee.id")
    elif kind == "role":
        gid = check_role(gid, "preference.grantee.id")
    else:
        gid = check_msp(gid, "preference.grantee.id")
        load_hospital(ctx, gid, "preference.grantee.id")
    t0 = parse_time(pref.get("valid_from"), "preference.valid_from")
    t1 = parse_time(pref.get("valid_until"), "preference.valid_until")
    if t1 is not None and t0 is not None and t1 <= t0:
        raise InvalidArgument("preference.valid_until: must be after valid_from")
    if t1 is not None and t1 <= ctx.now:
        raise InvalidArgument("preference.valid_until: already past")
    return {
        "pref_id": pid,
        "effect": check_choice(pref["effect"], "preference.effect", EFFECTS),
        "grantee_kind": kind,
        "grantee": gid,
        "sections": check_sections(pref["sections"], "preference.sections", wildcard=True),
        "purposes": check_purposes(pref["purposes"], "preference.purposes"),
        "valid_from": fmt_time(t0) if t0 else None,
        "valid_until": fmt_time(t1) if t1 else None,
        "created_at": ctx.now_s,
    }


def reconcile(ctx: SerumsContext, patient: dict, old_prefs: dict, new_prefs: dict) -> tuple[list[str], list[str]]:
    """Revoke the grants and withdraw the cohort memberships that the new preferences no longer
    support (allowed before the change, denied after it)."""
    revoked: list[str] = []
    for g in active_grants_of_patient(ctx, patient["id"]):
        requester = ctx.get(keys.user(g["requester_id"]))
        if requester is None or g["status"] != GRANT_ACTIVE:
            continue
        args = (ctx, requester, patient, g["sections"], g["purpose"])
        after = evaluate_access(*args, break_glass=g["break_glass"], prefs=new_prefs).decision
        if after.all_allowed:
            continue
        before = evaluate_access(*args, break_glass=g["break_glass"], prefs=old_prefs).decision
        if any(before.section(s).allowed and not after.section(s).allowed for s in g["sections"]):
            revoke_grant(ctx, g, "consent-withdrawn", patient["id"])
            revoked.append(g["grant_id"])
    withdrawn: list[str] = []
    start, end = keys.prefix_range("a.p", patient["id"], "cohort")
    for kv in ctx.stub.get_state_by_range(start, end):
        ptr = index_entry(ctx.stub, kv.key, kv.value)
        if ptr.get("expires_at", "") <= ctx.now_s:
            continue
        cohort = ctx.get(keys.cohort(ptr["id"]))
        member_key = keys.cohort_member(ptr["id"], patient["id"])
        member = ctx.get(member_key)
        if cohort is None or cohort["status"] != ACTIVE or member is None or member["status"] != ACTIVE:
            continue
        requester = ctx.get(keys.user(cohort["requester_id"]))
        if requester is None:
            continue
        args = (ctx, requester, patient, cohort["sections"], cohort["purpose"])
        if evaluate_access(*args, prefs=new_prefs).decision.all_allowed:
            continue
        if evaluate_access(*args, prefs=old_prefs).decision.all_allowed:
            member.update(status="withdrawn", withdrawn_at=ctx.now_s, withdraw_reason="consent-withdrawn")
            ctx.put(member_key, member)
            withdrawn.append(cohort["cohort_id"])
    return revoked, withdrawn


class PreferenceContract(SerumsContract):
    name = "PreferenceContract"
    info = {"title": "SERUMS patient preferences (step 2)", "version": "1.0"}

    def _patient_self(self, ctx: SerumsContext, patient: str) -> dict:
        pid = check_id(patient, "patient")
        u = ctx.caller.require_user("patient")
        if u["id"] != pid:
            raise ctx.caller.forbid(f"only patient {pid} may change their preferences (the caller is {u['id']})")
        return u

    def _commit(self, ctx: SerumsContext, patient: dict, old: dict, new: dict, change: str, pref: dict) -> dict:
        new["version"] = old["version"] + 1
        new["updated_at"] = ctx.now_s
        revoked, withdrawn = reconcile(ctx, patient, old, new)
        ctx.put(keys.prefs(patient["id"]), new)
        entry = {"patient": patient["id"], "version": new["version"], "change": change, "pref_id": pref["pref_id"],
                 "preference": pref, "at": ctx.now_s, "tx_id": ctx.tx_id, "revoked_grants": revoked,
                 "withdrawn_cohorts": withdrawn}
        ctx.put(keys.pref_log(patient["id"], ctx.now_s, ctx.tx_id), entry)
        ctx.event("PreferenceChanged", {
            "patient": patient["id"], "patient_hospital": patient["hospital"], "version": new["version"],
            "change": change, "pref_id": pref["pref_id"], "effect": pref["effect"], "sections": pref["sections"],
            "purposes": pref["purposes"], "revoked_grants": revoked, "withdrawn_cohorts": withdrawn, "at": ctx.now_s,
        })
        return entry

    @transaction
    def AddPreference(self, ctx: SerumsContext, patient: str, preference: dict) -> dict:
        """Add (or replace, when ``pref_id`` names an existing one) a preference. Returns the
        history entry: the stored preference, the new version, and the grants it revoked."""
        p = self._patient_self(ctx, patient)
        stored = ctx.get(keys.prefs(p["id"])) or empty_prefs(p["id"])
        pref = parse_preference(ctx, p, preference)
        new = {**stored, "rules": {**stored["rules"], pref["pref_id"]: pref}}
        change = "replaced" if pref["pref_id"] in stored["rules"] else "added"
        return self._commit(ctx, p, stored, new, change, pref)

    @transaction
    def WithdrawPreference(self, ctx: SerumsContext, patient: str, pref_id: str) -> dict:
        p = self._patient_self(ctx, patient)
        rid = check_id(pref_id, "pref_id")
        stored = ctx.get(keys.prefs(p["id"])) or empty_prefs(p["id"])
        if rid not in stored["rules"]:
            raise NotFound(f"pref_id: patient {p['id']} has no preference {rid!r}")
        rules = dict(stored["rules"])
        pref = rules.pop(rid)
        return self._commit(ctx, p, stored, {**stored, "rules": rules}, "withdrawn", pref)

    @evaluate
    def ListPreferences(self, ctx: SerumsContext, patient: str) -> dict:
        """The patient's current preferences (the patient, auditors, admins of their hospital)."""
        p = load_patient(ctx, check_id(patient, "patient"))
        require_patient_reader(ctx, p)
        return ctx.get(keys.prefs(p["id"])) or empty_prefs(p["id"])

    @evaluate
    def Preview(self, ctx: SerumsContext, patient: str, requester: dict, sections: list, purpose: str) -> dict:
        """What a requester would get of the patient's record for a purpose under the hospital's
        rules and the patient's current preferences — the decision a request would record, per
        section with its reason, written nowhere. ``requester`` is a registered user
        (``{"user": id}``: their role, hospital and treating relationship from the ledger) or
        anyone of a role at a hospital (``{"role", "hospital": MSP id, "treating": bool}``).
        ``sections`` ``["*"]`` is every section. Readers as for ListPreferences."""
        p = load_patient(ctx, check_id(patient, "patient"))
        require_patient_reader(ctx, p)
        check_object(requester, "requester", ("user", "role", "hospital", "treating"))
        treating: bool | None = None
        if "user" in requester:
            extra = sorted(set(requester) - {"user"})
            if extra:
                raise InvalidArgument(f"requester.{extra[0]}: give either user, or role and hospital")
            who = load_user(ctx, check_id(requester["user"], "requester.user"), "requester.user")
        else:
            missing = [f for f in ("role", "hospital") if f not in requester]
            if missing:
                raise InvalidArgument(f"requester.{missing[0]}: required (or give requester.user)")
            msp = check_msp(requester["hospital"], "requester.hospital")
            load_hospital(ctx, msp, "requester.hospital")
            who = {"id": "", "role": check_role(requester["role"], "requester.role"), "hospital": msp,
                   "status": ACTIVE}
            treating = check_bool(requester.get("treating", False), "requester.treating")
        secs = check_sections(sections, "sections", wildcard=True)
        secs = list(SECTIONS) if secs == [WILDCARD] else secs
        purpose = check_purpose(purpose)
        ev = evaluate_access(ctx, who, p, secs, purpose, treating=treating)
        d = ev.decision
        return {
            "patient": p["id"], "version": ev.prefs["version"], "purpose": purpose,
            "requester": {"user_id": who["id"] or None, "role": who["role"], "hospital": who["hospital"],
                          "treating": ev.treating},
            "decision": d.to_json(), "granted": d.granted, "denied": d.denied,
            "grant_seconds": ev.grant_seconds(),
        }

    @evaluate
    def PreferenceHistory(self, ctx: SerumsContext, patient: str, page_size: int, bookmark: str) -> dict:
        """Every change of the patient's preferences, oldest first, paginated."""
        p = load_patient(ctx, check_id(patient, "patient"))
        require_patient_reader(ctx, p)
        size, bm = check_page(page_size, bookmark)
        page = ctx.stub.get_state_by_partial_composite_key_with_pagination("preflog", [p["id"]], size, bm)
        records = [json.loads(kv.value) for kv in page.records]
        return {"records": records, "count": len(records), "bookmark": page.bookmark}
