"""Messages say "an auditor", "an insurer" (once "you are logged in as a auditor"): roles go through
an article helper, and no message puts a bare "a" before a role."""

from __future__ import annotations

import re
from pathlib import Path

from chaincode.serums.common import a_role
from gateway.problems import article

ROOT = Path(__file__).resolve().parents[2]
BARE = re.compile(r"""\ba \{[^}]*role[^}]*\}""")


def test_articles():
    assert [f"{article(r)} {r}" for r in ("auditor", "insurer", "gp", "hospital_admin", "nurse")] == [
        "an auditor", "an insurer", "a gp", "a hospital_admin", "a nurse"]
    assert a_role("auditor") == "an auditor" and a_role("specialist") == "a specialist"


def test_no_message_puts_a_bare_a_before_a_role():
    found = [f"{p.relative_to(ROOT)}:{n}" for pkg in ("gateway", "chaincode", "auth", "vault", "serums", "network")
             for p in (ROOT / pkg).rglob("*.py") for n, line in enumerate(p.read_text().splitlines(), 1)
             if BARE.search(line)]
    assert not found


def test_the_role_check_says_an_auditor(world, http):
    from .stack import enrol

    tok = http.login(enrol(world.services, "fcrb", "auditor"))
    r = http.post("/doctors/requests", token=tok, json={"patient_id": "p-1", "sections": ["*"],
                                                         "purpose": "treatment", "justification": "direct-care"})
    assert r.status == 403 and r.json["detail"].endswith("you are logged in as an auditor")
