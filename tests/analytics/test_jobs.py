"""Analytics jobs against the chain (embedded node): cohort-gated reads, budgets enforced before
training, the release spending and logging its SHA-256 in one transaction, revocation stops a job."""

from __future__ import annotations

import hashlib

import pytest

from analytics import BudgetExceeded, CohortRefused, InvalidParameters
from analytics.chain import DatasetNotFound
from analytics.features import TOXICITY_SECTIONS
from analytics.jobs import JobSpec, JobStore, canonical, run_job
from tests.chaincode.conftest import uid

from .conftest import RecordingVault


def _dataset(w, epsilon: float) -> str:
    ds = uid("ds")
    w.admins["lothian"].submit("BudgetContract", "CreateDataset", ds, epsilon, 1e-4)
    return ds


def test_a_job_reads_only_the_cohort_and_its_release_spends_and_logs_the_digest(chain):
    w, analytics, ledger, consenting, refusing = chain.w, chain.analytics, chain.ledger, chain.consenting, chain.refusing
    cid, ds = chain.cohort(), _dataset(w, 1.5)
    sites = chain.sites(RecordingVault)
    vaults = {h: s.vault for h, s in sites.items()}
    spec = JobSpec(study="tox-2026", cohort_id=cid, dataset=ds, epsilon=1.0, delta=1e-5, rounds=2, local_epochs=1)
    rounds = []
    rel = run_job(spec, ledger, sites, on_round=rounds.append)
    read = {p for v in vaults.values() for p in v.read}
    assert read and read <= consenting and not read & refusing
    assert set().union(*(v.sections for v in vaults.values())) == set(TOXICITY_SECTIONS)  # never demographics
    assert [r.round for r in rounds] == [1, 2]
    assert rel.sha256 == hashlib.sha256(canonical(rel.document)).hexdigest()
    assert rel.document["epsilon_accountant"] <= 1.0 and rel.document["hospitals"] == 3
    history = analytics.evaluate("BudgetContract", "SpendHistory", ds, 10, "")["records"]
    assert [(h["release_id"], h["sha256"], h["cohort_id"]) for h in history] == [(rel.release_id, rel.sha256, cid)]
    assert ledger.budget(ds)["epsilon_remaining"] == "0.5"
    # the next job would overspend: refused before any record is read
    for v in vaults.values():
        v.read.clear()
    with pytest.raises(BudgetExceeded) as e:
        run_job(JobSpec(study="tox-2026", cohort_id=cid, dataset=ds, epsilon=1.0, delta=1e-5), ledger, sites)
    assert e.value.status == 409 and e.value.extra["epsilon_remaining"] == 0.5
    assert not any(v.read for v in vaults.values())
    assert ledger.budget(ds)["spends"] == 1


def test_a_revoked_cohort_stops_the_job_and_spends_nothing(chain):
    researcher, ledger = chain.researcher, chain.ledger
    cid, ds = chain.cohort(), _dataset(chain.w, 5.0)
    spec = JobSpec(study="tox-2026", cohort_id=cid, dataset=ds, epsilon=1.0, delta=1e-5, rounds=3, local_epochs=1)

    def revoke_after_first(entry):
        if entry.round == 1:
            researcher.submit("TransportContract", "RevokeCohort", cid, "relinquished")

    with pytest.raises(CohortRefused) as e:
        run_job(spec, ledger, chain.sites(), on_round=revoke_after_first)
    assert e.value.extra["reason"] == "revoked"
    assert ledger.budget(ds)["spends"] == 0
    with pytest.raises(CohortRefused):  # and no new job starts on it
        run_job(spec, ledger, chain.sites())


def test_job_store_records_progress_refusals_and_the_release(chain, tmp_path):
    researcher, ledger = chain.researcher, chain.ledger
    cid, ds = chain.cohort(), _dataset(chain.w, 1.0)
    store = JobStore(tmp_path / "jobs")
    with pytest.raises(BudgetExceeded):
        store.submit(researcher.name, JobSpec(study="s", cohort_id=cid, dataset=ds, epsilon=2.0, delta=1e-5),
                     ledger, chain.sites())
    assert [j.status for j in store.list()] == ["refused"]
    job = store.submit(researcher.name, JobSpec(study="s", cohort_id=cid, dataset=ds, epsilon=1.0, delta=1e-5,
                                                method="wall", rounds=2, local_epochs=1), ledger, chain.sites(),
                       wait=True)
    assert job.status == "released" and job.round == 2 and job.epsilon_spent == 1.0
    assert job.release["sha256"] == hashlib.sha256(canonical(job.release["document"])).hexdigest()
    assert "document" not in job.view()["release"]
    with pytest.raises(DatasetNotFound):
        ledger.budget("ds-missing")


def test_encrypted_statistics_are_released_only_against_the_chain(chain):
    import numpy as np

    from analytics import fhe
    from analytics.features import site_rows
    from analytics.jobs import encrypted_site_statistics, release_statistics, research_layout

    analytics, ledger, consenting = chain.analytics, chain.ledger, chain.consenting
    cid, ds = chain.cohort(), _dataset(chain.w, 1.0)
    keys = fhe.StudyKeys.create()
    public = fhe.StudyKeys.load(keys.public_bytes())
    layout = research_layout()
    members = set(ledger.cohort_members(cid))
    sites = chain.sites(RecordingVault)
    vaults = {h: s.vault for h, s in sites.items()}
    parts = [encrypted_site_statistics(s, cid, layout, public) for s in sites.values()]
    assert {p for v in vaults.values() for p in v.read} <= consenting
    total = fhe.add_encrypted(public, parts)  # the aggregator: public context only
    args = dict(study="s", cohort_id=cid, dataset=ds, delta=1e-5, rng=np.random.default_rng(0))
    with pytest.raises(BudgetExceeded):
        release_statistics(ledger, keys, total, layout, epsilon=2.0, **args)
    out = release_statistics(ledger, keys, total, layout, epsilon=1.0, **args)
    history = analytics.evaluate("BudgetContract", "SpendHistory", ds, 10, "")["records"]
    assert [h["sha256"] for h in history] == [out["sha256"]] == [hashlib.sha256(total).hexdigest()]
    # the released count is noisy (Laplace with scale K/ε around the true count), never the exact one
    exact = layout.read(fhe.decrypt(keys, total))
    rows = sum(len(site_rows(v.vault, [p for p in v.patients() if p in members], demographics=False))
               for v in vaults.values())
    assert exact["count"] == rows > 0
    assert out["statistics"]["count"] != exact["count"]
    assert set(out["statistics"]["grade_histogram"]) == set(layout.regimens)


@pytest.mark.parametrize("kw", [dict(purpose="treatment"), dict(method="none"), dict(epsilon=0.0),
                                dict(sections=("demographics",)), dict(dataset="bad id"), dict(rounds=0)])
def test_bad_jobs_are_refused(kw):
    base = dict(study="s", cohort_id="c1", dataset="d1", epsilon=1.0, delta=1e-5)
    with pytest.raises(InvalidParameters):
        JobSpec(**{**base, **kw})
    with pytest.raises(InvalidParameters):
        JobSpec.from_dict({**base, "colour": "blue"})
