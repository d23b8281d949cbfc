import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from network.policy import NOutOf, PolicyError, evaluate, parse_policy, plan_orgs

ORGS = ["LothianMSP", "ZmcMSP", "FcrbMSP"]


def test_implicit_policies_over_channel_orgs():
    assert parse_policy("MAJORITY", ORGS).n == 2
    assert parse_policy("any", ORGS).n == 1
    assert parse_policy("ALL", ORGS).n == 3


def test_fabric_syntax_and_role_semantics():
    p = parse_policy("AND('LothianMSP.peer', OR('ZmcMSP.member', 'FcrbMSP.admin'))", ORGS)
    assert evaluate(p, [("LothianMSP", "peer"), ("ZmcMSP", "client")])
    assert evaluate(p, [("LothianMSP", "peer"), ("FcrbMSP", "admin")])
    assert not evaluate(p, [("LothianMSP", "peer"), ("FcrbMSP", "peer")])
    assert not evaluate(p, [("ZmcMSP", "peer")])
    q = parse_policy("OutOf(2, 'LothianMSP.peer', 'ZmcMSP.peer', 'FcrbMSP.peer')", ORGS)
    assert isinstance(q, NOutOf) and q.n == 2


def test_one_signature_satisfies_one_principal_only():
    p = parse_policy("AND('LothianMSP.member', 'LothianMSP.member')", ORGS)
    assert not evaluate(p, [("LothianMSP", "peer")])
    assert not evaluate(p, [("LothianMSP", "peer"), ("LothianMSP", "peer")])  # the same signer twice


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "non-empty"),
        ("AND('LothianMSP.peer'", "expected ')'"),
        ("OutOf(4, 'LothianMSP.peer', 'ZmcMSP.peer')", "never be satisfied"),
        ("OR('LothianMSP.boss')", "role one of"),
        ("OR('NopeMSP.peer')", "not on the channel"),
        ("XOR('LothianMSP.peer')", "expected AND, OR, OutOf"),
        ("OR('LothianMSP.peer') trailing", "after the end"),
        ("MAJORITY", "needs the channel"),
    ],
)
def test_bad_policies_are_explained(text, fragment):
    with pytest.raises(PolicyError, match=re.escape(fragment)):
        parse_policy(text, ORGS if text != "MAJORITY" else [])


@given(st.integers(0, 10), st.sampled_from(ORGS))
def test_plans_are_minimal_satisfying_and_prefer_the_gateway_org(rotate, first):
    p = parse_policy("MAJORITY", ORGS)
    plan = plan_orgs(p, ORGS, first=first, rotate=rotate)
    assert len(plan) == 2 and plan[0] == first
    assert evaluate(p, [(o, "peer") for o in plan])


def test_plans_spread_load_and_fail_clearly():
    p = parse_policy("MAJORITY", ORGS)
    seconds = {plan_orgs(p, ORGS, first="LothianMSP", rotate=r)[1] for r in range(4)}
    assert seconds == {"ZmcMSP", "FcrbMSP"}
    with pytest.raises(PolicyError, match="no combination"):
        plan_orgs(parse_policy("AND('LothianMSP.admin')", ORGS), ORGS)
