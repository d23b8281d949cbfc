"""The access decision as a pure function: examples for every reason, and hypothesis properties."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaincode.serums.decision import (
    ALLOW_REASONS,
    BREAK_GLASS,
    CONSENT_REQUIRED,
    DENY_REASONS,
    HOSPITAL_DENY,
    HOSPITAL_RULE,
    NO_RULE,
    NOT_TREATING,
    OTHER_HOSPITAL,
    OWN_RECORD,
    PATIENT_CONSENT,
    PATIENT_DENY,
    REQUESTER_SUSPENDED,
    RULE_EXPIRED,
    RULE_NOT_YET_VALID,
    HospitalRule,
    Party,
    Preference,
    decide,
    in_window,
)
from chaincode.serums.vocab import CLINICIAN_ROLES, PURPOSES, ROLES, SECTIONS

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
DOC = Party("doc", "specialist", "H1")
PAT = Party("pat", "patient", "H1")


def rule(rid="r", effect="allow", roles=("specialist",), sections=("conditions",), purposes=("treatment",), **kw):
    return HospitalRule(rid, effect, tuple(roles), tuple(sections), tuple(purposes), **kw)


def pref(pid="p", effect="allow", kind="anyone", grantee="", sections=("*",), purposes=("*",), **kw):
    return Preference(pid, effect, kind, grantee, tuple(sections), tuple(purposes), **kw)


def one(requester=DOC, patient=PAT, section="conditions", purpose="treatment", **kw):
    return decide(requester, patient, [section], purpose, NOW, **kw).sections[0]


# --------------------------------------------------------------------------- every reason, by example


def test_hospital_rule_allows_with_its_duration():
    s = one(rules=[rule(max_grant_seconds=600)])
    assert (s.allowed, s.reason, s.basis, s.max_seconds) == (True, HOSPITAL_RULE, ("r",), 600)


def test_no_rule_denies():
    assert one().reason == NO_RULE and not one().allowed


def test_conditions_name_what_failed():
    assert one(rules=[rule(treating_required=True)]).reason == NOT_TREATING
    assert one(rules=[rule(treating_required=True)], treating=True).allowed
    other = Party("doc2", "specialist", "H2")
    assert one(other, rules=[rule(same_hospital=True)]).reason == OTHER_HOSPITAL
    assert one(other, rules=[rule(same_hospital=True, treating_required=True)], treating=True).reason == OTHER_HOSPITAL


def test_windows_expired_and_future_rules_never_grant():
    assert one(rules=[rule(valid_until=NOW)]).reason == RULE_EXPIRED
    assert one(rules=[rule(valid_from=NOW + H)]).reason == RULE_NOT_YET_VALID
    assert one(rules=[rule(valid_from=NOW - H, valid_until=NOW + H)]).allowed
    # an expired deny does not deny either
    assert one(rules=[rule(), rule("d", "deny", valid_until=NOW - H)]).allowed


def test_deny_beats_allow_on_both_sides():
    assert one(rules=[rule(), rule("d", "deny")]).reason == HOSPITAL_DENY
    s = one(rules=[rule()], preferences=[pref(), pref("pd", "deny")])
    assert (s.allowed, s.reason, s.basis) == (False, PATIENT_DENY, ("pd",))


def test_consent_required_and_given():
    r = rule(consent_required=True, max_grant_seconds=7200)
    assert one(rules=[r]).reason == CONSENT_REQUIRED
    s = one(rules=[r], preferences=[pref(kind="user", grantee="doc", valid_until=NOW + H)])
    assert (s.allowed, s.reason, s.basis, s.max_seconds) == (True, PATIENT_CONSENT, ("r", "p"), 3600)


def test_patient_consent_extends_hospital_defaults():
    s = one(preferences=[pref(kind="role", grantee="specialist")])
    assert (s.allowed, s.reason, s.max_seconds) == (True, PATIENT_CONSENT, None)
    assert not one(preferences=[pref(kind="role", grantee="gp")]).allowed
    assert one(preferences=[pref(kind="hospital", grantee="H1")]).allowed
    assert not one(preferences=[pref(sections=("contact",))]).allowed
    assert not one(preferences=[pref(purposes=("research",))]).allowed


def test_break_glass_overrides_patient_but_not_hospital():
    kw = {"section": "conditions", "purpose": "emergency", "break_glass": True}
    assert one(**kw).reason == BREAK_GLASS
    assert one(preferences=[pref(effect="deny")], **kw).reason == BREAK_GLASS
    deny_all = rule("d", "deny", roles=("*",), sections=("*",), purposes=("*",))
    assert one(rules=[deny_all], **kw).reason == HOSPITAL_DENY
    # only clinicians, only for emergencies
    assert one(Party("ins", "insurer", "H2"), **kw).reason == NO_RULE
    assert one(section="conditions", purpose="treatment", break_glass=True).reason == NO_RULE


def test_own_record_and_suspension():
    assert one(PAT, preferences=[pref(effect="deny")], rules=[rule("d", "deny", roles=("*",))]).reason == OWN_RECORD
    assert one(replace(DOC, status="suspended"), rules=[rule()]).reason == REQUESTER_SUSPENDED
    assert one(replace(PAT, status="suspended")).reason == REQUESTER_SUSPENDED


# --------------------------------------------------------------------------- strategies

T = st.integers(-72, 72).map(lambda h: NOW + dt.timedelta(hours=h))
OPT_T = st.none() | T
USERS = ("doc", "pat", "u3")
HOSPITALS = ("H1", "H2")


def _subset(values):
    return st.one_of(st.just(("*",)), st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True).map(tuple))


@st.composite
def windows(draw):
    a, b = draw(OPT_T), draw(OPT_T)
    if a is not None and b is not None and b <= a:
        b = a + dt.timedelta(hours=1)
    return a, b


@st.composite
def rules(draw):
    vf, vu = draw(windows())
    return HospitalRule(
        "r", draw(st.sampled_from(("allow", "deny"))),
        draw(_subset(ROLES)), draw(_subset(SECTIONS)), draw(_subset(PURPOSES)),
        draw(st.booleans()), draw(st.booleans()), draw(st.booleans()),
        draw(st.none() | st.integers(60, 10**6)), vf, vu,
    )


@st.composite
def prefs(draw):
    vf, vu = draw(windows())
    kind = draw(st.sampled_from(("user", "role", "hospital", "anyone")))
    grantee = {"user": st.sampled_from(USERS), "role": st.sampled_from(ROLES), "hospital": st.sampled_from(HOSPITALS),
               "anyone": st.just("")}[kind]
    return Preference("p", draw(st.sampled_from(("allow", "deny"))), kind,
                      draw(grantee), draw(_subset(SECTIONS)), draw(_subset(PURPOSES)), vf, vu)


parties = st.builds(Party, st.sampled_from(USERS), st.sampled_from(ROLES), st.sampled_from(HOSPITALS),
                    st.sampled_from(("active", "active", "active", "suspended")))


@st.composite
def cases(draw):
    requester = draw(parties)
    patient = Party("pat", "patient", draw(st.sampled_from(HOSPITALS)), "active")
    return {
        "requester": requester,
        "patient": patient,
        "sections": draw(st.lists(st.sampled_from(SECTIONS), min_size=1, max_size=5, unique=True)),
        "purpose": draw(st.sampled_from(PURPOSES)),
        "rules": [replace(r, rule_id=f"r{i}") for i, r in enumerate(draw(st.lists(rules(), max_size=6)))],
        "preferences": [replace(p, pref_id=f"p{i}") for i, p in enumerate(draw(st.lists(prefs(), max_size=6)))],
        "treating": draw(st.booleans()),
        "break_glass": draw(st.booleans()),
    }


def run(c, **over):
    c = {**c, **over}
    return decide(c["requester"], c["patient"], c["sections"], c["purpose"], NOW, rules=c["rules"],
                  preferences=c["preferences"], treating=c["treating"], break_glass=c["break_glass"])


def eligible(c) -> bool:
    return c["break_glass"] and c["requester"].role in CLINICIAN_ROLES and c["purpose"] == "emergency"


def ordinary(c) -> bool:
    """Neither suspended nor the patient: the rules decide."""
    return c["requester"].status == "active" and c["requester"].user_id != c["patient"].user_id


PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL = ("*",)


# --------------------------------------------------------------------------- properties


@PROPS
@given(cases())
def test_reasons_are_well_formed_and_sections_independent(c):
    d = run(c)
    assert [s.section for s in d.sections] == c["sections"]
    for s in d.sections:
        assert s.reason in (ALLOW_REASONS if s.allowed else DENY_REASONS)
        assert s.max_seconds is None or s.max_seconds >= 0
        assert run(c, sections=[s.section]).sections[0] == s  # each section is decided on its own
    assert d.break_glass == eligible(c)


@PROPS
@given(cases())
def test_a_suspended_user_is_always_denied(c):
    c["requester"] = replace(c["requester"], status="suspended")
    assert all(not s.allowed and s.reason == REQUESTER_SUSPENDED for s in run(c).sections)


@PROPS
@given(cases())
def test_a_patient_always_sees_their_own_record(c):
    c["requester"] = c["patient"]
    assert all(s.allowed and s.reason == OWN_RECORD for s in run(c).sections)


@PROPS
@given(cases(), st.booleans())
def test_deny_always_beats_allow(c, on_patient_side):
    if on_patient_side:
        c["preferences"] = [*c["preferences"], pref("px", "deny", "anyone", "", ALL, ALL)]
    else:
        c["rules"] = [*c["rules"], rule("rx", "deny", ALL, ALL, ALL)]
    for s in run(c).sections:
        if not ordinary(c):
            continue
        if on_patient_side:
            # only break-glass overrides a patient's deny (and a hospital deny still wins over it)
            assert (not s.allowed) or (s.reason == BREAK_GLASS and eligible(c))
        else:
            assert not s.allowed and s.reason == HOSPITAL_DENY


@PROPS
@given(cases())
def test_a_patient_deny_is_overridden_only_by_break_glass(c):
    c["preferences"] = [*c["preferences"], pref("px", "deny", "user", c["requester"].user_id, ALL, ALL)]
    d = run(c)
    for s in d.sections:
        if ordinary(c) and s.allowed:
            assert s.reason == BREAK_GLASS and d.break_glass
    # the same request without breaking the glass is denied everywhere
    if ordinary(c):
        assert not run(c, break_glass=False).any_allowed


@PROPS
@given(cases())
def test_an_expired_rule_never_grants(c):
    d = run(c)
    current_rules = [r for r in c["rules"] if in_window(r.valid_from, r.valid_until, NOW)]
    current_prefs = [p for p in c["preferences"] if in_window(p.valid_from, p.valid_until, NOW)]
    stale = {r.rule_id for r in c["rules"]} - {r.rule_id for r in current_rules}
    stale |= {p.pref_id for p in c["preferences"]} - {p.pref_id for p in current_prefs}
    d2 = run(c, rules=current_rules, preferences=current_prefs)
    assert [s.allowed for s in d.sections] == [s.allowed for s in d2.sections]
    for s in d.sections:
        if s.allowed:
            assert not set(s.basis) & stale


@PROPS
@given(cases())
def test_nothing_is_allowed_without_a_basis(c):
    d = run(c, rules=[], preferences=[])
    for s in d.sections:
        if ordinary(c):
            assert s.allowed == eligible(c)
            assert s.reason == (BREAK_GLASS if eligible(c) else NO_RULE)


@PROPS
@given(cases())
def test_break_glass_grants_everything_a_hospital_does_not_deny(c):
    c["break_glass"] = True
    c["purpose"] = "emergency"
    c["requester"] = replace(c["requester"], role="nurse")
    for s in run(c).sections:
        if ordinary(c):
            assert s.allowed or s.reason == HOSPITAL_DENY


@PROPS
@given(cases())
def test_break_glass_means_nothing_to_others(c):
    if c["requester"].role in CLINICIAN_ROLES and c["purpose"] == "emergency":
        return
    on = run(c, break_glass=True)
    off = run(c, break_glass=False)
    assert on.sections == off.sections


@PROPS
@given(cases(), st.sampled_from(("user", "role", "hospital", "anyone")))
def test_consent_grants_unless_something_denies(c, kind):
    r = c["requester"]
    grantee = {"user": r.user_id, "role": r.role, "hospital": r.hospital, "anyone": ""}[kind]
    c["preferences"] = [*c["preferences"], pref("pc", "allow", kind, grantee, ALL, (c["purpose"],))]
    base = run(c)
    for s in base.sections:
        if ordinary(c):
            assert s.allowed or s.reason in (HOSPITAL_DENY, PATIENT_DENY)


@PROPS
@given(cases(), rules())
def test_adding_an_allow_rule_never_takes_access_away(c, extra):
    extra = replace(extra, effect="allow")
    before = run(c)
    after = run(c, rules=[*c["rules"], extra])
    for a, b in zip(before.sections, after.sections, strict=True):
        assert b.allowed or not a.allowed
