"""Fabricating one table of one batch: structure, proposals, then the solver's repair.

The order follows the DFP fabrication pattern: rows (per table, per parent row, or expanded
against a reference table), then columns in dependency order — a copula group of correlated
columns is drawn as one step — then nulls, then every hard rule is checked vectorised and the rows
that break one go to the MiniZinc repair (:mod:`fabrication.solver`). Derived columns are
recomputed from the repaired values and everything is checked again; what still fails after a few
rounds stops the run with the rule's name, never a silently dropped row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from . import expr as E
from . import patterns
from .data import TableData, TableEnv
from .distributions import Dist
from .model import Column, CorrGroup, Project, Rule, Table

log = logging.getLogger(__name__)

MAX_ROUNDS = 4


class FabricationError(RuntimeError):
    """Fabrication cannot deliver the rows asked for; the message names the rule and why."""


class UnsatisfiableRuleError(FabricationError):
    def __init__(self, table: str, rules: list[str], detail: str):
        self.table, self.rules, self.detail = table, rules, detail
        super().__init__(f"unsatisfiable rule(s) in {table}: {', '.join(rules)} — {detail}")


@dataclass
class RepairStats:
    rows_checked: int = 0
    rows_repaired: int = 0
    solver_calls: int = 0
    solver_seconds: float = 0.0
    redrawn: int = 0
    per_rule: dict[str, int] = field(default_factory=dict)

    def add(self, other: RepairStats) -> None:
        self.rows_checked += other.rows_checked
        self.rows_repaired += other.rows_repaired
        self.solver_calls += other.solver_calls
        self.solver_seconds += other.solver_seconds
        self.redrawn += other.redrawn
        for k, v in other.per_rule.items():
            self.per_rule[k] = self.per_rule.get(k, 0) + v


# ---------------------------------------------------------------------------- value conversion


def round_significant(x: np.ndarray, digits: int) -> np.ndarray:
    """``x`` rounded to ``digits`` significant digits (0 stays 0): 0.7912 → 0.791, 2.4137 → 2.41 for 3."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(np.where(np.isfinite(x) & (x != 0), x, 1.0))))
    scale = 10.0 ** (digits - 1 - mag)
    return np.where(np.isfinite(x) & (x != 0), np.round(x * scale) / scale, x)


def coerce(col: Column, raw: np.ndarray, dist: Dist | None = None) -> np.ndarray:
    """Drawn values (floats, or indices into a categorical's values) → the column's internal dtype."""
    t = col.type
    if dist is not None and dist.kind == "categorical":
        idx = np.asarray(raw, dtype=np.int64)
        if t == E.T.CATEGORICAL:
            pos = {c: i for i, c in enumerate(col.categories or ())}
            codes = np.array([pos[str(v)] for v in dist.values], dtype=np.int64)
            return codes[idx]
        if t == E.T.STRING:
            return np.asarray([str(v) for v in dist.values], dtype=object)[idx]
        if t == E.T.BOOL:
            return np.asarray([bool(v) for v in dist.values], dtype=bool)[idx]
        raw = np.asarray([float(v) for v in dist.values], dtype=float)[idx]
    if t == E.T.BOOL:
        return np.asarray(raw).astype(bool)
    if col.step and t in (E.T.INT, E.T.DECIMAL):  # on the column's value lattice
        raw = np.round(np.asarray(raw, dtype=float) / col.step) * col.step
    if col.significant and t in (E.T.INT, E.T.DECIMAL):  # rounded to significant digits
        raw = round_significant(np.asarray(raw, dtype=float), col.significant)
    if t in (E.T.INT, E.T.DATE, E.T.DATETIME):
        a = np.asarray(raw, dtype=float)
        return np.round(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.int64)
    if t == E.T.DECIMAL:
        return np.round(np.asarray(raw, dtype=float), col.precision)
    if t == E.T.CATEGORICAL:
        a = np.asarray(raw)
        if a.dtype == object or a.dtype.kind in "US":
            pos = {c: i for i, c in enumerate(col.categories or ())}
            return np.array([pos.get(str(v), -1) for v in a], dtype=np.int64)
        return a.astype(np.int64)
    return np.asarray(raw, dtype=object)


def constant(col: Column, value, n: int) -> np.ndarray:
    if col.type == E.T.CATEGORICAL:
        return np.full(n, (col.categories or ()).index(str(value)), dtype=np.int64)
    if col.type == E.T.STRING:
        return np.full(n, str(value), dtype=object)
    return coerce(col, np.full(n, value, dtype=float if not isinstance(value, bool) else bool))


def formula_to_column(col: Column, node: E.Node, vals: np.ndarray) -> np.ndarray:
    """A formula's value → the column type (e.g. a categorical copied from another category set)."""
    t = node.t
    if col.type == E.T.CATEGORICAL and t is not None and t.type == E.T.CATEGORICAL and t.categories != col.categories:
        labels = np.asarray(t.categories, dtype=object)[vals]
        return coerce(col, labels)
    if col.type == E.T.CATEGORICAL and t is not None and t.type == E.T.STRING:
        return coerce(col, vals)
    if col.type == E.T.STRING and t is not None and t.type == E.T.CATEGORICAL:
        return np.asarray(t.categories, dtype=object)[vals]
    if col.type == E.T.STRING and t is not None and t.type != E.T.STRING:
        if t.type == E.T.DATE:
            return E.days_to_iso(vals).astype(object)
        return np.asarray([str(v) for v in vals.tolist()], dtype=object)
    return coerce(col, vals)


# ---------------------------------------------------------------------------- copula


def latent_correlation(group: CorrGroup, table: Table) -> np.ndarray:
    """The normal-scale correlation that gives the asked one on the columns' own marginals."""
    if group.latent is not None:
        return group.latent
    k = len(group.columns)
    m = np.eye(k)
    dists = [table.columns[c].dist for c in group.columns]  # None for a column drawn by cases
    z = np.random.default_rng(12345).standard_normal((20000, 2))
    for a in range(k):
        for b in range(a + 1, k):
            rho = float(group.matrix[a, b])
            if group.method == "copula":
                r = rho  # already the normal-scale (Gaussian copula) correlation
            elif group.method == "spearman" or dists[a] is None or dists[b] is None:
                r = 2 * np.sin(np.pi * rho / 6)
            else:
                r = _calibrate_pearson(rho, dists[a], dists[b], z)  # type: ignore[arg-type]
            m[a, b] = m[b, a] = r
    # nearest positive semi-definite matrix (eigenvalue clipping), rescaled to a correlation matrix
    w, v = np.linalg.eigh(m)
    if w.min() < 1e-8:
        log.warning("correlation targets of %s are not jointly possible; using the nearest valid matrix", group.rule)
        w = np.clip(w, 1e-6, None)
        m = v @ np.diag(w) @ v.T
        d = np.sqrt(np.diag(m))
        m = m / np.outer(d, d)
    group.latent = m
    return m


def _calibrate_pearson(rho: float, da: Dist, db: Dist, z: np.ndarray) -> float:
    if da.kind == "normal" and db.kind == "normal":
        return rho
    ua = stats.norm.cdf(z[:, 0])
    fa = np.asarray(da.ppf(ua), dtype=float)

    def achieved(r: float) -> float:
        zb = r * z[:, 0] + np.sqrt(max(1 - r * r, 0.0)) * z[:, 1]
        fb = np.asarray(db.ppf(stats.norm.cdf(zb)), dtype=float)
        if fa.std() == 0 or fb.std() == 0:
            return 0.0
        return float(np.corrcoef(fa, fb)[0, 1])

    lo, hi = -0.999, 0.999
    for _ in range(30):
        mid = (lo + hi) / 2
        if achieved(mid) < rho:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ---------------------------------------------------------------------------- rows


class CrossEnv:
    """Environment over parent × expansion-table pairs, for ``expand.when``."""

    def __init__(self, penv: TableEnv, expand: str, xdata: TableData, pi: np.ndarray, xi: np.ndarray):
        self.penv, self.expand, self.xdata, self.pi, self.xi = penv, expand, xdata, pi, xi
        self.n = len(pi)

    def get(self, col: E.Col) -> E.Vec:
        if col.table == self.expand:
            m = self.xdata.null(col.name)
            return self.xdata.values[col.name][self.xi], (m[self.xi] if m is not None else None)
        v, m = self.penv.get(col)
        return v[self.pi], (m[self.pi] if m is not None else None)

    def lookup(self, table, column, key, key_t):
        return self.penv.lookup(table, column, key, key_t)

    def groups(self):
        return self.pi


def make_rows(project: Project, t: Table, data: dict[str, TableData], rng: np.random.Generator,
              root_n: int | None) -> TableData:
    if t.parent is None:
        return TableData(t.name, int(root_n or 0))
    parent_t = project.tables[t.parent]
    pdata = data[t.parent]
    penv = TableEnv(project, parent_t, data)
    if t.expand:
        xdata = data[t.expand]
        pi = np.repeat(np.arange(pdata.n), xdata.n)
        xi = np.tile(np.arange(xdata.n), pdata.n)
        if t.expand_when is not None:
            v, m = E.evaluate(t.expand_when, CrossEnv(penv, t.expand, xdata, pi, xi))
            keep = v.astype(bool) & (~m if m is not None else True)
            pi, xi = pi[keep], xi[keep]
        return TableData(t.name, len(pi), parent_idx=pi, expand_idx=xi)
    c = t.count
    if isinstance(c, int):
        counts = np.full(pdata.n, c, dtype=np.int64)
    elif isinstance(c, Dist):
        raw = c.sample(rng, pdata.n)
        if c.kind == "categorical":
            raw = np.asarray([float(x) for x in c.values])[np.asarray(raw, dtype=np.int64)]
        counts = np.round(np.asarray(raw, dtype=float)).astype(np.int64)
    else:
        v, m = E.evaluate(c, penv)
        counts = np.asarray(v).astype(np.int64)
        if m is not None:
            counts = np.where(m, 0, counts)
    counts = np.clip(counts, 0, None)
    pidx = np.repeat(np.arange(pdata.n), counts)
    return TableData(t.name, len(pidx), parent_idx=pidx)


# ---------------------------------------------------------------------------- columns


def _draw(col: Column, case, env: TableEnv, rng: np.random.Generator, rows: np.ndarray, u: np.ndarray | None = None):
    n = len(rows)
    if case.kind == "value":
        return constant(col, case.value, n)
    if case.kind == "formula":
        sub = TableEnv(env.project, env.table, env.data, rows)
        vals, _ = E.evaluate(case.formula, sub)
        return formula_to_column(col, case.formula, vals)
    if case.kind == "pattern":
        sub = TableEnv(env.project, env.table, env.data, rows)

        def column(name: str):
            node = E.parse(name)
            E.typecheck(node, _ScopeOfEnv(env))
            v, _ = E.evaluate(node, sub)
            if node.t is not None and node.t.type == E.T.CATEGORICAL:
                v = np.asarray(node.t.categories, dtype=object)[v]
                return v, "string"
            return v, (node.t.type.value if node.t is not None else "string")

        def parity(text: str):
            node = E.parse(text)
            E.typecheck(node, _ScopeOfEnv(env))
            return E.evaluate(node, sub)[0]

        out = patterns.generate(case.pattern, rng, n, column, parity)
        return coerce(col, out) if col.type == E.T.CATEGORICAL else out
    dist: Dist = case.dist
    raw = dist.ppf(u) if u is not None else dist.sample(rng, n)
    if dist.kind == "bernoulli":
        raw = np.asarray(raw, dtype=bool)
    if case.base is not None:
        sub = TableEnv(env.project, env.table, env.data, rows)
        b, _ = E.evaluate(case.base, sub)
        raw = np.asarray(raw, dtype=float) + np.asarray(b, dtype=float)
    return coerce(col, raw, dist if case.base is None else None)


class _ScopeOfEnv:
    """A resolver built from an environment's project, for small expressions inside patterns."""

    def __init__(self, env: TableEnv):
        from .model import _Scope

        self._s = _Scope(env.project.tables, env.table)

    def column(self, t, n):
        return self._s.column(t, n)

    def lookup(self, t, c):
        return self._s.lookup(t, c)


def _empty(col: Column, n: int) -> np.ndarray:
    if col.type in (E.T.STRING,):
        return np.full(n, "", dtype=object)
    if col.type == E.T.DECIMAL:
        return np.zeros(n, dtype=float)
    if col.type == E.T.BOOL:
        return np.zeros(n, dtype=bool)
    return np.zeros(n, dtype=np.int64)


def generate_column(col: Column, env: TableEnv, rng: np.random.Generator, u: np.ndarray | None = None,
                    rows: np.ndarray | None = None) -> None:
    """Fill ``col`` (for ``rows``, default all) in ``env``'s table data."""
    td = env.td
    n = td.n
    rows = np.arange(n) if rows is None else rows
    out = td.values.get(col.name)
    if out is None or len(out) != n:
        out = _empty(col, n)
    nulls = np.zeros(n, dtype=bool) if col.name not in td.nulls else td.nulls[col.name]
    g = col.gen
    if g == "sequence":
        s = col.sequence
        if s.per_parent:
            vals = (E._groups_start(td.parent_idx) * -1 + np.arange(n)) * s.step + s.start  # type: ignore[arg-type]
        else:
            vals = np.arange(n) * s.step + s.start
        out = vals[rows] if col.type == E.T.INT else np.asarray(
            [s.format.format(v) if s.format else str(v) for v in vals[rows].tolist()], dtype=object)
        full = _empty(col, n)
        full[rows] = out
        td.values[col.name] = full
        return
    if g == "references":
        rt, rc = col.ref  # type: ignore[misc]
        if col.ref_structural:
            idx = env.index_to(rt)[rows]
            vals = env.data[rt].values[rc][idx]
            m = env.data[rt].null(rc)
            if m is not None:
                nulls[rows] = m[idx]
        else:
            other = env.data[rt]
            pick = rng.integers(0, max(other.n, 1), len(rows))
            vals = other.values[rc][pick] if other.n else _empty(col, len(rows))
        out[rows] = vals
        td.values[col.name] = out
        td.nulls[col.name] = nulls
        return
    if g == "source":
        td.values[col.name] = out
        return
    if g == "cases":
        remaining = rows.copy()
        u_at = None
        if u is not None:  # copula uniforms given for ``rows``: look them up by row number
            u_at = np.empty(n)
            u_at[rows] = u
        sub = TableEnv(env.project, env.table, env.data, None)
        for case in col.cases:
            if not len(remaining):
                break
            if case.when is None:
                pick = remaining
            else:
                sub.rows = remaining
                sub.n = len(remaining)
                sub._idx_cache = {}
                v, m = E.evaluate(case.when, sub)
                sel = v.astype(bool) & (~m if m is not None else True)
                pick = remaining[sel]
            if len(pick):
                out[pick] = _draw(col, case, env, rng, pick, u_at[pick] if u_at is not None and case.kind == "distribution" else None)
            remaining = np.setdiff1d(remaining, pick, assume_unique=True)
        if len(remaining):
            nulls[remaining] = True  # no case applies: null (reported by the not-null rule if not allowed)
    else:
        case = col.cases[0]
        vals = _draw(col, case, env, rng, rows, u)
        out[rows] = vals
        if case.kind == "formula":
            sub = TableEnv(env.project, env.table, env.data, rows)
            _, m = E.evaluate(case.formula, sub)
            nulls[rows] = m if m is not None else False
    td.values[col.name] = out
    td.nulls[col.name] = nulls


def apply_nulls(col: Column, env: TableEnv, rng: np.random.Generator) -> None:
    """Exact null counts: the ``when`` rows, topped up at random to ``ratio`` of the batch."""
    if not col.nullable:
        return
    td = env.td
    n = td.n
    forced = np.zeros(n, dtype=bool)
    if col.null_when is not None:
        v, m = E.evaluate(col.null_when, env)
        forced = v.astype(bool) & (~m if m is not None else True)
    mask = forced.copy()
    if col.null_ratio is not None:
        k = int(round(col.null_ratio * n))
        extra = k - int(forced.sum())
        if extra > 0:
            cand = np.flatnonzero(~forced)
            mask[rng.choice(cand, size=min(extra, len(cand)), replace=False)] = True
    td.explicit_nulls[col.name] = mask
    td.nulls[col.name] = td.nulls.get(col.name, np.zeros(n, dtype=bool)) | mask


def copula_uniforms(groups: list[CorrGroup], t: Table, env: TableEnv, rng: np.random.Generator) -> np.ndarray:
    """Uniforms (rows × columns) for one copula step: each row takes the latent normals of the
    first group whose condition it meets; rows that meet none are drawn independently."""
    n, k = env.td.n, len(groups[0].columns)
    z = rng.standard_normal((n, k))
    free = np.ones(n, dtype=bool)
    for g in groups:
        if g.when is None:
            sel = free.copy()
        else:
            v, m = E.evaluate(g.when, env)
            sel = free & v.astype(bool) & (~m if m is not None else True)
        if sel.any():
            lat = latent_correlation(g, t)
            z[sel] = z[sel] @ np.linalg.cholesky(lat + 1e-12 * np.eye(len(lat))).T
        free &= ~sel
    return stats.norm.cdf(z)


def generate_step(step: list[str], t: Table, env: TableEnv, rng: np.random.Generator) -> list[Column]:
    """Draw one step's columns and apply their nulls; returns the columns whose null condition reads
    columns not generated yet (their nulls are applied by :func:`apply_pending_nulls`)."""
    groups = [g for g in t.corr if step[0] in g.columns]
    pending: list[Column] = []
    if groups and set(step) <= set(groups[0].columns):
        group = groups[0]
        u = copula_uniforms([g for g in groups if g.columns == group.columns], t, env, rng)
        cols = [(t.columns[c], u[:, j]) for j, c in enumerate(group.columns)]
    else:
        cols = [(t.columns[c], None) for c in step]
    for col, uj in cols:
        generate_column(col, env, rng, u=uj)
        pending.append(col)
    return apply_pending_nulls(pending, env, rng)


def apply_pending_nulls(pending: list[Column], env: TableEnv, rng: np.random.Generator) -> list[Column]:
    """Apply the nulls of every pending column whose condition's columns now exist; the rest wait."""
    waiting = []
    for col in pending:
        if col.null_deps - set(env.td.values):
            waiting.append(col)
        else:
            apply_nulls(col, env, rng)
    return waiting


def rederive(t: Table, env: TableEnv, rng: np.random.Generator, changed: set[str]) -> set[str]:
    """Recompute derived columns whose inputs the solver changed (formulas, patterns, copies)."""
    out = set(changed)
    for step in t.order:
        for cname in step:
            col = t.columns[cname]
            if col.null_when is not None and col.null_deps & out:
                # the condition's columns moved: re-apply the condition (nulls.iff stays exact)
                v, m = E.evaluate(col.null_when, env)
                forced = v.astype(bool) & (~m if m is not None else True)
                if col.null_exact:
                    env.td.nulls[cname] = forced
                    env.td.explicit_nulls[cname] = forced
                else:
                    env.td.nulls[cname] = env.td.nulls.get(cname, np.zeros(env.td.n, dtype=bool)) | forced
                out.add(cname)
            if col.sampled or cname in out or not (col.deps & out):
                continue
            if col.gen in ("formula", "pattern", "cases"):
                keep = env.td.explicit_nulls.get(cname)
                env.td.nulls.pop(cname, None)
                generate_column(col, env, rng)
                if keep is not None:
                    env.td.nulls[cname] = env.td.nulls.get(cname, np.zeros(env.td.n, dtype=bool)) | keep
                if col.null_when is not None:
                    v, m = E.evaluate(col.null_when, env)
                    forced = v.astype(bool) & (~m if m is not None else True)
                    env.td.nulls[cname] = env.td.nulls.get(cname, np.zeros(env.td.n, dtype=bool)) | forced
                out.add(cname)
    return out


# ---------------------------------------------------------------------------- checks


def check_rule(rule: Rule, env: TableEnv) -> np.ndarray:
    """Per-row pass mask of a row-level rule (SQL semantics: null passes)."""
    if rule.kind == "format":
        col = env.table.columns[rule.columns[0]]
        v, m = env.get(E.Col(None, col.name))
        if col.type == E.T.CATEGORICAL:
            v = np.asarray(col.categories, dtype=object)[v]
        import re

        rx = re.compile(rule.params["regex"])
        ok = np.fromiter((bool(rx.fullmatch(str(s))) for s in v), dtype=bool, count=len(v))
        return ok | (m if m is not None else False)
    if rule.kind == "not_null":
        m = env.td.null(rule.columns[0])
        ok = np.ones(env.td.n, dtype=bool) if m is None else ~m
        return ok if env.rows is None else ok[env.rows]
    assert rule.expr is not None
    v, m = E.evaluate(rule.expr, env)
    ok = v.astype(bool)
    return ok | m if m is not None else ok


def check_increasing(rule: Rule, t: Table, td: TableData) -> np.ndarray:
    """Per-row pass mask: the row's value exceeds the previous row's in its group by order_by."""
    p = rule.params
    order = _group_order(t, td, p)
    v = td.values[p["column"]][order].astype(float)
    same = _same_group(t, td, p, order)
    diff = np.diff(v)
    bad = same & ((diff <= 0) if p["strict"] else (diff < 0))
    ok = np.ones(td.n, dtype=bool)
    ok[order[1:][bad]] = False
    return ok


def _group_keys(t: Table, td: TableData, per: list[str]) -> list[np.ndarray]:
    keys = []
    for c in per:
        v = td.values[c]
        if v.dtype == object:
            _, v = np.unique(v.astype(str), return_inverse=True)
        keys.append(v)
    return keys


def _group_order(t, td, p) -> np.ndarray:
    keys = _group_keys(t, td, p["per"])
    return np.lexsort([td.values[p["order_by"]], *reversed(keys)]) if keys else np.argsort(td.values[p["order_by"]], kind="stable")


def _same_group(t, td, p, order) -> np.ndarray:
    same = np.ones(max(td.n - 1, 0), dtype=bool)
    for k in _group_keys(t, td, p["per"]):
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    return same


def fix_increasing(rule: Rule, t: Table, td: TableData) -> int:
    """Sort a sampled column's values within each group along order_by (a permutation: the
    column's distribution is untouched), then lift ties for strictness. Returns rows changed."""
    p = rule.params
    col = t.columns[p["column"]]
    if not col.sampled:
        return 0
    order = _group_order(t, td, p)
    same = _same_group(t, td, p, order)
    gid = np.r_[0, np.cumsum(~same)]
    v = td.values[col.name][order]
    sorted_v = v[np.lexsort([v, gid])]
    if p["strict"]:
        step = 1 if col.type != E.T.DECIMAL else 1 / col.scale
        sv = sorted_v.astype(float)
        for _ in range(len(sv)):
            tie = np.r_[False, (np.diff(sv) <= 0) & (gid[1:] == gid[:-1])]
            if not tie.any():
                break
            prev = np.r_[sv[0], sv[:-1]]
            sv = np.where(tie, prev + step, sv)
        sorted_v = sv.astype(td.values[col.name].dtype)
    changed = int((sorted_v != v).sum())
    td.values[col.name][order] = sorted_v
    return changed


def _label(col: Column, v) -> str:
    """A stored value as the user wrote it (a category's name, not its code)."""
    if col.type == E.T.CATEGORICAL:
        return str((col.categories or ())[int(v)])
    if col.type == E.T.BOOL:
        return str(bool(v))
    if col.type == E.T.DATE:
        return str(E.days_to_iso(np.array([v]))[0])
    v = v.item() if hasattr(v, "item") else v
    return str(v)


def coverage_labels(rule: Rule, t: Table, group: tuple, combos: list[tuple] | None = None) -> tuple[str, list[str]]:
    """A coverage group and combinations in labels: (``site = 'a'``, [``regimen = 'TC'`` …])."""
    per = rule.params["per"]
    g = ", ".join(f"{c} = {_label(t.columns[c], v)!r}" for c, v in zip(per, group, strict=True)) or "the whole table"
    cols = rule.params["columns"]
    shown = [" × ".join(f"{c} = {_label(t.columns[c], v)!r}" for c, v in zip(cols, cmb, strict=True))
             for cmb in combos or []]
    return g, shown


def coverage_missing(rule: Rule, t: Table, td: TableData, rows: np.ndarray | None = None):
    """{group key: list of missing combinations} (combinations as tuples of codes)."""
    cols = rule.params["columns"]
    per = rule.params["per"]
    sizes = [len(t.columns[c].categories or ()) if t.columns[c].type == E.T.CATEGORICAL else 2 for c in cols]
    allc = {tuple(x) for x in np.array(np.meshgrid(*[np.arange(s) for s in sizes])).T.reshape(-1, len(cols))}
    idx = np.arange(td.n) if rows is None else rows
    vals = np.stack([td.values[c][idx].astype(np.int64) for c in cols], axis=1) if len(idx) else np.zeros((0, len(cols)))
    nul = np.zeros(len(idx), dtype=bool)
    for c in cols:
        m = td.null(c)
        if m is not None:
            nul |= m[idx]
    gkeys = [td.values[c][idx] for c in per]
    groups: dict[tuple, list[int]] = {}
    for i in range(len(idx)):
        if nul[i]:
            continue
        groups.setdefault(tuple(k[i] for k in gkeys), []).append(i)
    if not per:
        groups.setdefault((), [])
    out = {}
    for g, members in groups.items():
        present = {tuple(r) for r in vals[members]} if members else set()
        miss = sorted(allc - present)
        if miss:
            out[g] = (miss, [int(idx[m]) for m in members], len(allc))
    return out
