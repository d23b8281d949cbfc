"""A researcher's pages: define a study (sections, purpose research, dataset, ε and δ, method), see
the cohort the chain allows (its size and only the number excluded), run a training or an
encrypted-statistics job and follow it (rounds, ε spent against the dataset's remaining budget;
htmx polling, a reload without JavaScript), read the released result with its plots and its
release record on chain. Also, on the admins' and auditors' blueprints: the hospital's dataset
budgets (create one), and every release and spend.

Everything goes through :mod:`gateway.research`, as the ``/analytics`` API does.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, redirect, render_template, request, send_file, url_for

from analytics.features import TOXICITY_SECTIONS

from .. import research as R
from ..security import services
from . import admin, auditor
from .common import attempt, form_list, status_of
from .session import actor

bp = Blueprint("web_researcher", __name__, url_prefix="/researcher")
RUNNING = ("queued", "running")


def _page(template: str, status: int = 200, **kw):
    return render_template(f"web_researcher/{template}", **kw), status


@bp.get("/")
def home():
    a = actor()
    found, problem = attempt(lambda: (R.studies(services(), a), R.jobs(services(), a)))
    studies, jobs = found or ([], [])
    return _page("home.html", studies=studies, jobs=jobs, problem=problem)


def _new(problem=None, form=None, status: int = 200):
    a = actor()
    svc = services()
    datasets, p = attempt(lambda: R.datasets(svc, a))
    defaults = {"sections": list(TOXICITY_SECTIONS), "hospitals": svc.hospitals, "epsilon": "1", "delta": "1e-5",
                "method": "dpsgd", "rounds": "3", "engine": "inprocess"}
    return _page("study_new.html", status, datasets=datasets or [], problem=problem or p, methods=R.METHODS,
                 engines=R.ENGINES, hospitals=svc.hospitals, needed=TOXICITY_SECTIONS, form=form or defaults)


@bp.get("/studies/new")
def new_study():
    return _new()


@bp.post("/studies")
def define_study():
    f = request.form
    form = {"name": f.get("name", ""), "sections": form_list("sections"), "dataset": f.get("dataset", ""),
            "epsilon": f.get("epsilon", ""), "delta": f.get("delta", ""), "method": f.get("method", ""),
            "hospitals": form_list("hospitals"), "rounds": f.get("rounds", "3"), "engine": f.get("engine", "inprocess")}
    study, problem = attempt(lambda: R.define_study(services(), actor(), **form))
    if problem is not None or study is None:
        return _new(problem, form, status_of(problem))
    return redirect(url_for(".study", study_id=study.study_id), 303)


def _study(study_id: str, problem=None, done=None, status: int = 200):
    a = actor()
    svc = services()
    study = R.study(svc, a, study_id)
    cohort, p1 = attempt(lambda: R.cohort(svc, a, study.cohort["cohort_id"]))
    budget, p2 = attempt(lambda: R.budget(svc, a, study.dataset))
    jobs, p3 = attempt(lambda: [j for j in R.jobs(svc, a) if j["spec"].get("cohort_id") in study.cohort_ids])
    fits = budget is not None and study.epsilon <= float(budget["epsilon_remaining"]) + 1e-12 \
        and study.delta <= float(budget["delta_remaining"]) + 1e-15
    return _page("study.html", status, study=study, cohort=cohort, budget=budget, jobs=jobs or [], fits=fits,
                 method=R.METHODS[study.method], problem=problem or p1 or p2 or p3, done=done)


@bp.get("/studies/<study_id>")
def study(study_id: str):
    return _study(study_id)


@bp.post("/studies/<study_id>/cohort")
def renew_cohort(study_id: str):
    """Ask the chain again (the cohort expired, or patients' consents changed)."""
    s, problem = attempt(lambda: R.renew_cohort(services(), actor(), study_id))
    if problem is not None or s is None:
        return _study(study_id, problem, status=status_of(problem))
    return _study(study_id, done=f"The ledger granted a new cohort in transaction {s.cohort['transaction_id'][:16]}…")


@bp.post("/studies/<study_id>/jobs")
def run(study_id: str):
    """Run the study's job: refused before it starts (shown here, with the chain's budget) when its
    (ε, δ) exceeds what the dataset has left."""
    job, problem = attempt(lambda: R.run_study(services(), actor(), study_id))
    if problem is not None or job is None:
        return _study(study_id, problem, status=status_of(problem))
    return redirect(url_for(".job", job_id=job["job_id"]), 303)


def _job_context(job_id: str) -> dict:
    a = actor()
    svc = services()
    job = R.job(svc, a, job_id)
    budget, problem = attempt(lambda: R.budget(svc, a, job["spec"]["dataset"]))
    return {"job": job, "budget": budget, "problem": problem, "running": job["status"] in RUNNING}


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    ctx = _job_context(job_id)
    rel, record, problem, ready = None, None, None, False
    if ctx["job"]["status"] == "released":
        ready = R.plots_ready(services(), ctx["job"])
        def released():
            r = R.release(services(), actor(), job_id)
            return r, R.release_record(services(), actor(), r["document"]["dataset"], r["release_id"])

        found, problem = attempt(released)
        rel, record = found or (None, None)
    model = (rel or {}).get("document", {}).get("model") or {}
    return _page("job.html", **{**ctx, "problem": ctx["problem"] or problem}, release=rel, record=record,
                 digest=R.document_digest(rel) if rel else None, plots_ready=ready,
                 weights=list(zip(model.get("features", []), model.get("weight", []), strict=True)))


@bp.get("/jobs/<job_id>/progress")
def progress(job_id: str):
    """The progress panel alone (htmx polls it); once the job finished, htmx reloads the page."""
    ctx = _job_context(job_id)
    body = render_template("web_researcher/_progress.html", **ctx)
    headers = {} if ctx["running"] or request.headers.get("HX-Request") != "true" else {"HX-Refresh": "true"}
    return Response(body, headers=headers)


@bp.get("/jobs/<job_id>/release.json")
def release_json(job_id: str):
    rel = R.release(services(), actor(), job_id)
    return Response(json.dumps(rel["document"], indent=2, sort_keys=True), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{rel["release_id"]}.json"'})


@bp.get("/jobs/<job_id>/plots")
def plots(job_id: str):
    """The figures' panel alone (htmx polls it while they are drawn)."""
    job = R.job(services(), actor(), job_id)
    return render_template("web_researcher/_plots.html", job=job, plots_ready=R.plots_ready(services(), job))


@bp.get("/jobs/<job_id>/<any(utility, 'r-delta'):which>.png")
def plot_png(job_id: str, which: str):
    return send_file(R.plot_file(services(), R.job(services(), actor(), job_id), which), mimetype="image/png")


# ----------------------------------------------------------------------------- admins: dataset budgets


def _budgets(problem=None, done=None, form=None, status: int = 200):
    a = actor()
    found, p = attempt(lambda: R.datasets(services(), a, a.hospital))
    return render_template("web_admin/budgets.html", datasets=found or [], problem=problem or p, done=done,
                           form=form or {"epsilon": "2", "delta": "1e-4"}), status


@admin.bp.get("/budgets")
def budgets():
    return _budgets()


@admin.bp.post("/budgets")
def create_budget():
    f = request.form
    form = {"dataset": f.get("dataset", "").strip(), "epsilon": f.get("epsilon", ""), "delta": f.get("delta", "")}

    def create():
        return R.create_dataset(services(), actor(), form["dataset"], R.number(form["epsilon"], "epsilon"),
                                R.number(form["delta"], "delta"))

    doc, problem = attempt(create)
    if problem is not None or doc is None:
        return _budgets(problem, form=form, status=status_of(problem))
    return _budgets(done=f"Dataset {doc['dataset']} may spend ε={doc['epsilon_total']}, δ={doc['delta_total']}; "
                         f"recorded in transaction {doc['transaction_id'][:16]}…")


# ----------------------------------------------------------------------------- auditors: releases and spends


@auditor.bp.get("/releases")
def releases():
    a = actor()
    found, problem = attempt(lambda: (R.ledger_overview(services(), a), R.jobs(services(), a)))
    datasets, jobs = found or ([], [])
    return render_template("web_auditor/releases.html", datasets=datasets, jobs=jobs, problem=problem), \
        status_of(problem) if problem else 200
