"""The constraint step: MiniZinc (Gecode) makes every hard rule hold, staying close to the proposal.

For a batch of rows the CSP is: one integer variable per (row, free column) whose *proposal* is the
sampled value; every compilable rule of the table as a constraint per row; a deviation variable
``a_c = |x_c − p_c|`` per free cell (a changed category or boolean counts 1). The search is
nearest-first, row by row: deviations in order of their cost per unit (a one-standard-deviation
move of a number costs about as much as changing a category, so categories are kept and numbers
nudged when both would do), each as small as propagation permits. Rows that already satisfy every
rule are at distance 0 and are not touched at all — that is why distributions survive.

Rows are independent under row-level rules, so the batch CSP decomposes: only rows that break a
rule are sent to the solver (fixed cells are data, not variables). First only the columns of the
broken rules are free; if that is infeasible every sampled column of the row is; if that fails too,
the rows are bisected down to single rows and a deletion filter names the smallest set of rules
that cannot hold together — the error the user sees.

Linear comparisons over decimal columns are compiled to exact integer constraints (see
``expr._mz_linear_cmp``); only genuinely non-linear ones (sqrt, products of variables) use floats.

Gecode gets ``-c-d 1000 -a-d 1000`` (copy/adaptive recomputation distance): without them its memory
grows with the search depth, which is the number of rows in a batch.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from math import gcd

import numpy as np

from . import expr as E
from .data import TableData, TableEnv
from .generate import RepairStats, UnsatisfiableRuleError
from .model import Project, Rule, Table

log = logging.getLogger(__name__)

GECODE_FLAGS = {"-c-d": "1000", "-a-d": "1000"}
COST_UNIT = 1000  # cost of a one-sd move, and of changing a category (orders the search)
TIME_LIMIT_S = 120.0


class SolverUnavailable(RuntimeError):
    pass


_DRIVER: str | None = None


def driver() -> str:
    """Path of the MiniZinc driver, found through the minizinc Python package (checked once)."""
    global _DRIVER
    if _DRIVER is None:
        try:
            import minizinc
        except ImportError as exc:  # pragma: no cover - dependency of the project
            raise SolverUnavailable("the minizinc Python package is not installed") from exc
        drv = minizinc.default_driver
        if drv is None:
            raise SolverUnavailable("MiniZinc is not installed (Debian: apt-get install minizinc)")
        try:
            minizinc.Solver.lookup("gecode")
        except LookupError as exc:
            raise SolverUnavailable("MiniZinc has no Gecode solver (Debian: apt-get install minizinc)") from exc
        _DRIVER = str(drv._executable)
    return _DRIVER


def run_minizinc(model: str, data: dict, seed: int = 0, time_limit_s: float = TIME_LIMIT_S) -> dict | None:
    """Solve with Gecode; the first solution's variables, or None when unsatisfiable or timed out.

    The driver is run directly (model and JSON data in a temporary directory, JSON output): the
    Python package's asyncio wrapper and its model-interface analysis cost a second process per
    call, which dominated the run time of many small batch CSPs."""
    with tempfile.TemporaryDirectory(prefix="serums-mzn-") as tmp:
        mzn = os.path.join(tmp, "model.mzn")
        dat = os.path.join(tmp, "data.json")
        with open(mzn, "w") as fh:
            fh.write(model)
        with open(dat, "w") as fh:
            json.dump(data, fh)
        cmd = [driver(), "--solver", "gecode", *[x for kv in GECODE_FLAGS.items() for x in kv],
               "-r", str(int(seed) % (2**31 - 1)), "--time-limit", str(int(time_limit_s * 1000)),
               "--output-mode", "json", "--soln-sep", "", "--search-complete-msg", "COMPLETE",
               "--unsat-msg", "UNSATISFIABLE", "--unknown-msg", "UNKNOWN", mzn, dat]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=time_limit_s + 60)
    out = proc.stdout.strip()
    if proc.returncode != 0 or out.startswith("=====ERROR") or (not out and proc.stderr.strip()):
        err = "\n".join(line for line in proc.stderr.splitlines() if "Warning" not in line and "deprecated" not in line)
        raise RuntimeError(f"MiniZinc failed: {err.strip() or out}\n--- model ---\n{model}")
    if not out or out.startswith(("UNSATISFIABLE", "UNKNOWN", "=====")):
        return None
    start = out.find("{")
    end = out.find("}\n", start)
    body = out[start:] if end < 0 else out[start : end + 1]
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return json.loads(out[start : out.rfind("}") + 1])


# ---------------------------------------------------------------------------- scope


class _Scope:
    def __init__(self, project: Project, t: Table, data: dict[str, TableData], rows: np.ndarray,
                 var_cols: list[str]):
        self.project, self.t, self.rows = project, t, rows
        self.env = TableEnv(project, t, data, rows)
        self.var_cols = set(var_cols)
        self.params: dict[str, tuple[list, str]] = {}
        self._dep: dict[int, bool] = {}
        self._lookups: dict[tuple[str, str, tuple], str] = {}
        self.rounded: dict[str, tuple[str, Fraction]] = {}
        self.bounds: dict[str, int] = {}
        self.extra_decls: list[str] = []
        self.extra_cons: list[str] = []

    def depends(self, node: E.Node) -> bool:
        key = id(node)
        if key in self._dep:
            return self._dep[key]
        if isinstance(node, E.Call) and node.fn in ("is_null", "not_null"):
            out = False
        elif isinstance(node, E.Col):
            out = False
            if node.table in (None, self.t.name):
                col = self.t.columns[node.name]
                if node.name in self.var_cols:
                    out = True
                elif col.gen == "formula" and col.formula is not None:
                    out = self.depends(col.formula)
        else:
            out = any(self.depends(c) for c in node.children())
        self._dep[key] = out
        return out

    def _param(self, values: list, kind: str) -> str:
        name = f"k{len(self.params)}"
        self.params[name] = (values, kind)
        if kind in ("int", "bool"):
            self.bounds[f"{name}[i]"] = max((abs(int(v)) for v in values), default=0)
        return f"{name}[i]"

    def term_bound(self, term: str) -> int:
        """Largest absolute value a term can take (for the 32-bit overflow guard)."""
        return self.bounds.get(term, 2**30)

    def fold(self, node: E.Node) -> tuple[str, str] | None:
        if self.depends(node):
            return None
        t = node.t
        if t is None or t.type == E.T.STRING:
            raise E.NotCompilable("a string value meets a solver variable")
        v, m = E.evaluate(node, self.env)
        v = np.asarray(v)
        if t.type == E.T.BOOL:
            return self._param(v.astype(bool).tolist(), "bool"), "bool"
        if t.type == E.T.DECIMAL:
            vals = np.nan_to_num(v.astype(float), nan=0.0, posinf=0.0, neginf=0.0)
            return self._param(vals.tolist(), "float"), "float"
        if t.type == E.T.CATEGORICAL:
            return self._param((v.astype(np.int64) + 1).tolist(), "int"), "int"
        return self._param(v.astype(np.int64).tolist(), "int"), "int"

    def linear_column(self, col: E.Col):
        """(term, coefficient) of a variable column in units, or the formula to expand, or None."""
        if col.table not in (None, self.t.name):
            return None
        c = self.t.columns[col.name]
        if col.name in self.var_cols:
            if c.type == E.T.CATEGORICAL:
                return None
            return f"x_{col.name}[i]", Fraction(1, c.scale)
        if c.gen == "formula" and c.formula is not None and not E.uses_window(c.formula):
            return self._rounded_formula(col.name, c) or c.formula
        return None

    def _rounded_formula(self, name: str, c):
        """A derived number is stored rounded to its column's precision, so the solver must see the
        rounded value too: ``y`` (in units) with ``2·|den·y − den·scale·expr| ≤ den`` — exact integer
        rounding of a linear formula. None when the formula is not linear."""
        if c.type not in (E.T.INT, E.T.DECIMAL):
            return None
        node = c.formula
        if isinstance(node, E.Call) and node.fn == "round":
            node = node.args[0]
        if name in self.rounded:
            return self.rounded[name]
        lin = E._lin(node, self)
        if lin is None:
            return None
        terms, const = lin
        scale = c.scale
        den = 1
        for v in [*terms.values(), const]:
            den = den * (v * scale).denominator // gcd(den, (v * scale).denominator)
        cur = np.round(np.asarray(self.env.td.values[name], dtype=float) * scale)
        lo, hi = float(cur.min(initial=0)), float(cur.max(initial=0))
        span = hi - lo + 10 * scale
        lo, hi = int(lo - 2 * span), int(hi + 2 * span)
        coeffs = [abs(v * scale * den) for v in terms.values()] + [abs(const * scale * den)]
        limit = 2**30
        if den > 10**6 or den * max(abs(lo), abs(hi)) > limit or max(coeffs) * max(abs(lo), abs(hi), 1) > limit:
            return None  # too wide for Gecode's 32-bit integers: fall back to the float form
        expr = " + ".join(f"{int(v * scale * den)} * {k}" for k, v in terms.items() if v != 0) or "0"
        expr += f" + {int(const * scale * den)}"
        y = f"y_{name}"
        self.extra_decls.append(f"array[R] of var {lo}..{hi}: {y};")
        self.bounds[f"{y}[i]"] = max(abs(lo), abs(hi))
        self.extra_cons.append(f"constraint forall(i in R)(2 * abs({den} * {y}[i] - ({expr})) <= {den});")
        self.rounded[name] = (f"{y}[i]", Fraction(1, scale))
        return self.rounded[name]

    def fold_linear(self, node: E.Node):
        """A constant sub-expression as exact integer data: (term, coefficient), or None."""
        t = node.t
        if t is None or t.type in (E.T.STRING, E.T.CATEGORICAL):
            return None
        v, _ = E.evaluate(node, self.env)
        v = np.asarray(v)
        if t.type == E.T.BOOL or v.dtype.kind in "biu":
            return self._param(v.astype(np.int64).tolist(), "int"), Fraction(1)
        vals = np.nan_to_num(v.astype(float), nan=0.0, posinf=0.0, neginf=0.0)
        for digits in (0, 1, 2, 3, 4, 6):
            scaled = vals * 10**digits
            if np.all(np.abs(scaled - np.round(scaled)) < 1e-6) and np.abs(scaled).max(initial=0) < 2**40:
                return self._param(np.round(scaled).astype(np.int64).tolist(), "int"), Fraction(1, 10**digits)
        return None

    def column(self, col: E.Col) -> tuple[str, str]:
        c = self.t.columns[col.name]
        if col.name in self.var_cols:
            x = f"x_{col.name}[i]"
            if c.type == E.T.DECIMAL:
                return f"(int2float({x}) / {float(c.scale)!r})", "float"
            if c.type == E.T.BOOL:
                return f"({x} = 1)", "bool"
            return x, "int"
        if c.gen == "formula" and c.formula is not None:
            if E.uses_window(c.formula):
                raise E.NotCompilable(f"{col.name} uses a window function")
            return E._mz(c.formula, self)
        raise E.NotCompilable(f"{col.name} is not a solver variable")

    def lookup_array(self, table: str, column: str, key_t: E.TypeInfo) -> tuple[str, E.TypeInfo]:
        if key_t.type != E.T.CATEGORICAL or key_t.categories is None:
            raise E.NotCompilable("lookup by a non-categorical variable")
        cache = (table, column, key_t.categories)
        lt = self.project.tables[table]
        vcol = lt.columns[column]
        if cache not in self._lookups:
            codes = np.arange(len(key_t.categories))
            v, m = self.env.lookup(table, column, (codes, None), key_t)
            if m is not None and m.any():
                raise E.NotCompilable(f"lookup({table}, {column}) lacks rows for some categories")
            name = f"L{len(self._lookups)}"
            if vcol.type == E.T.DECIMAL:
                arr = "[" + ", ".join(repr(float(x)) for x in v) + "]"
                self._lookups[cache] = f"array[int] of float: {name} = {arr};"
            else:
                vv = v.astype(np.int64) + (1 if vcol.type == E.T.CATEGORICAL else 0)
                self._lookups[cache] = f"array[int] of int: {name} = [" + ", ".join(str(int(x)) for x in vv) + "];"
        name = self._lookups[cache].split(":")[1].split("=")[0].strip()
        return name, vcol.info


# ---------------------------------------------------------------------------- helpers


def to_units(col, values: np.ndarray) -> np.ndarray:
    t = col.type
    if t == E.T.DECIMAL:
        return np.round(values.astype(float) * col.scale).astype(np.int64)
    if t == E.T.BOOL:
        return values.astype(np.int64)
    if t == E.T.CATEGORICAL:
        return values.astype(np.int64) + 1
    return values.astype(np.int64)


def from_units(col, units: np.ndarray) -> np.ndarray:
    t = col.type
    if t == E.T.DECIMAL:
        return units.astype(float) / col.scale
    if t == E.T.BOOL:
        return units.astype(np.int64) == 1
    if t == E.T.CATEGORICAL:
        return units.astype(np.int64) - 1
    return units.astype(np.int64)


def rule_deps(t: Table, rule: Rule) -> set[str]:
    """Sampled columns of ``t`` a rule depends on, looking through formulas."""
    out: set[str] = set()
    seen: set[str] = set()

    def visit(node: E.Node):
        for c in E.columns_of(node):
            if c.table not in (None, t.name) or c.name in seen:
                continue
            seen.add(c.name)
            col = t.columns[c.name]
            if col.sampled:
                out.add(c.name)
            elif col.gen == "formula" and col.formula is not None:
                visit(col.formula)

    if rule.expr is not None:
        visit(rule.expr)
    return out


@dataclass
class _Csp:
    text: str
    data: dict
    var_cols: list[str]
    free: dict[str, np.ndarray]
    rules: list[Rule]


class TableRepair:
    """Repairs the rows of one table in one batch."""

    def __init__(self, project: Project, t: Table, data: dict[str, TableData], seed: int, stats: RepairStats):
        self.project, self.t, self.data, self.seed, self.stats = project, t, data, seed, stats
        self.td = data[t.name]
        self.rules = [r for r in t.rules if r.kind in ("check", "range") and r.expr is not None]
        self.deps = {r.name: rule_deps(t, r) for r in self.rules}

    # ------------------------------------------------------------------ model
    def build(self, rows: np.ndarray, free: dict[str, np.ndarray], rules: list[Rule], extra: list[str] | None = None,
              extra_free_cols: list[str] | None = None) -> _Csp | None:
        t, td = self.t, self.td
        var_cols = [c for c in t.columns if c in free and free[c].any()]
        scope = _Scope(self.project, t, self.data, rows, var_cols)
        for c in var_cols:
            col = t.columns[c]
            p = to_units(col, td.values[c][rows])
            lo, hi = self._bounds(col, p)
            scope.bounds[f"x_{c}[i]"] = max(abs(lo), abs(hi), int(np.abs(p).max(initial=0)))
        decls, cons, data = [], [], {"n": len(rows)}
        used_rules = []
        for r in rules:
            v, m = E.evaluate(r.expr, scope.env)  # type: ignore[arg-type]
            guard = ~m if m is not None else np.ones(len(rows), dtype=bool)
            if not scope.depends(r.expr):  # type: ignore[arg-type]
                guard &= ~v.astype(bool)  # a constant rule matters only where it fails (then nothing can fix it)
            if not guard.any():
                continue
            try:
                body = E.to_minizinc(r.expr, scope)  # type: ignore[arg-type]
            except E.NotCompilable as exc:
                log.debug("rule %s not in the CSP: %s", r.name, exc)
                continue
            g = f"g{len(used_rules)}"
            data[g] = guard.tolist()
            decls.append(f"array[R] of bool: {g};")
            cons.append(f"constraint forall(i in R where {g}[i])({body});")
            used_rules.append(r)
        search_vars, order_w = [], []
        for c in var_cols:
            col = t.columns[c]
            p = to_units(col, td.values[c][rows])
            lo, hi = self._bounds(col, p)
            p_in = np.clip(p, lo, hi)
            data[f"p_{c}"] = p.tolist()
            data[f"f_{c}"] = free[c].tolist()
            decls.append(f"array[R] of int: p_{c};\narray[R] of bool: f_{c};")
            dlo, dhi = min(lo, int(p.min(initial=lo))), max(hi, int(p.max(initial=hi)))
            decls.append(f"array[R] of var {dlo}..{dhi}: x_{c};")
            cons.append(f"constraint forall(i in R)(if f_{c}[i] then x_{c}[i] >= {lo} /\\ x_{c}[i] <= {hi} "
                        f"else x_{c}[i] = p_{c}[i] endif);")
            k = int(round(col.step * col.scale)) if col.step else 1
            if k > 1:  # a moved value stays on the column's lattice
                cons.append(f"constraint forall(i in R where f_{c}[i])(x_{c}[i] mod {k} = 0);")
            if col.type in (E.T.CATEGORICAL, E.T.BOOL):
                w = COST_UNIT
                decls.append(f"array[R] of var 0..1: a_{c} = [bool2int(x_{c}[i] != p_{c}[i]) | i in R];")
                order_w.append((w, c))
            else:
                spread = self._spread(col)
                w = max(1, int(round(COST_UNIT / max(spread, 1e-9))))
                # p may lie outside the domain (a range violation): the distance still counts from it
                reach = int(max(hi - lo, np.abs(p - p_in).max(initial=0) + (hi - lo)))
                decls.append(f"array[R] of var 0..{reach}: a_{c} = [abs(x_{c}[i] - p_{c}[i]) | i in R];")
                order_w.append((w, c))
            search_vars.append(f"x_{c}[i]")
        if not var_cols:
            return None
        for name, (vals, kind) in scope.params.items():
            decls.append(f"array[R] of {kind}: {name};")
            data[name] = vals
        decls.extend(scope._lookups.values())
        decls.extend(scope.extra_decls)
        cons.extend(scope.extra_cons)
        if extra:
            cons.extend(extra)
        # nearest-first search, row by row: deviations in order of their cost per unit (the dearest
        # column is kept at its proposal whenever the rules allow), each as small as propagation
        # permits, then the direction of each move. Greedy, never a search over the total cost
        # (which thrashes: abs() gives the sum no useful lower bound).
        dev_vars = [f"a_{c}[i]" for _, c in sorted(order_w, key=lambda t: (-t[0], t[1]))]
        text = "\n".join([
            "int: n;", "set of int: R = 1..n;", *decls, *cons,
            "solve :: seq_search([seq_search(["
            f"int_search([{', '.join(dev_vars)}], input_order, indomain_min, complete), "
            f"int_search([{', '.join(search_vars)}], input_order, indomain_random, complete)]) | i in R]) satisfy;",
        ])
        return _Csp(text, data, var_cols, free, used_rules)

    def _bounds(self, col, p: np.ndarray) -> tuple[int, int]:
        if col.type == E.T.BOOL:
            return 0, 1
        if col.type == E.T.CATEGORICAL:
            return 1, len(col.categories or ())
        scale = col.scale
        lo = None if col.lo is None else int(np.ceil(col.lo * scale - 1e-9))
        hi = None if col.hi is None else int(np.floor(col.hi * scale + 1e-9))
        sup = _support(col)
        if sup is not None:
            slo, shi = sup
            if slo is not None and np.isfinite(slo):
                lo = int(np.ceil(slo * scale - 1e-9)) if lo is None else max(lo, int(np.ceil(slo * scale - 1e-9)))
            if shi is not None and np.isfinite(shi):
                hi = int(np.floor(shi * scale + 1e-9)) if hi is None else min(hi, int(np.floor(shi * scale + 1e-9)))
        allv = to_units(col, self.td.values[col.name])
        span = int(allv.max(initial=0) - allv.min(initial=0)) + 10 * scale
        if lo is None:
            lo = int(min(allv.min(initial=0), p.min(initial=0))) - 2 * span
        if hi is None:
            hi = int(max(allv.max(initial=0), p.max(initial=0))) + 2 * span
        return lo, max(lo, hi)

    def _spread(self, col) -> float:
        v = to_units(col, self.td.values[col.name]).astype(float)
        s = float(v.std()) if len(v) > 1 else 0.0
        if s <= 0 and col.dist is not None:
            mom = col.dist.moments()
            s = (mom[1] * col.scale) if mom else 1.0
        return max(s, 1.0)

    # ------------------------------------------------------------------ solve
    def solve(self, csp: _Csp, rows: np.ndarray) -> bool:
        t0 = time.perf_counter()
        sol = run_minizinc(csp.text, csp.data, seed=self.seed, time_limit_s=TIME_LIMIT_S)
        self.stats.solver_calls += 1
        self.stats.solver_seconds += time.perf_counter() - t0
        if sol is None:
            return False
        for c in csp.var_cols:
            col = self.t.columns[c]
            x = np.asarray(sol[f"x_{c}"], dtype=np.int64)
            f = csp.free[c]
            vals = self.td.values[c]
            vals[rows[f]] = from_units(col, x[f]).astype(vals.dtype)
        return True

    def free_for(self, rows: np.ndarray, violated: dict[str, np.ndarray], level: int) -> dict[str, np.ndarray]:
        """Which cells are variables: level 1 — the columns of the rules each row breaks; level 2 —
        every sampled column any rule depends on."""
        free: dict[str, np.ndarray] = {}
        all_deps = set().union(*self.deps.values()) if self.deps else set()
        for c in all_deps:
            free[c] = np.zeros(len(rows), dtype=bool)
        for r in self.rules:
            if level == 1:
                bad = violated.get(r.name)
                if bad is None:
                    continue
                sel = bad[rows]
                for c in self.deps[r.name]:
                    free[c] |= sel
            else:
                for c in self.deps[r.name]:
                    free[c][:] = True
        for c in list(free):
            m = self.td.null(c)
            if m is not None:
                free[c] &= ~m[rows]
        return free

    def repair(self, violated: dict[str, np.ndarray]) -> set[str]:
        """Repair every row flagged in ``violated`` (rule → bad-row mask); returns changed columns."""
        bad_any = np.zeros(self.td.n, dtype=bool)
        for m in violated.values():
            bad_any |= m
        rows = np.flatnonzero(bad_any)
        if not len(rows):
            return set()
        for name, m in violated.items():
            self.stats.per_rule[name] = self.stats.per_rule.get(name, 0) + int(m.sum())
        self.stats.rows_repaired += len(rows)
        changed: set[str] = set()
        self._solve_rows(rows, violated, changed, level=1)
        return changed

    def _solve_rows(self, rows: np.ndarray, violated, changed: set[str], level: int) -> None:
        free = self.free_for(rows, violated, level)
        csp = self.build(rows, free, self.rules)
        if csp is not None and self.solve(csp, rows):
            changed.update(csp.var_cols)
            return
        if level == 1:
            return self._solve_rows(rows, violated, changed, level=2)
        if len(rows) > 1:
            half = len(rows) // 2
            self._solve_rows(rows[:half], violated, changed, level=2)
            self._solve_rows(rows[half:], violated, changed, level=2)
            return
        self._diagnose(rows, violated)

    def _diagnose(self, rows: np.ndarray, violated) -> None:
        """Deletion filter: the smallest set of rules that cannot all hold for this row."""
        free = self.free_for(rows, violated, 2)
        broken = [r for r in self.rules if r.name in violated and violated[r.name][rows[0]]]
        if not any(free[c].any() for c in free):
            names = [r.name for r in broken] or ["(unknown)"]
            raise UnsatisfiableRuleError(self.t.name, names, self._row_detail(rows[0], broken)
                                         + "; none of its columns is sampled, so no value can be changed")
        core = list(self.rules)
        for r in list(core):
            trial = [x for x in core if x is not r]
            csp = self.build(rows, free, trial)
            if csp is None or not self.solve_dry(csp):
                core = trial
        if not core:
            core = broken
        raise UnsatisfiableRuleError(self.t.name, [r.name for r in core], self._row_detail(rows[0], core))

    def solve_dry(self, csp: _Csp) -> bool:
        return run_minizinc(csp.text, csp.data, seed=0, time_limit_s=20.0) is not None

    def _row_detail(self, row: int, rules: list[Rule]) -> str:
        env = TableEnv(self.project, self.t, self.data, np.array([row]))
        shown = []
        seen = set()
        for r in rules:
            for c in E.columns_of(r.expr) if r.expr is not None else []:
                if c.key in seen:
                    continue
                seen.add(c.key)
                try:
                    v, m = env.get(c)
                except (E.ExprError, KeyError):
                    continue
                shown.append(f"{c.key}={_show(self.project, self.t, c, v[0], m)}")
        texts = "; ".join(f"{r.name}: {r.text}" for r in rules)
        return f"no values satisfy [{texts}] for a row with {', '.join(shown[:10])}"

    # ------------------------------------------------------------------ coverage
    def cover(self, rule: Rule, rng: np.random.Generator) -> set[str]:
        """Make every combination appear (per group) by changing the fewest, cheapest rows."""
        from .generate import coverage_labels, coverage_missing

        cols = rule.params["columns"]
        missing = coverage_missing(rule, self.t, self.td)
        changed: set[str] = set()
        for g, (miss, members, total) in missing.items():
            if len(members) < total:
                log.info("%s: %s has %d rows for %d combinations; left to the final check",
                         rule.name, coverage_labels(rule, self.t, g)[0], len(members), total)
                continue
            combos = np.stack([self.td.values[c][members].astype(np.int64) for c in cols], axis=1)
            keys, counts = np.unique(combos, axis=0, return_counts=True)
            count_of = {tuple(k): int(v) for k, v in zip(keys, counts, strict=True)}
            spare = [m for m, cmb in zip(members, combos, strict=True) if count_of[tuple(cmb)] > 1]
            k = min(len(spare), max(3 * len(miss), len(miss) + 2))
            if k < len(miss):
                continue
            cand = np.sort(rng.choice(np.asarray(spare), size=k, replace=False))
            cand_set = set(cand.tolist())
            outside = {}
            for m, cmb in zip(members, combos, strict=True):
                if m not in cand_set:
                    outside[tuple(cmb)] = outside.get(tuple(cmb), 0) + 1
            need = list(miss) + [tuple(kk) for kk in keys if outside.get(tuple(kk), 0) == 0 and tuple(kk) not in miss]
            free = {c: np.ones(len(cand), dtype=bool) for c in cols}
            for c in sorted(set().union(*self.deps.values())) if self.deps else []:
                free.setdefault(c, np.ones(len(cand), dtype=bool))  # the rows' other columns may move too
                m = self.td.null(c)
                if m is not None:
                    free[c] &= ~m[cand]
            extra = []
            for cmb in need:
                cond = " /\\ ".join(f"x_{c}[i] = {int(v) + 1}" for c, v in zip(cols, cmb, strict=True))
                extra.append(f"constraint exists(i in R)({cond});")
            csp = self.build(cand, free, self.rules, extra=extra)
            if csp is None or not self.solve(csp, cand):
                # left to the final diagnostic on the merged table (another batch may cover it)
                log.warning("%s: could not cover %s where %s in this batch", rule.name,
                            "; ".join(coverage_labels(rule, self.t, g, list(miss))[1]), coverage_labels(rule, self.t, g)[0])
                continue
            changed.update(csp.var_cols)
        return changed


def _support(col) -> tuple[float | None, float | None] | None:
    """The value range a column's distribution can produce: the solver keeps repairs inside it
    (a CTCAE grade drawn from 0–4 stays within 0–4 even without an explicit range)."""
    if col.gen == "cases" and col.cases and all(c.kind == "distribution" and c.base is None for c in col.cases):
        # every case draws from a distribution: the union of their supports
        parts = [_dist_support(c.dist) for c in col.cases]
        if any(p is None for p in parts):
            return None
        los = [p[0] for p in parts]  # type: ignore[index]
        his = [p[1] for p in parts]  # type: ignore[index]
        return (None if any(v is None for v in los) else min(los),  # type: ignore[type-var]
                None if any(v is None for v in his) else max(his))  # type: ignore[type-var]
    if col.gen != "distribution" or col.dist is None or col.cases[0].base is not None:
        return None
    return _dist_support(col.dist)


def _dist_support(d) -> tuple[float | None, float | None] | None:
    if d is None:
        return None
    if d.kind == "categorical":
        try:
            vals = [float(v) for v in d.values]
        except (TypeError, ValueError):
            return None
        return min(vals), max(vals)
    if d.kind == "histogram":
        return d.edges[0], d.edges[-1]
    if d.kind == "uniform":
        return d.p("min"), d.p("max")
    if d.kind == "beta":
        return d.p("loc", 0.0), d.p("loc", 0.0) + d.p("scale", 1.0)
    if d.kind in ("exponential", "gamma", "rayleigh", "lognorm", "weibull", "poisson"):
        return d.p("loc", 0.0), None
    return None


def _show(project, t, c: E.Col, v, m) -> str:
    if m is not None and m[0]:
        return "null"
    tab = project.tables[c.table] if c.table else t
    col = tab.columns[c.name]
    if col.type == E.T.DATE:
        return str(E.days_to_iso(np.array([v]))[0])
    if col.type == E.T.CATEGORICAL:
        return str(col.categories[int(v)])
    return str(v)
