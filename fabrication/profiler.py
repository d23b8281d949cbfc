"""The profiler (SERUMS D4.2 §3): a real table in, a data project out — metadata and rules, never
the rows themselves.

Per column it derives the type, nullness, range (min/max), common and extreme values (as a
description, for the reader), a fitted distribution (the best of several parametric fits by the
Kolmogorov–Smirnov distance, or an equal-width histogram when none fits), categorical weights, and
string formats as patterns, plus order relations that hold on every row (``a <= b``).

The joint distribution is a **mixture of Gaussian copulas**. The rows are put on the copula scale
(each column's normal scores under its own marginal), a Gaussian mixture is fitted there and the
number of components chosen by held-out likelihood, never a component supported by fewer than
``min_support`` real rows (small ones are merged into their nearest neighbour). Each component
becomes, in the project, a value of a hidden categorical column (``output: false``) with its weight;
every modelled column draws through ``cases`` from that component's own marginal — an equal-count
histogram whose every bin describes at least ``bin_support`` real rows (integer columns: bins on
half-integers, so values stay integral; categorical columns: the component's category weights) — and
one ``correlation`` rule per component (``when: component == 'cN'``) holds the component's
copula correlation matrix (Ledoit–Wolf shrunk). Categorical and boolean columns draw from the
leaves of a classification tree (every leaf ≥ ``min_support`` rows) over the component and the other
columns, written as ``cases`` whose conditions are the leaves' paths. So thresholds, non-monotone
and multi-modal dependencies survive, and the project stays a statistical description: weights,
bins, matrices, leaf conditions — no row. A table without cluster structure (one component) keeps
one Gaussian copula over the fitted marginals.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .distributions import Dist, fit_best, histogram

MAX_CATEGORIES = 30
KS_ACCEPT = 0.04
MIN_SUPPORT = 30  # real rows behind every mixture component, at least
BIN_SUPPORT = 5  # real rows behind every histogram bin of a component, at least
MAX_COMPONENTS = 24


def _is_date(s: pd.Series) -> bool:
    if s.dtype.kind == "M":
        return True
    if s.dtype != object:
        return False
    sample = s.dropna().astype(str).head(50)
    return len(sample) > 0 and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in sample)


def _shape(v: str) -> str:
    return re.sub(r"[a-z]", "a", re.sub(r"[A-Z]", "A", re.sub(r"\d", "#", v)))


def _clean(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def profile_column(s: pd.Series, name: str, bins: int = 20) -> tuple[dict, dict]:
    """(column spec, facts used later: kind, codes for the copula)."""
    n = len(s)
    nn = s.dropna()
    null_ratio = 1 - len(nn) / n if n else 0.0
    spec: dict[str, Any] = {}
    facts: dict[str, Any] = {"name": name}
    desc = []
    if len(nn) == 0:
        spec = {"type": "string", "value": "", "nulls": 1.0}
        return spec, {"kind": "none"}
    uniq = nn.unique()
    if s.dtype == bool or (s.dtype == object and set(map(str, uniq)) <= {"True", "False"}):
        p = float(nn.astype(str).eq("True").mean()) if s.dtype == object else float(nn.mean())
        spec = {"type": "bool", "distribution": {"kind": "bernoulli", "p": round(p, 6)}}
        facts.update(kind="bool", codes=nn.astype(str).eq("True").to_numpy() if s.dtype == object else nn.to_numpy(),
                     dist=Dist("bernoulli", (("p", p),)))
    elif _is_date(s):
        d = pd.to_datetime(nn).to_numpy().astype("datetime64[D]").astype(np.int64)
        dist, ks = fit_best(d, integer=True)
        if ks > KS_ACCEPT:
            dist = histogram(d, bins, integer=True)
        lo, hi = int(d.min()), int(d.max())
        iso = lambda x: str(np.datetime64(int(x), "D"))  # noqa: E731
        spec = {"type": "date", "range": {"min": iso(lo), "max": iso(hi)},
                "distribution": _date_dist(dist.to_spec())}
        facts.update(kind="date", codes=d, dist=dist)
        desc.append(f"dates {iso(lo)} … {iso(hi)}")
    elif s.dtype.kind in "iuf" and not (len(uniq) <= 12 and s.dtype.kind in "iu"):
        x = nn.to_numpy(dtype=float)
        integer = s.dtype.kind in "iu" or bool(np.all(np.mod(x, 1) == 0))
        dist, ks = fit_best(x, integer=integer)
        if ks > KS_ACCEPT:
            dist = histogram(x, bins, integer=integer)
        lo, hi = float(x.min()), float(x.max())
        if integer:
            spec = {"type": "int"}
        else:
            decimals = max((len(f"{v:.6g}".split(".")[1]) if "." in f"{v:.6g}" else 0) for v in x[:500])
            spec = {"type": "decimal", "precision": int(min(max(decimals, 1), 6))}
        spec["range"] = {"min": _clean(lo), "max": _clean(hi)}
        spec["distribution"] = dist.to_spec()
        facts.update(kind="num", codes=x, dist=dist, integer=integer, ks=ks)
        q = np.quantile(x, [0.01, 0.5, 0.99])
        desc.append(f"min {lo:g}, p1 {q[0]:g}, median {q[1]:g}, p99 {q[2]:g}, max {hi:g}")
    else:
        vals = nn.astype(str) if s.dtype.kind not in "iu" else nn
        counts = Counter(vals.tolist())
        if len(counts) <= MAX_CATEGORIES or len(counts) <= 0.05 * n:
            cats = [k for k, _ in counts.most_common()]
            w = {(_clean(k) if s.dtype.kind in "iu" else str(k)): round(c / len(vals), 6) for k, c in counts.most_common()}
            if s.dtype.kind in "iu":
                spec = {"type": "int", "distribution": {"kind": "categorical", "weights": w}}
                spec["range"] = {"min": _clean(min(cats)), "max": _clean(max(cats))}
            else:
                spec = {"type": "categorical", "categories": [str(c) for c in cats],
                        "distribution": {"kind": "categorical", "weights": w}}
            pos = {c: i for i, c in enumerate(cats)}
            facts.update(kind="cat", codes=np.array([pos[v] for v in vals.tolist()]),
                         dist=Dist("categorical", values=tuple(cats), weights=tuple(counts[c] for c in cats)))
            top = ", ".join(f"{k} ({c / len(vals):.0%})" for k, c in counts.most_common(3))
            desc.append(f"{len(counts)} values; common: {top}")
        else:
            shapes = Counter(_shape(v) for v in vals.tolist())
            shape, _ = shapes.most_common(1)[0]
            spec = {"type": "string", "pattern": shape.replace("(", r"\(").replace(")", r"\)")}
            facts.update(kind="string")
            desc.append(f"free text, most common format {shape!r}")
    if null_ratio > 0:
        spec["nulls"] = round(null_ratio, 6)
    if desc:
        spec["description"] = "; ".join(desc)
    return spec, facts


def _date_dist(d: dict) -> dict:
    out = dict(d)
    for k in ("mean", "min", "max", "loc"):
        if k in out and out.get("kind") in ("normal", "uniform"):
            out[k] = str(np.datetime64(int(round(out[k])), "D"))
    if out.get("kind") == "histogram":
        out["edges"] = [float(e) for e in out["edges"]]
    return out


def normal_scores(codes: np.ndarray, dist: Dist, kind: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """Each value's position under its own marginal, as a standard normal score (mid-CDF for
    discrete values, or a random point of the value's CDF step when ``rng`` is given) — the scale
    on which the Correlation operator's Gaussian copula works."""
    x = np.asarray(codes, dtype=float)
    if kind in ("cat", "bool"):
        if kind == "bool":
            p = float(np.mean(x))
            lo = np.where(x > 0.5, 1 - p, 0.0)
            hi = np.where(x > 0.5, 1.0, 1 - p)
        else:
            w = np.asarray(dist.weights, dtype=float)
            cum = np.r_[0.0, np.cumsum(w / w.sum())]
            lo, hi = cum[x.astype(int)], cum[x.astype(int) + 1]
        u = (lo + hi) / 2 if rng is None else lo + rng.random(len(x)) * (hi - lo)
    else:
        u = stats.rankdata(x) / (len(x) + 1)
    return stats.norm.ppf(np.clip(u, 1e-6, 1 - 1e-6))


def identifier(name: str) -> str:
    """A column name usable in rule expressions (``mean radius`` → ``mean_radius``)."""
    out = re.sub(r"\W+", "_", str(name)).strip("_").lower() or "column"
    return f"c_{out}" if out[0].isdigit() else out


def sanitize_columns(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns={c: identifier(c) for c in df.columns})


def profile(df: pd.DataFrame, name: str = "profiled", table: str | None = None, bins: int = 20,
            max_order_rules: int = 20, seed: int = 0, components: int | str = "auto",
            min_support: int = MIN_SUPPORT, bin_support: int = BIN_SUPPORT) -> dict:
    """A data project (as a mapping, ready for YAML) describing ``df`` without its rows.

    ``components``: the number of mixture components, or ``"auto"`` (held-out likelihood); always
    capped so that every component is supported by ≥ ``min_support`` real rows."""
    df = sanitize_columns(df)
    table = identifier(table or name)
    cols: dict[str, dict] = {}
    facts: dict[str, dict] = {}
    for c in df.columns:
        spec, f = profile_column(df[c], str(c), bins=bins)
        cols[str(c)] = spec
        facts[str(c)] = f
    rules: list[dict] = []
    corr_cols = [c for c, f in facts.items() if f.get("kind") in ("num", "cat", "bool", "date")
                 and df[c].notna().all() and "distribution" in cols[c]]
    k_used = 1
    if len(corr_cols) >= 2:
        rng = np.random.default_rng(seed)
        steps = [_component_steps(np.asarray(facts[c]["codes"]), facts[c]["kind"] if facts[c]["kind"] in ("cat", "bool")
                                  else "num", list(facts[c]["dist"].values) if facts[c]["kind"] == "cat" else [], rng)
                 for c in corr_cols]
        z = latent_scores(np.column_stack([st[0] for st in steps]), np.column_stack([st[1] for st in steps]), rng)
        labels = mixture_labels(z, components, min_support, seed)
        k_used = int(labels.max()) + 1
        # discrete columns are drawn from decision-tree leaves given the others (a threshold such as
        # "pre-menopausal only below ~52" is a leaf boundary, which a Gaussian copula can only blur)
        discrete = [c for c in corr_cols if facts[c]["kind"] in ("cat", "bool")]
        continuous = [c for c in corr_cols if c not in discrete]
        if not continuous:  # nothing to condition on: every column in the copula(s)
            discrete, continuous = [], corr_cols
        comp = None
        if k_used > 1:
            comp, mixture_rules = _mixture(df, table, cols, facts, continuous, labels, bin_support, rng)
            rules.extend(mixture_rules)
        elif len(continuous) >= 2:
            idx = [corr_cols.index(c) for c in continuous]
            m = _shrunk_correlation(z[:, idx])
            rules.append({"name": f"{table}_copula", "correlation": {
                "columns": continuous, "method": "copula", "tolerance": 0.15, "matrix": _matrix(m)}})
        if discrete:
            _conditional_discrete(df, cols, facts, discrete, continuous, comp, labels, min_support, seed)
    # order relations that hold on every row between comparable columns
    nums = [c for c, f in facts.items() if f.get("kind") in ("num", "date") and df[c].notna().all()]
    found = 0
    for i, a in enumerate(nums):
        for b in nums[i + 1:]:
            if found >= max_order_rules or facts[a]["kind"] != facts[b]["kind"]:
                continue
            xa, xb = facts[a]["codes"], facts[b]["codes"]
            overlap = min(xa.max(), xb.max()) - max(xa.min(), xb.min())
            span = max(xa.max(), xb.max()) - min(xa.min(), xb.min())
            if span <= 0 or overlap < 0.1 * span:
                continue
            if np.all(xa <= xb) and np.any(xa < xb):
                rules.append({"name": f"{a}_le_{b}", "check": f"{a} <= {b}"})
                found += 1
            elif np.all(xb <= xa) and np.any(xb < xa):
                rules.append({"name": f"{b}_le_{a}", "check": f"{b} <= {a}"})
                found += 1
    desc = f"profiled from a table of {len(df)} rows and {df.shape[1]} columns (no values copied)"
    if k_used > 1:
        desc += (f"; a mixture of {k_used} Gaussian copulas, each component supported by ≥ {min_support} rows, "
                 f"each histogram bin by ≥ {bin_support}")
    return {
        "name": name,
        "description": desc,
        "seed": seed,
        "batch_size": max(len(df), 1),
        "tables": {table: {"rows": len(df), "columns": cols, "rules": rules}},
    }


# ---------------------------------------------------------------------------- mixture of copulas


def _shrunk_correlation(z: np.ndarray) -> np.ndarray:
    """Ledoit–Wolf shrunk correlation of normal scores (well conditioned even for few rows)."""
    from sklearn.covariance import LedoitWolf

    if len(z) < 3:
        return np.eye(z.shape[1])
    c = LedoitWolf().fit(z).covariance_
    d = np.sqrt(np.clip(np.diag(c), 1e-12, None))
    m = np.nan_to_num(c / np.outer(d, d))
    np.fill_diagonal(m, 1.0)
    # shrink slightly so the matrix stays positive definite after rounding
    return 0.995 * m + 0.005 * np.eye(len(m))


def _matrix(m: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 4) for v in row] for row in m]


def max_components(n: int, min_support: int = MIN_SUPPORT) -> int:
    return int(max(1, min(MAX_COMPONENTS, n // max(min_support, 1))))


def mixture_labels(z: np.ndarray, components: int | str, min_support: int = MIN_SUPPORT, seed: int = 0) -> np.ndarray:
    """Component of each row: a Gaussian mixture on the copula scale (scikit-learn), the number of
    components given or chosen by 3-fold held-out log-likelihood; components with fewer than
    ``min_support`` rows are merged into the component most probable for their rows."""
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import KFold

    n = len(z)
    kmax = max_components(n, min_support)
    if components == "auto":
        best = (-np.inf, 1)
        for k in range(1, kmax + 1):
            ll = []
            for tr, te in KFold(3, shuffle=True, random_state=seed).split(z):
                gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed).fit(z[tr])
                ll.append(gm.score(z[te]))
            score = float(np.mean(ll))
            if score > best[0]:
                best = (score, k)
            elif k > best[1] + 2:
                break  # the held-out likelihood has peaked
        k = best[1]
    else:
        k = int(min(max(int(components), 1), kmax))
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed, n_init=2).fit(z)
    prob = gm.predict_proba(z)
    labels = prob.argmax(axis=1)
    while True:
        counts = np.bincount(labels, minlength=k)
        small = [j for j in range(k) if 0 < counts[j] < min_support]
        if not small:
            break
        j = min(small, key=lambda j: counts[j])
        p = prob[labels == j].copy()
        p[:, counts == 0] = -1.0
        p[:, j] = -1.0
        labels[labels == j] = p.argmax(axis=1)
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int64)


def _num(v: float) -> int | float:
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 1e15 else float(f"{v:.10g}")


def support_histogram(x: np.ndarray, integer: bool, min_count: int) -> tuple[list[float], list[int]]:
    """Equal-count bins of ≥ ``min_count`` values each. A value that occurs ≥ ``min_count`` times (a
    common value, such as a size recorded in steps of 5 mm) is a bin of its own, so its spike
    survives; the values between two common values are grouped the same way. When fewer than
    ``min_count`` values lie between two common values, their bin gets weight 0 and they count
    towards the nearer common value instead (no bin describes fewer than ``min_count`` rows, and no
    spike is diluted). Integer data gets half-integer edges, so every draw rounds back into its
    own bin."""
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    vals, cnt = np.unique(x, return_counts=True)
    common = cnt >= max(min_count, 1)
    groups: list[list[int]] = []  # runs of value indices forming one bin
    short: list[int] = []  # groups with fewer than min_count values
    run: list[int] = []

    def close_run() -> None:
        if not run:
            return
        acc: list[int] = []
        total = 0
        start = len(groups)
        for i in run:
            acc.append(i)
            total += int(cnt[i])
            if total >= min_count:
                groups.append(acc)
                acc, total = [], 0
        if acc:
            if len(groups) > start:
                groups[-1].extend(acc)  # the remainder joins the run's last bin
            else:
                groups.append(acc)  # a short run next to common values: snapped below
                short.append(len(groups) - 1)
        run.clear()

    for i in range(len(vals)):
        if common[i]:
            close_run()
            groups.append([i])
        else:
            run.append(i)
    close_run()
    if integer:
        edges = [vals[0] - 0.5] + [np.floor((vals[g[-1]] + vals[g[-1] + 1]) / 2) + 0.5 for g in groups[:-1]] + [vals[-1] + 0.5]
    else:
        lo, hi = vals[0], vals[-1]
        if hi <= lo:
            hi = lo + max(abs(lo) * 1e-6, 1e-9)
        edges = [lo] + [(vals[g[-1]] + vals[g[-1] + 1]) / 2 for g in groups[:-1]] + [hi]
    weights = [int(cnt[g].sum()) for g in groups]
    spikes = [j for j, g in enumerate(groups) if len(g) == 1 and common[g[0]]]
    if spikes and len(groups) > 1:
        for j in short:
            mid = float(np.average(vals[groups[j]], weights=cnt[groups[j]]))
            near = min(spikes, key=lambda k: abs(vals[groups[k][0]] - mid))
            weights[near] += weights[j]
            weights[j] = 0
    # written with 10 significant digits: merge any bin that rounding would make empty
    lo_edge = _num(edges[0])
    if lo_edge > edges[0]:  # round the outer edges outwards: every value stays inside
        lo_edge = _num(edges[0] - abs(edges[0]) * 1e-9 - 1e-300)
    e_out, w_out = [lo_edge], []
    for i, (e, w) in enumerate(zip(edges[1:], weights, strict=True)):
        e_raw, e = e, _num(e)
        if i == len(weights) - 1 and e < e_raw:
            e = _num(e_raw + abs(e_raw) * 1e-9 + 1e-300)
        if e <= e_out[-1]:
            if w_out:
                w_out[-1] += w
            continue
        e_out.append(e)
        w_out.append(w)
    if not w_out:
        e_out, w_out = [e_out[0], _num(e_out[0] + 1)], [int(n)]
    return e_out, w_out


def _component_steps(codes: np.ndarray, kind: str, order: list, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Each value's CDF step (lo, hi) under the component's own marginal (lo == hi for continuous
    values: their rank, ties broken at random), and that marginal (discrete columns)."""
    n = len(codes)
    if kind == "bool":
        x = np.asarray(codes).astype(bool)
        p = float(x.mean())
        return np.where(x, 1 - p, 0.0), np.where(x, 1.0, 1 - p), {"kind": "bernoulli", "p": round(p, 6)}
    if kind == "cat":
        cnt = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(order))
        present = [j for j in range(len(order)) if cnt[j] > 0]
        cum = np.zeros(len(order) + 1)
        run = 0.0
        for j in present:
            cum[j] = run
            run += cnt[j] / n
            cum[j + 1] = run
        idx = np.asarray(codes, dtype=np.int64)
        return cum[idx], cum[idx + 1], {"kind": "categorical", "weights": {_clean(order[j]): int(cnt[j]) for j in present}}
    x = np.asarray(codes, dtype=float)
    order_idx = np.lexsort((rng.permutation(n), x))
    u = np.empty(n)
    u[order_idx] = (np.arange(n) + 0.5) / n
    return u, u, {}


def latent_scores(lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, sweeps: int = 2) -> np.ndarray:
    """Normal scores (rows × columns) from CDF steps. A continuous value sits at its rank; a
    discrete value's position inside its step is unknown, so it is placed where the other columns
    predict it (a least-squares fit on their scores, refined over a few sweeps) rather than at
    random — a random placement would dilute a dependence such as "pre-menopausal only below ~55"
    into a weak correlation."""
    z = stats.norm.ppf(np.clip(lo + rng.random(lo.shape) * (hi - lo), 1e-6, 1 - 1e-6))
    discrete = [j for j in range(lo.shape[1]) if np.any(hi[:, j] > lo[:, j])]
    if lo.shape[1] < 2:
        return z
    for _ in range(sweeps):
        for j in discrete:
            others = np.delete(z, j, axis=1)
            a = np.column_stack([others, np.ones(len(z))])
            coef, *_ = np.linalg.lstsq(a, z[:, j], rcond=None)
            pred = a @ coef
            u = np.empty(len(z))
            steps = np.round(lo[:, j], 12)
            for step in np.unique(steps):
                rows = np.flatnonzero(steps == step)
                rank = np.argsort(np.argsort(pred[rows] + 1e-9 * rng.random(len(rows))))
                u[rows] = lo[rows, j] + (rank + 0.5) / len(rows) * (hi[rows, j] - lo[rows, j])
            z[:, j] = stats.norm.ppf(np.clip(u, 1e-6, 1 - 1e-6))
    return z


def _mixture(df: pd.DataFrame, table: str, cols: dict[str, dict], facts: dict[str, dict], mixed: list[str],
             labels: np.ndarray, bin_support: int, rng: np.random.Generator) -> tuple[str, list[dict]]:
    """Rewrite the modelled columns as per-component cases; (component column, per-component copulas)."""
    k = int(labels.max()) + 1
    comp = "component"
    while comp in cols:
        comp += "_"
    names = [f"c{j + 1}" for j in range(k)]
    sizes = np.bincount(labels, minlength=k)
    cols[comp] = {"type": "categorical", "categories": names, "output": False,
                  "description": f"mixture component (hidden): {k} components of ≥ {int(sizes.min())} real rows",
                  "distribution": {"kind": "categorical", "weights": {nm: int(c) for nm, c in zip(names, sizes, strict=True)}}}
    cases: dict[str, list[dict]] = {c: [] for c in mixed}
    rules: list[dict] = []
    for j in range(k):
        members = labels == j
        los, his = [], []
        for c in mixed:
            f = facts[c]
            codes = np.asarray(f["codes"])[members]
            kind = f["kind"] if f["kind"] in ("cat", "bool") else "num"
            lo, hi, dist = _component_steps(codes, kind, list(f["dist"].values) if kind == "cat" else [], rng)
            if kind == "num":
                integer = f["kind"] == "date" or bool(f.get("integer"))
                edges, weights = support_histogram(codes, integer, bin_support)
                dist = {"kind": "histogram", "edges": edges, "weights": weights}
            los.append(lo)
            his.append(hi)
            case: dict = {"distribution": dist}
            if j < k - 1:
                case = {"when": f"{comp} == '{names[j]}'", **case}
            cases[c].append(case)
        m = _shrunk_correlation(latent_scores(np.column_stack(los), np.column_stack(his), rng))
        rules.append({"name": f"{table}_copula_{names[j]}", "correlation": {
            "columns": list(mixed), "method": "copula", "when": f"{comp} == '{names[j]}'",
            "tolerance": round(float(min(1.0, max(0.15, 3 / np.sqrt(int(sizes[j]))))), 3), "matrix": _matrix(m)}})
    for c in mixed:
        cols[c].pop("distribution", None)
        cols[c]["cases"] = cases[c]
    if len(mixed) < 2:
        rules = []
    return comp, rules


def _literal(v) -> str:
    v = _clean(v)
    return repr(v) if isinstance(v, str) else str(v)


def _conditional_discrete(df: pd.DataFrame, cols: dict[str, dict], facts: dict[str, dict], discrete: list[str],
                          continuous: list[str], comp: str | None, labels: np.ndarray, min_support: int,
                          seed: int) -> None:
    """Each discrete column becomes ``cases``: the leaves of a classification tree (scikit-learn,
    every leaf ≥ ``min_support`` real rows) over the mixture component, the continuous columns and
    the discrete columns before it; a leaf's condition is its path, its distribution the leaf's
    category counts."""
    from sklearn.tree import DecisionTreeClassifier

    feats: list[tuple[str, str, np.ndarray, list]] = []  # (column, kind, values, labels of codes)
    if comp is not None:
        feats.append((comp, "code", labels.astype(float), [f"c{j + 1}" for j in range(int(labels.max()) + 1)]))
    for c in continuous:
        feats.append((c, facts[c]["kind"], np.asarray(facts[c]["codes"], dtype=float), []))
    for c in discrete:
        f = facts[c]
        y = np.asarray(f["codes"])
        if f["kind"] == "bool":
            y = y.astype(bool).astype(np.int64)
        if feats:
            x = np.column_stack([v for _, _, v, _ in feats])
            tree = DecisionTreeClassifier(criterion="entropy", min_samples_leaf=min_support, random_state=seed).fit(x, y)
            leaves = _leaves(tree, feats)
        else:
            leaves = [([], np.arange(len(y)))]
        leaf_of = None if not feats else tree.apply(np.column_stack([v for _, _, v, _ in feats]))
        cases = []
        for i, (conds, node) in enumerate(leaves):
            yy = y if leaf_of is None else y[leaf_of == node]
            if f["kind"] == "bool":
                dist: dict = {"kind": "bernoulli", "p": round(float(yy.mean()), 6)}
            else:
                order = list(f["dist"].values)
                cnt = np.bincount(yy.astype(np.int64), minlength=len(order))
                dist = {"kind": "categorical", "weights": {_clean(order[j]): int(cnt[j]) for j in range(len(order)) if cnt[j]}}
            case: dict = {"distribution": dist}
            if conds and i < len(leaves) - 1:
                case = {"when": " and ".join(conds), **case}
            cases.append(case)
        cols[c].pop("distribution", None)
        cols[c]["cases"] = cases
        order_labels = [_clean(v) for v in f["dist"].values] if f["kind"] == "cat" else []
        feats.append((c, "code" if f["kind"] == "cat" else "bool", y.astype(float), order_labels))


def _leaves(tree, feats) -> list[tuple[list[str], int]]:
    """(path conditions as expressions, node id) for every leaf of a fitted tree."""
    t = tree.tree_
    out: list[tuple[list[str], int]] = []

    def cond(j: int, thr: float, left: bool) -> str:
        name, kind, values, labels_ = feats[j]
        if kind == "code":
            codes = [k for k in range(len(labels_)) if (k <= thr) == left]
            return f"{name} in [{', '.join(_literal(labels_[k]) for k in codes)}]"
        if kind == "bool":
            return name if not left else f"not {name}"
        if kind == "date":
            day = int(np.floor(thr))
            return f"{name} {'<=' if left else '>'} date('{np.datetime64(day, 'D')}')"
        return f"{name} {'<=' if left else '>'} {_num(thr)}"

    def walk(node: int, path: list[str]) -> None:
        if t.children_left[node] == -1:
            out.append((path, node))
            return
        j, thr = int(t.feature[node]), float(t.threshold[node])
        walk(int(t.children_left[node]), [*path, cond(j, thr, True)])
        walk(int(t.children_right[node]), [*path, cond(j, thr, False)])

    walk(0, [])
    return out
