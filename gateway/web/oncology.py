"""The oncologist's dashboard (``/clinician/oncology``; gp, specialist, nurse): for a patient the
clinician holds a live grant on, the granted sections as charts drawn on the server
(:mod:`gateway.web.charts`), the withheld ones marked, the released predictor's risk for the next
cycle and how regimens compare. Each view is a release against a token, logged on chain
(:func:`gateway.oncology.dashboard`)."""

from __future__ import annotations

from flask import Blueprint, render_template, request, session

from .. import oncology
from ..security import services
from . import charts
from .common import attempt, status_of
from .session import actor

bp = Blueprint("web_oncology", __name__, url_prefix="/clinician/oncology")
#: the session's tokens for the grants it opened (a grant binds at most 16 tokens: views reuse theirs)
TOKENS = "oncology_tokens"


def _charts(d: dict) -> dict:
    """The SVG of each granted section (none for a withheld one: it is never drawn)."""
    out = {}
    if d["granted"][oncology.TREATMENT] and d["treatment"]:
        out["dose"] = charts.dose_chart(d["treatment"])
    if d["granted"][oncology.TOXICITY] and d["toxicity"]["assessments"]:
        out["toxicity"] = charts.toxicity_heatmap(d["toxicity"]["types"], d["toxicity"]["assessments"])
    if d["granted"][oncology.COMORBIDITIES] and d["comorbidities"]:
        out["charlson"] = charts.charlson_chart(d["comorbidities"])
    if d["granted"][oncology.ADMISSIONS] and d["admissions"]:
        marks = [{"date": c["start"]} for c in d["treatment"]]
        out["admissions"] = charts.admissions_chart(d["admissions"], marks)
    risk = d["risk"]
    if risk["regimens"]:
        out["regimens"] = charts.risk_bars(
            [{"label": r["regimen"] + (" (current)" if r["current"] else ""), "p": r["p"], "highlight": r["current"]}
             for r in risk["regimens"]], "Predicted risk of grade 3 or worse toxicity at the next cycle, by regimen")
    if d["statistics"]:
        out["statistics"] = charts.risk_bars(
            [{"label": r["regimen"] + (f" (n ≈ {r['n']})" if r["p"] is not None else ""), "p": r["p"]}
             for r in d["statistics"]["comparison"]["rows"]],
            "Share of assessments with grade 3 or worse toxicity, by regimen, in the released cohort statistics",
            missing="too few to tell under the noise")
        stratum = d["statistics"].get("stratum")
        if stratum and stratum["rows"]:
            out["stratum"] = charts.risk_bars(
                [{"label": r["regimen"] + (" (current)" if r["current"] else "")
                  + (f" (n ≈ {r['n']})" if r["p"] is not None else ""), "p": r["p"], "highlight": r["current"]}
                 for r in stratum["rows"]],
                f"Share of assessments with grade 3 or worse toxicity, by regimen, among patients like this one "
                f"({stratum['label']}), in the released statistics", missing="too few to tell under the noise")
    return out


@bp.get("/")
def home():
    grants, problem = attempt(lambda: oncology.live_grants(services(), actor()))
    return render_template("web_oncology/home.html", grants=grants or [], problem=problem,
                           sections=oncology.SECTIONS), 200 if problem is None else status_of(problem)


def _view(grant_id: str | None = None, token: str | None = None):
    encrypted = request.form.get("encrypted") == "1"
    held = session.get(TOKENS, {})
    token = token or held.get(grant_id or "")
    d, problem = attempt(lambda: oncology.dashboard(services(), actor(), grant_id=grant_id, token=token,
                                                    encrypted=encrypted))
    if problem is not None or d is None:
        return render_template("web_oncology/dashboard.html", d=None, problem=problem), status_of(problem)
    # the token of this grant, kept for the next views while it lives (the presenter is bound in it)
    session[TOKENS] = {d["grant_id"]: d["token"], **{g: t for g, t in held.items() if g != d["grant_id"]}}
    if len(session[TOKENS]) > 4:
        session[TOKENS] = dict(list(session[TOKENS].items())[:4])
    return render_template("web_oncology/dashboard.html", d=d, charts=_charts(d), problem=None,
                           types=dict(oncology.TOXICITY_TYPES), encrypted=encrypted, short_date=charts.short_date)


@bp.post("/grants/<grant_id>")
def open_grant(grant_id: str):
    """A fresh token for one of my live grants, presented at once: the dashboard of that release."""
    return _view(grant_id=grant_id)


@bp.post("/")
def open_token():
    """The dashboard of a token I was given (the decision page's)."""
    return _view(token=request.form.get("token", ""))


__all__ = ["bp"]
