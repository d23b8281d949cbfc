"""The 10-step flow over HTTP, against gunicorn (2 workers) and the node in its own process.

A Lothian patient shares a code with their specialist, who requests access, gets the chain's
decision with a reason per section and a token minted by the patient's hospital's vault, and
fetches only the granted sections (the rest withheld). Then what can go wrong: a patient's
preference denies a request (and the denial is on the ledger), a grant revoked between steps 8
and 9, a token presented by another doctor, break-glass; and what the auditor and the patient see
of all of it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.gateway.stack import Account, enrol

from .conftest import ENGINES, Stack

#: the whole flow on both ledgers: the embedded node and real Hyperledger Fabric
pytestmark = pytest.mark.parametrize("stack", ENGINES, indirect=True)

CLINICAL = {"admissions", "conditions", "procedures", "oncology.diagnosis", "oncology.treatment", "oncology.toxicity",
            "comorbidities"}


@dataclass
class Cast:
    spec: Account  # Lothian specialist treating both patients
    other: Account  # another Lothian specialist (not treating)
    nurse: Account  # Lothian nurse
    zspec: Account  # Zmc specialist
    auditor: Account  # Fcrb auditor
    alice: Account  # Lothian patient 0, treated by spec
    bob: Account  # Lothian patient 1, treated by spec, denies specialists by preference
    tokens: dict[str, str]

    def token(self, who: str) -> str:
        return self.tokens[who]


@pytest.fixture(scope="module")
def cast(stack: Stack) -> Cast:
    svc = stack.services
    spec = enrol(svc, "lothian", "specialist")
    other = enrol(svc, "lothian", "specialist")
    nurse = enrol(svc, "lothian", "nurse")
    zspec = enrol(svc, "zmc", "specialist")
    auditor = enrol(svc, "fcrb", "auditor")
    _, ref_a = stack.world.patient_ref("lothian", 0)
    _, ref_b = stack.world.patient_ref("lothian", 1)
    alice = enrol(svc, "lothian", "patient", user_id=ref_a, treating=(spec.user_id,))
    bob = enrol(svc, "lothian", "patient", user_id=ref_b, treating=(spec.user_id,))
    accounts = {"spec": spec, "other": other, "nurse": nurse, "zspec": zspec, "auditor": auditor, "alice": alice,
                "bob": bob}
    tokens = {name: stack.http.login(acc) for name, acc in accounts.items()}
    return Cast(**accounts, tokens=tokens)


def _request(stack: Stack, cast: Cast, who: str, patient: Account, **extra) -> dict:
    body = {"patient_id": patient.user_id, "sections": ["*"], "purpose": "treatment", **extra}
    r = stack.http.post("/doctors/requests", token=cast.token(who), json=body)
    assert r.status == 201, r
    return r.json


def test_full_flow_granted_with_a_share_code(stack: Stack, cast: Cast):
    http = stack.http
    # step 3: the patient shares a code
    r = http.post("/patients/me/share-codes", token=cast.token("alice"), json={"ttl_seconds": 300})
    assert r.status == 201 and len(r.json["code"]) == 14
    code = r.json["code"]
    # steps 5-8: the specialist (logged in: step 4) asks with the code, gets the decision and a token
    r = http.post("/doctors/requests", token=cast.token("spec"),
                  json={"share_code": code.lower(), "sections": ["*"], "purpose": "treatment",
                        "justification": "direct-care"})
    assert r.status == 201, r
    d = r.json
    assert d["patient_id"] == cast.alice.user_id
    assert d["outcome"] == "partial" and set(d["granted"]) == CLINICAL
    assert d["reasons"]["oncology.treatment"] == "hospital-rule" and d["reasons"]["demographics"] == "no-rule"
    assert {x["section"] for x in d["denied"]} == {"demographics", "contact", "imaging", "documents"}
    assert d["transaction_id"] and d["token"]["hospital"] == "lothian"
    token = d["token"]["token"]
    # the code was single-use
    again = http.post("/doctors/share-codes/redeem", token=cast.token("spec"), json={"code": code})
    assert again.status == 404 and again.json["type"] == "/problems/share-code-invalid"
    # steps 9-10: only the granted sections, the access logged on chain with the digest
    r = http.post("/doctors/records", token=cast.token("spec"), json={"token": token})
    assert r.status == 200, r
    rel = r.json
    assert set(rel["sections"]) == CLINICAL and rel["patient_id"] == cast.alice.user_id
    assert rel["record"]["sections"]["oncology.treatment"]["entries"]
    r = http.get("/doctors/grants", token=cast.token("spec"), params={"kind": "access"})
    mine = [a["record"] for a in r.json["records"] if a["record"]["grant_id"] == d["grant_id"]]
    assert mine and mine[0]["digest"] == rel["digest"] and not mine[0]["anomalies"]
    # a second token for the same grant, as FHIR
    r = http.post(f"/doctors/grants/{d['grant_id']}/tokens", token=cast.token("spec"))
    assert r.status == 201, r
    r = http.post("/doctors/records", token=cast.token("spec"), json={"token": r.json["token"], "format": "fhir"})
    assert r.status == 200 and r.json["record"]["resourceType"] == "Bundle"


def test_masking_of_ungranted_sections(stack: Stack, cast: Cast):
    d = _request(stack, cast, "nurse", cast.alice)  # a nurse of the same hospital: demographics, contact, admissions
    assert set(d["granted"]) == {"demographics", "contact", "admissions"}
    r = stack.http.post("/doctors/records", token=cast.token("nurse"), json={"token": d["token"]["token"]})
    assert r.status == 200, r
    sections = r.json["record"]["sections"]
    assert sections["demographics"]["entries"]
    for s in ("oncology.treatment", "conditions", "comorbidities", "oncology.toxicity"):
        assert sections[s] == {"status": "withheld", "reason": "not-granted"}, s
    assert "oncology.treatment" in r.json["withheld"]
    assert "Morag" not in str(sections.get("oncology.treatment"))


def test_denied_by_the_patients_preference_and_the_denial_is_on_the_ledger(stack: Stack, cast: Cast):
    http = stack.http
    r = http.post("/patients/me/preferences", token=cast.token("bob"),
                  json={"pref_id": "no-specialists", "effect": "deny", "grantee": {"kind": "role", "id": "specialist"},
                        "sections": ["*"], "purposes": ["*"]})
    assert r.status == 201, r
    assert r.json["result"]["change"] == "added" and r.json["transaction_id"]
    d = _request(stack, cast, "spec", cast.bob)
    assert d["outcome"] == "denied" and d["grant_id"] is None and d["token"] is None
    assert {x["reason"] for x in d["denied"]} >= {"patient-deny"}
    assert d["reasons"]["oncology.treatment"] == "patient-deny"
    # on the ledger: the auditor finds the decision, by patient
    r = http.get("/audit/trail", token=cast.token("auditor"),
                 params={"patient": cast.bob.user_id, "kind": "decision", "page_size": 200})
    assert r.status == 200, r
    rec = next(x["record"] for x in r.json["records"] if x["id"] == d["request_id"])
    assert rec["outcome"] == "denied" and rec["requester_id"] == cast.spec.user_id
    r = http.get(f"/audit/grants/{d['request_id']}", token=cast.token("auditor"))
    assert r.status == 200 and r.json["status"] == "denied"


def test_revocation_between_steps_8_and_9(stack: Stack, cast: Cast):
    http = stack.http
    d = _request(stack, cast, "spec", cast.alice)
    token = d["token"]["token"]
    r = http.post(f"/patients/me/grants/{d['grant_id']}/revoke", token=cast.token("alice"),
                  json={"reason": "patient-request"})
    assert r.status == 200 and r.json["result"]["status"] == "revoked", r
    r = http.post("/doctors/records", token=cast.token("spec"), json={"token": token})
    assert r.status == 403 and r.json["type"] == "/problems/grant-revoked", r
    r = http.get("/audit/trail", token=cast.token("auditor"),
                 params={"user": cast.spec.user_id, "kind": "refusal", "page_size": 200})
    assert any(x["record"]["grant_id"] == d["grant_id"] and x["record"]["reason"] == "grant-revoked"
               for x in r.json["records"]), r
    # revoking twice is a conflict the chain explains
    r = http.post(f"/patients/me/grants/{d['grant_id']}/revoke", token=cast.token("alice"), json={})
    assert r.status == 409 and r.json["type"] == "/problems/chain-conflict" and "revoked" in r.json["detail"]


def test_token_theft_is_refused_and_logged(stack: Stack, cast: Cast):
    http = stack.http
    d = _request(stack, cast, "spec", cast.alice)
    r = http.post("/doctors/records", token=cast.token("other"), json={"token": d["token"]["token"]})
    assert r.status == 403 and r.json["type"] == "/problems/token-presenter-mismatch", r
    r = http.get("/audit/trail", token=cast.token("auditor"),
                 params={"user": cast.other.user_id, "kind": "refusal"})
    refusal = next(x["record"] for x in r.json["records"] if x["record"]["grant_id"] == d["grant_id"])
    assert refusal["reason"] == "token-presenter-mismatch" and refusal["presenter_id"] == cast.other.user_id
    # the rightful holder still gets the record; a tampered token is refused
    assert http.post("/doctors/records", token=cast.token("spec"), json={"token": d["token"]["token"]}).status == 200
    bad = d["token"]["token"][:-4] + ("AAAA" if not d["token"]["token"].endswith("AAAA") else "BBBB")
    r = http.post("/doctors/records", token=cast.token("spec"), json={"token": bad})
    assert r.status in (400, 403) and r.json["type"] in ("/problems/token-signature-invalid", "/problems/token-malformed")


def test_break_glass_with_its_trail(stack: Stack, cast: Cast):
    http = stack.http
    # bob denies specialists, and the Zmc specialist does not treat him: only break-glass gets through
    plain = _request(stack, cast, "zspec", cast.bob)
    assert plain["outcome"] == "denied"
    r = http.post("/doctors/break-glass", token=cast.token("zspec"),
                  json={"patient_id": cast.bob.user_id, "sections": ["oncology.treatment", "conditions"],
                        "justification": "patient-unconscious", "justification_text": "collapsed in clinic"})
    assert r.status == 201, r
    bg = r.json
    assert bg["break_glass"] and bg["outcome"] == "granted"
    assert set(bg["reasons"].values()) == {"break-glass"}
    r = http.post("/doctors/records", token=cast.token("zspec"), json={"token": bg["token"]["token"]})
    assert r.status == 200 and set(r.json["sections"]) == {"oncology.treatment", "conditions"}
    # a patient cannot break the glass (role check before anything else)
    r = http.post("/doctors/break-glass", token=cast.token("alice"),
                  json={"patient_id": cast.bob.user_id, "justification": "safeguarding"})
    assert r.status == 403 and r.json["type"] == "/problems/forbidden"
    # the patient's notices
    r = http.get("/patients/me/break-glass", token=cast.token("bob"))
    notice = next(x for x in r.json["records"] if x["id"] == bg["request_id"])
    assert notice["record"]["requester_id"] == cast.zspec.user_id and notice["record"]["justification_digest"]
    assert "collapsed" not in str(notice)
    # the auditor sees it among all break-glass events and reviews it
    r = http.get("/audit/trail", token=cast.token("auditor"), params={"kind": "break-glass", "page_size": 200})
    assert any(x["id"] == bg["request_id"] for x in r.json["records"])
    r = http.post(f"/audit/grants/{bg['grant_id']}/review", token=cast.token("auditor"), json={"outcome": "justified"})
    assert r.status == 200 and r.json["result"]["review"]["outcome"] == "justified", r


def test_an_auditor_sees_all_of_it(stack: Stack, cast: Cast):
    http = stack.http
    tok = cast.token("auditor")
    kinds = {}
    for kind in ("decision", "grant", "access", "refusal", "revocation", "break-glass"):
        r = http.get("/audit/trail", token=tok, params={"patient": cast.alice.user_id, "kind": kind, "page_size": 200})
        assert r.status == 200, r
        kinds[kind] = r.json["records"]
    assert kinds["decision"] and kinds["grant"] and kinds["access"] and kinds["refusal"] and kinds["revocation"]
    # pagination with bookmarks walks the same records
    seen, bookmark = [], ""
    while True:
        r = http.get("/audit/trail", token=tok,
                     params={"patient": cast.alice.user_id, "kind": "decision", "page_size": 2, "bookmark": bookmark})
        assert r.status == 200, r
        seen += [x["id"] for x in r.json["records"]]
        bookmark = r.json["bookmark"]
        if not bookmark:
            break
    assert seen == [x["id"] for x in kinds["decision"]]
    # exports
    r = http.get("/audit/export", token=tok, params={"patient": cast.alice.user_id, "kind": "access", "format": "csv"})
    assert r.status == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.content.decode().splitlines()
    assert lines[0].startswith("kind,id,at") and len(lines) == 1 + len(kinds["access"])
    r = http.get("/audit/export", token=tok, params={"kind": "decision", "format": "json", "limit": 5})
    assert r.status == 200 and r.json["count"] == 5 and len(r.json["records"]) == 5
    assert "attachment" in r.headers["content-disposition"]
    # preference history and the ledger's own verification
    r = http.get(f"/audit/patients/{cast.bob.user_id}/preferences/history", token=tok)
    assert r.status == 200 and r.json["records"][0]["pref_id"] == "no-specialists"
    r = http.get("/audit/ledger/verify", token=tok)
    assert r.status == 200 and r.json["ok"], r.json["problems"]
    assert set(r.json["peers"]) == {"peer0.lothian", "peer0.zmc", "peer0.fcrb"}
    # the auditor is not a doctor
    r = http.post("/doctors/requests", token=tok, json={"patient_id": cast.alice.user_id})
    assert r.status == 403


def test_a_patient_sees_all_of_it(stack: Stack, cast: Cast):
    http = stack.http
    tok = cast.token("alice")
    r = http.get("/patients/me/record", token=tok)  # the patient's own read goes through the same gate
    assert r.status == 200, r
    assert set(r.json["sections"]) >= CLINICAL | {"demographics", "contact"} and not r.json["withheld"]
    log = {}
    for kind in ("access", "decision", "refusal", "revocation"):
        r = http.get("/patients/me/access-log", token=tok, params={"kind": kind, "page_size": 200})
        assert r.status == 200, r
        log[kind] = [x["record"] for x in r.json["records"]]
    requesters = {a["requester_id"] for a in log["access"]}
    assert {cast.spec.user_id, cast.nurse.user_id, cast.alice.user_id} <= requesters  # who saw
    assert all(a["sections_returned"] and a["purpose"] for a in log["access"])  # what, and why
    assert any(x["reason"] == "token-presenter-mismatch" and x["presenter_id"] == cast.other.user_id
               for x in log["refusal"])
    assert log["revocation"] and log["decision"]
    grants = http.get("/patients/me/grants", token=tok).json["records"]
    assert any(g["record"]["status"] == "revoked" for g in grants)
    # and nobody else's trail
    r = http.get("/patients/me/access-log", token=cast.token("spec"))
    assert r.status == 403


def test_suspension_on_chain_stops_the_users_tokens(stack: Stack, cast: Cast):
    svc = stack.services
    victim = enrol(svc, "lothian", "gp")
    tok = stack.http.login(victim)
    assert stack.http.get("/auth/me", token=tok).status == 200
    admin = enrol(svc, "lothian", "hospital_admin")
    atok = stack.http.login(admin)
    r = stack.http.post(f"/admin/users/{victim.user_id}/suspend", token=atok, json={"reason": "investigation"})
    assert r.status == 200 and r.json["status"] == "suspended", r
    r = stack.http.get("/auth/me", token=tok)
    assert r.status in (401, 403), r


def test_concurrent_doctors_through_both_workers(stack: Stack, cast: Cast):
    """Sixteen complete flows at once from eight doctors: every one granted, fetched and logged."""
    svc = stack.services
    doctors = [enrol(svc, "lothian", "gp", treating=(cast.alice.user_id,)) for _ in range(8)]
    tokens = [stack.http.login(d) for d in doctors]

    def flow(i: int) -> tuple[str, str]:
        import httpx

        with httpx.Client(base_url=stack.base_url, timeout=60) as c:
            h = {"Authorization": f"Bearer {tokens[i % 8]}"}
            r = c.post("/doctors/requests", headers=h,
                       json={"patient_id": cast.alice.user_id, "sections": ["oncology.treatment", "conditions"]})
            assert r.status_code == 201, r.text
            d = r.json()
            assert d["token"], d  # granted, and the vault minted the token (else: d["token_error"])
            r = c.post("/doctors/records", headers=h, json={"token": d["token"]["token"]})
            assert r.status_code == 200, r.text
            return d["grant_id"], r.json()["digest"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(flow, range(16)))
    assert len({g for g, _ in results}) == 16
    r = stack.http.get("/audit/trail", token=cast.token("auditor"),
                       params={"patient": cast.alice.user_id, "kind": "access", "page_size": 200})
    logged = {x["record"]["grant_id"] for x in r.json["records"]}
    assert {g for g, _ in results} <= logged
