"""The profiler (SERUMS D4.2 §3): a real table in, a data project out — metadata and rules, never
the rows themselves.

Per column it derives the type, nullness, range (min/max), common and extreme values (as a
description, for the reader), a fitted distribution (the best of several parametric fits by the
Kolmogorov–Smirnov distance, or an equal-width histogram when none fits), categorical weights, and
string formats as patterns. Across columns it derives a Gaussian-copula correlation matrix (the
normal scores of the columns' own marginals, as the Correlation operator consumes it) and order
relations that hold on every row (``a <= b``).
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


def normal_scores(codes: np.ndarray, dist: Dist, kind: str) -> np.ndarray:
    """Each value's position under its own marginal, as a standard normal score (mid-CDF for
    discrete values) — the scale on which the Correlation operator's Gaussian copula works."""
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
        u = (lo + hi) / 2
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
            max_order_rules: int = 20, seed: int = 0) -> dict:
    """A data project (as a mapping, ready for YAML) describing ``df`` without its rows."""
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
    if len(corr_cols) >= 2:
        z = np.column_stack([normal_scores(facts[c]["codes"], facts[c]["dist"], facts[c]["kind"]) for c in corr_cols])
        m = np.corrcoef(z, rowvar=False)
        m = np.nan_to_num(m)
        np.fill_diagonal(m, 1.0)
        # shrink slightly so the matrix stays positive definite after rounding
        m = 0.995 * m + 0.005 * np.eye(len(m))
        rules.append({"name": f"{table}_copula", "correlation": {
            "columns": corr_cols, "method": "copula", "tolerance": 0.15,
            "matrix": [[round(float(v), 4) for v in row] for row in m]}})
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
    return {
        "name": name,
        "description": f"profiled from a table of {len(df)} rows and {df.shape[1]} columns (no values copied)",
        "seed": seed,
        "batch_size": max(len(df), 1),
        "tables": {table: {"rows": len(df), "columns": cols, "rules": rules}},
    }
