"""Realism check (SERUMS D4.2 §3): can a classifier tell fabricated rows from real ones?

Four classifiers — DecisionTree (Gini), DecisionTree (Entropy), AdaBoost, RandomForest — are trained
to separate rows labelled real from rows labelled fabricated, by stratified k-fold cross-validation
(repeated). First the *baseline*: the real table split at random into two halves labelled
real/fabricated, which no classifier can separate (≈ 0.5, the noise floor of this data size). Then
real vs fabricated. Accuracy near the baseline means the fabricated rows pass for real. The most
distinguishing features (the forest's importances) point at the rules to refine, and ``iterate``
does that refinement automatically. A copy check makes sure no fabricated row equals, or nearly
equals, a real one.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .privacy import PrivacyReport, privacy_report

log = logging.getLogger(__name__)

CLASSIFIERS = ("dt_gini", "dt_entropy", "adaboost", "random_forest")


def _classifier(name: str, seed: int):
    from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    if name == "dt_gini":
        return DecisionTreeClassifier(criterion="gini", random_state=seed)
    if name == "dt_entropy":
        return DecisionTreeClassifier(criterion="entropy", random_state=seed)
    if name == "adaboost":
        return AdaBoostClassifier(n_estimators=100, random_state=seed)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    raise ValueError(name)


def encode(real: pd.DataFrame, fake: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Both frames on one numeric encoding: shared category codes, dates as day numbers, nulls as a
    sentinel plus an indicator column (so a wrong null pattern is itself distinguishable)."""
    cols = [c for c in real.columns if c in fake.columns]
    ra, fa, names = [], [], []
    for c in cols:
        r, f = real[c], fake[c]
        if r.dtype.kind in "biuf" and f.dtype.kind in "biuf":
            rv, fv = r.astype(float).to_numpy(), f.astype(float).to_numpy()
        else:
            try:
                rd = pd.to_datetime(r, errors="raise", format="%Y-%m-%d")
                fd = pd.to_datetime(f, errors="raise", format="%Y-%m-%d")
                rv = (rd - pd.Timestamp("1970-01-01")).dt.days.astype(float).to_numpy()
                fv = (fd - pd.Timestamp("1970-01-01")).dt.days.astype(float).to_numpy()
            except (ValueError, TypeError):
                rs, fs = r.astype(str), f.astype(str)
                cats = {v: i for i, v in enumerate(sorted(set(rs) | set(fs)))}
                rv = rs.map(cats).astype(float).to_numpy()
                fv = fs.map(cats).astype(float).to_numpy()
                rv[r.isna().to_numpy()] = np.nan
                fv[f.isna().to_numpy()] = np.nan
        rn, fn = np.isnan(rv), np.isnan(fv)
        ra.append(np.where(rn, -1e9, rv))
        fa.append(np.where(fn, -1e9, fv))
        names.append(c)
        if rn.any() or fn.any():
            ra.append(rn.astype(float))
            fa.append(fn.astype(float))
            names.append(f"{c}__null")
    return np.column_stack(ra), np.column_stack(fa), names


def _cv_accuracy(x: np.ndarray, y: np.ndarray, clf: str, seed: int, folds: int, repeats: int) -> float:
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score

    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return float(np.mean(cross_val_score(_classifier(clf, seed), x, y, cv=cv, scoring="accuracy")))


@dataclass
class CopyCheck:
    exact_copies: int
    too_close: int
    threshold: float
    min_distance: float
    rows_checked: int

    @property
    def ok(self) -> bool:
        return self.exact_copies == 0 and self.too_close == 0


@dataclass
class VerifyReport:
    rows_real: int
    rows_fabricated: int
    baseline: dict[str, float]
    accuracy: dict[str, float]
    features: list[tuple[str, float]]
    copy: CopyCheck
    implicated_rules: dict[str, list[str]] = field(default_factory=dict)
    iterations: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # original real name → compared name
    left_out: dict[str, list[str]] = field(default_factory=dict)  # {"real": [...], "fabricated": [...]}
    privacy: PrivacyReport | None = None
    summary: str = ""  # iterate: whether refinement helped, in one sentence

    def margin(self) -> float:
        return max(self.accuracy[c] - self.baseline[c] for c in self.accuracy)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["copy"]["ok"] = self.copy.ok
        d["privacy"] = self.privacy.to_dict() if self.privacy is not None else None
        d["max_margin_over_baseline"] = self.margin()
        return d

    def render(self, console=None) -> None:
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        t = Table(title=f"distinguisher: {self.rows_real} real vs {self.rows_fabricated} fabricated rows")
        for c in ("classifier", "baseline (real vs real)", "real vs fabricated", "margin"):
            t.add_column(c, justify="right" if c != "classifier" else "left")
        for c in self.accuracy:
            m = self.accuracy[c] - self.baseline[c]
            t.add_row(c, f"{self.baseline[c]:.3f}", f"{self.accuracy[c]:.3f}", f"{m:+.3f}",
                      style="green" if m <= 0.05 else "yellow")
        console.print(t)
        feats = ", ".join(f"{n} ({w:.2f})" for n, w in self.features[:6])
        console.print(f"most distinguishing features: {feats}")
        for f, rules in list(self.implicated_rules.items())[:6]:
            console.print(f"  {f}: {', '.join(rules)}")
        cc = self.copy
        console.print(f"copy check: {cc.exact_copies} exact copies, {cc.too_close} rows closer than {cc.threshold:.4g} "
                      f"to a real row (min distance {cc.min_distance:.4g}) — {'ok' if cc.ok else 'FAILED'}")
        renamed = [f"{a} as {b}" for a, b in self.columns.items() if a != b]
        console.print(f"compared {len(self.columns)} column(s)" + (f" ({', '.join(renamed)})" if renamed else ""))
        for side, names in self.left_out.items():
            if names:
                console.print(f"[yellow]left out ({side} only): {', '.join(names)}[/yellow]")
        if self.privacy is not None:
            self.privacy.render(console)


def copy_check(xr: np.ndarray, xf: np.ndarray, quantile: float = 0.01) -> CopyCheck:
    """Exact copies, and rows nearer to a real row than the real rows' own 1st-percentile
    nearest-neighbour distance (standardised space)."""
    from sklearn.neighbors import NearestNeighbors

    mu, sd = xr.mean(axis=0), xr.std(axis=0)
    sd[sd == 0] = 1.0
    zr, zf = (xr - mu) / sd, (xf - mu) / sd
    nn = NearestNeighbors(n_neighbors=2).fit(zr)
    d_rr = nn.kneighbors(zr)[0][:, 1]
    thr = float(np.quantile(d_rr, quantile)) if len(d_rr) else 0.0
    d_fr = nn.kneighbors(zf, n_neighbors=1)[0][:, 0]
    exact = int((d_fr < 1e-9).sum())
    close = int(((d_fr >= 1e-9) & (d_fr < min(thr, 1e-3 * np.sqrt(zr.shape[1])))).sum())
    return CopyCheck(exact, close, float(min(thr, 1e-3 * np.sqrt(zr.shape[1]))), float(d_fr.min(initial=np.inf)), len(xf))


def verify(real: pd.DataFrame, fake: pd.DataFrame, *, seed: int = 0, folds: int = 5, repeats: int = 2,
           classifiers: tuple[str, ...] = CLASSIFIERS, project=None, holdout: pd.DataFrame | None = None) -> VerifyReport:
    """Baseline, real-vs-fabricated accuracy per classifier, distinguishing features, copy check;
    with ``holdout`` (real rows the project was *not* made from) also the privacy report: DCR
    against them and membership-inference attacks (:mod:`fabrication.privacy`)."""
    rng = np.random.default_rng(seed)
    real, fake, compared, left_out = align_columns(real, fake)
    if not compared:
        raise VerifyError("the real and fabricated tables share no column: nothing to compare "
                          f"(real: {', '.join(map(str, left_out['real'][:10]))}; "
                          f"fabricated: {', '.join(map(str, left_out['fabricated'][:10]))})")
    real = real.reset_index(drop=True)
    n = len(real)
    fake = fake.sample(n=min(n, len(fake)), random_state=seed).reset_index(drop=True)
    xr, xf, names = encode(real, fake)
    # baseline: the real table split at random into two halves labelled real / fabricated — a fresh
    # split for each repeat, so the baseline's own noise (which split) averages out like the folds'
    half = n // 2
    splits = [rng.permutation(n)[: 2 * half] for _ in range(max(repeats, 1))]
    yb = np.r_[np.zeros(half), np.ones(half)]
    x = np.vstack([xr, xf])
    y = np.r_[np.zeros(len(xr)), np.ones(len(xf))]
    baseline, acc = {}, {}
    for c in classifiers:
        baseline[c] = float(np.mean([_cv_accuracy(xr[p], yb, c, seed + r, folds, 1) for r, p in enumerate(splits)]))
        acc[c] = _cv_accuracy(x, y, c, seed, folds, repeats)
    rf = _classifier("random_forest", seed).fit(x, y)
    feats = sorted(zip(names, rf.feature_importances_.tolist(), strict=True), key=lambda t: -t[1])
    implicated: dict[str, list[str]] = {}
    if project is not None:
        for fname, _ in feats[:5]:
            col = fname.removesuffix("__null")
            implicated[fname] = [r.name for r in project.all_rules() if col in r.columns] + [
                f"{t.name}.{col}.distribution" for t in project.tables.values() if col in t.columns]
    priv = None
    if holdout is not None:
        hold, _, _, _ = align_columns(holdout, fake)
        priv = privacy_report(real, hold, fake, seed=seed)
    return VerifyReport(n, len(fake), baseline, acc, [(a, round(b, 4)) for a, b in feats], copy_check(xr, xf),
                        implicated, columns=compared, left_out=left_out, privacy=priv)


class VerifyError(ValueError):
    """Tables that cannot be compared; the message says why."""

    slug, status, title = "verify-input", 422, "Tables cannot be compared"

    @property
    def detail(self) -> str:
        return str(self)


def align_columns(real: pd.DataFrame, fake: pd.DataFrame
                  ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str], dict[str, list[str]]]:
    """Both tables under one naming: a real column matches a fabricated one by its own name or by the
    identifier the profiler gave it (``sample.yr`` → ``sample_yr``, ``lambda`` → ``lambda_``).
    Returns (real, fake) restricted to the matched columns in real's order, the mapping
    ``{original real name: compared name}``, and the columns left out on either side."""
    from .profiler import column_names

    ident = column_names(real.columns)
    fake_cols = set(map(str, fake.columns))
    compared: dict[str, str] = {}
    for c in real.columns:
        if str(c) in fake_cols:
            compared[str(c)] = str(c)
        elif ident[c] in fake_cols:
            compared[str(c)] = ident[c]
    used = set(compared.values())
    left_out = {"real": [str(c) for c in real.columns if str(c) not in compared],
                "fabricated": [str(c) for c in fake.columns if str(c) not in used]}
    r = real.rename(columns={c: compared[str(c)] for c in real.columns if str(c) in compared})
    r = r[[compared[str(c)] for c in real.columns if str(c) in compared]]
    f = fake.rename(columns=str)[list(r.columns)]
    return r, f, compared, left_out


# ---------------------------------------------------------------------------- iterate


def mixture_size(spec: dict, table: str) -> int:
    """Number of mixture components in a profiled table (1: a single copula)."""
    cols = spec["tables"][table]["columns"]
    comp = next((c for c, cs in cols.items() if cs.get("output") is False and c.startswith("component")
                 and cs.get("type") == "categorical"), None)
    return len(cols[comp]["categories"]) if comp else 1


def next_components(k: int, kmax: int) -> int:
    """The next number of mixture components to try: about 1.5× more, within the support bound."""
    return int(min(kmax, max(k + 2, round(1.5 * k))))


def _column_kinds(spec: dict, table: str) -> dict[str, str]:
    """Each column of a profiled table: ``discrete`` (drawn from classification-tree leaves) or
    ``continuous`` (copula or regression-tree leaves)."""
    out = {}
    for c, cs in spec["tables"][table]["columns"].items():
        dist = cs.get("distribution") or (cs.get("cases") or [{}])[0].get("distribution") or {}
        out[c] = "discrete" if cs.get("type") in ("bool", "categorical") or dist.get("kind") in (
            "categorical", "bernoulli") else "continuous"
    return out


def _target(spec: dict, table: str, feature: str) -> str | None:
    """The column to refine for a distinguishing feature: the column itself, or for its null
    indicator (``x__null``) the hidden column that decides x's nulls."""
    cols = spec["tables"][table]["columns"]
    c = feature.removesuffix("__null")
    if c not in cols:
        return None
    if feature.endswith("__null"):
        nulls = cols[c].get("nulls")
        cond = nulls.get("iff") if isinstance(nulls, dict) else None
        return cond if cond in cols else None  # an exact rule (iff on values) needs no refinement
    return c


def plan_refinement(spec: dict, table: str, features: list[tuple[str, float]], settings: dict, tried: set,
                    top: int = 2) -> list[str]:
    """Change ``settings`` (profile's refinement knobs) for the most distinguishing columns of any
    kind, in order of the distinguisher's importances; returns the changes, named. A discrete column
    gets a tree with half-size leaves; a continuous column leaves the copula for regression-tree
    leaves over the other columns, then gets half-size leaves. Changes already tried are skipped."""
    from .profiler import MIN_SUPPORT

    kinds = _column_kinds(spec, table)
    changes: list[str] = []
    for fname, weight in features:
        if len(changes) >= top:
            break
        col = _target(spec, table, fname)
        if col is None or kinds.get(col) is None:
            continue
        why = f"(importance {weight:.2f} of {fname})"
        if kinds[col] == "continuous" and col not in settings["conditional"]:
            if ("cond", col) in tried:
                continue
            tried.add(("cond", col))
            settings["conditional"].add(col)
            changes.append(f"{col}: leaves the copula, drawn from regression-tree leaves over the other columns {why}")
            continue
        cur = settings["leaf_support"].get(col, MIN_SUPPORT)
        new = max(10, cur // 2)
        if new >= cur or ("leaf", col, new) in tried:
            continue
        tried.add(("leaf", col, new))
        settings["leaf_support"][col] = new
        kind = "decision" if kinds[col] == "discrete" else "regression"
        changes.append(f"{col}: {kind}-tree leaves of ≥ {new} rows (were ≥ {cur}) {why}")
    return changes


def clearly_better(margin: float, best: float, rows: int) -> bool:
    """Whether a refined round's margin beats the best so far by more than the measurement's noise:
    one standard error of the difference of two rounds' accuracies on 2 × ``rows`` rows, 0.5 / √rows
    (±0.019 on GBSG2's 686 rows, ±0.006 on FLCHAIN's 7,874). Taking any lower figure picked
    refinements by luck: on GBSG2 a round at +0.044 against +0.056 was kept, and judged on four fresh
    fabrications it was at +0.056 where the first profile was at +0.023."""
    return margin < best - 0.5 / np.sqrt(max(rows, 1))


def iterate(real: pd.DataFrame, name: str = "profiled", *, rounds: int = 3, margin: float = 0.05, seed: int = 0,
            rows: int | None = None, folds: int = 5, repeats: int = 2, workers: int = 1,
            classifiers: tuple[str, ...] = CLASSIFIERS) -> tuple[dict, VerifyReport, pd.DataFrame]:
    """Profile → fabricate → verify, refining until every classifier is within ``margin`` of its
    baseline or ``rounds`` refinements are done. Returns (project, report, data) of the best round;
    ``report.iterations`` names each round's changes and ``report.summary`` says plainly whether any
    refinement helped.

    Each round refines what the distinguisher found (the forest's importances), for every kind of
    column (:func:`plan_refinement`), and while below the support bound re-fits the mixture of copulas
    with about 1.5× more components (each still supported by ≥ ``MIN_SUPPORT`` real rows). A round
    that does not beat the best by more than the measurement's noise (:func:`clearly_better`) is
    reverted: the next one starts from the best project with the next columns."""
    from .engine import fabricate
    from .model import compile_project
    from .profiler import max_components, profile, sanitize_columns

    real = sanitize_columns(real)
    settings: dict[str, Any] = {"components": "auto", "conditional": set(), "leaf_support": {}}
    spec = profile(real, name=name, seed=seed)
    table = next(iter(spec["tables"]))
    kmax = max_components(len(real))
    tried: set = set()
    history: list[dict[str, Any]] = []
    best: tuple[float, dict, VerifyReport, pd.DataFrame, dict] | None = None
    for rnd in range(rounds + 1):
        project = compile_project(spec, source=f"{name} (iteration {rnd})")
        fake = fabricate(project, rows=rows or len(real), workers=workers, seed=seed).frame(table)
        report = verify(real, fake, seed=seed, folds=folds, repeats=repeats, classifiers=classifiers, project=project)
        entry: dict[str, Any] = {"round": rnd, "components": mixture_size(spec, table), "accuracy": report.accuracy,
                                 "baseline": report.baseline, "margin": report.margin()}
        log.info("iteration %d: %d component(s), margin %.3f", rnd, entry["components"], report.margin())
        if best is None or clearly_better(report.margin(), best[0], len(real)):
            best = (report.margin(), copy.deepcopy(spec), report, fake, copy.deepcopy(settings))
        else:
            entry["reverted"] = True  # no better than the best so far: refine from the best project
            settings = copy.deepcopy(best[4])
            spec = copy.deepcopy(best[1])
        if best[0] <= margin or rnd == rounds:
            history.append(entry)
            break
        changes = plan_refinement(spec, table, best[2].features, settings, tried)
        k = mixture_size(spec, table)
        if k < kmax and ("components", k) not in tried:
            tried.add(("components", k))
            settings["components"] = next_components(k, kmax)
            changes.append(f"mixture of copulas: {settings['components']} components asked (was {k})")
        entry["changes"] = changes
        history.append(entry)
        if not changes:
            break
        spec = profile(real, name=name, seed=seed, components=settings["components"],
                       conditional=settings["conditional"], leaf_support=settings["leaf_support"])
    assert best is not None
    margin_best, spec, report, fake, _ = best
    best_round = next(h["round"] for h in history if h["margin"] == margin_best)
    report.iterations = history
    tried_rounds = len(history) - 1
    if margin_best <= margin:
        report.summary = f"within {margin:+.2f} of the baseline after round {best_round} (margin {margin_best:+.3f})"
    elif best_round == 0 and tried_rounds:
        report.summary = (f"no refinement helped: {tried_rounds} round(s) tried, none beat the first profile "
                          f"(margin {margin_best:+.3f}, goal ≤ {margin:+.2f}); kept round 0")
    else:
        stuck = ", ".join(f for f, _ in report.features[:3])
        report.summary = (f"best margin {margin_best:+.3f} at round {best_round}, above the goal ≤ {margin:+.2f}; "
                          f"the distinguisher still uses {stuck}")
    return spec, report, fake
