"""``/analytics``: researchers' jobs gated by a research cohort and an on-chain ε budget.

Its own world (embedded node, three vaults with the fixture patients), with the research rule
``serums up`` publishes (treatment and toxicity sections with consent). Six of the eight patients
consent to research by researchers through their own API; the researcher's cohort holds them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from gateway import ledger as L
from gateway.app import create_app
from serums.bootstrap import DEFAULT_RULES

from .conftest import FAST
from .stack import HOSPITALS, Account, Http, enrol, provision, running_services

RESEARCH_RULE = next(r for r in DEFAULT_RULES if r["rule_id"] == "research-with-consent")
CONSENT = {"effect": "allow", "grantee": {"kind": "role", "id": "researcher"}, "sections": ["*"],
           "purposes": ["research"]}


@dataclass
class ResearchWorld:
    services: object
    refs: list[str]
    consenting: set[str]
    researcher: Account
    admin: Account
    auditor: Account


def research_world(services) -> ResearchWorld:
    """Every hospital with the research rule ``serums up`` publishes; the eight fixture patients
    enrolled, the first six (by id) consenting to research by researchers through their own API;
    a researcher and an admin of Lothian, an auditor of FCRB."""
    world = provision(services)
    for h in HOSPITALS:
        L.submit(services.admin_contract(h, "PolicyContract"), "PutRule", RESEARCH_RULE)
    http = Http(create_app({"TESTING": True}, services=services).test_client())
    refs = sorted(ref for _, ref in world.patients.values())
    for ref in refs:
        hospital = next(h for h, r in world.patients.values() if r == ref)
        account = enrol(services, hospital, "patient", user_id=ref)
        if ref in refs[:6]:
            r = http.post("/patients/me/preferences", token=http.login(account), json=CONSENT)
            assert r.status == 201, r
    return ResearchWorld(services, refs, set(refs[:6]), enrol(services, "lothian", "researcher"),
                         enrol(services, "lothian", "hospital_admin"), enrol(services, "fcrb", "auditor"))


@pytest.fixture(scope="module")
def aw(tmp_path_factory):
    with running_services(tmp_path_factory.mktemp("analytics-gateway"), FAST) as services:
        rw = research_world(services)
        http = Http(create_app({"TESTING": True}, services=services).test_client())
        yield (http, rw.refs, rw.consenting, http.login(rw.researcher), http.login(rw.admin), http.login(rw.auditor))


def _wait(http, token, job_id, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = http.get(f"/analytics/jobs/{job_id}", token=token)
        assert r.status == 200, r
        if r.json["status"] not in ("queued", "running"):
            return r.json
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_researchers_job_from_cohort_to_release(aw):
    http, refs, consenting, researcher, admin, auditor = aw
    r = http.post("/analytics/cohorts", token=researcher, json={"patients": refs})
    assert r.status == 201 and r.json["size"] == len(consenting) and r.json["excluded"] == len(refs) - 6, r
    assert "included" not in r.json and not any(ref in str(r.json) for ref in refs)  # how many, never who
    cohort = r.json["cohort_id"]
    assert http.post("/analytics/datasets", token=researcher,
                     json={"dataset": "tox-ds", "epsilon": 1.5, "delta": 1e-4}).status == 403
    r = http.post("/analytics/datasets", token=admin, json={"dataset": "tox-ds", "epsilon": 1.5, "delta": 1e-4})
    assert r.status == 201 and r.json["epsilon_remaining"] == "1.5", r
    job = {"study": "tox", "cohort_id": cohort, "dataset": "tox-ds", "delta": 1e-5, "rounds": 2, "local_epochs": 1}
    # more ε than the budget holds: refused before anything runs, as problem+json
    r = http.post("/analytics/jobs", token=researcher, json={**job, "epsilon": 2.0})
    assert r.status == 409 and r.json["type"].endswith("/privacy-budget-exceeded"), r
    assert r.headers["Content-Type"].startswith("application/problem+json")
    r = http.post("/analytics/jobs", token=researcher, json={**job, "epsilon": 1.0})
    assert r.status == 202 and r.json["status"] in ("queued", "running"), r
    done = _wait(http, researcher, r.json["job_id"])
    assert done["status"] == "released" and done["round"] == 2 and done["epsilon_spent"] == 1.0, done
    rel = http.get(f"/analytics/jobs/{done['job_id']}/release", token=researcher)
    assert rel.status == 200 and len(rel.json["document"]["model"]["weight"]) == 15
    spends = http.get("/analytics/datasets/tox-ds/spends", token=auditor)
    assert spends.status == 200
    assert [(s["sha256"], s["cohort_id"]) for s in spends.json["records"]] == [(rel.json["sha256"], cohort)]
    budget = http.get("/analytics/datasets/tox-ds", token=researcher).json
    assert budget["epsilon_remaining"] == "0.5"
    listed = http.get("/analytics/datasets", token=auditor).json["datasets"]
    assert [(d["dataset"], d["epsilon_remaining"], d["hospital_name"]) for d in listed] == [("tox-ds", "0.5", "lothian")]
    # auditors see every job; other roles see none of these
    assert http.get("/analytics/jobs", token=auditor).json["count"] == 2
    assert http.get(f"/analytics/jobs/{done['job_id']}/release", token=auditor).status == 403
    assert http.get("/analytics/jobs", token=admin).status == 403


def test_bad_jobs_are_4xx_problems(aw):
    http, _, _, researcher, _, _ = aw
    base = {"study": "tox", "cohort_id": "nope", "dataset": "tox-ds", "epsilon": 0.1, "delta": 1e-5}
    r = http.post("/analytics/jobs", token=researcher, json={**base, "purpose": "insurance"})
    assert r.status == 400 and r.json["type"].endswith("/analytics-invalid"), r
    r = http.post("/analytics/jobs", token=researcher, json={**base, "epsilon": -1})
    assert r.status == 422, r
    r = http.post("/analytics/jobs", token=researcher, json=base)
    assert r.status in (403, 404) and r.json["type"].endswith(("/cohort-refused", "/not-found")), r
    assert http.get("/analytics/jobs/job-0000000000000000", token=researcher).status == 404
    assert http.get("/analytics/jobs/../../etc", token=researcher).status == 404


def test_bad_bookmarks_and_nul_bytes_are_4xx(aw):
    http, _, _, researcher, admin, auditor = aw
    r = http.get("/analytics/datasets/tox-ds/spends", token=auditor, params={"bookmark": "!!not-one!!"})
    assert r.status == 422, r
    r = http.post("/analytics/datasets", token=admin, json={"dataset": "a\x00b", "epsilon": 1, "delta": 0})
    assert r.status == 422, r
    r = http.post("/analytics/cohorts", token=researcher, json={"patients": ["x\x00"]})
    assert r.status == 422, r
