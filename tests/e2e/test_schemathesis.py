"""Schemathesis against the running gateway's ``/openapi.json``: generated requests — valid and
invalid — for every operation, anonymous and logged in with a user of the operation's role, and
not one answer may be a server error. Bounded and deterministic (``derandomize``), well under two
minutes.

The logged-in users are dedicated to this test (a Fcrb admin, a Zmc patient, …), so that what the
generated requests change (rules, preferences, share codes) touches nobody else.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.gateway.stack import enrol

from .conftest import Stack

MAX_EXAMPLES = 15
#: Operations that would end the logged-in session for the rest of the run (tried anonymously only).
ANONYMOUS_ONLY = {("POST", "/auth/logout"), ("POST", "/auth/refresh")}
PREFIX_ROLE = {"/patients": "patient", "/doctors": "specialist", "/admin": "hospital_admin", "/audit": "auditor"}


@pytest.fixture(scope="module")
def api_schema(stack: Stack):
    return schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json")


@pytest.fixture(scope="module")
def tokens(stack: Stack) -> dict[str, str]:
    svc = stack.services
    _, ref = stack.world.patient_ref("zmc", 1)
    accounts = {
        "patient": enrol(svc, "zmc", "patient", user_id=ref, prefix="fuzz-patient"),
        "specialist": enrol(svc, "fcrb", "specialist", prefix="fuzz-doctor"),
        "hospital_admin": enrol(svc, "fcrb", "hospital_admin", prefix="fuzz-admin"),
        "auditor": enrol(svc, "fcrb", "auditor", prefix="fuzz-auditor"),
    }
    return {role: stack.http.login(acc) for role, acc in accounts.items()}


def _role_for(path: str) -> str:
    for prefix, role in PREFIX_ROLE.items():
        if path.startswith(prefix):
            return role
    return "patient"


@pytest.mark.slow
def test_no_server_errors(api_schema, tokens, stack: Stack):
    """Every operation, positive and negative examples, anonymous and with a token of its role."""
    failures: list[str] = []
    operations = [r.ok() for r in api_schema.get_all_operations()]
    assert len(operations) > 50
    for op in operations:
        headers = None
        if (op.method.upper(), op.path) not in ANONYMOUS_ONLY:
            headers = {"Authorization": f"Bearer {tokens[_role_for(op.path)]}"}
        for mode in GenerationMode:

            def check(case, headers):
                case.call_and_validate(checks=[not_a_server_error])
                if headers:
                    case.call_and_validate(headers=headers, checks=[not_a_server_error])

            run = settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                           suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])(
                given(case=op.as_strategy(generation_mode=mode), headers=st.just(headers))(check))
            try:
                run()
            except Unsatisfiable:  # nothing to negate (an operation without parameters): nothing to try
                continue
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
                failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures) + "\n\ngunicorn log tail:\n" + stack.gunicorn_log.read_text()[-3000:]
