"""Every precondition failure is a clear chaincode error: each function of every contract, given
odd values for each argument in turn, answers with a 4xx naming what is wrong, never a 500."""

from __future__ import annotations

import pytest

from chaincode.serums import serums_chaincode
from network.client import GatewayError

from .conftest import Cast, World

ODD = ["", "x", "-1", "[]", "{}", "null", '"s"', '[1, {"a": [1]}]', "1e309", "é" * 300, "\x01"]
FUNCTIONS = sorted(
    (cname, f.name, [p.name for p in f.params])
    for cname, fns in serums_chaincode().functions.items() for f in fns.values()
)


H = "ab" * 32


@pytest.fixture(scope="module")
def valid(world: World, cast: Cast) -> dict[str, str]:
    """A plausible value for every parameter name, so that each odd value reaches its own check."""
    p = world.patient()
    world.treat(p, cast.spec)
    grant = cast.spec.submit("TransportContract", "RequestAccess", p.name, ["conditions"], "treatment", "")
    return {
        "_patient": p,
        "patient": p.name, "patients": f'["{p.name}"]', "sections": '["conditions"]', "purpose": "treatment",
        "justification": "", "grant_id": grant["grant_id"], "request_id": grant["request_id"], "token_hash": H,
        "sections_returned": '["conditions"]', "digest": H, "presenter_id": "", "reason": "administrative",
        "detail": "", "blob_id": "blob-1", "section": "imaging", "sha256": H, "store": "fs", "address": H,
        "size": "1", "outcome": "justified", "cohort_id": "c-none", "page_size": "5", "bookmark": "", "kind": "decision",
        "start": "", "end": "", "user_id": cast.spec.name, "role": "nurse", "fingerprint": H,
        "changes": '{"role": "gp"}', "hospital": "LothianMSP", "name": "Somewhere", "clinician": cast.spec.name,
        "rule": '{"roles": ["gp"], "sections": ["contact"], "purposes": ["treatment"]}', "rule_id": "clin-treat",
        "settings": '{"max_grant_seconds": 3600}', "pref_id": "p-none", "dataset": "ds-none", "epsilon": "0.1",
        "delta": "0", "release_id": "r-1", "requester": '{"role": "gp", "hospital": "LothianMSP"}',
        "summary": ('{"presenter_id": "", "window_start": "2026-01-01T12:00:00Z", "window_end": "2026-01-01T12:01:00Z", '
                    '"count": 2, "reasons": {"token-malformed": 2}, "grant_ids": [], "tokens": 2, '
                    f'"token_hashes_digest": "{H}"}}'),
        "preference": '{"effect": "deny", "grantee": "anyone", "sections": ["*"], "purposes": ["insurance"]}',
        "expires_at": "2099-01-01T00:00:00Z", "current_only": "true",
    }


@pytest.mark.parametrize("cname,fn,params", FUNCTIONS, ids=[f"{c}:{f}" for c, f, _ in FUNCTIONS])
def test_odd_arguments_get_clear_errors(world: World, cast: Cast, valid, cname: str, fn: str, params: list[str]):
    callers = [world.admins["lothian"], cast.auditor]  # callers that get past each function's own checks
    callers += {"PreferenceContract": [valid["_patient"]], "BudgetContract": [cast.analytics],
                "TransportContract": [cast.vault, cast.researcher, valid["_patient"]]}.get(cname, [])
    problems = []
    for who in callers:
        for i in range(len(params)):
            for odd in ODD:
                args = [valid[p] for p in params]
                args[i] = odd
                try:
                    who.evaluate(cname, fn, *args)
                except GatewayError as exc:
                    if exc.chaincode_status is None or not 400 <= exc.chaincode_status < 500:
                        problems.append((params[i], odd[:10], exc.chaincode_status, str(exc)[:80]))
                    elif exc.chaincode_status == 400 and not exc.chaincode_message:
                        problems.append((params[i], odd[:10], 400, "no message"))
    assert not problems, problems[:5]
