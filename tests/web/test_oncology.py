"""The oncologist's dashboard: the chart builder, the application layer (gateway/oncology.py) and,
marker ``browser``, the pages.

The web tests' world (``site``) gets, at Zuyderland, three patients with a full course of
chemotherapy (six FEC-T cycles, reduced doses and a delay, toxicity at every cycle, two Charlson
assessments, an emergency admission), an oncologist (specialist) treating them, the research rule
``serums up`` publishes, the patients' consent to research — and a researcher whose job releases
the toxicity predictor through the analytics API (cohort, dataset budget, DP-SGD, SpendRelease).
One patient refuses the oncologist her other conditions (comorbidities).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from analytics.fhe import StatsLayout
from analytics.jobs import Job, JobStore, research_layout
from gateway import flow, oncology
from gateway import ledger as L
from gateway import problems as P
from gateway.errors import problem_of
from gateway.web import charts
from serums.bootstrap import DEFAULT_RULES
from tests.gateway.stack import Account, Http, enrol
from tests.gateway.test_analytics_api import _wait

from .conftest import actor_of, shot
from .pages import sign_in

CSS = Path(__file__).resolve().parents[2] / "gateway" / "web" / "static" / "serums.css"
HOSPITAL = "zmc"
RESEARCH_RULE = next(r for r in DEFAULT_RULES if r["rule_id"] == "research-with-consent")
RESEARCH_CONSENT = {"effect": "allow", "grantee": {"kind": "role", "id": "researcher"}, "sections": ["*"],
                    "purposes": ["research"]}
FOUR = ["oncology.treatment", "oncology.toxicity", "comorbidities", "admissions"]


# --------------------------------------------------------------------------- the world


def _course(chi: str, n: int) -> dict[str, list[dict[str, str]]]:
    """One patient's rows in the Edinburgh tables: six FEC-T cycles every three weeks (cycle 3
    delayed a week, cycles 4–6 at 80 %), toxicity two weeks into each cycle."""
    start, bsa = dt.date(2021, 3, 1) + dt.timedelta(days=9 * n), 1.80 + 0.05 * n
    drugs = (("Fluorouracil", 500), ("Epirubicin", 100), ("Cyclophosphamide", 500))
    neut, fat, naus = (1, 2, 3, 4, 2, 2), (1, 1, 2, 3, 2, 2), (2, 1, 1, 2, 1, 0)
    t, tox, day = [], [], start
    for c in range(1, 7):
        day += dt.timedelta(days=0 if c == 1 else (28 if c == 3 else 21))
        for drug, per_m2 in drugs:
            planned = round(per_m2 * bsa, 1)
            t.append({"patient_id": chi, "treatment_id": f"TR9{n}", "regimen": "FEC-T", "intent": "Adjuvant",
                      "cycle_number": str(c), "cycle_start_date": day.isoformat(), "drug_name": drug,
                      "dose": str(round(planned * (0.8 if c >= 4 else 1.0), 1)), "dose_unit": "mg", "route": "IV",
                      "planned_dose": str(planned), "dose_reduced": str(c >= 4).lower(),
                      "cycle_delayed": str(c == 3).lower(), "height_cm": "165", "weight_kg": "70",
                      "body_surface_area": f"{bsa:.2f}", "performance_status": "1", "consultant_code": "C3100",
                      "location_code": "S314H"})
        tox.append({"patient_id": chi, "toxicity_id": f"X9{n}{c}", "treatment_id": f"TR9{n}", "cycle_number": str(c),
                    "assessment_date": (day + dt.timedelta(days=14)).isoformat(), "nausea_grade": str(naus[c - 1]),
                    "vomiting_grade": "0", "diarrhoea_grade": str(c % 2), "fatigue_grade": str(fat[c - 1]),
                    "neutropenia_grade": str(neut[c - 1]), "mucositis_grade": "1" if c > 2 else "0",
                    "neuropathy_grade": "0", "alopecia_grade": "2", "hand_foot_grade": "0",
                    "febrile_neutropenia": str(c == 4).lower(), "hospitalised": str(c == 4).lower(),
                    "dose_modified": str(c == 4).lower()})
    flags = dict.fromkeys(("myocardial_infarction", "congestive_heart_failure", "peripheral_vascular_disease",
                           "cerebrovascular_disease", "dementia", "chronic_pulmonary_disease", "rheumatic_disease",
                           "peptic_ulcer_disease", "mild_liver_disease", "diabetes_uncomplicated",
                           "diabetes_complicated", "hemiplegia_paraplegia", "renal_disease", "any_malignancy",
                           "moderate_severe_liver_disease", "metastatic_solid_tumour", "aids_hiv"), "false")
    charlson = [{"patient_id": chi, "assessment_date": (start - dt.timedelta(days=20)).isoformat(),
                 **flags, "any_malignancy": "true", "charlson_index": "2"},
                {"patient_id": chi, "assessment_date": (start + dt.timedelta(days=80)).isoformat(),
                 **flags, "any_malignancy": "true", "diabetes_uncomplicated": "true", "charlson_index": "3"}]
    fn = start + dt.timedelta(days=21 * 3 + 7 + 15)
    smr01 = [{"patient_id": chi, "episode_id": f"E9{n}1", "admission_date": (start - dt.timedelta(days=30)).isoformat(),
              "discharge_date": (start - dt.timedelta(days=27)).isoformat(), "length_of_stay": "3",
              "admission_type": "Elective", "specialty": "Breast surgery", "significant_facility": "",
              "main_condition": "C50.9", "other_condition_1": "", "other_condition_2": "", "main_operation": "B28.1",
              "operation_date": (start - dt.timedelta(days=29)).isoformat(), "discharge_type": "Home",
              "location_code": "S314H", "age_at_admission": "55", "sex": "2"},
             {"patient_id": chi, "episode_id": f"E9{n}2", "admission_date": fn.isoformat(),
              "discharge_date": (fn + dt.timedelta(days=5)).isoformat(), "length_of_stay": "5",
              "admission_type": "Emergency", "specialty": "Medical oncology", "significant_facility": "",
              "main_condition": "D70", "other_condition_1": "C50.9", "other_condition_2": "", "main_operation": "",
              "operation_date": "", "discharge_type": "Home", "location_code": "S314H", "age_at_admission": "55",
              "sex": "2"}]
    patient = {"patient_id": chi, "given_name": f"Onco{n}", "family_name": "Test", "date_of_birth": "1966-05-04",
               "sex": "F", "postcode": "EH4 2XU", "hospital": "Western General Hospital"}
    return {"patients": [patient], "chemocare_treatment": t, "chemocare_toxicity": tox, "ndc_charlson": charlson,
            "ndc_smr01": smr01}


@dataclass
class Onc:
    refs: list[str]  # the three patients; refs[2] refuses the oncologist her comorbidities
    patients: list  # their actors
    oncologist: Account
    insurer: Account
    release: dict  # the toxicity predictor's
    stats: dict  # the encrypted statistics'


@pytest.fixture(scope="module")
def onc(site) -> Onc:
    svc = site.world.services
    v = svc.vault(HOSPITAL)
    stamp = f"{int(time.time()) % 10_000:04d}"
    refs = []
    for n in range(3):
        chi = f"05{n}466{stamp}"
        v.ingest_tables(_course(chi, n), source="fixtures")
        refs.append(v.find_patient(chi))
    L.submit(svc.admin_contract(HOSPITAL, "PolicyContract"), "PutRule", RESEARCH_RULE)
    patients = [actor_of(svc, enrol(svc, HOSPITAL, "patient", user_id=ref, prefix=f"onc.patient{i}"))
                for i, ref in enumerate(refs)]
    oncologist = enrol(svc, HOSPITAL, "specialist", treating=tuple(refs), prefix="dr.onc")
    for i, me in enumerate(patients):
        flow.add_preference(svc, me, RESEARCH_CONSENT)
        if i == 2:
            flow.add_preference(svc, me, {"effect": "deny", "grantee": {"kind": "user", "id": oncologist.user_id},
                                          "sections": ["comorbidities"], "purposes": ["*"]})
    http = Http(site.app.test_client())
    researcher = http.login(enrol(svc, HOSPITAL, "researcher", prefix="researcher"))
    admin = http.login(enrol(svc, HOSPITAL, "hospital_admin", prefix="admin"))
    r = http.post("/analytics/cohorts", token=researcher, json={"patients": refs})
    assert r.status == 201 and r.json["size"] == 3, r
    cohort, dataset = r.json["cohort_id"], f"onc-tox-{stamp}"
    r = http.post("/analytics/datasets", token=admin, json={"dataset": dataset, "epsilon": 2.0, "delta": 1e-4})
    assert r.status == 201, r
    r = http.post("/analytics/jobs", token=researcher, json={
        "study": "edinburgh-toxicity", "cohort_id": cohort, "dataset": dataset, "epsilon": 1.0, "delta": 1e-5,
        "rounds": 2, "local_epochs": 1})
    assert r.status == 202, r
    done = _wait(http, researcher, r.json["job_id"])
    assert done["status"] == "released", done
    release = http.get(f"/analytics/jobs/{done['job_id']}/release", token=researcher).json
    # and encrypted statistics of the same cohort (TenSEAL, noised by the privacy wall after release)
    r = http.post("/analytics/jobs", token=researcher, json={
        "study": "edinburgh-toxicity-stats", "cohort_id": cohort, "dataset": dataset, "epsilon": 0.5,
        "delta": 1e-5, "method": "wall", "kind": "stats"})
    assert r.status == 202, r
    done = _wait(http, researcher, r.json["job_id"])
    assert done["status"] == "released", done
    stats = http.get(f"/analytics/jobs/{done['job_id']}/release", token=researcher).json
    return Onc(refs, patients, oncologist, enrol(svc, HOSPITAL, "insurer", prefix="insurer"), release, stats)


def _grant(site, onc: Onc, ref: str, sections=FOUR) -> str:
    svc = site.world.services
    d = flow.request_access(svc, actor_of(svc, onc.oncologist), ref, HOSPITAL, sections=list(sections),
                            purpose="treatment", justification="direct-care")
    assert d.get("grant_id"), d
    return d["grant_id"]


# --------------------------------------------------------------------------- the chart builder


def _svg(markup) -> ET.Element:
    return ET.fromstring(str(markup))


def _classes(root: ET.Element) -> list[str]:
    return [c for el in root.iter() for c in (el.get("class") or "").split()]


def _css() -> dict[str, dict[str, str]]:
    """``.ch .X { prop: value }`` rules of the stylesheet's chart block, by class."""
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", CSS.read_text()):
        props = {k.strip(): v.strip() for k, v in (p.split(":", 1) for p in body.split(";") if ":" in p)}
        for sel in selectors.split(","):
            m = re.fullmatch(r"\.ch \.([\w-]+)", sel.strip())
            if m:
                rules.setdefault(m.group(1), {}).update(props)
    return rules


def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    h = "".join(c * 2 for c in h) if len(h) == 3 else h
    rgb = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


CYCLES = [{"treatment_id": "T1", "regimen": "FEC-T", "cycle": 1, "start": "2021-03-01", "dose_pct": 100.0,
           "reduced": False, "delayed": False},
          {"treatment_id": "T1", "regimen": "FEC-T", "cycle": 2, "start": "2021-03-29", "dose_pct": 80.0,
           "reduced": True, "delayed": True},
          {"treatment_id": "T2", "regimen": "CAPE", "cycle": 1, "start": "2021-05-02", "dose_pct": None,
           "reduced": False, "delayed": False}]


def test_dose_chart_marks_reductions_delays_and_regimens():
    root = _svg(charts.dose_chart(CYCLES))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img" and root.find(f"{ns}title").text.startswith("Dose given per cycle")
    desc = root.find(f"{ns}desc").text
    assert "cycle 2 of FEC-T on 29 Mar 2021: 80%, reduced, delayed" in desc and "no dose recorded" in desc
    cls = _classes(root)
    assert cls.count("ch-bar-reduced") == 2  # the bar and its legend swatch
    assert cls.count("ch-bar") == 2 and cls.count("ch-delay") == 2
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert {"FEC-T", "CAPE", "80%", "100%", "no dose", "125%"} <= set(texts)


def test_toxicity_heatmap_writes_each_grade_in_a_readable_colour():
    types = [("neutropenia_grade", "Neutropenia"), ("nausea_grade", "Nausea")]
    assessments = [{"cycle": 1, "date": "2021-03-15", "grades": {"neutropenia_grade": 1, "nausea_grade": 0}},
                   {"cycle": 2, "date": "2021-04-12", "grades": {"neutropenia_grade": 4}}]
    root = _svg(charts.toxicity_heatmap(types, assessments))
    ns = "{http://www.w3.org/2000/svg}"
    cells = [(el.get("class"), el.text) for el in root.iter(f"{ns}text") if el.get("class", "").startswith("ch-cell")]
    assert cells == [("ch-cell-dark", "1"), ("ch-cell-light", "4"), ("ch-cell-dark", "0"), ("ch-cell-dark", "–")]
    assert "cycle 2 (12 Apr 2021): worst grade 4, Neutropenia 4" in root.find(f"{ns}desc").text
    css = _css()
    for g in range(6):  # the number in a cell contrasts with the cell (WCAG AA, 4.5:1)
        text = css["ch-cell-light" if g >= 3 else "ch-cell-dark"]["fill"]
        assert _contrast(css[f"ch-g{g}"]["fill"], text) >= 4.5, g


def test_every_chart_class_is_styled_and_nothing_inline():
    charts_ = [charts.dose_chart(CYCLES),
               charts.toxicity_heatmap([("nausea_grade", "Nausea")], [{"cycle": 1, "date": "2021-01-01",
                                                                       "grades": {"nausea_grade": 5}}]),
               charts.charlson_chart([{"date": "2020-01-01", "charlson_index": 2}, {"date": "2021-01-01",
                                                                                   "charlson_index": 5}]),
               charts.admissions_chart([{"admitted": "2021-01-01", "discharged": "2021-01-09", "type": "Emergency",
                                         "specialty": "Oncology", "days": 8}], [{"date": "2021-02-01"}]),
               charts.risk_bars([{"label": "FEC-T", "p": 0.3, "highlight": True}, {"label": "TC", "p": None}], "r")]
    css = _css()
    for markup in charts_:
        assert "style=" not in str(markup) and "<script" not in str(markup)
        root = _svg(markup)
        unstyled = {c for c in _classes(root) if c != "ch"} - set(css)
        assert not unstyled, unstyled
    marks = _svg(charts_[3])
    assert "ch-adm-emergency" in _classes(marks) and "ch-mark" in _classes(marks)
    # texts and bars on white: at least 3:1 (graphics) and 4.5:1 (text)
    assert _contrast(css["ch-bar"]["fill"], "#ffffff") >= 3 and _contrast(css["ch-bar-reduced"]["fill"], "#ffffff") >= 3
    assert _contrast(css["ch-risk"]["fill"], "#ffffff") >= 3 and _contrast(css["ch-delay"]["fill"], "#ffffff") >= 3


def test_markup_is_escaped():
    root = _svg(charts.risk_bars([{"label": "<b>x</b> & y", "p": 0.5}], "a <title>"))
    assert "<b>" not in str(charts.risk_bars([{"label": "<b>x</b>", "p": 0.5}], "t"))
    assert root.find("{http://www.w3.org/2000/svg}title").text == "a <title>"


# --------------------------------------------------------------------------- the predictor and the statistics


MODEL = {"features": ["charlson_index", "cycle_number", "dose_ratio", "regimen_FEC-T", "regimen_TC"],
         "bounds": [[0, 12], [1, 12], [0.5, 1.2], [0, 1], [0, 1]], "weight": [0.8, 0.3, 1.1, 0.9, -0.7], "bias": -0.4}
FEATURES = {"charlson_index": 3.0, "cycle_number": 4.0, "dose_ratio": 0.8, "regimen_FEC-T": 1.0}


def test_prediction_in_clear_and_on_encrypted_features_agree():
    x = 2 * (np.array([3, 4, 0.8, 1, 0]) - [0, 1, 0.5, 0, 0]) / np.array([12, 11, 0.7, 1, 1]) - 1
    expected = 1 / (1 + np.exp(-(x @ np.array(MODEL["weight"]) + MODEL["bias"])))
    assert oncology.predict(MODEL, FEATURES) == pytest.approx(expected, abs=1e-12)
    assert oncology.predict(MODEL, FEATURES, encrypted=True) == pytest.approx(expected, abs=1e-3)
    rows = oncology.regimen_comparison(MODEL, FEATURES, "FEC-T")
    assert [r["regimen"] for r in rows] == ["TC", "FEC-T"] and rows[1]["current"] and rows[0]["p"] < rows[1]["p"]
    with pytest.raises(P.Problem, match="age"):
        oncology.predict({**MODEL, "features": ["age", *MODEL["features"][1:]]}, FEATURES)


def test_statistics_comparison_gives_shares_only_above_the_noise():
    layout = StatsLayout(research_layout().bounds, ("FEC-T", "TC", "CAPE"))
    x = np.zeros((13, len(layout.bounds)))
    stats = layout.read(layout.vector(x, ["FEC-T"] * 10 + ["TC"] * 3, [0, 1, 2, 3, 3, 4, 2, 1, 0, 0, 1, 3, 2]))
    # the noise on a regimen's count: sqrt(2 · 6 grades) · d/ε, d = 2 + 2·15 for the histogram slots
    loose = oncology.statistics_comparison(stats, 1e4, layout)
    assert loose["noise_sd"] == pytest.approx(np.sqrt(12) * 32 / 1e4)
    assert loose["rows"][0] == {"regimen": "FEC-T", "n": 10, "p": 0.3, "current": False}
    assert loose["rows"][1]["p"] == pytest.approx(1 / 3)
    assert loose["rows"][2] == {"regimen": "CAPE", "n": 0, "p": None, "current": False} and loose["shown"] == 2
    strict = oncology.statistics_comparison(stats, 1.0, layout)  # ±111 per regimen: 10 assessments tell nothing
    assert strict["shown"] == 0 and all(r["p"] is None for r in strict["rows"])
    assert oncology.stratum_comparison(stats, 1e4, {"charlson_index": 0, "performance_status": 0}) is None


def test_stratified_statistics_show_the_stratum_of_patients_like_this_one():
    from analytics.fhe import Stratum

    base = research_layout()
    assert [s.feature for s in base.strata] == ["charlson_index", "performance_status"] and len(base.cells) == 6
    layout = StatsLayout(base.bounds, ("FEC-T", "TC"), strata=base.strata)
    ci, ps = layout.features.index("charlson_index"), layout.features.index("performance_status")
    # 8 frail assessments (Charlson ≥ 3, PS ≥ 2): FEC-T 6 of them, 4 of grade ≥ 3; TC 2, none severe.
    # 12 fit ones (Charlson 0, PS 0-1): FEC-T 10, 1 severe; TC 2, 2 severe.
    x = np.zeros((20, len(layout.bounds)))
    x[:8, ci], x[:8, ps] = 4, 3
    regimen = ["FEC-T"] * 6 + ["TC"] * 2 + ["FEC-T"] * 10 + ["TC"] * 2
    grade = [3, 4, 3, 3, 1, 0, 1, 2] + [3] + [0] * 9 + [3, 4]
    stats = layout.read(layout.vector(x, regimen, grade))
    # a row falls in one cell: the whole cohort's histogram is the cells' sum, the sensitivity unchanged
    assert stats["grade_histogram"]["FEC-T"] == [10, 1, 0, 4, 1, 0] and layout.sensitivity()[-1] == 32
    assert layout.size == 1 + 2 * len(layout.bounds) + 2 * 6 * 6 == len(layout.sensitivity())
    frail = oncology.stratum_comparison(stats, 1e4, {"charlson_index": 5, "performance_status": 2}, "TC", layout)
    assert frail["bands"] == {"charlson_index": "≥3", "performance_status": "≥2"}
    assert [(r["regimen"], r["n"], r["p"], r["current"]) for r in frail["rows"]] == [
        ("TC", 2, 0.0, True), ("FEC-T", 6, pytest.approx(4 / 6), False)]
    fit = oncology.stratum_comparison(stats, 1e4, {"charlson_index": 0, "performance_status": 1}, "TC", layout)
    assert [(r["regimen"], r["p"]) for r in fit["rows"]] == [("FEC-T", 0.1), ("TC", 1.0)]
    assert fit["label"] == "Charlson index 0, performance status 0–1"
    # the whole cohort's noise sums 6 cells × 6 grades of bins; one stratum's only its 6 grades
    whole = oncology.statistics_comparison(stats, 1.0, layout)
    assert whole["noise_sd"] == pytest.approx(np.sqrt(2 * 36) * 32)
    noisy = oncology.stratum_comparison(stats, 1.0, {"charlson_index": 5, "performance_status": 2}, "TC", layout)
    assert noisy["noise_sd"] == pytest.approx(np.sqrt(12) * 32) and noisy["shown"] == 0  # too few to tell
    unknown = oncology.stratum_comparison(stats, 1e4, None, None, layout)
    assert unknown["rows"] == [] and "not known to you" in unknown["reason"]
    with pytest.raises(Exception, match="strata of features"):
        StatsLayout(base.bounds[:1], ("TC",), strata=(Stratum("age", (65,), ("<65", "≥65")),))


# --------------------------------------------------------------------------- the application layer


def test_dashboard_reads_the_granted_sections_of_a_logged_release(site, onc):
    svc = site.world.services
    me = actor_of(svc, onc.oncologist)
    def accesses() -> list[dict]:
        return flow.patient_trail(svc, onc.patients[0], onc.refs[0], "access", page_size=200)["records"]

    before = accesses()
    d = oncology.dashboard(svc, me, grant_id=_grant(site, onc, onc.refs[0]))
    assert d["granted"] == dict.fromkeys(FOUR, True) and d["withheld"] == {}
    cyc = d["treatment"]
    assert [c["cycle"] for c in cyc] == [1, 2, 3, 4, 5, 6] and {c["regimen"] for c in cyc} == {"FEC-T"}
    assert [c["delayed"] for c in cyc] == [False, False, True, False, False, False]
    assert [round(c["dose_pct"]) for c in cyc] == [100, 100, 100, 80, 80, 80] and cyc[3]["reduced"]
    assert [dr["drug"] for dr in cyc[0]["drugs"]] == ["Cyclophosphamide", "Epirubicin", "Fluorouracil"]
    tox = d["toxicity"]["assessments"]
    assert [a["grades"]["neutropenia_grade"] for a in tox] == [1, 2, 3, 4, 2, 2] and tox[3]["febrile_neutropenia"]
    assert [c["charlson_index"] for c in d["comorbidities"]] == [2, 3]
    assert "diabetes uncomplicated" in d["comorbidities"][1]["conditions"]
    assert [a["type"] for a in d["admissions"]] == ["Elective", "Emergency"]
    # the risk comes from the release the chain vouches for
    risk = d["risk"]
    assert risk["release"]["release_id"] == onc.release["release_id"]
    assert risk["release"]["sha256"] == onc.release["sha256"] and risk["release"]["epsilon"] == 1.0
    assert 0 < risk["p"] < 1 and risk["computed"] == "plain" and risk["features"]["cycle_number"] == 7
    assert len(risk["regimens"]) == 8 and sum(r["current"] for r in risk["regimens"]) == 1
    # the encrypted statistics: 18 assessments under noise of ε = 0.5 tell no regimen's rate
    st = d["statistics"]
    assert st["release_id"] == onc.stats["release_id"] and st["sha256"] == onc.stats["sha256"]
    assert st["epsilon"] == 0.5 and len(st["comparison"]["rows"]) == 8
    # a rate is shown only where the noisy count clears four standard deviations of its noise, far
    # above the 18 assessments there are: a rate shown is noise, which the rule lets through in
    # ≈ 0.2 % of rows (so the test asserts the rule, not that no draw ever clears it)
    for part in (st["comparison"], st["stratum"]):
        bar = 4 * part["noise_sd"]
        assert bar > 18 and part["shown"] == sum(r["p"] is not None for r in part["rows"])
        assert all((r["p"] is None) == (r["n"] < bar) for r in part["rows"])
    # … split by strata: this patient's (latest Charlson index 3, their last cycle's performance status)
    ps = d["treatment"][-1]["performance_status"]
    assert st["stratum"]["bands"] == {"charlson_index": "≥3", "performance_status": "0–1" if ps < 2 else "≥2"}
    assert len(st["stratum"]["rows"]) == 8 and st["stratum"]["reason"] is None
    assert [r["regimen"] for r in st["stratum"]["rows"] if r["current"]] == [d["treatment"][-1]["regimen"]]
    # the view was an access, logged on the chain like any other
    after = accesses()
    assert len(after) == len(before) + 1
    new = [a for a in after if a not in before][0]
    assert json.dumps(new).count(d["digest"]) == 1 and me.user_id in json.dumps(new)


def test_views_reuse_their_token_past_the_grants_limit(site, onc):
    """A grant binds at most 16 tokens: the dashboard presents the token it was given again (each
    view still a logged access) and mints a fresh one only when that one no longer opens."""
    svc = site.world.services
    me = actor_of(svc, onc.oncologist)
    grant = _grant(site, onc, onc.refs[1])
    d = oncology.dashboard(svc, me, grant_id=grant)
    first = d["token"]
    assert len(first) < 1200  # kept in the browser's session cookie
    for _ in range(17):
        d = oncology.dashboard(svc, me, grant_id=grant, token=d["token"])
    assert d["token"] == first
    g = L.evaluate(me.contract(svc, "TransportContract"), "GetGrant", grant)
    assert len(g["token_hashes"]) == 2  # the decision's token (request_access mints one) and the dashboard's
    accesses = flow.patient_trail(svc, onc.patients[1], onc.refs[1], "access", page_size=200)["records"]
    assert sum(json.dumps(a).count(grant) > 0 for a in accesses) == 18
    # a token that no longer opens (not a token at all here) is replaced for the grant
    d = oncology.dashboard(svc, me, grant_id=grant, token=first[:-4] + "AAAA")
    assert d["token"] != first and d["grant_id"] == grant


def test_a_refused_section_is_withheld_and_not_read(site, onc):
    svc = site.world.services
    d = oncology.dashboard(svc, actor_of(svc, onc.oncologist), grant_id=_grant(site, onc, onc.refs[2]))
    assert d["granted"]["comorbidities"] is False and "comorbidities" in d["withheld"]
    assert d["comorbidities"] == [] and d["treatment"]  # the rest is there
    assert d["risk"]["p"] is None and "other conditions (comorbidities) was not released" in d["risk"]["reason"]


def test_only_clinicians_and_only_their_grants(site, onc):
    svc = site.world.services
    with pytest.raises(P.Problem) as e:
        oncology.dashboard(svc, actor_of(svc, onc.insurer), grant_id="whatever")
    assert e.value.type is P.FORBIDDEN
    grant = _grant(site, onc, onc.refs[1])
    with pytest.raises(Exception) as e:  # someone else's grant: the chain refuses them a token
        oncology.dashboard(svc, actor_of(svc, site.people.gp), grant_id=grant)
    refused = problem_of(e.value)
    assert refused.type.status == 403 and "may read this grant" in refused.detail
    with pytest.raises(P.Problem) as e:
        oncology.dashboard(svc, actor_of(svc, onc.oncologist))
    assert e.value.type is P.VALIDATION
    mine = oncology.live_grants(svc, actor_of(svc, onc.oncologist))
    assert grant in [g["grant_id"] for g in mine]


def test_without_a_released_model_the_dashboard_says_so(site, onc):
    """With no release (the job files set aside), no risk is shown and the page says how one is made."""
    svc = site.world.services
    store = oncology.release_store(svc)
    aside = store.with_name("jobs-aside")
    store.rename(aside)
    try:
        d = oncology.dashboard(svc, actor_of(svc, onc.oncologist), grant_id=_grant(site, onc, onc.refs[0]))
        assert d["risk"]["release"] is None and d["risk"]["p"] is None and d["risk"]["regimens"] == []
        assert d["risk"]["reason"] == "No toxicity predictor has been released yet."
        assert "POST /analytics/jobs" in d["risk"]["how_to_release"] and d["statistics"] is None
        assert d["toxicity"]["assessments"]  # the record is shown all the same
    finally:
        aside.rename(store)


def test_a_release_the_chain_does_not_hold_is_not_used(site, onc, tmp_path):
    """A job file whose model differs from what the chain logged (or whose release id the chain
    never saw) is ignored: the risk comes from the genuine release only."""
    svc = site.world.services
    store = JobStore(oncology.release_store(svc))
    genuine = next(j for j in store.list() if (j.release or {}).get("release_id") == onc.release["release_id"])
    forged_doc = json.loads(json.dumps(genuine.release["document"]))
    forged_doc["model"]["bias"] = 50.0  # a model that says "toxic" for everyone
    later = "2999-01-01T00:00:00Z"
    forged = Job("job-" + "f" * 16, "someone", genuine.spec, status="released", created_at=later,
                 release={**genuine.release, "document": forged_doc})
    unknown_doc = {**forged_doc, "release_id": "rel-never-on-chain"}
    unknown = Job("job-" + "e" * 16, "someone", genuine.spec, status="released", created_at=later,
                  release={"release_id": "rel-never-on-chain", "document": unknown_doc,
                           "sha256": hashlib.sha256(json.dumps(unknown_doc).encode()).hexdigest()})
    try:
        for j in (forged, unknown):
            store.save(j)
            j.updated_at = later
            (store.dir / f"{j.job_id}.json").write_text(json.dumps(j.__dict__))
        found = oncology.released_model(svc, actor_of(svc, onc.oncologist))
        assert found["release_id"] == onc.release["release_id"] and found["document"]["model"]["bias"] != 50.0
    finally:
        for j in (forged, unknown):
            (store.dir / f"{j.job_id}.json").unlink(missing_ok=True)


# --------------------------------------------------------------------------- the pages


def _csp_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    return errors


@pytest.mark.browser
def test_the_oncologist_sees_the_toxicity_chart_and_the_risk(site, onc, new_page):
    grant = _grant(site, onc, onc.refs[0])
    page = new_page()
    csp = _csp_errors(page)
    sign_in(page, onc.oncologist)
    page.get_by_role("link", name="Oncology dashboard").click()
    shot(page, "oncology-home")
    page.locator(f"form[action$='/grants/{grant}'] button").click()
    page.wait_for_selector("h1:has-text('Oncology dashboard')")
    chart = page.locator("#toxicity-chart svg[role=img]")
    assert "Toxicity grade (CTCAE) by type and cycle" in chart.locator("title").text_content()
    shot(page, "oncology-dashboard")
    # neutropenia 4 at cycle 4 (its cell and the legend swatch); grades 3+ in white: neutropenia 3, 4, fatigue 3
    assert chart.locator("rect.ch-g4").count() == 2 and chart.locator("text.ch-cell-light").count() == 3
    assert chart.bounding_box()["width"] > 300  # drawn, not collapsed
    risk = page.locator("#risk-value").inner_text()
    assert re.fullmatch(r"\d{1,3}%", risk), risk
    assert page.locator("#release-id").inner_text() == onc.release["release_id"]
    assert "ε = 1, δ = 1e-05" in page.locator("#guarantee").inner_text()
    assert "computed in clear" in page.locator("#risk").inner_text()
    assert onc.stats["release_id"] in page.locator("#statistics-release").inner_text()
    for heading in ("Treatment timeline", "Comorbidities (Charlson index)", "Admissions",
                    "Similar patients: regimens compared"):
        assert page.get_by_role("heading", name=heading).is_visible()
    # dose, toxicity, Charlson, admissions, regimens, statistics, and the statistics of patients like this one
    assert page.locator("svg.ch").count() == 7
    assert "Patients like this one: Charlson index ≥3" in page.locator("#h-stratum").inner_text()
    assert "too few to tell under the noise" in page.locator("#h-stratum + div.chart").inner_text()
    page.get_by_role("button", name="Compute it on encrypted features").click()
    page.wait_for_selector("text=computed on encrypted features")
    assert abs(int(page.locator("#risk-value").inner_text().rstrip("%")) - int(risk.rstrip("%"))) <= 1
    # the second view presented the session's token again: the grant binds the decision's and one more
    svc = site.world.services
    g = L.evaluate(actor_of(svc, onc.oncologist).contract(svc, "TransportContract"), "GetGrant", grant)
    assert len(g["token_hashes"]) == 2
    assert not csp, csp


@pytest.mark.browser
def test_an_ungranted_section_stays_withheld_on_the_dashboard(site, onc, new_page):
    grant = _grant(site, onc, onc.refs[2])
    page = new_page()
    sign_in(page, onc.oncologist, path="/clinician/oncology/")
    page.locator(f"form[action$='/grants/{grant}'] button").click()
    section = page.locator("section.withheld")
    shot(page, "oncology-dashboard-withheld")
    assert section.count() == 1
    assert "Other conditions" in section.locator("h2").inner_text() and "withheld" in section.inner_text()
    # dose, toxicity, admissions, the released statistics: no Charlson chart, and no regimen comparison
    # by the model (it needs the index)
    assert page.locator("svg.ch").count() == 4
    assert "Charlson comorbidity index" not in page.content()
    assert "Charlson index is not known to you" in page.locator("#stratum-reason").inner_text()  # no stratum either
    assert "was not released to you" in page.locator("#risk").inner_text()
    # a token in hand (the decision page's) opens the dashboard too: only its sections
    svc = site.world.services
    d = flow.request_access(svc, actor_of(svc, onc.oncologist), onc.refs[1], HOSPITAL, sections=["oncology.toxicity"],
                            purpose="treatment", justification="direct-care")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    r = page.request.post("/clinician/oncology/", form={"csrf_token": csrf, "token": d["token"]["token"]})
    assert r.status == 200 and "Toxicity by cycle" in r.text() and r.text().count("badge withheld") == 3
    r = page.request.post("/clinician/oncology/", form={"csrf_token": csrf, "token": ""})
    assert r.status == 422 and "choose one of your grants, or give a token" in r.text()


@pytest.mark.browser
def test_other_roles_no_grant_and_accessibility(site, onc, new_page, browser):
    from .test_security_browser import AXE, _axe

    page = new_page()
    sign_in(page, site.people.nurse, path="/clinician/oncology/")
    assert "You hold no live grant" in page.locator("main").inner_text()
    other = new_page()
    sign_in(other, onc.insurer)
    assert other.goto("/clinician/oncology/").status == 403
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE}")
    ctx = browser.new_context(base_url=site.url, bypass_csp=True)
    try:
        p = ctx.new_page()
        grant = _grant(site, onc, onc.refs[1])
        sign_in(p, onc.oncologist, path="/clinician/oncology/")
        found = _axe(p, AXE.read_text())
        p.locator(f"form[action$='/grants/{grant}'] button").click()
        p.wait_for_selector("#toxicity-chart")
        found += _axe(p, AXE.read_text())
        assert not found, json.dumps(found, indent=1)[:3000]
        # no model released (the job files set aside): said plainly, with how one gets released
        store = oncology.release_store(site.world.services)
        store.rename(store.with_name("jobs-aside"))
        try:
            p.goto("/clinician/oncology/")
            p.locator(f"form[action$='/grants/{grant}'] button").click()
            assert p.locator("#risk-value").inner_text() == "No toxicity predictor has been released. " \
                                                            "Nothing is predicted from anything else."
            assert "POST /analytics/jobs" in p.locator("#risk").inner_text()
            assert "No predictor released" in p.content()
            shot(p, "oncology-dashboard-no-model")
        finally:
            store.with_name("jobs-aside").rename(store)
    finally:
        ctx.close()
