"""Records shared by several contracts: hospital rules, preferences, treating relationships and
grants as stored, their conversion to the decision's inputs, and the grant life cycle."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from . import keys
from .common import ACTIVE, SerumsContext, index_entry
from .decision import ALLOW_REASONS, Decision, HospitalRule, Party, Preference, decide
from .vocab import (
    CLOCK_SKEW_SECONDS,
    DEFAULT_BREAK_GLASS_SECONDS,
    DEFAULT_MAX_GRANT_SECONDS,
    parse_stored_time,
)

GRANT_ACTIVE = "active"
GRANT_REVOKED = "revoked"
GRANT_EXPIRED = "expired"


def _t(value: str | None) -> _dt.datetime | None:
    return parse_stored_time(value) if value else None


# --------------------------------------------------------------------------- policy and preferences


def empty_policy(msp: str) -> dict:
    return {
        "hospital": msp,
        "version": 0,
        "updated_at": None,
        "settings": {"max_grant_seconds": DEFAULT_MAX_GRANT_SECONDS, "break_glass_seconds": DEFAULT_BREAK_GLASS_SECONDS},
        "rules": {},
    }


def load_policy(ctx: SerumsContext, msp: str) -> dict:
    return ctx.get(keys.policy(msp)) or empty_policy(msp)


def empty_prefs(patient: str) -> dict:
    return {"patient": patient, "version": 0, "updated_at": None, "rules": {}}


def load_prefs(ctx: SerumsContext, patient: str) -> dict:
    return ctx.get(keys.prefs(patient)) or empty_prefs(patient)


def rule_from_doc(d: dict) -> HospitalRule:
    return HospitalRule(
        rule_id=d["rule_id"], effect=d["effect"], roles=tuple(d["roles"]), sections=tuple(d["sections"]),
        purposes=tuple(d["purposes"]), same_hospital=d["same_hospital"], treating_required=d["treating_required"],
        consent_required=d["consent_required"], max_grant_seconds=d.get("max_grant_seconds"),
        valid_from=_t(d.get("valid_from")), valid_until=_t(d.get("valid_until")),
    )


def pref_from_doc(d: dict) -> Preference:
    return Preference(
        pref_id=d["pref_id"], effect=d["effect"], grantee_kind=d["grantee_kind"], grantee=d["grantee"],
        sections=tuple(d["sections"]), purposes=tuple(d["purposes"]),
        valid_from=_t(d.get("valid_from")), valid_until=_t(d.get("valid_until")),
    )


def party(doc: dict) -> Party:
    return Party(doc["id"], doc["role"], doc["hospital"], doc["status"])


def treating_at(rel: dict | None, now: _dt.datetime) -> bool:
    if rel is None:
        return False
    start, end = _t(rel.get("start")), _t(rel.get("end"))
    return (start is None or start <= now) and (end is None or now < end)


# --------------------------------------------------------------------------- evaluation


class Evaluation:
    """A decision together with the inputs it was taken on (for the record and the expiry)."""

    def __init__(self, decision: Decision, policy: dict, prefs: dict, rules: dict[str, HospitalRule],
                 treatment: dict | None, treating: bool):
        self.decision = decision
        self.policy = policy
        self.prefs = prefs
        self.rules = rules
        self.treatment = treatment
        self.treating = treating

    def relies_on_treating(self) -> bool:
        """Some granted section rests only on hospital rules that require a treating relationship."""
        for s in self.decision.sections:
            if s.allowed and s.reason == "hospital-rule":
                basis = [self.rules[b] for b in s.basis if b in self.rules]
                if basis and all(r.treating_required for r in basis):
                    return True
        return False

    def grant_seconds(self) -> int:
        """The grant's duration: the shortest bound over the granted sections (a rule's or a
        preference's bound, else the hospital's default; break-glass: the break-glass duration)."""
        settings = self.policy["settings"]
        bounds = []
        for s in self.decision.sections:
            if not s.allowed:
                continue
            if s.reason == "break-glass":
                bounds.append(settings["break_glass_seconds"])
            elif s.max_seconds is None:
                bounds.append(settings["max_grant_seconds"])
            else:
                bounds.append(s.max_seconds)
        return max(1, min(bounds)) if bounds else 0


def _parse_policy(msp: str, doc: dict | None) -> tuple[dict, dict[str, HospitalRule]]:
    doc = doc or empty_policy(msp)
    return doc, {rid: rule_from_doc(d) for rid, d in sorted(doc["rules"].items())}


def evaluate(
    ctx: SerumsContext,
    requester: dict,
    patient: dict,
    sections: list[str],
    purpose: str,
    *,
    break_glass: bool = False,
    prefs: dict | None = None,
    policies: dict[str, tuple[dict, dict[str, HospitalRule]]] | None = None,
    treating: bool | None = None,
) -> Evaluation:
    """Load the decision's inputs from the ledger and decide. ``prefs`` replaces the patient's
    stored preferences (used when re-evaluating grants against new preferences); ``policies``
    caches parsed hospital rules across patients of a cohort; ``treating`` replaces the ledger's
    treating relationship (a preview for a requester who is not a registered user)."""
    msp = patient["hospital"]
    if policies is not None and msp in policies:
        policy, rules = policies[msp]
    else:
        policy, rules = ctx.get_parsed(keys.policy(msp), lambda doc: _parse_policy(msp, doc))
        if policies is not None:
            policies[msp] = (policy, rules)
    prefs = prefs if prefs is not None else load_prefs(ctx, patient["id"])
    treatment = ctx.get(keys.treatment(patient["id"], requester["id"])) if treating is None else None
    treating = treating_at(treatment, ctx.now) if treating is None else treating
    decision = decide(
        party(requester), party(patient), sections, purpose, ctx.now,
        rules=list(rules.values()),
        preferences=[pref_from_doc(d) for _, d in sorted(prefs["rules"].items())],
        treating=treating, break_glass=break_glass,
    )
    return Evaluation(decision, policy, prefs, rules, treatment, treating)


# --------------------------------------------------------------------------- request records

#: Fields a stored request leaves out when they hold their default (the record stays small enough
#: for a storage row of its own: no overflow pages on the peers).
REQUEST_DEFAULTS: dict[str, Any] = {
    "break_glass": False, "justification": None, "justification_digest": None, "expires_at": None,
    "treating": False, "relies_on_treating": False, "token_hashes": [], "revoked_at": None, "revoked_by": None,
    "revoke_reason": None, "review": None,
}
_DERIVED = ("grant_id", "sections")


def compact_request(rec: dict) -> dict:
    """The stored form of a request: defaults and derived fields left out, the decision as
    ``[section, reason, basis, max_seconds]`` rows."""
    out = {k: v for k, v in rec.items()
           if k not in _DERIVED and k != "decision" and not (k in REQUEST_DEFAULTS and v == REQUEST_DEFAULTS[k])}
    out["decision"] = [[d["section"], d["reason"], d["basis"], d.get("max_seconds")] for d in rec["decision"]]
    return out


def expand_request(stored: dict) -> dict:
    """A stored request as every reader sees it: the full decision, granted sections, grant id."""
    rec = {**REQUEST_DEFAULTS, **stored}
    rec["token_hashes"] = list(rec["token_hashes"])
    decision = []
    for section, reason, basis, max_seconds in stored["decision"]:
        allowed = reason in ALLOW_REASONS
        d = {"section": section, "allowed": allowed, "reason": reason, "basis": basis}
        if allowed:
            d["max_seconds"] = max_seconds
        decision.append(d)
    rec["decision"] = decision
    rec["sections"] = [d["section"] for d in decision if d["allowed"]]
    rec["grant_id"] = rec["request_id"] if rec["sections"] else None
    return rec


def load_request(ctx: SerumsContext, rid: str) -> dict | None:
    raw = ctx.get(keys.request(rid))
    return None if raw is None else expand_request(raw)


def save_request(ctx: SerumsContext, rec: dict) -> None:
    ctx.put(keys.request(rec["request_id"]), compact_request(rec))


# --------------------------------------------------------------------------- grants


def grant_status(ctx: SerumsContext, grant: dict, requester: dict | None = None) -> tuple[str, bool, str | None]:
    """(status, live, why not live). Status is the stored one, or ``expired`` once past expiry.
    Live: active, inside ``[created_at - skew, expires_at)``, and the requester still active,
    in the same role, and not suspended since the grant was made."""
    now = ctx.now_s
    if grant["status"] == GRANT_REVOKED:
        return GRANT_REVOKED, False, "revoked"
    if now >= grant["expires_at"]:
        return GRANT_EXPIRED, False, "expired"
    created = parse_stored_time(grant["created_at"])
    if ctx.now < created - _dt.timedelta(seconds=CLOCK_SKEW_SECONDS):
        return GRANT_ACTIVE, False, "not-yet-valid"
    requester = requester if requester is not None else ctx.get(keys.user(grant["requester_id"]))
    if requester is None or requester["status"] != ACTIVE:
        return GRANT_ACTIVE, False, "requester-suspended"
    if (requester.get("suspended_at") or "") > grant["created_at"]:
        return GRANT_ACTIVE, False, "requester-suspended-since-grant"
    if requester["role"] != grant["requester_role"]:
        return GRANT_ACTIVE, False, "requester-role-changed"
    return GRANT_ACTIVE, True, None


def grant_view(ctx: SerumsContext, grant: dict) -> dict[str, Any]:
    """A grant as GetGrant/CheckGrant and the audit queries return it."""
    status, live, why = grant_status(ctx, grant)
    out = {"revoked_at": None, "revoked_by": None, "revoke_reason": None, "review": None, **grant}
    out["status"] = status
    out["live"] = live
    out["not_live_reason"] = why
    out["checked_at"] = ctx.now_s
    return out


def revoke_grant(ctx: SerumsContext, grant: dict, reason: str, by: str) -> None:
    """Mark ``grant`` revoked (the caller checked it may) and index the revocation."""
    grant["status"] = GRANT_REVOKED
    grant["revoked_at"] = ctx.now_s
    grant["revoked_by"] = by
    grant["revoke_reason"] = reason
    save_request(ctx, grant)
    ctx.index("revocation", grant["grant_id"], patient=grant["patient"], user=grant["requester_id"],
              extra={"reason": reason}, by_time=True)


def active_grants_of_patient(ctx: SerumsContext, patient: str) -> list[dict]:
    """The patient's grants that are still active and unexpired (a range over the patient's decision
    index: concurrent new grants for the same patient make the caller's transaction fail rather
    than miss them)."""
    out = []
    start, end = keys.prefix_range("a.p", patient, "decision")
    for kv in ctx.stub.get_state_by_range(start, end):
        ptr = index_entry(ctx.stub, kv.key, kv.value)
        if (ptr.get("expires_at") or "") <= ctx.now_s:  # denied (no expiry) or expired
            continue
        g = load_request(ctx, ptr["id"])
        if g is not None and g["status"] == GRANT_ACTIVE:
            out.append(g)
    return out
