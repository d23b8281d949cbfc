"""The toxicity task's feature matrix, built from a hospital's vault records.

One row per toxicity assessment of a chemotherapy cycle (section ``oncology.toxicity``), joined to
its cycle (``oncology.treatment``: regimen, cycle number, body surface area, performance status,
delay, dose against plan), the patient's demographics (age at the cycle, sex) and comorbidities
(Charlson index, the latest assessment before the cycle). The label says whether any CTCAE grade of
that assessment is ≥ 3. Every column has declared bounds (``TOXICITY_BOUNDS``) so the privacy wall
can clip and noise it; the regimen vocabulary is fixed, so every hospital builds the same columns.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .wall import ColumnBounds

#: Sections the toxicity task reads. Hospitals' research rules never release demographics to
#: researchers, so a research job reads these; the operator's own training may add demographics
#: (age at the cycle, sex: ``DEMOGRAPHIC_SECTION``).
TOXICITY_SECTIONS: tuple[str, ...] = ("comorbidities", "oncology.treatment", "oncology.toxicity")
DEMOGRAPHIC_SECTION = "demographics"

REGIMENS: tuple[str, ...] = ("FEC-T", "EC-T", "TC", "AC", "FEC", "DOC-TRAS", "PAC-W", "CAPE")
GRADES: tuple[str, ...] = ("nausea_grade", "vomiting_grade", "diarrhoea_grade", "fatigue_grade",
                           "neutropenia_grade", "mucositis_grade", "neuropathy_grade", "alopecia_grade",
                           "hand_foot_grade")

#: Declared bounds of every feature column (the label's bounds are [0, 1]).
TOXICITY_BOUNDS: tuple[ColumnBounds, ...] = (
    ColumnBounds("age", 18, 100),
    ColumnBounds("female", 0, 1),
    ColumnBounds("charlson_index", 0, 12),
    ColumnBounds("cycle_number", 1, 12),
    ColumnBounds("body_surface_area", 1.2, 2.6),
    ColumnBounds("performance_status", 0, 4),
    ColumnBounds("cycle_delayed", 0, 1),
    ColumnBounds("dose_ratio", 0.5, 1.2),
    ColumnBounds("dose_reduced", 0, 1),
    *(ColumnBounds(f"regimen_{r}", 0, 1) for r in REGIMENS),
)
FEATURES: tuple[str, ...] = tuple(b.name for b in TOXICITY_BOUNDS)
#: The columns without demographics (what a research job learns from).
RESEARCH_BOUNDS: tuple[ColumnBounds, ...] = TOXICITY_BOUNDS[2:]
RESEARCH_FEATURES: tuple[str, ...] = FEATURES[2:]
LABEL = ColumnBounds("toxicity_grade3", 0, 1)


@dataclass
class Dataset:
    """A feature matrix ``x`` (rows × FEATURES), binary labels ``y`` and where the rows came from."""

    x: np.ndarray
    y: np.ndarray
    features: tuple[str, ...] = FEATURES
    source: str = ""

    def __len__(self) -> int:
        return len(self.y)

    def split(self, test_fraction: float, *, seed: int) -> tuple[Dataset, Dataset]:
        idx = np.random.default_rng(seed).permutation(len(self))
        cut = int(round(len(self) * (1 - test_fraction)))
        a, b = idx[:cut], idx[cut:]
        return (Dataset(self.x[a], self.y[a], self.features, self.source),
                Dataset(self.x[b], self.y[b], self.features, self.source))

    def shard(self, parts: int, *, seed: int) -> list[Dataset]:
        """``parts`` disjoint shards (as if the rows lived at ``parts`` hospitals)."""
        idx = np.random.default_rng(seed).permutation(len(self))
        return [Dataset(self.x[s], self.y[s], self.features, f"{self.source}#{i}")
                for i, s in enumerate(np.array_split(idx, parts))]

    @staticmethod
    def concat(parts: Sequence[Dataset]) -> Dataset:
        return Dataset(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                       parts[0].features, "+".join(p.source for p in parts))


def _date(text: Any) -> _dt.date | None:
    try:
        return _dt.date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def _years(start: _dt.date, end: _dt.date) -> float:
    return (end - start).days / 365.25


@dataclass(frozen=True)
class Row:
    """One toxicity assessment as the task sees it."""

    x: list[float]
    label: int
    regimen: str
    worst_grade: int


def record_rows(record: Any, *, demographics: bool = True) -> list[Row]:
    """Feature rows and labels of one patient's record (a ``vault.PatientRecord``); without
    ``demographics`` the rows have ``RESEARCH_FEATURES`` (no age, no sex)."""
    demo = next((e.attributes for e in record.entries("demographics") if "date_of_birth" in e.attributes), {})
    born = _date(demo.get("date_of_birth"))
    female = 1.0 if demo.get("sex") == "F" else 0.0
    charlson = sorted(((_date(e.attributes.get("assessment_date")), e.attributes.get("charlson_index"))
                       for e in record.entries("comorbidities") if "charlson_index" in e.attributes),
                      key=lambda t: t[0] or _dt.date.min)
    cycles: dict[tuple[str, int], dict[str, Any]] = {}
    doses: dict[tuple[str, int], list[tuple[float, bool]]] = {}
    for e in record.entries("oncology.treatment"):
        a = e.attributes
        if "regimen" in a:
            cycles[(str(a["treatment_id"]), int(a["cycle_number"]))] = a
        elif "drug_name" in a and e.hub.key:
            tid, cyc, _drug = str(e.hub.key).split("|", 2)
            planned, dose = a.get("planned_dose"), a.get("dose")
            ratio = float(dose) / float(planned) if planned and dose is not None else 1.0
            doses.setdefault((tid, int(cyc)), []).append((ratio, bool(a.get("dose_reduced"))))
    rows = []
    for e in record.entries("oncology.toxicity"):
        a = e.attributes
        key = (str(a.get("treatment_id")), int(a.get("cycle_number") or 0))
        cycle = cycles.get(key)
        if cycle is None or (demographics and born is None):
            continue  # an assessment of a cycle this record does not show: nothing to learn from
        start = _date(cycle.get("cycle_start_date")) or born or _dt.date.max
        index = next((c for d, c in reversed(charlson) if d is None or d <= start), 0) or 0
        given = doses.get(key, [(1.0, False)])
        person = [_years(born, start), female] if demographics and born is not None else []
        x = [*person, float(index), float(key[1]),
             float(cycle.get("body_surface_area") or 1.8), float(cycle.get("performance_status") or 0),
             1.0 if cycle.get("cycle_delayed") else 0.0, float(np.mean([r for r, _ in given])),
             1.0 if any(red for _, red in given) else 0.0,
             *(1.0 if cycle.get("regimen") == r else 0.0 for r in REGIMENS)]
        worst = max(int(a.get(g) or 0) for g in GRADES)
        rows.append(Row(x, int(worst >= 3), str(cycle.get("regimen")), worst))
    return rows


def toxicity_dataset(vault: Any, patients: Iterable[str] | None = None, *, source: str = "",
                     demographics: bool = True) -> Dataset:
    """The toxicity matrix of ``patients`` (default: all) read from ``vault`` (a ``vault.Vault``):
    ``FEATURES`` with demographics, ``RESEARCH_FEATURES`` without (demographics is then not read)."""
    names = FEATURES if demographics else RESEARCH_FEATURES
    rows = site_rows(vault, patients, demographics=demographics)
    x = np.asarray([r.x for r in rows], dtype=float).reshape(-1, len(names))
    return Dataset(x, np.asarray([r.label for r in rows], dtype=float), names, source)


def site_rows(vault: Any, patients: Iterable[str] | None = None, *, demographics: bool = True) -> list[Row]:
    """Every toxicity row of ``patients`` (default: all) in ``vault``."""
    sections = (*TOXICITY_SECTIONS, DEMOGRAPHIC_SECTION) if demographics else TOXICITY_SECTIONS
    return [row for patient in (vault.patients() if patients is None else patients)
            for row in record_rows(vault.read_record(patient, sections=sections), demographics=demographics)]


def breast_cancer_dataset() -> tuple[Dataset, tuple[ColumnBounds, ...]]:
    """scikit-learn's Wisconsin breast-cancer table (shipped with the package) and bounds per column.

    Declared bounds are the columns' observed range widened by 10 %: public, not data-dependent
    in any way that matters here (the table is public).
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = np.asarray(data.data, dtype=float)
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.1 * (hi - lo)
    bounds = tuple(ColumnBounds(str(n), float(a - p), float(b + p))
                   for n, a, b, p in zip(data.feature_names, lo, hi, pad, strict=True))
    return Dataset(x, np.asarray(data.target, dtype=float), tuple(b.name for b in bounds), "breast_cancer"), bounds
