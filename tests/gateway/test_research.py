"""The research application layer (``gateway.research``) that the ``/analytics`` API and the
researcher's, admins' and auditors' pages share: studies whose cohort the chain decides (the
researcher learns its size and the number excluded, never who), jobs refused before they start
when the budget would be overspent, training and encrypted-statistics releases recorded on chain."""

from __future__ import annotations

import time

import pytest

from analytics.features import REGIMENS, RESEARCH_FEATURES, TOXICITY_SECTIONS
from gateway import problems as P
from gateway import research as R
from tests.web.conftest import actor_of

from .conftest import FAST
from .stack import enrol, running_services
from .test_analytics_api import research_world


@pytest.fixture(scope="module")
def rw(tmp_path_factory):
    with running_services(tmp_path_factory.mktemp("research"), FAST) as services:
        world = research_world(services)
        admin = actor_of(services, world.admin)
        R.create_dataset(services, admin, "tox-study", 1.5, 1e-4)
        yield world, actor_of(services, world.researcher), admin, actor_of(services, world.auditor)


def _done(services, actor, job_id: str, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = R.job(services, actor, job_id)
        if j["status"] not in ("queued", "running"):
            return j
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


def _study(rw, **kw):
    world, researcher, _, _ = rw
    fields = {"name": "tox-regimens", "sections": list(TOXICITY_SECTIONS), "dataset": "tox-study", "epsilon": "1",
              "delta": "1e-5", "method": "dpsgd", "hospitals": ["lothian", "zmc"], "rounds": "2"} | kw
    return R.define_study(world.services, researcher, **fields)


def test_a_study_sees_only_how_many_the_chain_allows(rw):
    world, researcher, _, _ = rw
    study = _study(rw)
    assert study.cohort["size"] == len(world.consenting) and study.cohort["excluded"] == 2, study.cohort
    assert "included" not in study.cohort and not any(ref in str(study.cohort) for ref in world.refs)
    now = R.cohort(world.services, researcher, study.cohort["cohort_id"])
    assert now["live"] and now["size"] == 6 and now["purpose"] == "research"
    assert [s.study_id for s in R.studies(world.services, researcher)][:1] == [study.study_id]
    other = actor_of(world.services, enrol(world.services, "zmc", "researcher"))
    with pytest.raises(P.Problem) as exc:
        R.study(world.services, other, study.study_id)
    assert exc.value.type is P.NOT_FOUND and R.studies(world.services, other) == []


def test_a_run_spends_the_budget_and_an_overspending_run_is_refused_before_it_starts(rw):
    world, researcher, admin, auditor = rw
    svc = world.services
    study = _study(rw)
    before = R.budget(svc, researcher, "tox-study")
    job = R.run_study(svc, researcher, study.study_id)
    assert job["status"] in ("queued", "running") and job["spec"]["study"] == "tox-regimens"
    done = _done(svc, researcher, job["job_id"])
    assert done["status"] == "released" and done["round"] == 2 and done["epsilon_spent"] == 1.0, done
    after = R.budget(svc, researcher, "tox-study")
    assert float(after["epsilon_remaining"]) == pytest.approx(float(before["epsilon_remaining"]) - 1.0)
    rel = R.release(svc, researcher, job["job_id"])
    record = R.release_record(svc, researcher, "tox-study", rel["release_id"])
    assert record["sha256"] == rel["sha256"] == R.document_digest(rel) and record["tx_id"] == rel["tx_id"]
    assert record["cohort_id"] == study.cohort["cohort_id"]
    # the study's ε again: more than what is left — refused before anything runs, nothing spent
    with pytest.raises(P.Problem) as exc:
        R.run_study(svc, researcher, study.study_id)
    assert exc.value.type.slug == "privacy-budget-exceeded" and exc.value.type.status == 409
    assert "has ε=0.5" in exc.value.detail and exc.value.extra["epsilon_remaining"] == 0.5
    assert R.budget(svc, researcher, "tox-study")["spends"] == after["spends"]
    refused = [j for j in R.jobs(svc, auditor) if j["status"] == "refused"]
    assert refused and refused[0]["problem"]["type"] == "privacy-budget-exceeded"
    # the auditor reads every release and spend; the admin lists their hospital's budgets
    overview = {d["dataset"]: d for d in R.ledger_overview(svc, auditor)}
    assert [s["release_id"] for s in overview["tox-study"]["spends"]] == [rel["release_id"]]
    assert [d["dataset"] for d in R.datasets(svc, admin, "lothian")] == ["tox-study"]
    assert R.datasets(svc, admin, "zmc") == []
    # only the owner reads the release; another researcher sees neither the job nor its release
    with pytest.raises(P.Problem):
        R.release(svc, auditor, job["job_id"])
    other = actor_of(svc, enrol(svc, "lothian", "researcher"))
    for read in (R.job, R.release):
        with pytest.raises(P.Problem) as exc:
            read(svc, other, job["job_id"])
        assert exc.value.type.status == 404
    assert R.jobs(svc, other) == []


def test_an_encrypted_statistics_job_releases_noised_aggregates_recorded_on_chain(rw):
    world, researcher, admin, _ = rw
    svc = world.services
    R.create_dataset(svc, admin, "tox-stats", 2.0, 0.0)
    study = _study(rw, method="stats", dataset="tox-stats", epsilon="1", delta="0")
    done = _done(svc, researcher, R.run_study(svc, researcher, study.study_id)["job_id"])
    assert done["status"] == "released" and done["spec"]["kind"] == "stats", done
    rel = R.release(svc, researcher, done["job_id"])
    stats = rel["document"]["statistics"]
    # six patients' rows under ε = 1 are mostly noise: the shape is what a researcher can rely on
    assert stats["count"] >= 0 and set(stats["mean"]) == set(RESEARCH_FEATURES)
    assert set(stats["grade_histogram"]) == set(REGIMENS) and rel["document"]["method"] == "fhe-statistics"
    assert rel["document"]["hospitals"] == 2 and done["round"] == 1  # the two vaults holding patients
    record = R.release_record(svc, researcher, "tox-stats", rel["release_id"])
    assert record["sha256"] == rel["sha256"] and R.document_digest(rel) is None
    assert R.budget(svc, researcher, "tox-stats")["epsilon_remaining"] == "1.0"
    # its figures: the wall's noise on the count against ε, and R(δ); PNGs drawn once and kept
    for which in ("utility", "r-delta"):
        png = R.plot_file(svc, done, which)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and R.plot_file(svc, done, which) == png
    assert R.plots_ready(svc, done)
    with pytest.raises(P.Problem) as exc:
        R.plot_file(svc, done, "nope")
    assert exc.value.type is P.NOT_FOUND


@pytest.mark.parametrize(("change", "slug"), [
    ({"sections": ["comorbidities"]}, "analytics-invalid"),
    ({"epsilon": "-1"}, "analytics-invalid"),
    ({"epsilon": "lots"}, "validation-error"),
    ({"method": "none"}, "validation-error"),
    ({"hospitals": []}, "validation-error"),
    ({"name": "no spaces please"}, "analytics-invalid"),
    ({"dataset": "no-such-dataset"}, "chain-not-found"),
])
def test_a_bad_study_is_a_4xx_problem_and_asks_the_chain_nothing(rw, change, slug):
    world, researcher, _, _ = rw
    count = len(R.studies(world.services, researcher))
    with pytest.raises(P.Problem if slug != "chain-not-found" else Exception) as exc:
        _study(rw, **change)
    from gateway.errors import problem_of

    problem = problem_of(exc.value)
    assert problem.type.slug == slug and 400 <= problem.type.status < 500, problem
    assert len(R.studies(world.services, researcher)) == count


@pytest.mark.slow
def test_a_study_on_flowers_deployment_engine_releases_like_the_others(rw, monkeypatch):
    world, researcher, admin, _ = rw
    svc = world.services
    # the SuperNodes (processes beside the vaults) reach this test's node as `serums` would tell them
    monkeypatch.setenv("SERUMS_NODE_ADDRESS", svc.address)
    R.create_dataset(svc, admin, "tox-flower", 2.0, 1e-4)
    study = _study(rw, dataset="tox-flower", engine="flower")
    job = R.run_study(svc, researcher, study.study_id)
    assert job["spec"]["engine"] == "flower"
    done = _done(svc, researcher, job["job_id"], timeout=300.0)
    assert done["status"] == "released" and done["round"] == 2, done["problem"]
    rel = R.release(svc, researcher, job["job_id"])
    assert rel["document"]["engine"] == "flower" and R.document_digest(rel) == rel["sha256"]
    assert R.release_record(svc, researcher, "tox-flower", rel["release_id"])["tx_id"] == rel["tx_id"]


def _orange_pixels(png) -> int:
    from PIL import Image

    img = Image.open(png).convert("RGB")
    return sum(1 for p in img.getdata() if abs(p[0] - 0xE6) < 12 and abs(p[1] - 0x7E) < 12 and abs(p[2] - 0x22) < 12)


def test_the_r_delta_plot_marks_the_jobs_own_delta(tmp_path):
    from analytics import DEFAULT_DELTAS, plot_r_delta, r_delta_table

    rows = r_delta_table(sorted({*DEFAULT_DELTAS, 3e-5}), samples=2_000, seed=0)
    plain = plot_r_delta(rows, tmp_path / "plain.png", samples=2_000)
    marked = plot_r_delta(rows, tmp_path / "marked.png", samples=2_000, highlight=3e-5)
    assert _orange_pixels(plain) == 0 and _orange_pixels(marked) > 200
    # the research layer's figure for a job passes the job's δ on (and names its cache file apart)
    plot = R.job_plots({"spec": {"kind": "stats", "method": "wall", "epsilon": 1.0, "delta": 3e-5, "rounds": 1,
                                 "local_epochs": 1}})["r-delta"]
    assert plot.name == "r-delta-3e-05-marked"
    out = tmp_path / "job.png"
    plot.draw(rows, out)
    assert _orange_pixels(out) > 200
