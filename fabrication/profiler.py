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

import keyword
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from . import expr as E
from .distributions import Dist, fit_best
from .spec import ProjectError

MAX_CATEGORIES = 30
KS_ACCEPT = 0.04
MIN_SUPPORT = 30  # real rows behind every mixture component, at least
BIN_SUPPORT = 5  # real rows behind every value the project states (bins, extremes, categories), at least
MAX_COMPONENTS = 24
LATTICE_SHARE = 0.98  # a value grid holds when ≥ this share of the values lie on it (the rest are snapped)
SELECT_ROWS = 2000  # rows used to choose the number of mixture components


class ProfileError(ProjectError):
    """The profiler's own output does not fabricate (a bug in the profiler, reported with its cause)."""


Progress = Callable[[str, int, int], None]


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


def lattice(x: np.ndarray, share: float = LATTICE_SHARE) -> tuple[float, int]:
    """The coarsest value grid (multiples of a step: 1000 … 1, 0.5, 0.25, 0.2, 0.1 … 1e-6) on which at
    least ``share`` of all values lie; (step, number of values off the grid). Computed over every
    value, so one 4.333333 does not set the precision of a column of halves."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return 1.0, 0
    for e in range(3, -7, -1):
        for m in (5, 2.5, 2, 1):
            step = m * 10.0**e
            if step >= 1000 or (m == 2.5 and e < -2):
                continue
            on = _on_grid(x, step)
            if on.mean() >= share and (len(np.unique(np.round(x[on] / step))) >= 3 or step <= 1):
                if m != 1:  # the values the decade above does not hold must lie on this grid: 2.41,
                    fine = ~_on_grid(x, 10.0 ** (e + 1))  # 8.589, 0.775 (3 significant digits) are on
                    if fine.any() and on[fine].mean() < 0.75:  # no 0.002 grid (half of them by chance)
                        continue
                return float(f"{step:.10g}"), int((~on).sum())
    return 1e-6, 0


def _on_grid(x: np.ndarray, step: float) -> np.ndarray:
    q = x / step
    return np.abs(q - np.round(q)) <= 1e-6 + 1e-12 * np.abs(q)


def significant_digits(x: np.ndarray, step: float, share: float = LATTICE_SHARE) -> int | None:
    """The fewest significant digits (1–6) to which ≥ ``share`` of the values are rounded, when that
    grid is coarser than the fixed ``step`` among the large values (lab results recorded to 3
    significant digits: 0.791 and 2.41, never 2.413); None when the fixed step says it all."""
    from .generate import round_significant

    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x) & (x != 0)]
    if len(x) < 2 * BIN_SUPPORT:
        return None
    top = float(np.quantile(np.abs(x), 0.9))
    for d in range(1, 7):
        if 10.0 ** (np.floor(np.log10(top)) - d + 1) <= step * (1 + 1e-9):
            return None  # at the large values this grid is no coarser than the step
        if np.mean(np.abs(round_significant(x, d) - x) <= 1e-9 * np.maximum(np.abs(x), 1)) >= share:
            return d
    return None


def misses_spikes(x: np.ndarray, dist: Dist, step: float, min_count: int = BIN_SUPPORT) -> bool:
    """Whether a fitted distribution, drawn on the value grid, misses a common value's spike: a value
    held by ≥ ``min_count`` rows at well over twice the share the fit gives its grid cell (3 % exact
    zeros in a continuous column; 13 % zeros beside 3 % ones). A KS distance cannot see it (a jump
    of 3 % passes KS ≤ 0.04), the distinguisher does at once."""
    vals, cnt = np.unique(np.asarray(x, dtype=float), return_counts=True)
    common = cnt >= max(min_count, 2)
    if not common.any():
        return False
    try:
        v = vals[common]
        expected = len(x) * (dist.cdf(v + step / 2) - dist.cdf(v - step / 2))
    except Exception:  # noqa: BLE001 — a fit without a CDF cannot be judged: keep it
        return False
    return bool(np.any(cnt[common] > 2 * expected + 3 * np.sqrt(np.maximum(expected, 1.0))))


def _decimals(step: float) -> int:
    for d in range(0, 7):
        if abs(step * 10**d - round(step * 10**d)) < 1e-9:
            return d
    return 6


def clip_extremes(x: np.ndarray, k: int = BIN_SUPPORT) -> tuple[float, float]:
    """(low, high): the k-th smallest and k-th largest value. A project states these instead of the
    minimum and maximum, which are single patients' values (the oldest patient's age)."""
    xs = np.sort(np.asarray(x, dtype=float))
    n = len(xs)
    if n == 0:
        return 0.0, 0.0
    i = min(max(k, 1), n) - 1
    lo, hi = float(xs[i]), float(xs[n - 1 - i])
    if hi < lo:
        lo = hi = float(np.median(xs))
    return lo, hi


def _suppress(counts: np.ndarray, k: int = BIN_SUPPORT) -> np.ndarray:
    """Counts below k set to 0 (a count of 2 describes 2 patients); the largest always stays."""
    c = np.asarray(counts, dtype=np.int64).copy()
    if not len(c):
        return c
    top = int(c.argmax())
    c[c < k] = 0
    if not c.any():
        c[top] = int(counts[top])
    return c


def profile_column(s: pd.Series, name: str, bins: int = 20, min_count: int = BIN_SUPPORT) -> tuple[dict, dict]:
    """(column spec, facts used later: kind, full-length codes with NaN/-1 for nulls, null mask)."""
    n = len(s)
    isnull = s.isna().to_numpy()
    nn = s[~isnull]
    spec: dict[str, Any] = {}
    facts: dict[str, Any] = {"name": name, "null": isnull}
    desc = []
    if len(nn) == 0:
        return {"type": "string", "value": "", "nulls": 1.0}, {"kind": "none", "null": isnull}
    uniq = nn.unique()
    if s.dtype == bool or (s.dtype == object and set(map(str, uniq)) <= {"True", "False"}):
        vals = nn.astype(str).eq("True").to_numpy() if s.dtype == object else nn.to_numpy(dtype=bool)
        t_count = int(vals.sum())
        t_count = t_count if t_count >= min_count else 0
        t_count = t_count if len(vals) - t_count >= min_count else len(vals)
        p = t_count / len(vals)
        spec = {"type": "bool", "distribution": {"kind": "bernoulli", "p": round(p, 6)}}
        codes = np.zeros(n, dtype=float)
        codes[~isnull] = vals
        codes[isnull] = np.nan
        facts.update(kind="bool", codes=codes, dist=Dist("bernoulli", (("p", p),)))
    elif _is_date(s) or (s.dtype.kind in "iuf" and not (len(uniq) <= 12 and s.dtype.kind in "iu")):
        date = _is_date(s)
        if date:
            x = pd.to_datetime(nn).to_numpy().astype("datetime64[D]").astype(np.int64).astype(float)
            step, off = 1.0, 0
        else:
            x = nn.to_numpy(dtype=float)
            step, off = lattice(x)
        integer = date or step >= 1
        lo, hi = clip_extremes(x, min_count)
        xc = np.clip(x, lo, hi)
        dist, ks = fit_best(xc, integer=integer)
        if ks > KS_ACCEPT or misses_spikes(xc, dist, step, min_count):
            # the raw values: support_histogram clips them itself, and must not take the tail gathered
            # on the 5th largest value for a common value
            edges, weights = support_histogram(x, integer, min_count, step=step)
            dist = Dist("histogram", edges=tuple(edges), weights=tuple(float(w) for w in weights))
        codes = np.full(n, np.nan)
        codes[~isnull] = x
        if date:
            iso = lambda v: str(np.datetime64(int(v), "D"))  # noqa: E731
            spec = {"type": "date", "range": {"min": iso(lo), "max": iso(hi)}, "distribution": _date_dist(dist.to_spec())}
            desc.append(f"dates {iso(lo)} … {iso(hi)} (5th smallest … 5th largest)")
        else:
            if integer:
                spec = {"type": "int"}
            else:
                spec = {"type": "decimal", "precision": _decimals(step)}
            if step != (1.0 if integer else 10.0 ** -spec.get("precision", 0)):
                spec["step"] = _clean(step)
            spec["range"] = {"min": _clean(lo), "max": _clean(hi)}
            spec["distribution"] = dist.to_spec()
            if dist.kind == "histogram":  # edges as support_histogram wrote them (10 digits: a spike's
                spec["distribution"]["edges"] = list(dist.edges)  # v ± ½ step survives; 6 merged them)
            q = np.quantile(x, [0.5])
            desc.append(f"{_clean(lo)} … {_clean(hi)} (5th smallest … 5th largest), median {q[0]:g}")
            if off:
                desc.append(f"{off} value(s) off the grid of {step:g} (drawn on it)")
            sig = significant_digits(x, step)
            if sig is not None:
                spec["significant"] = sig
                desc.append(f"recorded to {sig} significant digits")
        facts.update(kind="date" if date else "num", codes=codes, dist=dist, integer=integer, step=step, ks=ks,
                     lo=lo, hi=hi)
    else:
        is_int = s.dtype.kind in "iu"
        vals = nn if is_int else nn.astype(str)
        counts = Counter(vals.tolist())
        if len(counts) <= MAX_CATEGORIES or len(counts) <= 0.05 * n:
            ordered = [k for k, _ in counts.most_common()]
            kept = _suppress(np.array([counts[k] for k in ordered]), min_count)
            cats = [k for k, c in zip(ordered, kept, strict=True) if c > 0]
            w = {(_clean(k) if is_int else str(k)): int(counts[k]) for k in cats}
            if is_int:
                spec = {"type": "int", "distribution": {"kind": "categorical", "weights": w}}
                lo_c, hi_c = min(cats), max(cats)
                spec["range"] = {"min": _clean(lo_c), "max": _clean(hi_c)}
            else:
                spec = {"type": "categorical", "categories": [str(c) for c in cats],
                        "distribution": {"kind": "categorical", "weights": w}}
            if len(cats) < len(ordered):
                desc.append(f"{len(ordered) - len(cats)} rare value(s) (< {min_count} rows) left out")
            pos = {c: i for i, c in enumerate(cats)}
            codes = np.full(n, -1, dtype=np.int64)
            codes[~isnull] = [pos.get(v, 0) for v in vals.tolist()]  # a rare value counts as the commonest
            facts.update(kind="cat", codes=codes, dist=Dist("categorical", values=tuple(cats),
                                                             weights=tuple(counts[c] for c in cats)))
            top = ", ".join(f"{k} ({c / len(vals):.0%})" for k, c in counts.most_common(3) if c >= min_count)
            desc.append(f"{len(counts)} values" + (f"; common: {top}" if top else ""))
        else:
            shapes = Counter(_shape(v) for v in vals.tolist())
            shape, _ = shapes.most_common(1)[0]
            spec = {"type": "string", "pattern": shape.replace("(", r"\(").replace(")", r"\)")}
            facts.update(kind="string")
            desc.append(f"free text, most common format {shape!r}")
    if isnull.any():
        spec["nulls"] = round(float(isnull.mean()), 6)
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


def identifier(name: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A column name usable in rule expressions (``mean radius`` → ``mean_radius``, ``sample.yr`` →
    ``sample_yr``, ``lambda`` → ``lambda_``: a Python keyword cannot name a column in an expression),
    different from every name in ``taken``. A name that already is a valid identifier keeps its
    spelling (``lambda_`` stays ``lambda_``)."""
    raw = str(name)
    out = raw.lower() if raw.isidentifier() else re.sub(r"\W+", "_", raw).strip("_").lower() or "column"
    if out[0].isdigit():
        out = f"c_{out}"
    if keyword.iskeyword(out) or keyword.iskeyword(out.capitalize()) or out in E.RESERVED_NAMES:
        out += "_"
    base, i = out, 2
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    return out


def column_names(columns) -> dict[str, str]:
    """Original column name → the identifier the project uses (unique, never a keyword)."""
    out: dict[str, str] = {}
    for c in columns:
        out[c] = identifier(c, set(out.values()))
    return out


def sanitize_columns(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns=column_names(df.columns))


def _null_structure(df: pd.DataFrame, cols: dict[str, dict], facts: dict[str, dict], table_cols: set[str]) -> list[str]:
    """Missing values as part of the joint model. Columns with the same null pattern share one
    reason; a pattern that is exactly a set of values of a complete discrete column becomes
    ``nulls: {iff: "died == 0"}`` (null exactly there); any other pattern gets a hidden boolean
    column ``<col>_missing`` (``nulls: {iff: <col>_missing}``), drawn like the other discrete columns
    from decision-tree leaves over the rest of the row. Returns the indicator columns added."""
    groups: dict[bytes, list[str]] = {}
    for c, f in facts.items():
        m = f.get("null")
        if f.get("kind") in (None, "none") or m is None or not m.any() or m.all():
            continue
        groups.setdefault(np.packbits(m).tobytes() + bytes([len(m) % 8]), []).append(c)
    complete = [c for c, f in facts.items() if f.get("kind") in ("cat", "bool") and not f["null"].any()
                and "distribution" in cols[c]]
    added = []
    for members in groups.values():
        mask = facts[members[0]]["null"]
        cond = None
        for d in complete:
            codes = np.asarray(facts[d]["codes"])
            inside = set(np.unique(codes[mask]).tolist())
            if inside & set(np.unique(codes[~mask]).tolist()):
                continue
            cond = _value_condition(d, facts[d], sorted(inside))
            break
        if cond is None:
            ind = identifier(f"{members[0]}_missing", table_cols)
            table_cols.add(ind)
            p = float(mask.mean())
            cols[ind] = {"type": "bool", "output": False,
                         "description": f"hidden: whether {', '.join(members)} {'is' if len(members) == 1 else 'are'} "
                         "missing (modelled with the other columns)",
                         "distribution": {"kind": "bernoulli", "p": round(p, 6)}}
            facts[ind] = {"name": ind, "kind": "bool", "codes": mask.astype(float), "null": np.zeros(len(mask), bool),
                          "dist": Dist("bernoulli", (("p", p),)), "indicator": True}
            added.append(ind)
            cond = ind
        for c in members:
            cols[c]["nulls"] = {"iff": cond}
    return added


def _value_condition(col: str, f: dict, codes: list) -> str:
    if f["kind"] == "bool":
        return col if codes == [1.0] else f"not {col}"
    labels = [f["dist"].values[int(k)] for k in codes]
    if len(labels) == 1:
        return f"{col} == {_literal(labels[0])}"
    return f"{col} in [{', '.join(_literal(v) for v in labels)}]"


def profile(df: pd.DataFrame, name: str = "profiled", table: str | None = None, bins: int = 20,
            max_order_rules: int = 20, seed: int = 0, components: int | str = "auto",
            min_support: int = MIN_SUPPORT, bin_support: int = BIN_SUPPORT, progress: Progress | None = None,
            check: bool = True, conditional: tuple[str, ...] | set[str] = (),
            leaf_support: dict[str, int] | None = None) -> dict:
    """A data project (as a mapping, ready for YAML) describing ``df`` without its rows.

    ``components``: the number of mixture components, or ``"auto"`` (held-out likelihood); always
    capped so that every component is supported by ≥ ``min_support`` real rows. ``progress(stage,
    done, total)`` is called as the work advances. Refinements (``iterate`` sets them): continuous
    columns in ``conditional`` leave the copula and draw from the leaves of a regression tree over
    the component and the copula's columns; ``leaf_support`` gives some columns' trees smaller leaves
    (never below ``bin_support`` rows × 2). With ``check`` the project is compiled and a
    sample fabricated before it is returned: a profile that does not fabricate is a
    :class:`ProfileError` naming the cause, never a file that fails later."""
    tick = progress or (lambda stage, done, total: None)
    names = column_names(df.columns)
    df = df.rename(columns=names)
    table = identifier(table or name)
    cols: dict[str, dict] = {}
    facts: dict[str, dict] = {}
    total = df.shape[1] + 4
    for i, c in enumerate(df.columns):
        tick(f"column {c}", i, total)
        spec, f = profile_column(df[c], str(c), bins=bins, min_count=bin_support)
        cols[str(c)] = spec
        facts[str(c)] = f
    for orig, ident in names.items():
        if str(orig) != ident:
            cols[ident]["description"] = f"column {orig!r} in the source; " + cols[ident].get("description", "")
    indicators = _null_structure(df, cols, facts, set(cols))
    rules: list[dict] = []
    corr_cols = [c for c, f in facts.items() if f.get("kind") in ("num", "cat", "bool", "date")
                 and not f["null"].all() and "distribution" in cols[c]]
    k_used = 1
    rng = np.random.default_rng(seed)
    if len(corr_cols) >= 2:
        tick("copula scores", df.shape[1], total)
        steps = [_component_steps(np.asarray(facts[c]["codes"]), _kind(facts[c]),
                                  list(facts[c]["dist"].values) if facts[c]["kind"] == "cat" else [], rng)
                 for c in corr_cols]
        z = latent_scores(np.column_stack([st[0] for st in steps]), np.column_stack([st[1] for st in steps]), rng)
        for j, c in enumerate(corr_cols):  # missing values placed where the others predict them
            f = facts[c]
            if f["kind"] in ("num", "date") and f["null"].any():
                obs = np.sort(f["codes"][~f["null"]])
                filled = f["codes"].copy()
                filled[f["null"]] = np.quantile(obs, stats.norm.cdf(z[f["null"], j]))
                f["filled"] = filled
        tick("mixture components", df.shape[1] + 1, total)
        labels = mixture_labels(z, components, min_support, seed)
        k_used = int(labels.max()) + 1
        # discrete columns are drawn from decision-tree leaves given the others (a threshold such as
        # "pre-menopausal only below ~52" is a leaf boundary, which a Gaussian copula can only blur);
        # the missing-value indicators come last, so they see every value column
        discrete = sorted((c for c in corr_cols if facts[c]["kind"] in ("cat", "bool")),
                          key=lambda c: bool(facts[c].get("indicator")))
        continuous = [c for c in corr_cols if c not in discrete]
        if not continuous:  # nothing to condition on: every column in the copula(s)
            discrete, continuous = [], corr_cols
        cond_cols = [c for c in continuous if c in set(conditional)]
        if len(cond_cols) == len(continuous):
            cond_cols = cond_cols[1:]  # one column stays in the copula to condition on
        copula_cols = [c for c in continuous if c not in cond_cols]
        leaves = {c: max(2 * bin_support, int(v)) for c, v in (leaf_support or {}).items()}
        comp = None
        tick("marginals and copulas", df.shape[1] + 2, total)
        if k_used > 1:
            comp, mixture_rules = _mixture(df, table, cols, facts, copula_cols, labels, bin_support, rng)
            rules.extend(mixture_rules)
        elif len(copula_cols) >= 2:
            idx = [corr_cols.index(c) for c in copula_cols]
            m = _shrunk_correlation(z[:, idx])
            rules.append({"name": f"{table}_copula", "correlation": {
                "columns": copula_cols, "method": "copula", "tolerance": 0.15, "matrix": _matrix(m)}})
        tick("decision trees", df.shape[1] + 3, total)
        if cond_cols:
            _conditional_continuous(cols, facts, cond_cols, copula_cols, comp, labels, min_support, leaves, seed,
                                    bin_support)
        if discrete:
            _conditional_discrete(df, cols, facts, discrete, continuous, comp, labels, min_support, seed, bin_support,
                                  leaves)
    rules.extend(_order_rules(facts, max_order_rules))
    conditions = _name_shared_conditions(cols)
    desc = f"profiled from a table of {len(df)} rows and {df.shape[1]} columns (no values copied)"
    if k_used > 1:
        desc += (f"; a mixture of {k_used} Gaussian copulas, each component supported by ≥ {min_support} rows, "
                 f"each histogram bin by ≥ {bin_support}")
    if indicators:
        desc += f"; missing values modelled jointly ({', '.join(indicators)})"
    spec = {
        "name": name,
        "description": desc,
        "seed": seed,
        "batch_size": max(len(df), 1),
        "tables": {table: {"rows": len(df), **({"conditions": conditions} if conditions else {}), "columns": cols,
                           "rules": rules}},
    }
    tick("self-check", total - 1, total)
    if check:
        self_check(spec, seed)
    tick("done", total, total)
    return spec


def _name_shared_conditions(cols: dict[str, dict], min_uses: int = 2, min_length: int = 30) -> dict[str, str]:
    """Long clauses of the tree leaves' conditions (``component in ['c1', 'c4', …]``) that recur are
    stated once, as named conditions the leaves refer to (``components_1``)."""
    from collections import Counter as _Counter

    uses: _Counter = _Counter()
    for cs in cols.values():
        for case in cs.get("cases") or []:
            for clause in (case.get("when") or "").split(" and "):
                if " in [" in clause and len(clause) >= min_length:
                    uses[clause] += 1
    names: dict[str, str] = {}
    per_col: _Counter = _Counter()
    for clause, n in sorted(uses.items(), key=lambda kv: (-kv[1], kv[0])):
        if n < min_uses:
            continue
        col = clause.split(" ", 1)[0]
        per_col[col] += 1
        name = f"{col}_set{per_col[col]}"
        while name in cols:
            name += "_"
        names[clause] = name
    if not names:
        return {}
    for cs in cols.values():
        for case in cs.get("cases") or []:
            if case.get("when"):
                case["when"] = " and ".join(names.get(c, c) for c in case["when"].split(" and "))
    return {name: clause for clause, name in names.items()}


def _kind(f: dict) -> str:
    return f["kind"] if f["kind"] in ("cat", "bool") else "num"


def _order_rules(facts: dict[str, dict], limit: int) -> list[dict]:
    """Order relations ``a <= b`` that hold on every row where both are known."""
    nums = [c for c, f in facts.items() if f.get("kind") in ("num", "date") and not f["null"].all()]
    rules: list[dict] = []
    for i, a in enumerate(nums):
        for b in nums[i + 1:]:
            if len(rules) >= limit or facts[a]["kind"] != facts[b]["kind"]:
                continue
            both = ~(facts[a]["null"] | facts[b]["null"])
            if both.sum() < BIN_SUPPORT:
                continue
            xa, xb = facts[a]["codes"][both], facts[b]["codes"][both]
            overlap = min(xa.max(), xb.max()) - max(xa.min(), xb.min())
            span = max(xa.max(), xb.max()) - min(xa.min(), xb.min())
            if span <= 0 or overlap < 0.1 * span:
                continue
            if np.all(xa <= xb) and np.any(xa < xb):
                rules.append({"name": f"{a}_le_{b}", "check": f"{a} <= {b}"})
            elif np.all(xb <= xa) and np.any(xb < xa):
                rules.append({"name": f"{b}_le_{a}", "check": f"{b} <= {a}"})
    return rules


def compact_components(spec: dict) -> dict:
    """The profiled project as a person reads it: each table's mixture of copulas stated once, as
    named component tables (``components``: weight, marginals, correlation matrix per component)
    instead of one ``cases`` entry per component in every column and one correlation rule per
    component. Loading expands it back (:func:`fabrication.spec.expand_components`); tables without a
    mixture are returned unchanged."""
    import copy as _copy

    out = _copy.deepcopy(spec)
    for tname, t in out["tables"].items():
        cols = t.get("columns") or {}
        comp = next((c for c, cs in cols.items() if cs.get("output") is False and cs.get("type") == "categorical"
                     and str(c).startswith("component") and (cs.get("distribution") or {}).get("kind") == "categorical"),
                    None)
        if comp is None:
            continue
        names = [str(n) for n in cols[comp]["categories"]]
        whens = [f"{comp} == '{n}'" for n in names]
        members = [c for c, cs in cols.items() if c != comp and len(cs.get("cases") or []) == len(names)
                   and all("distribution" in k for k in cs["cases"])
                   and [k.get("when") for k in cs["cases"]] == whens[:-1] + [None]]
        copulas = {r["correlation"]["when"]: r for r in t.get("rules") or []
                   if "correlation" in r and r["correlation"].get("method") == "copula"
                   and r["correlation"].get("when") in whens and r.get("name") == f"{tname}_copula_" + r["correlation"]["when"].split("'")[1]}
        corr_cols = next(iter(copulas.values()))["correlation"]["columns"] if len(copulas) == len(names) else []
        if not members or (copulas and len(copulas) != len(names)):
            continue
        weights = cols[comp]["distribution"]["weights"]
        tables = {}
        for i, n in enumerate(names):
            entry: dict = {"weight": weights[n]}
            r = copulas.get(whens[i])
            if r is not None:
                entry["tolerance"] = r["correlation"].get("tolerance", 0.15)
            entry["marginals"] = {c: cols[c]["cases"][i]["distribution"] for c in members}
            if r is not None:
                entry["correlation"] = r["correlation"]["matrix"]
            tables[n] = entry
        for c in members:
            cols[c].pop("cases")
        desc = cols.pop(comp).get("description")
        t["rules"] = [r for r in t.get("rules") or [] if r not in copulas.values()]
        block = {"column": comp, **({"description": desc} if desc else {}), "columns": list(corr_cols), "tables": tables}
        rebuilt = {}
        for key, v in t.items():  # components right before the columns they draw
            if key == "columns":
                rebuilt["components"] = block
            rebuilt[key] = v
        out["tables"][tname] = rebuilt
    return out


def project_yaml(spec: dict) -> str:
    """The project as YAML a person can read: the mixture as named component tables
    (:func:`compact_components`), lists of plain values (bin edges, weights, matrix rows, categories)
    and small mappings of plain values (a distribution, a range, category weights) on one line each,
    other mappings in block style."""
    import yaml

    spec = compact_components(spec)

    class _Dumper(yaml.SafeDumper):
        pass

    def seq(dumper, data):
        flow = all(isinstance(v, int | float | str | bool) and not isinstance(v, str) or
                   (isinstance(v, str) and len(v) < 40) for v in data)
        # a list of lists (a correlation matrix): one row a line
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    def mapping(dumper, data):
        flat = all(isinstance(v, int | float | str | bool) or v is None or (
            isinstance(v, list) and all(isinstance(x, int | float | str | bool) for x in v)) or (
            isinstance(v, dict) and all(isinstance(x, int | float | bool) for x in v.values())) for v in data.values())
        flow = flat and bool(data) and not any(isinstance(v, str) and len(v) > 60 for v in data.values())
        return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)

    _Dumper.add_representer(list, seq)
    _Dumper.add_representer(dict, mapping)
    return yaml.dump(spec, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)


def self_check(spec: dict, seed: int = 0, rows: int = 200) -> None:
    """Compile the profiled project and fabricate a sample of it; a failure is a :class:`ProfileError`
    that names the cause (never a project file that fails only when someone uses it)."""
    from .engine import fabricate
    from .generate import FabricationError
    from .model import compile_project

    src = f"profile of {spec['name']} (self-check)"
    try:
        project = compile_project(compact_components(spec), source=src)
        fabricate(project, rows=min(rows, max(2, next(iter(spec["tables"].values()))["rows"])), seed=seed)
    except ProjectError as exc:
        raise ProfileError(exc.problems, src) from exc
    except FabricationError as exc:
        raise ProfileError([("", f"the profiled project does not fabricate: {exc}")], src) from exc


# ---------------------------------------------------------------------------- mixture of copulas


EIGEN_FLOOR = 2e-4  # smallest eigenvalue of a stated copula matrix (it stays valid after 5-decimal rounding)
PINNED_SE = 0.01  # a correlation the sample pins down this closely (standard error) is not shrunk


def _shrunk_correlation(z: np.ndarray) -> np.ndarray:
    """Correlation of normal scores: Ledoit–Wolf shrunk (well conditioned even for few rows), except
    where the sample pins a correlation down — standard error (1 − r²) / √(n − 3) below ``PINNED_SE``
    — which keeps the sample's value: a near-exact relation (a nucleus's area and radius, 0.9994 on
    250 rows, ± 0.0001) stays one. Ledoit–Wolf's uniform shrinkage took it to 0.97, and the
    fabricated rows scattered off the curve where a two-column tree found them (0.69 accuracy on area
    and radius alone). Then shrunk towards the identity only as far as the smallest eigenvalue needs
    (``EIGEN_FLOOR``)."""
    from sklearn.covariance import LedoitWolf

    n, p = z.shape
    if n < 3:
        return np.eye(p)
    c = LedoitWolf().fit(z).covariance_
    d = np.sqrt(np.clip(np.diag(c), 1e-12, None))
    m = np.nan_to_num(c / np.outer(d, d))
    if p > 1:
        r = np.nan_to_num(np.corrcoef(z, rowvar=False))
        pinned = (1 - r * r) / np.sqrt(max(n - 3, 1)) < PINNED_SE
        m = np.where(pinned, r, m)
    np.fill_diagonal(m, 1.0)
    low = float(np.linalg.eigvalsh(m).min()) if p > 1 else 1.0
    lam = 0.0 if low >= EIGEN_FLOOR else (EIGEN_FLOOR - low) / (1.0 - low)
    return (1 - lam) * m + lam * np.eye(p)


def _matrix(m: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 5) for v in row] for row in m]


def max_components(n: int, min_support: int = MIN_SUPPORT) -> int:
    return int(max(1, min(MAX_COMPONENTS, n // max(min_support, 1))))


def mixture_labels(z: np.ndarray, components: int | str, min_support: int = MIN_SUPPORT, seed: int = 0) -> np.ndarray:
    """Component of each row: a Gaussian mixture on the copula scale (scikit-learn), the number of
    components given or chosen by 3-fold held-out log-likelihood; components with fewer than
    ``min_support`` rows are merged into the component most probable for their rows. The small
    matrix algebra runs on one BLAS thread (many threads only contend on a busy machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _mixture_labels(z, components, min_support, seed)


def _mixture_labels(z: np.ndarray, components: int | str, min_support: int, seed: int) -> np.ndarray:
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import KFold

    n = len(z)
    kmax = max_components(n, min_support)
    if components == "auto":
        # chosen on at most SELECT_ROWS rows (the choice needs the shape, not every row), over a
        # geometric grid of sizes, each capped so its components keep their support in the sample
        rng = np.random.default_rng(seed)
        zs = z[rng.choice(n, SELECT_ROWS, replace=False)] if n > SELECT_ROWS else z
        ks = sorted({k for k in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24) if k <= min(kmax, max_components(len(zs), min_support))})
        best, worse = (-np.inf, 1), 0
        for k in ks:
            ll = []
            for tr, te in KFold(3, shuffle=True, random_state=seed).split(zs):
                gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed, max_iter=60,
                                     tol=1e-2).fit(zs[tr])
                ll.append(gm.score(zs[te]))
                if n > SELECT_ROWS:
                    break  # a large table: one held-out third of the sample is enough
            score = float(np.mean(ll))
            if score > best[0]:
                best, worse = (score, k), 0
            else:
                worse += 1
                if worse >= 2 and k > 2 * best[1] + 2:
                    break  # the held-out likelihood has peaked
        k = best[1] if n <= SELECT_ROWS else int(min(kmax, round(best[1] * min(2.0, (n / SELECT_ROWS) ** 0.25))))
    else:
        k = int(min(max(int(components), 1), kmax))
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed, n_init=1 if n > SELECT_ROWS else 2,
                         max_iter=100, tol=1e-2).fit(z)
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


def support_histogram(x: np.ndarray, integer: bool, min_count: int, step: float | None = None
                      ) -> tuple[list[float], list[int]]:
    """Equal-count bins of ≥ ``min_count`` values each. A value that occurs ≥ ``min_count`` times (a
    common value, such as a size recorded in steps of 5 mm) is a bin of its own, so its spike
    survives; the values between two common values are grouped the same way. When fewer than
    ``min_count`` values lie between two common values, their bin gets weight 0 and they count
    towards the nearer common value instead (no bin describes fewer than ``min_count`` rows, and no
    spike is diluted). The outer edges are the ``min_count``-th smallest and largest values, never
    the extremes (one patient's value). Data on a lattice (integers, or multiples of ``step``) gets
    edges half-way between grid points, so every draw snaps back into its own bin."""
    x = np.sort(np.asarray(x, dtype=float))
    x = x[np.isfinite(x)]
    unit = float(step) if step and (integer or step != 1.0) else (1.0 if integer else None)
    if unit is not None:
        x = np.round(x / unit)  # grid units: the integer case below, scaled back at the end
        integer = True
    lo_v, hi_v = clip_extremes(x, min_count)
    raw_vals, raw_cnt = np.unique(x, return_counts=True)
    x = np.clip(x, lo_v, hi_v)
    n = len(x)
    vals, cnt = np.unique(x, return_counts=True)
    # a value is common by its own count (the clipped tail gathered on the outer values is not a spike)
    common = raw_cnt[np.searchsorted(raw_vals, vals)] >= max(min_count, 1)
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
    weights = [int(cnt[g].sum()) for g in groups]
    spikes = [j for j, g in enumerate(groups) if len(g) == 1 and common[g[0]]]
    if spikes and len(groups) > 1:
        for j in short:
            mid = float(np.average(vals[groups[j]], weights=cnt[groups[j]]))
            near = min(spikes, key=lambda k: abs(vals[groups[k][0]] - mid))
            weights[near] += weights[j]
            weights[j] = 0
    if integer:
        # a common value's bin is that one grid point (v ± ½): its spike is drawn exactly, never spread
        # half-way to sparse neighbours (a meal size of 1025 kcal in 13 % of the rows came out as
        # 1010–1027); the grid points between two spikes with no bin of their own get weight 0
        is_spike = set(spikes)
        edges = [vals[0] - 0.5]
        w_all: list[int] = []
        for j, g in enumerate(groups[:-1]):
            a, b = vals[g[-1]], vals[groups[j + 1][0]]
            w_all.append(weights[j])
            if j in is_spike and j + 1 in is_spike:
                edges.append(a + 0.5)
                if b - a > 1.5:  # grid points between two spikes that no real row has
                    edges.append(b - 0.5)
                    w_all.append(0)
            elif j in is_spike:
                edges.append(a + 0.5)
            elif j + 1 in is_spike:
                edges.append(b - 0.5)
            else:
                edges.append(np.floor((a + b) / 2) + 0.5)
        edges.append(vals[-1] + 0.5)
        weights = w_all + [weights[-1]]
    else:
        lo, hi = vals[0], vals[-1]
        if hi <= lo:
            hi = lo + max(abs(lo) * 1e-6, 1e-9)
        edges = [lo] + [(vals[g[-1]] + vals[g[-1] + 1]) / 2 for g in groups[:-1]] + [hi]
    if unit is not None and unit != 1.0:
        edges = [e * unit for e in edges]
    # written with 10 significant digits: merge any bin that rounding would make empty
    lo_edge = _num(edges[0])
    if lo_edge > edges[0]:  # round the outer edges outwards: every value stays inside
        lo_edge = _num(edges[0] - abs(edges[0]) * 1e-9 - 1e-300)
    e_out, w_out = [lo_edge], []
    carry = 0
    for i, (e, w) in enumerate(zip(edges[1:], weights, strict=True)):
        e_raw, e = e, _num(e)
        if i == len(weights) - 1 and e < e_raw:
            e = _num(e_raw + abs(e_raw) * 1e-9 + 1e-300)
        if e <= e_out[-1]:
            if w_out:
                w_out[-1] += w
            else:
                carry += w
            continue
        e_out.append(e)
        w_out.append(w + carry)
        carry = 0
    if not w_out:
        e_out, w_out = [e_out[0], _num(e_out[0] + (unit or 1))], [int(n)]
    return e_out, w_out


def _component_steps(codes: np.ndarray, kind: str, order: list, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Each value's CDF step (lo, hi) under the component's own marginal (lo == hi for continuous
    values: their rank, ties broken at random), and that marginal (discrete columns). A missing value
    (NaN, or code -1) is unknown: its step is the whole (0, 1), placed later where the others predict."""
    n = len(codes)
    if kind == "cat":
        idx = np.asarray(codes, dtype=np.int64)
        obs = idx >= 0
    else:
        x = np.asarray(codes, dtype=float)
        obs = ~np.isnan(x)
    m = int(obs.sum())
    lo, hi = np.zeros(n), np.ones(n)
    if m == 0:
        return lo, hi, {}
    if kind == "bool":
        xb = x[obs] > 0.5
        p = float(xb.mean())
        lo[obs], hi[obs] = np.where(xb, 1 - p, 0.0), np.where(xb, 1.0, 1 - p)
        return lo, hi, {"kind": "bernoulli", "p": round(p, 6)}
    if kind == "cat":
        cnt = np.bincount(idx[obs], minlength=len(order))
        present = [j for j in range(len(order)) if cnt[j] > 0]
        cum = np.zeros(len(order) + 1)
        run = 0.0
        for j in present:
            cum[j] = run
            run += cnt[j] / m
            cum[j + 1] = run
        lo[obs], hi[obs] = cum[idx[obs]], cum[idx[obs] + 1]
        kept = _suppress(cnt)
        return lo, hi, {"kind": "categorical", "weights": {_clean(order[j]): int(kept[j]) for j in present if kept[j]}}
    order_idx = np.lexsort((rng.permutation(m), x[obs]))
    u = np.empty(m)
    u[order_idx] = (np.arange(m) + 0.5) / m
    lo[obs] = hi[obs] = u
    return lo, hi, {}


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
            u = lo[:, j].copy()
            wide = hi[:, j] > lo[:, j]  # rows whose place inside their step is unknown
            _, step_of = np.unique(np.round(np.column_stack([lo[wide, j], hi[wide, j]]), 12), axis=0,
                                   return_inverse=True)
            wide_rows = np.flatnonzero(wide)
            for s in range(int(step_of.max(initial=-1)) + 1):
                rows = wide_rows[step_of.ravel() == s]
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
            kind = _kind(f)
            lo, hi, dist = _component_steps(codes, kind, list(f["dist"].values) if kind == "cat" else [], rng)
            if kind == "num":
                integer = f["kind"] == "date" or bool(f.get("integer"))
                known = codes[~np.isnan(codes)]
                if len(known) < 2 * bin_support:  # too few known values here: the column's own marginal
                    known = f["codes"][~f["null"]]
                edges, weights = support_histogram(known, integer, bin_support, step=f.get("step", 1.0))
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
                          seed: int, bin_support: int = BIN_SUPPORT, leaf_min: dict[str, int] | None = None) -> None:
    """Each discrete column becomes ``cases``: the leaves of a classification tree (scikit-learn,
    every leaf ≥ ``min_support`` real rows) over the mixture component, the continuous columns and
    the complete discrete columns before it; a leaf's condition is its path, its distribution the
    leaf's category counts (a count below ``bin_support`` is left out: it would describe too few
    patients). A column with missing values is fitted on its known rows; a continuous column's
    missing values are the ones the copula placed (``filled``)."""
    from sklearn.tree import DecisionTreeClassifier

    feats: list[tuple[str, str, np.ndarray, list]] = []  # (column, kind, values, labels of codes)
    if comp is not None:
        feats.append((comp, "code", labels.astype(float), [f"c{j + 1}" for j in range(int(labels.max()) + 1)]))
    for c in continuous:
        feats.append((c, facts[c]["kind"], np.asarray(facts[c].get("filled", facts[c]["codes"]), dtype=float), []))
    if len(labels) > SMALL_LEAF_ROWS:  # like small leaves: more expressive trees only where many rows afford them
        feats.extend(sum_features(facts, continuous))
    for c in discrete:
        f = facts[c]
        known = ~f["null"]
        y = np.asarray(f["codes"])[known]
        if f["kind"] == "bool":
            y = y.astype(bool).astype(np.int64)
        width = 2 if f["kind"] == "bool" else len(f["dist"].values)
        if feats:
            x = np.column_stack([v for _, _, v, _ in feats])
            leaf = leaf_size(x[known], y, width, min_support, bin_support, seed)
            leaf = min(leaf, (leaf_min or {}).get(c, leaf))  # iterate may ask for smaller leaves, never larger
            tree = DecisionTreeClassifier(criterion="entropy", min_samples_leaf=leaf, random_state=seed).fit(x[known], y)
            leaves = _leaves(tree, feats)
            leaf_of = tree.apply(x[known])
            counts = np.array([np.bincount(y[leaf_of == node].astype(np.int64), minlength=width) for _, node in leaves])
        else:
            leaves = [([], 0)]
            counts = np.bincount(y.astype(np.int64), minlength=width)[None, :]
        weights = pooled_counts(counts, bin_support)
        cases = []
        for i, (conds, _node) in enumerate(leaves):
            w = weights[i]
            if f["kind"] == "bool":
                dist: dict = {"kind": "bernoulli", "p": round(float(w[1] / max(w.sum(), 1e-12)), 6)}
            else:
                order = list(f["dist"].values)
                dist = {"kind": "categorical", "weights": {_clean(order[j]): _num(round(float(w[j]), 2))
                                                           for j in range(len(order)) if w[j] > 0}}
            case: dict = {"distribution": dist}
            if conds and i < len(leaves) - 1:
                case = {"when": " and ".join(conds), **case}
            cases.append(case)
        cols[c].pop("distribution", None)
        cols[c]["cases"] = cases
        if known.all():  # a column with missing values is no condition for the others
            order_labels = [_clean(v) for v in f["dist"].values] if f["kind"] == "cat" else []
            feats.append((c, "code" if f["kind"] == "cat" else "bool", y.astype(float), order_labels))


MAX_SUM_COLUMNS = 12  # sums of pairs are offered to the trees when at most this many columns qualify


def sum_features(facts: dict[str, dict], continuous: list[str]) -> list[tuple[str, str, np.ndarray, list]]:
    """Sums of two complete numeric columns on one scale (medians within a factor of 10), offered to
    the decision trees beside the columns themselves: a category decided by a total (FLCHAIN's
    ``flc_grp``, the decile of kappa + lambda; a score's band from its parts) is one split on the sum,
    which axis-parallel splits on the parts only approximate in steps — the fabricated rows' group
    then disagrees with their total where a forest finds it. A leaf's condition reads
    ``kappa + lambda_ > 2.33``. Offered in tables of more than ``SMALL_LEAF_ROWS`` rows only (on
    WHAS500's 250-row halves the membership-inference AUC rose from 0.549 to 0.555 with them)."""
    cols = [c for c in continuous if facts[c]["kind"] == "num" and not facts[c]["null"].any()]
    if not 2 <= len(cols) <= MAX_SUM_COLUMNS:
        return []
    out = []
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            xa, xb = np.asarray(facts[a]["codes"], dtype=float), np.asarray(facts[b]["codes"], dtype=float)
            ma, mb = np.median(np.abs(xa)), np.median(np.abs(xb))
            if ma <= 0 or mb <= 0 or max(ma, mb) > 10 * min(ma, mb):
                continue
            out.append((f"{a} + {b}", "num", xa + xb, []))
    return out


def pooled_counts(counts: np.ndarray, k: int = BIN_SUPPORT) -> np.ndarray:
    """Leaf × category counts as the project may state them: a count below ``k`` (it would describe
    fewer than ``k`` patients) is not written; instead each category's suppressed counts are pooled
    over the leaves and, when the pool holds ≥ ``k`` rows, spread back over the leaves that had fewer
    than ``k`` of it, in proportion to their size. So no stated weight describes fewer than ``k``
    patients, yet a category that is rare in every leaf keeps its overall share (zeroing every small
    count would sharpen each leaf towards its common categories — rare categories would vanish)."""
    c = np.asarray(counts, dtype=float)
    kept = np.where(c >= k, c, 0.0)
    small = c < k
    size = c.sum(axis=1)
    out = kept.copy()
    for j in range(c.shape[1]):
        pool = float((c[:, j] * small[:, j]).sum())
        if pool < k or not small[:, j].any():
            continue
        share = size * small[:, j]
        out[:, j] += pool * share / max(share.sum(), 1e-12)
    empty = out.sum(axis=1) <= 0
    if empty.any():  # a leaf left with nothing: the column's stated (≥ k) marginal
        out[empty] = np.maximum(kept.sum(axis=0), 0) if kept.any() else c.sum(axis=0)
    return out


LEAF_SIZES = (10, 15, 20, 30, 45, 70, 100, 150)  # candidate leaf sizes of the decision trees
SMALL_LEAF_ROWS = 2000  # leaves smaller than MIN_SUPPORT only in tables larger than this


def leaf_size(x: np.ndarray, y: np.ndarray, width: int, largest: int = MIN_SUPPORT, bin_support: int = BIN_SUPPORT,
              seed: int = 0, rows: int = 4000) -> int:
    """The decision tree's smallest leaf, chosen by held-out log-likelihood of the leaves' category
    weights as the project states them (:func:`pooled_counts`) — big tables afford small leaves, small
    ones need large leaves — among sizes from ``largest`` × 2,000 / n (never below 2 × ``bin_support``,
    never above ``largest``) up to n / 8."""
    from sklearn.tree import DecisionTreeClassifier

    n = len(y)
    # below ``largest`` only with many rows: a small table's small leaves would describe its patients
    # too closely (membership inference), so leaves shrink with n: 30 rows up to 2,000 rows, 15 at 4,000
    smallest = max(2 * bin_support, min(largest, round(largest * SMALL_LEAF_ROWS / max(n, 1))))
    sizes = [s for s in LEAF_SIZES if smallest <= s <= max(largest, n // 8)] or [max(largest, 2 * bin_support)]
    if len(sizes) == 1 or n < 6 * sizes[0]:
        return largest
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n)[: min(n, rows)]
    cut = len(idx) * 2 // 3
    tr, te = idx[:cut], idx[cut:]
    best, best_ll = largest, -np.inf
    for s in sizes:
        tree = DecisionTreeClassifier(criterion="entropy", min_samples_leaf=s, random_state=seed).fit(x[tr], y[tr])
        leaf_tr, leaf_te = tree.apply(x[tr]), tree.apply(x[te])
        nodes, inv = np.unique(leaf_tr, return_inverse=True)
        counts = np.zeros((len(nodes), width))
        np.add.at(counts, (inv, y[tr].astype(np.int64)), 1)
        w = pooled_counts(counts, bin_support) + 1e-3
        p = w / w.sum(axis=1, keepdims=True)
        ll = float(np.mean(np.log(p[np.searchsorted(nodes, leaf_te), y[te].astype(np.int64)])))
        if ll > best_ll:
            best, best_ll = s, ll
    return best


def _conditional_continuous(cols: dict[str, dict], facts: dict[str, dict], targets: list[str], copula: list[str],
                            comp: str | None, labels: np.ndarray, min_support: int, leaves: dict[str, int], seed: int,
                            bin_support: int) -> None:
    """A continuous column taken out of the copula (an ``iterate`` refinement) becomes ``cases``: the
    leaves of a regression tree (every leaf ≥ its support) over the component and the copula's
    columns, each leaf drawing from a support histogram of its own known values."""
    from sklearn.tree import DecisionTreeRegressor

    feats: list[tuple[str, str, np.ndarray, list]] = []
    if comp is not None:
        feats.append((comp, "code", labels.astype(float), [f"c{j + 1}" for j in range(int(labels.max()) + 1)]))
    for c in copula:
        feats.append((c, facts[c]["kind"], np.asarray(facts[c].get("filled", facts[c]["codes"]), dtype=float), []))
    x = np.column_stack([v for _, _, v, _ in feats])
    for c in targets:
        f = facts[c]
        known = ~f["null"]
        y = np.asarray(f["codes"], dtype=float)[known]
        tree = DecisionTreeRegressor(min_samples_leaf=leaves.get(c, min_support), random_state=seed).fit(x[known], y)
        leaf_of = tree.apply(x[known])
        integer = f["kind"] == "date" or bool(f.get("integer"))
        cases = []
        paths = _leaves(tree, feats)
        for i, (conds, node) in enumerate(paths):
            edges, weights = support_histogram(y[leaf_of == node], integer, bin_support, step=f.get("step", 1.0))
            dist = {"kind": "histogram", "edges": edges, "weights": weights}
            case: dict = {"distribution": dist}
            if conds and i < len(paths) - 1:
                case = {"when": " and ".join(conds), **case}
            cases.append(case)
        cols[c].pop("distribution", None)
        cols[c]["cases"] = cases
        cols[c]["description"] = (cols[c].get("description", "") + "; drawn from regression-tree leaves over the "
                                  "other columns (refined by iterate)").lstrip("; ")


def _leaves(tree, feats) -> list[tuple[list[str], int]]:
    """(path conditions as expressions, node id) for every leaf of a fitted tree. A path states each
    column once: the tightest bounds of a number, the remaining values of a category (``==`` for
    one, ``not in`` when that is shorter), thresholds written with 6 significant digits."""
    t = tree.tree_
    out: list[tuple[list[str], int]] = []

    def render(state: dict[int, Any]) -> list[str]:
        parts = []
        for j in sorted(state):
            name, kind, _values, labels_ = feats[j]
            v = state[j]
            if kind == "code":
                keep = sorted(v)
                if len(keep) == 1:
                    parts.append(f"{name} == {_literal(labels_[keep[0]])}")
                else:
                    drop = [k for k in range(len(labels_)) if k not in v]
                    if len(drop) < len(keep):
                        parts.append(f"{name} not in [{', '.join(_literal(labels_[k]) for k in drop)}]")
                    else:
                        parts.append(f"{name} in [{', '.join(_literal(labels_[k]) for k in keep)}]")
            elif kind == "bool":
                parts.append(name if v else f"not {name}")
            else:
                lo, hi = v
                show = (lambda x: f"date('{np.datetime64(int(np.floor(x)), 'D')}')") if kind == "date" else (
                    lambda x: str(_num(float(f"{x:.6g}"))))
                if lo is not None:
                    parts.append(f"{name} > {show(lo)}")
                if hi is not None:
                    parts.append(f"{name} <= {show(hi)}")
        return parts

    def step(state: dict[int, Any], j: int, thr: float, left: bool) -> dict[int, Any]:
        name, kind, _values, labels_ = feats[j]
        new = dict(state)
        if kind == "code":
            new[j] = {k for k in new.get(j, set(range(len(labels_)))) if (k <= thr) == left}
        elif kind == "bool":
            new[j] = not left
        else:
            lo, hi = new.get(j, (None, None))
            new[j] = (lo, thr if hi is None else min(hi, thr)) if left else (thr if lo is None else max(lo, thr), hi)
        return new

    def walk(node: int, state: dict[int, Any]) -> None:
        if t.children_left[node] == -1:
            out.append((render(state), node))
            return
        j, thr = int(t.feature[node]), float(t.threshold[node])
        walk(int(t.children_left[node]), step(state, j, thr, True))
        walk(int(t.children_right[node]), step(state, j, thr, False))

    walk(0, {})
    return out
