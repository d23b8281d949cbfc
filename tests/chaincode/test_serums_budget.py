"""BudgetContract on the embedded node: who creates and spends, exact accounting, exhaustion,
idempotent release ids, history, and no double spending under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from network.client import CommitError, GatewayError

from .conftest import Cast, World, refused, uid


def test_budget_exhaustion(world: World, cast: Cast):
    ds = uid("ds")
    refused(403, "hospital admin", cast.analytics.submit, "BudgetContract", "CreateDataset", ds, 1.0, 1e-5)
    refused(400, "epsilon", world.admins["lothian"].submit, "BudgetContract", "CreateDataset", ds, 0.0, 1e-5)
    refused(400, "delta", world.admins["lothian"].submit, "BudgetContract", "CreateDataset", ds, 1.0, 1.5)
    refused(400, "argument 'epsilon'", world.admins["lothian"].submit, "BudgetContract", "CreateDataset", ds, "lots",
            0.0)
    created = world.admins["lothian"].submit("BudgetContract", "CreateDataset", ds, 1.0, 1e-5)
    assert created["hospital"] == "LothianMSP" and created["epsilon_remaining"] == "1.0" and not created["exhausted"]
    refused(409, "already exists", world.admins["lothian"].submit, "BudgetContract", "CreateDataset", ds, 2.0, 0.0)
    # only the analytics service of the dataset's hospital spends
    zan = world.user("zmc", "analytics")
    refused(403, "only the analytics service of LothianMSP", zan.submit, "BudgetContract", "Spend", ds, 0.1, 0.0, "r")
    refused(403, "analytics", cast.researcher.submit, "BudgetContract", "Spend", ds, 0.1, 0.0, "r")
    refused(404, "dataset", cast.analytics.submit, "BudgetContract", "Spend", "ds-none", 0.1, 0.0, "r")
    # ten spends of 0.1 use exactly 1.0 (decimal accounting), the eleventh is refused
    for i in range(10):
        t = cast.analytics.tx("BudgetContract", "Spend", ds, 0.1, 1e-6, f"release-{i}")
    assert t.result["epsilon_remaining"] == "0.0" and t.result["exhausted"]
    name, ev = cast.analytics.event(t.status)
    assert name == "BudgetSpent" and ev["release_id"] == "release-9" and ev["exhausted"]
    assert ev["epsilon_spent"] == "1.0" and ev["analytics_id"] == cast.analytics.name
    msg = refused(409, "privacy budget of dataset", cast.analytics.submit, "BudgetContract", "Spend", ds, 0.01, 0.0,
                  "release-10")
    assert "remaining ε=0.0" in msg
    budget = cast.auditor.evaluate("BudgetContract", "GetBudget", ds)
    assert budget["spends"] == 10 and budget["exhausted"] and budget["epsilon_spent"] == "1.0"
    history, bookmark = [], ""
    while True:
        page = world.admins["lothian"].evaluate("BudgetContract", "SpendHistory", ds, 4, bookmark)
        history += page["records"]
        bookmark = page["bookmark"]
        if not bookmark:
            break
    assert [h["release_id"] for h in history] == [f"release-{i}" for i in range(10)]
    refused(403, "only registered users", world.unregistered("lothian").evaluate, "BudgetContract", "GetBudget", ds)


def test_delta_and_release_ids(world: World, cast: Cast):
    ds = uid("ds")
    world.admins["lothian"].submit("BudgetContract", "CreateDataset", ds, 10.0, 1e-5)
    cast.analytics.submit("BudgetContract", "Spend", ds, 1.0, 6e-6, "r1")
    refused(409, "already spent", cast.analytics.submit, "BudgetContract", "Spend", ds, 1.0, 0.0, "r1")
    refused(409, "exceeded", cast.analytics.submit, "BudgetContract", "Spend", ds, 1.0, 6e-6, "r2")
    refused(400, "release_id", cast.analytics.submit, "BudgetContract", "Spend", ds, 1.0, 0.0, "no spaces")
    refused(400, "epsilon", cast.analytics.submit, "BudgetContract", "Spend", ds, -1.0, 0.0, "r3")
    assert cast.analytics.evaluate("BudgetContract", "GetBudget", ds)["delta_remaining"] == "0.000004"


def test_concurrent_spends_cannot_overspend(world: World, cast: Cast):
    ds = uid("ds")
    world.admins["lothian"].submit("BudgetContract", "CreateDataset", ds, 1.0, 0.0)

    def spend(i: int) -> str:
        try:
            cast.analytics.submit("BudgetContract", "Spend", ds, 0.6, 0.0, f"c{i}")
            return "ok"
        except CommitError as exc:
            return exc.code_name
        except GatewayError as exc:
            return f"{exc.chaincode_status}"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(spend, range(4)))
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) - {"ok"} <= {"MVCC_READ_CONFLICT", "409"}
    assert cast.analytics.evaluate("BudgetContract", "GetBudget", ds)["epsilon_spent"] == "0.6"


def test_release_spends_and_logs_its_digest_in_one_transaction(world: World, cast: Cast):
    from .test_serums_transport import allow

    ds = uid("ds")
    world.admins["lothian"].submit("BudgetContract", "CreateDataset", ds, 2.0, 1e-5)
    patients = [world.patient("lothian", [allow("role", "researcher", purposes=["research"])]) for _ in range(2)]
    cohort = cast.researcher.submit("TransportContract", "RequestCohort", [p.name for p in patients],
                                    ["comorbidities"], "research", "research-protocol")
    cid, digest = cohort["cohort_id"], "ab" * 32
    refused(403, "analytics", cast.researcher.submit, "BudgetContract", "SpendRelease", ds, 0.5, 0.0, "rel-1", cid,
            digest)
    refused(400, "sha256", cast.analytics.submit, "BudgetContract", "SpendRelease", ds, 0.5, 0.0, "rel-1", cid, "ab")
    refused(404, "cohort_id", cast.analytics.submit, "BudgetContract", "SpendRelease", ds, 0.5, 0.0, "rel-1",
            "no-such-cohort", digest)
    t = cast.analytics.tx("BudgetContract", "SpendRelease", ds, 0.5, 1e-6, "rel-1", cid, digest.upper())
    assert t.result["sha256"] == digest and t.result["cohort_id"] == cid and t.result["epsilon_remaining"] == "1.5"
    name, ev = cast.analytics.event(t.status)
    assert name == "BudgetSpent" and ev["sha256"] == digest
    history = cast.auditor.evaluate("BudgetContract", "SpendHistory", ds, 10, "")["records"]
    assert [(h["release_id"], h["sha256"], h["tx_id"]) for h in history] == [("rel-1", digest, t.result["tx_id"])]
    refused(409, "exceeded", cast.analytics.submit, "BudgetContract", "SpendRelease", ds, 1.6, 0.0, "rel-2", cid,
            digest)
    # a revoked cohort releases nothing and spends nothing
    cast.researcher.submit("TransportContract", "RevokeCohort", cid, "relinquished")
    refused(409, "revoked", cast.analytics.submit, "BudgetContract", "SpendRelease", ds, 0.1, 0.0, "rel-3", cid,
            digest)
    assert cast.analytics.evaluate("BudgetContract", "GetBudget", ds)["epsilon_spent"] == "0.5"


def test_list_datasets_pages_every_budget(world: World, cast: Cast):
    made = sorted(uid("ls") for _ in range(3))
    for ds in made:
        world.admins["lothian"].submit("BudgetContract", "CreateDataset", ds, 2.0, 1e-5)
    cast.analytics.submit("BudgetContract", "Spend", made[0], 0.5, 0.0, "ls-r1")
    listed, bookmark = [], ""
    while True:
        page = cast.auditor.evaluate("BudgetContract", "ListDatasets", 2, bookmark)
        assert page["count"] <= 2
        listed += page["records"]
        bookmark = page["bookmark"]
        if not bookmark:
            break
    mine = {d["dataset"]: d for d in listed if d["dataset"] in made}
    assert sorted(mine) == made
    assert mine[made[0]]["epsilon_remaining"] == "1.5" and mine[made[1]]["epsilon_remaining"] == "2.0"
    refused(403, "only registered users", world.unregistered("lothian").evaluate, "BudgetContract", "ListDatasets",
            10, "")
