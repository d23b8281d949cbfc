"""The oncologist's dashboard (the Edinburgh Cancer Centre use case), as functions returning data.

:func:`dashboard` opens a patient's record through the same gate as every other view — a fresh
token for one of the clinician's live grants (:func:`gateway.flow.mint_token`), presented to the
vault (:func:`gateway.flow.fetch_record`), which releases only the granted sections and logs the
access on chain — and reads from that release only:

- the treatment timeline: regimens, cycles, planned and given doses, reductions, delays
  (``oncology.treatment``);
- toxicity grades per cycle and type (``oncology.toxicity``);
- the Charlson comorbidity index over time (``comorbidities``); the hospital stays (``admissions``).

A section not released is reported withheld and nothing of it is read. Beside the record:

- the toxicity predictor's risk for the next cycle, from the newest model the analytics package
  *released*: a research job's release (:mod:`analytics.jobs`) whose SHA-256 the chain logged when
  the job spent its dataset's ε budget (``BudgetContract.SpendRelease``). The release is checked
  against the chain before it is used; computed in clear or on CKKS-encrypted features
  (:mod:`analytics.fhe`), as asked;
- similar patients: how regimens compare on toxicity, only from what analytics released — the
  DP model's risk for this patient under each regimen, and encrypted-statistics releases' noised
  grade histograms per regimen. Never another patient's record.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analytics import ColumnBounds, scale
from vault import TokenError

from . import flow
from . import ledger as L
from . import problems as P
from .security import CLINICIANS
from .vocab import SECTION_LABELS

TREATMENT, TOXICITY, COMORBIDITIES, ADMISSIONS = "oncology.treatment", "oncology.toxicity", "comorbidities", "admissions"
#: What the dashboard shows, in its order.
SECTIONS = (TREATMENT, TOXICITY, COMORBIDITIES, ADMISSIONS)
#: CTCAE toxicity types of the Edinburgh records, with the words the chart uses.
TOXICITY_TYPES = (("neutropenia_grade", "Neutropenia"), ("fatigue_grade", "Fatigue"), ("nausea_grade", "Nausea"),
                  ("vomiting_grade", "Vomiting"), ("diarrhoea_grade", "Diarrhoea"), ("mucositis_grade", "Mucositis"),
                  ("neuropathy_grade", "Neuropathy"), ("hand_foot_grade", "Hand-foot syndrome"),
                  ("alopecia_grade", "Hair loss"))
HOW_TO_RELEASE = ("A researcher releases the predictor: on the research pages or POST /analytics/jobs, a training "
                  "job over a research cohort the chain granted, paid from a dataset's ε budget; its release is "
                  "logged on chain (BudgetContract.SpendRelease) and then appears here.")


def _is_true(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("true", "1", "yes")


# --------------------------------------------------------------------------- the released record


@dataclass(frozen=True)
class _Hub:
    key: str | None


@dataclass(frozen=True)
class _Entry:
    satellite: str
    hub: _Hub
    attributes: dict[str, Any]


class ReleasedRecord:
    """A release's record (the JSON the vault digested) read by section; a withheld section has no
    entries. The shape ``analytics.features`` reads (``entries(section)`` with ``attributes``)."""

    def __init__(self, record: dict[str, Any]):
        self.sections = record.get("sections") or {}

    def released(self, section: str) -> bool:
        return (self.sections.get(section) or {}).get("status") == "released"

    def withheld_reason(self, section: str) -> str:
        return (self.sections.get(section) or {}).get("reason") or "not-granted"

    def entries(self, section: str) -> list[_Entry]:
        if not self.released(section):
            return []
        return [_Entry(e.get("satellite", ""), _Hub((e.get("hub") or {}).get("key")), e.get("attributes") or {})
                for e in self.sections[section].get("entries", [])]


def treatment(record: ReleasedRecord) -> list[dict[str, Any]]:
    """Every cycle in time order: treatment, regimen, intent, start, delayed, body surface area,
    performance status, the drugs with planned and given doses, dose given as % of plan, reduced."""
    cycles: dict[tuple[str, int], dict[str, Any]] = {}
    drugs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for e in record.entries(TREATMENT):
        a = e.attributes
        if "regimen" in a:
            cycles[(str(a.get("treatment_id")), int(a.get("cycle_number") or 0))] = a
        elif "drug_name" in a and e.hub.key and str(e.hub.key).count("|") >= 2:
            tid, cyc, _ = str(e.hub.key).split("|", 2)
            planned, given = a.get("planned_dose"), a.get("dose")
            pct = 100 * float(given) / float(planned) if planned and given is not None else None
            drugs.setdefault((tid, int(cyc)), []).append({
                "drug": a["drug_name"], "planned": planned, "given": given, "unit": a.get("dose_unit", ""),
                "route": a.get("route", ""), "pct": pct,
                "reduced": _is_true(a.get("dose_reduced")) or (pct is not None and pct < 99.5)})
    out = []
    for (tid, cyc), a in cycles.items():
        given = [d for d in drugs.get((tid, cyc), []) if d["pct"] is not None]
        out.append({
            "treatment_id": tid, "cycle": cyc, "regimen": a.get("regimen"), "intent": a.get("intent"),
            "start": a.get("cycle_start_date"), "delayed": _is_true(a.get("cycle_delayed")),
            "body_surface_area": a.get("body_surface_area"), "performance_status": a.get("performance_status"),
            "drugs": sorted(drugs.get((tid, cyc), []), key=lambda d: d["drug"]),
            "dose_pct": float(np.mean([d["pct"] for d in given])) if given else None,
            "reduced": any(d["reduced"] for d in drugs.get((tid, cyc), [])),
        })
    return sorted(out, key=lambda c: (str(c["start"] or ""), c["treatment_id"], c["cycle"]))


def toxicity(record: ReleasedRecord) -> dict[str, Any]:
    """The assessments in time order (cycle, date, grade per type, worst grade, febrile neutropenia,
    hospitalised, dose modified) and the types any of them records."""
    rows = []
    for e in record.entries(TOXICITY):
        a = e.attributes
        grades = {k: int(a[k]) for k, _ in TOXICITY_TYPES if a.get(k) not in (None, "")}
        rows.append({"treatment_id": a.get("treatment_id"), "cycle": a.get("cycle_number"),
                     "date": a.get("assessment_date"), "grades": grades, "worst": max(grades.values(), default=0),
                     "febrile_neutropenia": _is_true(a.get("febrile_neutropenia")),
                     "hospitalised": _is_true(a.get("hospitalised")), "dose_modified": _is_true(a.get("dose_modified"))})
    rows.sort(key=lambda r: (str(r["date"] or ""), str(r["treatment_id"]), int(r["cycle"] or 0)))
    types = [(k, label) for k, label in TOXICITY_TYPES if any(k in r["grades"] for r in rows)]
    return {"types": types, "assessments": rows}


def comorbidities(record: ReleasedRecord) -> list[dict[str, Any]]:
    """Charlson assessments in time order: the index and the conditions present."""
    out = []
    for e in record.entries(COMORBIDITIES):
        a = e.attributes
        if "charlson_index" not in a:
            continue
        present = [k.replace("_", " ") for k, v in a.items()
                   if k not in ("assessment_date", "charlson_index") and _is_true(v)]
        out.append({"date": a.get("assessment_date"), "charlson_index": int(a.get("charlson_index") or 0),
                    "conditions": present})
    return sorted(out, key=lambda r: str(r["date"] or ""))


def admissions(record: ReleasedRecord) -> list[dict[str, Any]]:
    """Hospital stays in time order."""
    out = [{"episode": e.hub.key, "admitted": a.get("admission_date"), "discharged": a.get("discharge_date"),
            "days": a.get("length_of_stay"), "type": a.get("admission_type", ""), "specialty": a.get("specialty", ""),
            "facility": a.get("significant_facility", ""), "discharge": a.get("discharge_type", "")}
           for e in record.entries(ADMISSIONS) if "admission_date" in (a := e.attributes)]
    return sorted(out, key=lambda r: str(r["admitted"] or ""))


# --------------------------------------------------------------------------- released analytics


def release_store(services) -> Path:
    """Where the analytics jobs (and their releases) are kept: ``<data dir>/analytics/jobs``."""
    return Path(services.settings.data_dir) / "analytics" / "jobs"


def _released_jobs(services) -> list[Any]:
    from analytics.jobs import JobStore

    if not release_store(services).is_dir():
        return []
    jobs = [j for j in JobStore(release_store(services)).list() if j.status == "released" and j.release]
    return sorted(jobs, key=lambda j: j.updated_at, reverse=True)


def _spend_on_chain(services, actor: flow.Actor, dataset: str, release_id: str) -> dict[str, Any] | None:
    """The chain's record of a release (``BudgetContract.SpendHistory`` of its dataset), or None."""
    contract, bookmark = actor.contract(services, "BudgetContract"), ""
    while True:
        page = L.evaluate(contract, "SpendHistory", dataset, 200, bookmark)
        found = next((s for s in page.get("records", []) if s.get("release_id") == release_id), None)
        bookmark = page.get("bookmark") or ""
        if found is not None or not bookmark:
            return found


def _verified(services, actor: flow.Actor, job: Any, digest_of_document: bool) -> dict[str, Any] | None:
    """A job's release as the chain vouches for it: its spend found, and (models) the document's
    SHA-256 equal to the one the chain logged. A release the chain does not hold is not used."""
    from analytics.jobs import canonical

    rel, doc = job.release, job.release.get("document") or {}
    dataset = doc.get("dataset") or job.spec.get("dataset")
    if not dataset or not rel.get("release_id"):
        return None
    spend = _spend_on_chain(services, actor, dataset, rel["release_id"])
    if spend is None or spend.get("sha256") != rel.get("sha256"):
        return None
    if digest_of_document and hashlib.sha256(canonical(doc)).hexdigest() != spend["sha256"]:
        return None
    return {"release_id": rel["release_id"], "sha256": spend["sha256"], "tx_id": spend.get("tx_id"),
            "at": spend.get("at"), "dataset": dataset, "study": doc.get("study") or job.spec.get("study"),
            "cohort_id": spend.get("cohort_id"), "epsilon": float(spend["epsilon"]), "delta": float(spend["delta"]),
            "method": doc.get("method") or job.spec.get("method"), "hospitals": doc.get("hospitals"),
            "document": doc}


def released_model(services, actor: flow.Actor) -> dict[str, Any] | None:
    """The newest released toxicity predictor the chain vouches for, or None."""
    for job in _released_jobs(services):
        if (job.release.get("document") or {}).get("model"):
            found = _verified(services, actor, job, digest_of_document=True)
            if found is not None:
                return found
    return None


def released_statistics(services, actor: flow.Actor) -> dict[str, Any] | None:
    """The newest released encrypted-statistics aggregate (noised grade histograms per regimen)
    whose release the chain holds, or None."""
    for job in _released_jobs(services):
        stats = (job.release.get("document") or {}).get("statistics") or job.release.get("statistics")
        if isinstance(stats, dict) and stats.get("grade_histogram"):
            found = _verified(services, actor, job, digest_of_document=False)
            if found is not None:
                return {**found, "statistics": stats}
    return None


# --------------------------------------------------------------------------- the predictor


def next_cycle_features(cycles: list[dict[str, Any]], charlson: list[dict[str, Any]]) -> dict[str, float]:
    """The features of the next cycle as the research predictor names them: the latest cycle's
    regimen, body surface area and performance status, its number + 1, planned on time, the dose
    as given last time; the latest Charlson index."""
    last = cycles[-1]
    given = [d["pct"] / 100 for d in last["drugs"] if d["pct"] is not None]
    out = {"charlson_index": float(charlson[-1]["charlson_index"]) if charlson else 0.0,
           "cycle_number": float(last["cycle"]) + 1, "body_surface_area": float(last["body_surface_area"] or 1.8),
           "performance_status": float(last["performance_status"] or 0), "cycle_delayed": 0.0,
           "dose_ratio": float(np.mean(given)) if given else 1.0, "dose_reduced": 1.0 if last["reduced"] else 0.0}
    return out | {f"regimen_{last['regimen']}": 1.0}


def regimens_of(model: dict[str, Any]) -> list[str]:
    return [f.removeprefix("regimen_") for f in model["features"] if f.startswith("regimen_")]


def _vector(model: dict[str, Any], features: dict[str, float], regimen: str | None = None) -> np.ndarray:
    """The model's feature row for ``features`` (scaled by the model's declared bounds); with
    ``regimen``, that regimen instead of the patient's."""
    names = list(model["features"])
    unknown = [n for n in names if not n.startswith("regimen_") and n not in features]
    if unknown:
        raise P.Problem(P.CONFLICT, f"the released model needs {', '.join(unknown)}, which this record does not give")
    row = {n: features.get(n, 0.0) for n in names}
    if regimen is not None:
        row.update({n: 1.0 if n == f"regimen_{regimen}" else 0.0 for n in names if n.startswith("regimen_")})
    bounds = [ColumnBounds(n, float(lo), float(hi)) for n, (lo, hi) in zip(names, model["bounds"], strict=True)]
    return scale(np.array([[row[n] for n in names]], dtype=float), bounds)[0]


def _sigmoid(z: float) -> float:
    return float(1 / (1 + np.exp(-z)))


_fhe_lock = threading.Lock()
_fhe_keys: list[Any] = []


def _study_keys() -> tuple[Any, Any]:
    """This gateway's CKKS keys for encrypted inference (made once): the secret side stays here, the
    model is evaluated with the public context only."""
    from analytics import fhe

    with _fhe_lock:
        if not _fhe_keys:
            keys = fhe.StudyKeys.create()
            _fhe_keys.extend([keys, fhe.StudyKeys.load(keys.public_bytes())])
        return _fhe_keys[0], _fhe_keys[1]


def predict(model: dict[str, Any], features: dict[str, float], *, encrypted: bool = False,
            regimen: str | None = None) -> float:
    """P(CTCAE grade ≥ 3 at the next cycle) under the released logistic regression: in clear, or
    with the features encrypted (CKKS) and the logit computed on the ciphertext."""
    x = _vector(model, features, regimen)
    weight, bias = np.asarray(model["weight"], dtype=float), float(model["bias"])
    if encrypted:
        from analytics import fhe

        keys, public = _study_keys()
        return fhe.predict_one(keys, public, x, weight, bias)
    return _sigmoid(float(x @ weight + bias))


def regimen_comparison(model: dict[str, Any], features: dict[str, float], current: str) -> list[dict[str, Any]]:
    """The released model's risk for this patient's next cycle under each regimen it knows (what
    it learnt from similar patients, as released): highest risk last."""
    rows = [{"regimen": r, "p": predict(model, features, regimen=r), "current": r == current}
            for r in regimens_of(model)]
    return sorted(rows, key=lambda r: r["p"])


def _shares(histograms: dict[str, list[int]], noise_sd: float, current: str | None = None) -> list[dict[str, Any]]:
    """Per regimen: assessments counted and the share with a worst grade ≥ 3, the share only where
    the count is at least four standard deviations of its noise (else it is noise, not a rate)."""
    rows = []
    for r, hist in histograms.items():
        n = int(sum(hist))
        rows.append({"regimen": r, "n": n, "current": r == current,
                     "p": min(max(sum(hist[3:]) / n, 0.0), 1.0) if n >= 4 * noise_sd else None})
    rows.sort(key=lambda r: (r["p"] is None, r["p"] or 0, r["regimen"]))
    return rows


def _bin_noise(epsilon: float, layout: Any = None) -> tuple[float, int]:
    """The Laplace scale d/ε of the privacy wall's noise on one histogram bin, and the grades per regimen."""
    from analytics.jobs import research_layout

    layout = layout or research_layout()
    return float(layout.sensitivity()[-1]) / float(epsilon), layout.grades


def statistics_comparison(stats: dict[str, Any], epsilon: float, layout: Any = None) -> dict[str, Any]:
    """From a released (noised) grade histogram per regimen: assessments counted and the share with
    a worst grade ≥ 3. Each bin carries the privacy wall's noise, Laplace(d/ε) with d the histogram
    slots' sensitivity; a regimen's count sums its grades' bins (and, for a stratified release, every
    stratum's), so its noise has standard deviation sqrt(2·bins)·d/ε; a share is given only where the
    count is at least four of those."""
    scale, grades = _bin_noise(epsilon, layout)
    cells = len((stats.get("strata") or {}).get("cells") or ()) or 1
    noise_sd = math.sqrt(2 * grades * cells) * scale
    rows = _shares(stats["grade_histogram"], noise_sd)
    return {"rows": rows, "noise_sd": noise_sd, "shown": sum(r["p"] is not None for r in rows)}


#: how the strata's features read in a sentence
_FEATURE_NAMES = {"charlson_index": "Charlson index", "performance_status": "performance status"}


def stratum_comparison(stats: dict[str, Any], epsilon: float, features: dict[str, float] | None,
                       current: str | None = None, layout: Any = None) -> dict[str, Any] | None:
    """The regimens compared within the stratum of patients like this one (the released cell whose
    bands hold this patient's features, e.g. Charlson index and performance status), from a
    stratified release only; None when the release is not stratified. Without the features (a
    section not released) ``reason`` says so and nothing is compared."""
    import bisect

    strata = stats.get("strata")
    if not strata:
        return None
    bands: dict[str, str] = {}
    for s in strata["by"]:
        value = (features or {}).get(s["feature"])
        if value is None:
            return {"reason": f"this patient's {_FEATURE_NAMES.get(s['feature'], s['feature'])} is not known to you, so their "
                              f"stratum is not either", "rows": [], "bands": {}, "shown": 0}
        bands[s["feature"]] = s["labels"][bisect.bisect_right(s["edges"], float(value))]
    cell = next((c for c in strata["cells"] if c["bands"] == bands), None)
    if cell is None:
        return {"reason": "the release has no stratum for this patient", "rows": [], "bands": bands, "shown": 0}
    scale, grades = _bin_noise(epsilon, layout)
    noise_sd = math.sqrt(2 * grades) * scale
    rows = _shares(cell["grade_histogram"], noise_sd, current)
    return {"reason": None, "bands": bands, "rows": rows, "noise_sd": noise_sd,
            "shown": sum(r["p"] is not None for r in rows),
            "label": ", ".join(f"{_FEATURE_NAMES.get(f, f)} {b}" for f, b in bands.items())}


# --------------------------------------------------------------------------- the dashboard


def live_grants(services, actor: flow.Actor) -> list[dict[str, Any]]:
    """The actor's live grants that include any of the dashboard's sections."""
    page = L.page(L.evaluate(actor.contract(services, "AuditContract"), "AuditByUser", actor.user_id, "decision",
                             "", "", 100, ""))
    grants = [r["record"] for r in page.get("records", []) if (r.get("record") or {}).get("live")]
    return [g for g in grants if set(g.get("sections") or ()) & set(SECTIONS)]


def _check_clinician(actor: flow.Actor) -> None:
    if actor.role not in CLINICIANS:
        raise P.Problem(P.FORBIDDEN, f"the oncology dashboard is for {', '.join(CLINICIANS)} users; you are signed "
                                     f"in as {P.article(actor.role)} {actor.role}")


def _risk(services, actor, cycles, charlson, granted, encrypted: bool) -> dict[str, Any]:
    model = released_model(services, actor)
    out: dict[str, Any] = {"release": model, "how_to_release": HOW_TO_RELEASE, "p": None, "reason": None,
                           "computed": None, "features": None, "regimens": []}
    if model is None:
        out["reason"] = "No toxicity predictor has been released yet."
        return out
    missing = [f"{SECTION_LABELS.get(s, s).lower()} ({s})" for s in (TREATMENT, COMORBIDITIES) if not granted[s]]
    if missing:
        out["reason"] = (f"The predictor reads the treatment and the Charlson index; {' and '.join(missing)} "
                         f"{'was' if len(missing) == 1 else 'were'} not released to you.")
        return out
    if not cycles:
        out["reason"] = "No chemotherapy cycle is recorded: there is no next cycle to predict."
        return out
    features = next_cycle_features(cycles, charlson)
    try:
        m = model["document"]["model"]
        out["p"] = predict(m, features, encrypted=encrypted)
        out["regimens"] = regimen_comparison(m, features, cycles[-1]["regimen"])
    except P.Problem as exc:
        out["reason"] = exc.detail
        return out
    out["computed"] = "encrypted" if encrypted else "plain"
    out["features"] = features
    return out


def _stratum_features(cycles, charlson, granted) -> dict[str, float] | None:
    """This patient's features the released strata are cut by (latest Charlson index, the last cycle's
    performance status), only from sections released to the clinician."""
    if not (granted[TREATMENT] and granted[COMORBIDITIES] and cycles):
        return None
    return next_cycle_features(cycles, charlson)


def dashboard(services, actor: flow.Actor, *, grant_id: str | None = None, token: str | None = None,
              encrypted: bool = False) -> dict[str, Any]:
    """One view of the dashboard: a release against a token, logged on chain like any access, read
    for the granted sections only. ``token``: one the clinician holds (the decision page's, or the
    one this returned for the same grant before — a grant binds at most 16 tokens, so views reuse
    theirs while it lives); with ``grant_id``, a fresh token is minted when none is given or it no
    longer opens (expired). The answer's ``token`` is the one presented."""
    _check_clinician(actor)
    data = None
    if token:
        try:
            data = flow.fetch_record(services, actor, token)
        except TokenError:
            if not grant_id:  # nothing to mint a fresh one for
                raise
    if data is None or (grant_id and data["grant_id"] != grant_id):
        if not grant_id:
            raise P.Problem(P.VALIDATION, "choose one of your grants, or give a token")
        token = flow.mint_token(services, actor, grant_id)["token"]
        data = flow.fetch_record(services, actor, token)
    record = ReleasedRecord(data["record"])
    granted = {s: record.released(s) for s in SECTIONS}
    cycles = treatment(record)
    charlson = comorbidities(record)
    stats = released_statistics(services, actor)
    return {
        "patient_id": data["patient_id"], "hospital": data["hospital"], "grant_id": data["grant_id"], "token": token,
        "digest": data["digest"], "evidence": data["evidence"], "granted": granted,
        "withheld": {s: record.withheld_reason(s) for s in SECTIONS if not granted[s]},
        "treatment": cycles, "toxicity": toxicity(record), "comorbidities": charlson,
        "admissions": admissions(record),
        "risk": _risk(services, actor, cycles, charlson, granted, encrypted),
        "statistics": None if stats is None else {
            **stats, "comparison": statistics_comparison(stats["statistics"], stats["epsilon"]),
            "stratum": stratum_comparison(stats["statistics"], stats["epsilon"], _stratum_features(cycles, charlson, granted),
                                          cycles[-1]["regimen"] if cycles else None)},
    }


__all__ = ["HOW_TO_RELEASE", "SECTIONS", "TOXICITY_TYPES", "ReleasedRecord", "admissions", "comorbidities",
           "dashboard", "live_grants", "next_cycle_features", "predict", "regimen_comparison", "regimens_of",
           "release_store", "released_model", "released_statistics", "statistics_comparison", "stratum_comparison", "toxicity",
           "treatment"]
