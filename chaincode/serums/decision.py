"""The access decision: a pure function of who asks, whose record, which sections, what for, when.

:func:`decide` combines the patient's hospital's generic rules (PolicyContract, step 1) with the
patient's own preferences (PreferenceContract, step 2), the treating relationship and
break-glass into a per-section allow/deny with a reason code and the rules it rests on. It reads
no ledger and no clock: the contracts load its inputs and record its output, and the property
tests exercise it on its own.

Semantics, for each requested section, first match wins:

1. the requester is suspended (status not ``active``) → **deny** ``requester-suspended``;
2. the requester is the patient → **allow** ``own-record`` (a patient always sees their record);
3. a matching hospital *deny* rule → **deny** ``hospital-rule-deny`` (not even break-glass
   overrides the hospital's hard limits);
4. a matching patient *deny* preference → **deny** ``patient-deny``, or **allow** ``break-glass``
   when the glass is broken (the only override of a patient's deny);
5. a matching patient *allow* preference → **allow** ``patient-consent`` (consent extends the
   hospital's defaults; basis: the preference and any allowing hospital rule);
6. a matching hospital *allow* rule that does not require consent → **allow** ``hospital-rule``;
7. otherwise **deny** with the most specific reason (``consent-required``, ``not-treating``,
   ``other-hospital``, ``rule-expired``, ``rule-not-yet-valid``, ``no-rule``), or **allow**
   ``break-glass`` when the glass is broken.

"Matching" means: the rule names the requester's role (or ``*``), the section (or ``*``) and the
purpose (or ``*``); it is inside its validity window at ``now`` (``valid_from <= now <
valid_until``: an expired rule never grants, and never denies); and its conditions hold (same
hospital; treating relationship). A preference matches when its grantee is the requester (by user
id, role, hospital, or anyone), it names the section and purpose, and it is inside its window.
Deny beats allow from either side. Break-glass counts only for a clinician (gp, specialist, nurse)
asking for the ``emergency`` purpose.

Each allowed section carries the longest duration its basis supports (``max_seconds``; None when
the basis sets no bound of its own — the contract then applies the hospital's default, or the
break-glass duration).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .vocab import CLINICIAN_ROLES, WILDCARD

ALLOW = "allow"
DENY = "deny"

# reason codes
OWN_RECORD = "own-record"
REQUESTER_SUSPENDED = "requester-suspended"
HOSPITAL_DENY = "hospital-rule-deny"
PATIENT_DENY = "patient-deny"
PATIENT_CONSENT = "patient-consent"
HOSPITAL_RULE = "hospital-rule"
BREAK_GLASS = "break-glass"
CONSENT_REQUIRED = "consent-required"
NOT_TREATING = "not-treating"
OTHER_HOSPITAL = "other-hospital"
RULE_EXPIRED = "rule-expired"
RULE_NOT_YET_VALID = "rule-not-yet-valid"
NO_RULE = "no-rule"

ALLOW_REASONS = (OWN_RECORD, PATIENT_CONSENT, HOSPITAL_RULE, BREAK_GLASS)
DENY_REASONS = (
    REQUESTER_SUSPENDED, HOSPITAL_DENY, PATIENT_DENY, CONSENT_REQUIRED, NOT_TREATING, OTHER_HOSPITAL,
    RULE_EXPIRED, RULE_NOT_YET_VALID, NO_RULE,
)


@dataclass(frozen=True)
class Party:
    """A user as the decision sees it: pseudonymous id, role, hospital (MSP id), status."""

    user_id: str
    role: str
    hospital: str
    status: str = "active"

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class HospitalRule:
    """One of a hospital's generic rules: roles × sections × purposes → allow/deny, with conditions."""

    rule_id: str
    effect: str
    roles: tuple[str, ...]
    sections: tuple[str, ...]
    purposes: tuple[str, ...]
    same_hospital: bool = False
    treating_required: bool = False
    consent_required: bool = False
    max_grant_seconds: int | None = None
    valid_from: _dt.datetime | None = None
    valid_until: _dt.datetime | None = None


@dataclass(frozen=True)
class Preference:
    """One of a patient's own rules: allow/deny for a grantee, sections, purposes, window."""

    pref_id: str
    effect: str
    grantee_kind: str  # user | role | hospital | anyone
    grantee: str  # the user id, role or hospital MSP id; "" for anyone
    sections: tuple[str, ...]
    purposes: tuple[str, ...]
    valid_from: _dt.datetime | None = None
    valid_until: _dt.datetime | None = None


@dataclass(frozen=True)
class SectionDecision:
    section: str
    allowed: bool
    reason: str
    basis: tuple[str, ...] = ()  # ids of the rules and preferences the outcome rests on
    max_seconds: int | None = None  # for allowed sections: the longest grant the basis supports

    def to_json(self) -> dict:
        out: dict = {"section": self.section, "allowed": self.allowed, "reason": self.reason, "basis": list(self.basis)}
        if self.allowed:
            out["max_seconds"] = self.max_seconds
        return out


@dataclass(frozen=True)
class Decision:
    sections: tuple[SectionDecision, ...]
    break_glass: bool  # the glass was broken and counted (eligible requester, emergency purpose)

    @property
    def granted(self) -> list[str]:
        return [s.section for s in self.sections if s.allowed]

    @property
    def denied(self) -> list[str]:
        return [s.section for s in self.sections if not s.allowed]

    @property
    def any_allowed(self) -> bool:
        return any(s.allowed for s in self.sections)

    @property
    def all_allowed(self) -> bool:
        return all(s.allowed for s in self.sections)

    def section(self, name: str) -> SectionDecision:
        for s in self.sections:
            if s.section == name:
                return s
        raise KeyError(name)

    def to_json(self) -> list[dict]:
        return [s.to_json() for s in self.sections]


# --------------------------------------------------------------------------- helpers


def _names(values: Sequence[str], value: str) -> bool:
    return WILDCARD in values or value in values


def in_window(valid_from: _dt.datetime | None, valid_until: _dt.datetime | None, now: _dt.datetime) -> bool:
    return (valid_from is None or valid_from <= now) and (valid_until is None or now < valid_until)


def break_glass_eligible(requester: Party, purpose: str) -> bool:
    return requester.role in CLINICIAN_ROLES and purpose == "emergency"


def grantee_matches(p: Preference, requester: Party) -> bool:
    if p.grantee_kind == "anyone":
        return True
    if p.grantee_kind == "user":
        return p.grantee == requester.user_id
    if p.grantee_kind == "role":
        return p.grantee == requester.role
    if p.grantee_kind == "hospital":
        return p.grantee == requester.hospital
    return False


def _remaining(until: _dt.datetime | None, now: _dt.datetime) -> int | None:
    return None if until is None else max(0, int((until - now).total_seconds()))


def _longest(values: Iterable[int | None]) -> int | None:
    """The longest of some bounds, where None means 'no bound of its own'."""
    vals = list(values)
    if not vals or any(v is None for v in vals):
        return None
    return max(v for v in vals if v is not None)


def _shortest(*values: int | None) -> int | None:
    vals = [v for v in values if v is not None]
    return min(vals) if vals else None


# --------------------------------------------------------------------------- the decision


def decide(
    requester: Party,
    patient: Party,
    sections: Sequence[str],
    purpose: str,
    now: _dt.datetime,
    *,
    rules: Sequence[HospitalRule] = (),
    preferences: Sequence[Preference] = (),
    treating: bool = False,
    break_glass: bool = False,
) -> Decision:
    """Per-section decision; see the module docstring for the semantics."""
    glass = bool(break_glass) and break_glass_eligible(requester, purpose)
    same_hospital = requester.hospital == patient.hospital
    own = requester.user_id == patient.user_id

    # rules and preferences that can concern this requester and purpose at all
    role_rules = [r for r in rules if _names(r.roles, requester.role) and _names(r.purposes, purpose)]
    mine = [p for p in preferences if grantee_matches(p, requester) and _names(p.purposes, purpose)]

    out: list[SectionDecision] = []
    for section in sections:
        if not requester.active:
            out.append(SectionDecision(section, False, REQUESTER_SUSPENDED))
            continue
        if own:
            out.append(SectionDecision(section, True, OWN_RECORD))
            continue
        out.append(_decide_section(section, role_rules, mine, now, same_hospital, treating, glass))
    return Decision(tuple(out), glass)


def _decide_section(
    section: str,
    role_rules: list[HospitalRule],
    prefs: list[Preference],
    now: _dt.datetime,
    same_hospital: bool,
    treating: bool,
    glass: bool,
) -> SectionDecision:
    candidates = [r for r in role_rules if _names(r.sections, section)]
    current = [r for r in candidates if in_window(r.valid_from, r.valid_until, now)]
    matched = [
        r for r in current
        if (same_hospital or not r.same_hospital) and (treating or not r.treating_required)
    ]
    h_deny = [r for r in matched if r.effect == DENY]
    h_allow = [r for r in matched if r.effect == ALLOW]
    h_free = [r for r in h_allow if not r.consent_required]  # allow without the patient's consent

    p_match = [
        p for p in prefs if _names(p.sections, section) and in_window(p.valid_from, p.valid_until, now)
    ]
    p_deny = [p for p in p_match if p.effect == DENY]
    p_allow = [p for p in p_match if p.effect == ALLOW]

    if h_deny:
        return SectionDecision(section, False, HOSPITAL_DENY, tuple(sorted(r.rule_id for r in h_deny)))
    if p_deny:
        basis = tuple(sorted(p.pref_id for p in p_deny))
        if glass:
            return SectionDecision(section, True, BREAK_GLASS, basis)
        return SectionDecision(section, False, PATIENT_DENY, basis)
    if p_allow:
        consent_bound = _longest(_remaining(p.valid_until, now) for p in p_allow)
        rule_bound = _longest(r.max_grant_seconds for r in h_allow) if h_allow else None
        basis = tuple(sorted(r.rule_id for r in h_allow)) + tuple(sorted(p.pref_id for p in p_allow))
        return SectionDecision(section, True, PATIENT_CONSENT, basis, _shortest(consent_bound, rule_bound))
    if h_free:
        return SectionDecision(
            section, True, HOSPITAL_RULE, tuple(sorted(r.rule_id for r in h_free)),
            _longest(r.max_grant_seconds for r in h_free),
        )
    if glass:
        return SectionDecision(section, True, BREAK_GLASS, ())
    return SectionDecision(section, False, _why_not(candidates, current, h_allow, same_hospital, treating, now))


def _why_not(
    candidates: list[HospitalRule],
    current: list[HospitalRule],
    h_allow: list[HospitalRule],
    same_hospital: bool,
    treating: bool,
    now: _dt.datetime,
) -> str:
    """The most specific reason no allow applied."""
    if h_allow:  # an allow matched, but it needs the patient's consent
        return CONSENT_REQUIRED
    allows_now = [r for r in current if r.effect == ALLOW]
    if allows_now:  # each failed a condition: name the treating one unless all failed on the hospital
        if all(r.same_hospital and not same_hospital for r in allows_now):
            return OTHER_HOSPITAL
        return NOT_TREATING
    allows = [r for r in candidates if r.effect == ALLOW]
    if allows:
        if any(r.valid_until is not None and now >= r.valid_until for r in allows):
            return RULE_EXPIRED
        return RULE_NOT_YET_VALID
    return NO_RULE
