"""PolicyContract (step 1): each hospital's generic access rules — roles × record sections ×
purposes → allow or deny, with conditions — and its grant durations. Versioned; only that
hospital's admins write them; every channel member may read them (patients read them to decide
their own preferences)."""

from __future__ import annotations

import json

from chaincode import Conflict, InvalidArgument, NotFound, evaluate, transaction

from . import keys
from .common import SerumsContext, SerumsContract, load_hospital
from .records import load_policy
from .vocab import (
    EFFECTS,
    MAX_BREAK_GLASS_SECONDS,
    MAX_GRANT_SECONDS_CEILING,
    check_bool,
    check_choice,
    check_id,
    check_int,
    check_msp,
    check_object,
    check_purposes,
    check_roles,
    check_sections,
    fmt_time,
    parse_time,
)

RULE_FIELDS = ("rule_id", "effect", "roles", "sections", "purposes", "same_hospital", "treating_required",
               "consent_required", "max_grant_seconds", "valid_from", "valid_until")


def parse_rule(ctx: SerumsContext, rule: dict) -> dict:
    """Validate a rule given by a client; every error names its field (``rule.<field>``)."""
    check_object(rule, "rule", RULE_FIELDS, required=("roles", "sections", "purposes"))
    rid = rule.get("rule_id") or ""
    rid = check_id(rid, "rule.rule_id") if rid else "r-" + ctx.tx_id[:12]
    max_s = rule.get("max_grant_seconds")
    if max_s is not None:
        max_s = check_int(max_s, "rule.max_grant_seconds", 60, MAX_GRANT_SECONDS_CEILING)
    t0 = parse_time(rule.get("valid_from"), "rule.valid_from")
    t1 = parse_time(rule.get("valid_until"), "rule.valid_until")
    if t1 is not None and t0 is not None and t1 <= t0:
        raise InvalidArgument("rule.valid_until: must be after valid_from")
    if t1 is not None and t1 <= ctx.now:
        raise InvalidArgument("rule.valid_until: already past")
    return {
        "rule_id": rid,
        "effect": check_choice(rule.get("effect", "allow"), "rule.effect", EFFECTS),
        "roles": check_roles(rule["roles"], "rule.roles"),
        "sections": check_sections(rule["sections"], "rule.sections", wildcard=True),
        "purposes": check_purposes(rule["purposes"], "rule.purposes"),
        "same_hospital": check_bool(rule.get("same_hospital", False), "rule.same_hospital"),
        "treating_required": check_bool(rule.get("treating_required", False), "rule.treating_required"),
        "consent_required": check_bool(rule.get("consent_required", False), "rule.consent_required"),
        "max_grant_seconds": max_s,
        "valid_from": fmt_time(t0) if t0 else None,
        "valid_until": fmt_time(t1) if t1 else None,
    }


class PolicyContract(SerumsContract):
    name = "PolicyContract"
    info = {"title": "SERUMS hospital access rules (step 1)", "version": "1.0"}

    def _own_policy(self, ctx: SerumsContext) -> dict:
        c = ctx.caller
        c.require_admin_of(c.msp)
        load_hospital(ctx, c.msp)
        return load_policy(ctx, c.msp)

    def _save(self, ctx: SerumsContext, policy: dict, change: str, rule_id: str | None) -> dict:
        policy["version"] += 1
        policy["updated_at"] = ctx.now_s
        policy["updated_by"] = ctx.caller.label
        ctx.put(keys.policy(policy["hospital"]), policy)
        ctx.event("PolicyChanged", {"hospital": policy["hospital"], "version": policy["version"], "change": change,
                                    "rule_id": rule_id, "at": ctx.now_s})
        return policy

    @transaction
    def PutRule(self, ctx: SerumsContext, rule: dict) -> dict:
        """Add or replace one rule of the caller's hospital; returns the rule with its id and
        version (``rule_id`` is generated when not given)."""
        policy = self._own_policy(ctx)
        doc = parse_rule(ctx, rule)
        old = policy["rules"].get(doc["rule_id"])
        doc["version"] = (old["version"] + 1) if old else 1
        doc["updated_at"] = ctx.now_s
        policy["rules"][doc["rule_id"]] = doc
        self._save(ctx, policy, "replaced" if old else "added", doc["rule_id"])
        return {**doc, "policy_version": policy["version"]}

    @transaction
    def RemoveRule(self, ctx: SerumsContext, rule_id: str) -> dict:
        """Remove a rule; it no longer applies to new requests (grants already made run until they
        expire, within the rule's maximum duration, unless revoked)."""
        policy = self._own_policy(ctx)
        rid = check_id(rule_id, "rule_id")
        if rid not in policy["rules"]:
            raise NotFound(f"rule_id: {policy['hospital']} has no rule {rid!r}")
        removed = policy["rules"].pop(rid)
        self._save(ctx, policy, "removed", rid)
        return {**removed, "removed_at": ctx.now_s, "policy_version": policy["version"]}

    @transaction
    def SetPolicySettings(self, ctx: SerumsContext, settings: dict) -> dict:
        """The hospital's default maximum grant duration (for grants whose basis sets none) and
        the duration of break-glass grants, in seconds."""
        policy = self._own_policy(ctx)
        check_object(settings, "settings", ("max_grant_seconds", "break_glass_seconds"))
        if not settings:
            raise InvalidArgument("settings: give max_grant_seconds and/or break_glass_seconds")
        new = dict(policy["settings"])
        if "max_grant_seconds" in settings:
            new["max_grant_seconds"] = check_int(settings["max_grant_seconds"], "settings.max_grant_seconds",
                                                 60, MAX_GRANT_SECONDS_CEILING)
        if "break_glass_seconds" in settings:
            new["break_glass_seconds"] = check_int(settings["break_glass_seconds"], "settings.break_glass_seconds",
                                                   60, MAX_BREAK_GLASS_SECONDS)
        if new == policy["settings"]:
            raise Conflict("settings: unchanged")
        policy["settings"] = new
        return self._save(ctx, policy, "settings", None)

    @evaluate
    def GetPolicy(self, ctx: SerumsContext, hospital: str) -> dict:
        msp = check_msp(hospital, "hospital")
        load_hospital(ctx, msp)
        return load_policy(ctx, msp)

    @evaluate
    def PolicyHistory(self, ctx: SerumsContext, hospital: str) -> list:
        """Every version of the hospital's rules, oldest first."""
        msp = check_msp(hospital, "hospital")
        load_hospital(ctx, msp)
        return [
            {"tx_id": m.tx_id, "timestamp": fmt_time(m.timestamp), "deleted": m.is_delete,
             "policy": json.loads(m.value) if m.value else None}
            for m in ctx.stub.get_history_for_key(keys.policy(msp))
        ]
