"""The compiled data project: tables in dependency order, typed columns, parsed rules.

Compiling is where a project's *meaning* is validated: every column reference resolves, every
expression type-checks, category literals exist, the table graph (parents, expansions, lookups) is
acyclic, the columns of a table can be generated in some order. All problems are collected and
raised together as one ``ProjectError`` (path: reason per line) so a user fixes a file in one pass.
"""

from __future__ import annotations

import csv
import datetime as _dt
import graphlib
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import expr as E
from .distributions import Dist, DistributionError
from .patterns import PatternError, parse_pattern, pattern_regex
from .spec import (
    CheckRule,
    ColumnSpec,
    CorrelationRule,
    CoverageRule,
    DistributionSpec,
    IncreasingRule,
    NullSpec,
    ProjectError,
    ProjectSpec,
    RangeRule,
    TableSpec,
    UniqueRule,
    load_spec,
)

log = logging.getLogger(__name__)

TYPE_MAP = {
    "int": E.T.INT, "decimal": E.T.DECIMAL, "bool": E.T.BOOL, "string": E.T.STRING, "date": E.T.DATE,
    "datetime": E.T.DATETIME, "categorical": E.T.CATEGORICAL, "code": E.T.CATEGORICAL,
}
SOLVABLE = {E.T.INT, E.T.DECIMAL, E.T.BOOL, E.T.DATE, E.T.DATETIME, E.T.CATEGORICAL}


@dataclass
class Case:
    when: E.Node | None
    when_text: str | None
    kind: str  # distribution | formula | value | pattern
    dist: Dist | None = None
    base: E.Node | None = None
    formula: E.Node | None = None
    value: Any = None
    pattern: str | None = None


@dataclass
class Column:
    name: str
    table: str
    type: E.T
    categories: tuple[str, ...] | None = None
    precision: int = 0
    null_ratio: float | None = None
    null_when: E.Node | None = None
    null_when_text: str | None = None
    unique: bool = False
    output: bool = True
    description: str | None = None
    gen: str = "value"  # distribution|formula|pattern|sequence|references|value|cases|source
    cases: list[Case] = field(default_factory=list)
    sequence: Any = None
    ref: tuple[str, str] | None = None
    ref_structural: bool = False  # reference to an ancestor: materialised from the parent row
    lo: float | None = None
    hi: float | None = None
    deps: set[str] = field(default_factory=set)
    null_deps: set[str] = field(default_factory=set)
    null_exact: bool = False  # nulls.iff: null exactly where the condition holds  # columns ``nulls.when`` reads (applied once they exist)
    formula_text: str | None = None
    step: float | None = None  # values lie on the lattice of multiples of ``step`` (int/decimal)
    significant: int | None = None  # values are rounded to this many significant digits (int/decimal)

    @property
    def scale(self) -> int:
        return 10**self.precision if self.type == E.T.DECIMAL else 1

    @property
    def info(self) -> E.TypeInfo:
        return E.TypeInfo(self.type, self.categories, self.scale)

    @property
    def nullable(self) -> bool:
        return self.null_ratio is not None or self.null_when is not None

    @property
    def formula(self) -> E.Node | None:
        return self.cases[0].formula if self.gen == "formula" else None

    @property
    def dist(self) -> Dist | None:
        return self.cases[0].dist if self.gen == "distribution" else None

    @property
    def sampled(self) -> bool:
        """A free proposal the solver may move (as opposed to derived or structural values)."""
        return self.gen in ("distribution", "cases", "value") and self.type in SOLVABLE and all(
            c.kind in ("distribution", "value") for c in self.cases
        )

    @property
    def deferred(self) -> bool:
        """Values fixed only when batches are merged (global sequences, copies of parent keys)."""
        return (self.gen == "sequence" and not self.sequence.per_parent) or self.ref_structural


@dataclass
class Rule:
    name: str
    kind: str  # check | range | not_null | null_when | unique | increasing | coverage | correlation | format | foreign_key | null_ratio
    table: str
    path: str
    text: str = ""
    expr: E.Node | None = None
    columns: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def row_level(self) -> bool:
        return self.kind in ("check", "range", "null_when", "format", "not_null")


@dataclass
class CorrGroup:
    """One correlation matrix over a connected set of columns, for the rows where ``when`` holds
    (all rows when it is None). Groups over the same columns with different conditions are drawn
    in one step: each row takes the latent normals of the first group whose condition it meets."""

    columns: list[str]
    matrix: np.ndarray  # asked, in the rule's method
    method: str
    rule: str
    latent: np.ndarray | None = None  # Gaussian-copula correlation that reproduces it
    when: E.Node | None = None
    when_text: str | None = None
    when_deps: set[str] = field(default_factory=set)


@dataclass
class Table:
    name: str
    mode: str
    columns: dict[str, Column]
    rows: int | None = None
    parent: str | None = None
    count: Any = None  # int | E.Node | Dist
    count_text: str | None = None
    expand: str | None = None
    expand_when: E.Node | None = None
    output: bool = True
    primary_key: list[str] = field(default_factory=list)
    key: str | None = None
    rules: list[Rule] = field(default_factory=list)
    corr: list[CorrGroup] = field(default_factory=list)
    conditions: dict[str, E.Node] = field(default_factory=dict)  # named conditions, substituted where used
    order: list[list[str]] = field(default_factory=list)  # generation steps (a step may be a copula group)
    ancestors: list[str] = field(default_factory=list)
    source_rows: list[dict[str, Any]] | None = None
    source_sample: str = "all"
    description: str | None = None

    @property
    def is_global(self) -> bool:
        return self.mode in ("reuse", "other")


@dataclass
class Project:
    name: str
    tables: dict[str, Table]  # in dependency order (parents first)
    seed: int
    batch_size: int
    outputs: list[Any]
    spec: ProjectSpec
    description: str | None = None
    source: str | None = None
    base_dir: Path | None = None

    @property
    def roots(self) -> list[Table]:
        return [t for t in self.tables.values() if t.mode == "new" and t.parent is None]

    def children(self, name: str) -> list[Table]:
        return [t for t in self.tables.values() if t.parent == name]

    def rule(self, name: str) -> Rule:
        for t in self.tables.values():
            for r in t.rules:
                if r.name == name:
                    return r
        raise KeyError(name)

    def all_rules(self) -> list[Rule]:
        return [r for t in self.tables.values() for r in t.rules]

    def with_rows(self, rows: dict[str, int] | int | None) -> Project:
        """Override row counts of root tables (an int applies to every root table)."""
        if rows is None:
            return self
        for t in self.roots:
            if isinstance(rows, int):
                t.rows = rows
            elif t.name in rows:
                t.rows = rows[t.name]
        if isinstance(rows, dict):
            unknown = set(rows) - {t.name for t in self.roots}
            if unknown:
                raise ProjectError([(f"rows.{u}", "not a root table of the project (only those take a row count)")
                                    for u in sorted(unknown)], self.source)
        return self


# ---------------------------------------------------------------------------- code lists


def load_codelist(ref: str | dict | list, base_dir: Path | None) -> tuple[list[str], list[float] | None]:
    """A code list: packaged name (``icd10_breast``), a file path, a mapping or a list."""
    if isinstance(ref, list):
        return [str(v) for v in ref], None
    if isinstance(ref, dict):
        if "values" in ref:
            vals = [str(v) for v in ref["values"]]
            w = ref.get("weights")
            return vals, [float(x) for x in w] if w else None
        return [str(k) for k in ref], [float(v) for v in ref.values()]
    path = None
    if base_dir is not None and (base_dir / ref).exists():
        path = base_dir / ref
    elif Path(ref).exists():
        path = Path(ref)
    if path is not None:
        data = yaml.safe_load(path.read_text())
    else:
        pkg = resources.files("fabrication") / "codelists" / f"{ref}.yaml"
        if not pkg.is_file():
            raise ValueError(f"unknown code list {ref!r} (not a packaged list nor a file)")
        data = yaml.safe_load(pkg.read_text())
    return load_codelist(data, base_dir)


def packaged_codelists() -> list[str]:
    return sorted(p.name[:-5] for p in (resources.files("fabrication") / "codelists").iterdir() if p.name.endswith(".yaml"))


# ---------------------------------------------------------------------------- compile


class _Problems:
    def __init__(self):
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, reason: str) -> None:
        self.items.append((path, reason))


def _to_internal(value: Any, t: E.T, categories: tuple[str, ...] | None = None) -> Any:
    """A YAML scalar in the column's internal representation (day numbers, seconds, codes)."""
    if value is None:
        return None
    if t == E.T.DATE:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return float(E.date_to_days(value if isinstance(value, _dt.date) else str(value)))
    if t == E.T.DATETIME:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return float(E.datetime_to_seconds(value if isinstance(value, _dt.datetime) else str(value)))
    if t == E.T.BOOL:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("true", "yes", "1", "y", "t"):
                return True
            if low in ("false", "no", "0", "n", "f"):
                return False
            raise ValueError(f"{value!r} is not a boolean")
        return bool(value)
    if t == E.T.CATEGORICAL:
        s = str(value)
        if categories is not None and s not in categories:
            raise ValueError(f"{value!r} is not one of the categories")
        return s
    if t in (E.T.INT, E.T.DECIMAL):
        if isinstance(value, str):
            value = float(value)
        return float(value)
    return str(value)


_LOC_PARAMS = ("mean", "min", "max", "loc")


def _dist_from_spec(d: DistributionSpec, col_t: E.T, categories, path: str, P: _Problems) -> Dist | None:
    params = []
    for name in ("mean", "sd", "min", "max", "scale", "loc", "a", "b", "shape", "sigma", "lam", "p"):
        v = getattr(d, name)
        if v is None:
            continue
        if name in _LOC_PARAMS and col_t in (E.T.DATE, E.T.DATETIME):
            try:
                v = _to_internal(v, col_t)
            except ValueError as exc:
                P.add(f"{path}.{name}", str(exc))
                return None
        elif isinstance(v, str | _dt.date):
            P.add(f"{path}.{name}", f"expected a number, got {v!r}")
            return None
        params.append((name, float(v)))
    values: tuple = ()
    weights: tuple = ()
    edges: tuple = ()
    kind = d.kind
    if kind == "categorical":
        w = d.weights
        if w is None:
            if categories is None:
                P.add(f"{path}.weights", "categorical needs weights")
                return None
            values, weights = tuple(categories), tuple(1.0 for _ in categories)
        elif isinstance(w, list):
            if categories is None or len(w) != len(categories):
                P.add(f"{path}.weights", "a weight list must align with the column's categories")
                return None
            values, weights = tuple(categories), tuple(float(x) for x in w)
        else:
            vals = []
            for k in w:
                try:
                    vals.append(_to_internal(k, col_t, categories))
                except ValueError as exc:
                    P.add(f"{path}.weights.{k}", str(exc))
                    return None
            values, weights = tuple(vals), tuple(float(x) for x in w.values())
    elif kind == "histogram":
        if d.edges is None or not isinstance(d.weights, list):
            P.add(path, "histogram needs edges (list) and weights (list)")
            return None
        try:
            edges = tuple(float(_to_internal(e, col_t) if col_t in (E.T.DATE, E.T.DATETIME) else e) for e in d.edges)
        except (ValueError, TypeError) as exc:
            P.add(f"{path}.edges", str(exc))
            return None
        weights = tuple(float(x) for x in d.weights)
    dist = Dist(kind, tuple(params), values, weights, edges)
    try:
        dist.validate()
    except DistributionError as exc:
        P.add(path, str(exc))
        return None
    if kind == "categorical" and col_t == E.T.CATEGORICAL and categories is not None:
        bad = [v for v in values if v not in categories]
        if bad:
            P.add(f"{path}.weights", f"{bad[0]!r} is not one of the column's categories")
    return dist


class _Scope:
    """Resolves names for expressions written in one table."""

    def __init__(self, project_tables: dict[str, Table], table: Table, extra: list[str] | None = None):
        self.tables = project_tables
        self.table = table
        self.visible = [table.name, *table.ancestors, *(extra or [])]
        if table.expand:
            self.visible.append(table.expand)

    def column(self, tname: str | None, name: str) -> E.TypeInfo:
        t = self.table if tname is None else self.tables.get(tname)
        if t is None:
            raise E.ExprError(f"unknown table {tname!r}")
        if tname is not None and tname not in self.visible:
            raise E.ExprError(
                f"table {tname!r} is not an ancestor of {self.table.name!r} "
                "(reach other tables with lookup('table', 'column', key))"
            )
        col = t.columns.get(name)
        if col is None:
            raise E.ExprError(f"unknown column {name!r} in table {t.name!r}")
        return col.info

    def lookup(self, tname: str, column: str) -> tuple[E.TypeInfo, E.TypeInfo]:
        t = self.tables.get(tname)
        if t is None:
            raise E.ExprError(f"lookup: unknown table {tname!r}")
        if not t.is_global:
            raise E.ExprError(f"lookup: table {tname!r} must have mode reuse or other")
        key = t.key or (t.primary_key[0] if t.primary_key else None)
        if key is None:
            raise E.ExprError(f"lookup: table {tname!r} declares no key")
        if column not in t.columns:
            raise E.ExprError(f"lookup: no column {column!r} in {tname!r}")
        return t.columns[key].info, t.columns[column].info


def _parse(text: str, scope: _Scope, path: str, P: _Problems, want_bool: bool = False) -> E.Node | None:
    try:
        node = E.parse(text)
        if scope.table.conditions:
            node = E.substitute(node, scope.table.conditions)
        t = E.typecheck(node, scope, text)
    except E.ExprError as exc:
        P.add(path, str(exc))
        return None
    if want_bool and t.type != E.T.BOOL:
        P.add(path, f"{text!r} must be a condition (boolean), it is {t.type.value}")
        return None
    return node


def compile_project(spec: ProjectSpec | dict | str | Path, source: str | None = None,
                    base_dir: Path | None = None) -> Project:
    """Validate a project's meaning and build the model the engine runs."""
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and spec.endswith((".yaml", ".yml"))):
        base_dir = Path(spec).parent
        source = source or str(spec)
    if not isinstance(spec, ProjectSpec):
        spec = load_spec(spec, source)
    P = _Problems()
    codelists: dict[str, tuple[list[str], list[float] | None]] = {}
    for name, ref in spec.codelists.items():
        try:
            codelists[name] = load_codelist(ref, base_dir)
        except (ValueError, OSError, yaml.YAMLError) as exc:
            P.add(f"codelists.{name}", str(exc))

    tables: dict[str, Table] = {}
    # pass 1: structure and column types
    for tname, ts in spec.tables.items():
        tp = f"tables.{tname}"
        t = Table(name=tname, mode=ts.mode, columns={}, description=ts.description, primary_key=list(ts.primary_key),
                  key=ts.key)
        t.output = ts.output if ts.output is not None else ts.mode != "other"
        if isinstance(ts.rows, int):
            t.rows = ts.rows
        elif ts.rows is not None:
            t.parent = ts.rows.per
            if ts.rows.expand is not None:
                t.expand = ts.rows.expand.table
        for cname, cs in ts.columns.items():
            col = _column_types(cname, tname, cs, f"{tp}.columns.{cname}", codelists, base_dir, P)
            if col is not None:
                t.columns[cname] = col
        for k in [*t.primary_key, *([t.key] if t.key else [])]:
            if k not in ts.columns:
                P.add(f"{tp}.primary_key", f"unknown column {k!r}")
        if t.is_global:
            t.source_rows, t.source_sample = _load_source(ts, tp, base_dir, P), ts.source.sample  # type: ignore[union-attr]
        tables[tname] = t

    # table graph
    graph: dict[str, set[str]] = {n: set() for n in tables}
    for tname, t in tables.items():
        tp = f"tables.{tname}"
        if t.parent:
            if t.parent not in tables:
                P.add(f"{tp}.rows.per", f"unknown table {t.parent!r}")
                t.parent = None
            elif tables[t.parent].is_global:
                P.add(f"{tp}.rows.per", f"parent {t.parent!r} has mode {tables[t.parent].mode}; per-parent rows need a new table")
            else:
                graph[tname].add(t.parent)
        if t.mode != "new" and t.parent:
            P.add(f"{tp}.rows", "only mode new tables have per-parent rows")
        if t.expand:
            if t.expand not in tables or not tables[t.expand].is_global:
                P.add(f"{tp}.rows.expand.table", f"{t.expand!r} must be a table with mode reuse or other")
                t.expand = None
            else:
                graph[tname].add(t.expand)
        for cname, col in t.columns.items():
            if col.ref:
                rt, rc = col.ref
                if rt not in tables or rc not in tables[rt].columns:
                    P.add(f"{tp}.columns.{cname}.references", f"unknown column {rt}.{rc}")
                    col.ref = None
                elif rt != tname:
                    graph[tname].add(rt)
    try:
        order = list(graphlib.TopologicalSorter({k: sorted(v) for k, v in graph.items()}).static_order())
    except graphlib.CycleError as exc:
        P.add("tables", f"tables depend on each other in a cycle: {' → '.join(exc.args[1])}")
        raise ProjectError(P.items, source) from None
    tables = {n: tables[n] for n in order}
    for t in tables.values():
        anc, p = [], t.parent
        while p:
            anc.append(p)
            p = tables[p].parent if p in tables else None
        t.ancestors = anc
        for col in t.columns.values():
            if col.ref and col.ref[0] in anc:
                col.ref_structural = True
            elif col.ref and not tables[col.ref[0]].is_global:
                P.add(f"tables.{t.name}.columns.{col.name}.references",
                      f"{col.ref[0]!r} is neither an ancestor (rows.per chain) nor a reuse/other table")

    # pass 2: expressions, generators, rules
    for tname, t in tables.items():
        ts = spec.tables[tname]
        _compile_table(t, ts, tables, codelists, P)

    if P.items:
        raise ProjectError(P.items, source)
    return Project(name=spec.name, tables=tables, seed=spec.seed, batch_size=spec.batch_size, outputs=list(spec.outputs),
                   spec=spec, description=spec.description, source=source, base_dir=base_dir)


def _column_types(cname, tname, cs: ColumnSpec, cp: str, codelists, base_dir, P: _Problems) -> Column | None:
    t = TYPE_MAP[cs.type]
    categories = None
    if cs.type == "code":
        if not cs.codelist:
            P.add(f"{cp}.codelist", "a code column names its code list")
            return None
        ref = cs.codelist
        if ref not in codelists:
            try:
                codelists[ref] = load_codelist(ref, base_dir)
            except (ValueError, OSError) as exc:
                P.add(f"{cp}.codelist", str(exc))
                return None
        categories = tuple(codelists[ref][0])
    elif cs.type == "categorical":
        if cs.categories is None:
            if cs.codelist and cs.codelist in codelists:
                categories = tuple(codelists[cs.codelist][0])
            elif cs.distribution is not None and isinstance(cs.distribution.weights, dict):
                categories = tuple(str(k) for k in cs.distribution.weights)
            elif cs.references is None and cs.formula is None:
                P.add(f"{cp}.categories", "a categorical column lists its categories (or copies them with a formula)")
                return None
        else:
            categories = tuple(str(c) for c in cs.categories)
        if categories is not None and len(set(categories)) != len(categories):
            P.add(f"{cp}.categories", "categories repeat")
    elif cs.categories is not None:
        P.add(f"{cp}.categories", f"only categorical columns have categories (this one is {cs.type})")
    col = Column(name=cname, table=tname, type=t, categories=categories,
                 precision=cs.precision if t == E.T.DECIMAL else 0, unique=cs.unique, output=cs.output,
                 description=cs.description, gen=cs.generator or "source")
    if cs.range is not None:
        try:
            col.lo = _to_internal(cs.range.min, t) if cs.range.min is not None else None
            col.hi = _to_internal(cs.range.max, t) if cs.range.max is not None else None
        except ValueError as exc:
            P.add(f"{cp}.range", str(exc))
        if t not in (E.T.INT, E.T.DECIMAL, E.T.DATE, E.T.DATETIME):
            P.add(f"{cp}.range", f"a range needs an ordered type, not {cs.type}")
        if col.lo is not None and col.hi is not None and col.lo > col.hi:
            P.add(f"{cp}.range", "min is greater than max")
    if cs.references:
        rt, _, rc = cs.references.partition(".")
        if not rc:
            P.add(f"{cp}.references", "write table.column")
        else:
            col.ref = (rt, rc)
    return col


def _load_source(ts: TableSpec, tp: str, base_dir, P: _Problems) -> list[dict[str, Any]]:
    src = ts.source
    assert src is not None
    if src.rows is not None:
        rows = src.rows
    else:
        path = Path(src.csv)  # type: ignore[arg-type]
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            P.add(f"{tp}.source.csv", f"cannot read {path}: {exc.strerror}")
            return []
    for i, r in enumerate(rows):
        unknown = set(r) - set(ts.columns)
        if unknown:
            P.add(f"{tp}.source.rows[{i}]", f"unknown column(s) {', '.join(sorted(unknown))}")
            break
    return rows


def _compile_table(t: Table, ts: TableSpec, tables: dict[str, Table], codelists, P: _Problems) -> None:
    tp = f"tables.{t.name}"
    scope = _Scope(tables, t)
    # named conditions (each may use the ones before it)
    for cname, text in ts.conditions.items():
        if cname in t.columns:
            P.add(f"{tp}.conditions.{cname}", "a condition cannot have a column's name")
            continue
        node = _parse(text, scope, f"{tp}.conditions.{cname}", P, want_bool=True)
        if node is not None:
            t.conditions[cname] = node
    # rows
    if t.parent and isinstance(ts.rows, object) and not isinstance(ts.rows, int) and ts.rows is not None:
        cnt = ts.rows.count  # type: ignore[union-attr]
        if isinstance(cnt, int):
            if cnt < 0:
                P.add(f"{tp}.rows.count", "must be ≥ 0")
            t.count = cnt
        elif isinstance(cnt, str):
            pscope = _Scope(tables, tables[t.parent])
            node = _parse(cnt, pscope, f"{tp}.rows.count", P)
            if node is not None and node.t is not None and node.t.type not in (E.T.INT, E.T.BOOL):
                P.add(f"{tp}.rows.count", "a row-count expression must be an integer")
            t.count, t.count_text = node, cnt
        elif cnt is not None:
            t.count = _dist_from_spec(cnt, E.T.INT, None, f"{tp}.rows.count", P)
        if t.expand and ts.rows.expand.when:  # type: ignore[union-attr]
            escope = _Scope(tables, tables[t.parent], extra=[t.expand])
            t.expand_when = _parse(ts.rows.expand.when, escope, f"{tp}.rows.expand.when", P, want_bool=True)  # type: ignore[union-attr]
    # columns: generators
    for cname, cs in ts.columns.items():
        col = t.columns.get(cname)
        if col is None:
            continue
        _compile_generator(t, col, cs, scope, f"{tp}.columns.{cname}", codelists, P)
    if t.mode == "new":
        for cname, col in t.columns.items():
            if col.gen == "source":
                P.add(f"{tp}.columns.{cname}", "a column of a new table needs a generator "
                      "(distribution, formula, pattern, sequence, references, value or cases)")
    # rules
    try:
        parsed = ts.parsed_rules(tp)
    except ProjectError as exc:
        P.items.extend(exc.problems)
        parsed = []
    _implicit_rules(t, P)
    names = {r.name for r in t.rules}
    for rp, r in parsed:
        rule = _compile_rule(t, r, rp, scope, P)
        if rule is None:
            continue
        if rule.name in names:
            P.add(f"{rp}.name", f"rule name {rule.name!r} is used twice in {t.name}")
        names.add(rule.name)
        t.rules.append(rule)
    # correlation groups: merge overlapping pairwise rules into one matrix per connected group
    _build_corr_groups(t, tp, P)
    # generation order
    _order_columns(t, tp, P)


def _compile_generator(t: Table, col: Column, cs: ColumnSpec, scope: _Scope, cp: str, codelists, P: _Problems) -> None:
    deps: set[str] = set()

    def note(node: E.Node | None):
        if node is not None:
            deps.update(c.name for c in E.columns_of(node) if c.table is None)

    def case_from(src, path) -> Case | None:
        kind = next((k for k in ("distribution", "formula", "value", "pattern") if getattr(src, k) is not None), None)
        if kind is None:
            P.add(path, "a case needs distribution, formula, value or pattern")
            return None
        c = Case(when=None, when_text=None, kind=kind)
        if kind == "distribution":
            d = src.distribution
            c.dist = _dist_from_spec(d, col.type, col.categories, f"{path}.distribution", P)
            if d.base:
                c.base = _parse(d.base, scope, f"{path}.distribution.base", P)
                note(c.base)
                if col.type not in (E.T.INT, E.T.DECIMAL, E.T.DATE, E.T.DATETIME):
                    P.add(f"{path}.distribution.base", "a base offset needs a numeric or date column")
            if c.dist is not None and c.dist.kind == "categorical" and col.type not in (E.T.CATEGORICAL, E.T.STRING):
                try:
                    [float(v) for v in c.dist.values] if col.type != E.T.BOOL else None
                except (TypeError, ValueError):
                    P.add(f"{path}.distribution.weights", f"keys must be {col.type.value} values")
            if c.dist is not None and c.dist.kind == "bernoulli" and col.type != E.T.BOOL:
                P.add(f"{path}.distribution", "bernoulli draws booleans; the column is not bool")
        elif kind == "formula":
            c.formula = _parse(src.formula, scope, f"{path}.formula", P)
            note(c.formula)
            if c.formula is not None and c.formula.t is not None:
                ft = c.formula.t.type
                ok = ft == col.type or (ft in (E.T.INT, E.T.BOOL) and col.type in (E.T.INT, E.T.DECIMAL)) or (
                    ft == E.T.DECIMAL and col.type == E.T.INT) or (
                    ft == E.T.STRING and col.type == E.T.CATEGORICAL) or (
                    col.type == E.T.STRING)
                if ft == E.T.CATEGORICAL and col.type == E.T.CATEGORICAL:
                    ok = c.formula.t.categories == col.categories or col.categories is None
                    if col.categories is None:
                        col.categories = c.formula.t.categories
                if not ok:
                    P.add(f"{path}.formula", f"gives {ft.value}, the column is {col.type.value}")
        elif kind == "value":
            try:
                c.value = _to_internal(src.value, col.type, col.categories)
            except ValueError as exc:
                P.add(f"{path}.value", str(exc))
        else:
            if col.type not in (E.T.STRING, E.T.CATEGORICAL):
                P.add(f"{path}.pattern", "a pattern makes strings; the column is not string")
            try:
                toks = parse_pattern(src.pattern)
            except PatternError as exc:
                P.add(f"{path}.pattern", str(exc))
                return c
            c.pattern = src.pattern
            for tok in toks:
                if tok.kind == "col":
                    node = _parse(tok.name, scope, f"{path}.pattern", P)
                    note(node)
                elif tok.kind == "parity":
                    node = _parse(tok.name, scope, f"{path}.pattern", P, want_bool=True)
                    note(node)
        return c

    g = col.gen
    if g in ("distribution", "formula", "value", "pattern"):
        c = case_from(cs, cp)
        if c:
            col.cases = [c]
        if g == "formula":
            col.formula_text = cs.formula
    elif g == "cases":
        for i, cspec in enumerate(cs.cases or []):
            c = case_from(cspec, f"{cp}.cases[{i}]")
            if c is None:
                continue
            if cspec.when:
                c.when = _parse(cspec.when, scope, f"{cp}.cases[{i}].when", P, want_bool=True)
                c.when_text = cspec.when
                note(c.when)
            elif i != len(cs.cases or []) - 1:
                P.add(f"{cp}.cases[{i}].when", "only the last case may omit when")
            col.cases.append(c)
        if not col.cases:
            P.add(f"{cp}.cases", "give at least one case")
    elif g == "sequence":
        col.sequence = cs.sequence
        if col.type not in (E.T.INT, E.T.STRING):
            P.add(f"{cp}.sequence", "a sequence makes int or (with format) string values")
        if cs.sequence.per_parent and not t.parent:  # type: ignore[union-attr]
            P.add(f"{cp}.sequence.per_parent", "the table has no parent")
        if cs.sequence.format:  # type: ignore[union-attr]
            try:
                cs.sequence.format.format(1)  # type: ignore[union-attr]
            except (ValueError, IndexError, KeyError) as exc:
                P.add(f"{cp}.sequence.format", f"bad format: {exc}")
    elif g == "source" and t.mode == "new" and cs.codelist and col.categories is not None:
        # a code column without generator draws from its code list's weights
        vals, w = codelists.get(cs.codelist, (list(col.categories), None))
        col.gen = "distribution"
        col.cases = [Case(None, None, "distribution", dist=Dist("categorical", values=tuple(vals),
                                                                weights=tuple(w or [1.0] * len(vals))))]
    if g == "references" and col.ref and col.ref[0] in scope.tables:
        target = scope.tables[col.ref[0]].columns.get(col.ref[1])
        if target is not None:
            if col.type == E.T.CATEGORICAL and col.categories is None:
                col.categories = target.categories
            if target.type != col.type:
                P.add(f"{cp}.references", f"type {col.type.value} differs from {col.ref[0]}.{col.ref[1]} ({target.type.value})")
    # nulls
    if cs.nulls is not None:
        ns = cs.nulls if isinstance(cs.nulls, NullSpec) else NullSpec(ratio=float(cs.nulls))
        if isinstance(cs.nulls, float | int) and not 0 <= float(cs.nulls) <= 1:
            P.add(f"{cp}.nulls", "a null ratio is within [0, 1]")
        col.null_ratio = ns.ratio
        if ns.iff:
            col.null_exact = True
            if ns.when or ns.ratio is not None:
                P.add(f"{cp}.nulls.iff", "iff says exactly which rows are null: give it without ratio or when")
        if ns.when or ns.iff:
            field_ = "iff" if ns.iff else "when"
            col.null_when = _parse(ns.iff or ns.when, scope, f"{cp}.nulls.{field_}", P, want_bool=True)
            col.null_when_text = ns.iff or ns.when
            if col.null_when is not None:
                col.null_deps = {c.name for c in E.columns_of(col.null_when) if c.table is None} - {col.name}
    if cs.step is not None:
        if col.type not in (E.T.INT, E.T.DECIMAL):
            P.add(f"{cp}.step", f"a value lattice needs an int or decimal column, not {cs.type}")
        elif abs(cs.step * col.scale - round(cs.step * col.scale)) > 1e-9 or round(cs.step * col.scale) < 1:
            P.add(f"{cp}.step", f"{cs.step:g} is not a multiple of the column's precision ({1 / col.scale:g})")
        else:
            col.step = float(cs.step)
    if cs.significant is not None:
        if col.type not in (E.T.INT, E.T.DECIMAL):
            P.add(f"{cp}.significant", f"significant digits need an int or decimal column, not {cs.type}")
        else:
            col.significant = int(cs.significant)
    deps.discard(col.name)
    unknown = (deps | col.null_deps) - set(t.columns)
    for u in sorted(unknown):
        P.add(cp, f"refers to unknown column {u!r}")
    col.deps = deps & set(t.columns)
    col.null_deps &= set(t.columns)


def _implicit_rules(t: Table, P: _Problems) -> None:
    tp = f"tables.{t.name}"
    for cname, col in t.columns.items():
        cp = f"{tp}.columns.{cname}"
        if col.lo is not None or col.hi is not None:
            node = E.Logic("and", [])
            parts = []
            if col.lo is not None:
                parts.append(E.Cmp(">=", E.Col(None, cname), _lit(col.lo, col.type)))
            if col.hi is not None:
                parts.append(E.Cmp("<=", E.Col(None, cname), _lit(col.hi, col.type)))
            node = parts[0] if len(parts) == 1 else E.Logic("and", parts)
            E.typecheck(node, _Scope({t.name: t}, t))
            t.rules.append(Rule(f"{t.name}.{cname}.range", "range", t.name, f"{cp}.range",
                                text=_range_text(cname, col), expr=node, columns=[cname],
                                params={"min": col.lo, "max": col.hi}))
        if not col.nullable and t.mode == "new" and col.gen != "source":
            node = E.Call("not_null", [E.Col(None, cname)])
            E.typecheck(node, _Scope({t.name: t}, t))
            t.rules.append(Rule(f"{t.name}.{cname}.not_null", "not_null", t.name, cp, text=f"not_null({cname})",
                                expr=node, columns=[cname]))
        if col.null_ratio is not None:
            t.rules.append(Rule(f"{t.name}.{cname}.nulls", "null_ratio", t.name, f"{cp}.nulls",
                                text=f"null ratio {col.null_ratio:g}", columns=[cname], params={"ratio": col.null_ratio}))
        if col.null_when is not None:
            # nulls.iff: null exactly on the rows where the condition holds, never elsewhere
            exact = col.null_exact
            node = E.Call("implies", [col.null_when, E.Call("is_null", [E.Col(None, cname)])])
            if exact:
                node = E.Logic("and", [node, E.Call("implies", [E.Unary("not", col.null_when),
                                                                 E.Call("not_null", [E.Col(None, cname)])])])
            E.typecheck(node, _Scope({t.name: t}, t))
            t.rules.append(Rule(f"{t.name}.{cname}.null_when", "null_when", t.name, f"{cp}.nulls.when",
                                text=f"is_null({cname}) iff {col.null_when_text}" if exact else
                                f"{col.null_when_text} -> is_null({cname})", expr=node, columns=[cname]))
        if col.unique:
            t.rules.append(Rule(f"{t.name}.{cname}.unique", "unique", t.name, f"{cp}.unique", text=f"unique({cname})",
                                columns=[cname]))
        for c in col.cases:
            if c.pattern:
                t.rules.append(Rule(f"{t.name}.{cname}.format", "format", t.name, f"{cp}.pattern",
                                    text=f"{cname} matches {c.pattern!r}", columns=[cname],
                                    params={"regex": pattern_regex(c.pattern).pattern}))
                break
        if col.ref and not col.ref_structural:
            t.rules.append(Rule(f"{t.name}.{cname}.references", "foreign_key", t.name, f"{cp}.references",
                                text=f"{cname} ∈ {col.ref[0]}.{col.ref[1]}", columns=[cname],
                                params={"table": col.ref[0], "column": col.ref[1]}))
    if t.primary_key:
        t.rules.append(Rule(f"{t.name}.primary_key", "unique", t.name, f"{tp}.primary_key",
                            text=f"unique({', '.join(t.primary_key)})", columns=list(t.primary_key)))


def _lit(v: float, t: E.T) -> E.Lit:
    if t == E.T.DECIMAL:
        return E.Lit(float(v), E.T.DECIMAL)
    kind = {E.T.DATE: E.T.DATE, E.T.DATETIME: E.T.DATETIME}.get(t, E.T.INT)
    return E.Lit(int(v), kind)


def _range_text(cname: str, col: Column) -> str:
    def show(v):
        if v is None:
            return None
        if col.type == E.T.DATE:
            return str(E.EPOCH + _dt.timedelta(days=int(v)))
        return f"{v:g}"

    lo, hi = show(col.lo), show(col.hi)
    if lo is not None and hi is not None:
        return f"{lo} <= {cname} <= {hi}"
    return f"{cname} >= {lo}" if lo is not None else f"{cname} <= {hi}"


def _compile_rule(t: Table, r, rp: str, scope: _Scope, P: _Problems) -> Rule | None:
    if isinstance(r, CheckRule):
        node = _parse(r.check, scope, f"{rp}.check", P, want_bool=True)
        text = r.check
        if r.when:
            cond = _parse(r.when, scope, f"{rp}.when", P, want_bool=True)
            if cond is None or node is None:
                return None
            node = E.Call("implies", [cond, node])
            node.t = E.TypeInfo(E.T.BOOL)
            text = f"if {r.when} then {r.check}"
        if node is None:
            return None
        cols = sorted({c.key for c in E.columns_of(node)})
        return Rule(r.name or f"{t.name}.check{len(t.rules)}", "check", t.name, rp, text=text, expr=node, columns=cols)
    if isinstance(r, RangeRule):
        it = r.range
        col = t.columns.get(it.column)
        if col is None:
            P.add(f"{rp}.range.column", f"unknown column {it.column!r}")
            return None
        try:
            lo = _to_internal(it.min, col.type) if it.min is not None else None
            hi = _to_internal(it.max, col.type) if it.max is not None else None
        except ValueError as exc:
            P.add(f"{rp}.range", str(exc))
            return None
        # tighten the column's own domain: the solver uses it as the variable's bounds
        if lo is not None:
            col.lo = lo if col.lo is None else max(col.lo, lo)
        if hi is not None:
            col.hi = hi if col.hi is None else min(col.hi, hi)
        parts = []
        if lo is not None:
            parts.append(E.Cmp(">=", E.Col(None, it.column), _lit(lo, col.type)))
        if hi is not None:
            parts.append(E.Cmp("<=", E.Col(None, it.column), _lit(hi, col.type)))
        if not parts:
            P.add(f"{rp}.range", "give min, max or both")
            return None
        node = parts[0] if len(parts) == 1 else E.Logic("and", parts)
        E.typecheck(node, scope)
        return Rule(r.name or f"{t.name}.{it.column}.range_rule", "range", t.name, rp,
                    text=_range_text(it.column, Column(it.column, t.name, col.type, lo=lo, hi=hi)), expr=node,
                    columns=[it.column], params={"min": lo, "max": hi})

    def need(cols: list[str], what: str) -> bool:
        bad = [c for c in cols if c not in t.columns]
        for c in bad:
            P.add(f"{rp}.{what}", f"unknown column {c!r}")
        return not bad

    if isinstance(r, UniqueRule):
        if not need(r.unique, "unique"):
            return None
        return Rule(r.name or f"{t.name}.unique_{'_'.join(r.unique)}", "unique", t.name, rp,
                    text=f"unique({', '.join(r.unique)})", columns=list(r.unique))
    if isinstance(r, IncreasingRule):
        it = r.increasing
        if not need([it.column, it.order_by, *it.per], "increasing"):
            return None
        return Rule(r.name or f"{t.name}.{it.column}.increasing", "increasing", t.name, rp,
                    text=f"{it.column} {'strictly ' if it.strict else ''}increasing with {it.order_by}"
                    + (f" per {', '.join(it.per)}" if it.per else ""),
                    columns=[it.column, it.order_by, *it.per],
                    params={"column": it.column, "order_by": it.order_by, "per": list(it.per), "strict": it.strict})
    if isinstance(r, CoverageRule):
        it = r.coverage
        if not need([*it.columns, *it.per], "coverage"):
            return None
        for c in it.columns:
            col = t.columns[c]
            if col.type not in (E.T.CATEGORICAL, E.T.BOOL):
                P.add(f"{rp}.coverage.columns", f"{c!r} must be categorical or bool to be covered")
                return None
        return Rule(r.name or f"{t.name}.coverage_{'_'.join(it.columns)}", "coverage", t.name, rp,
                    text=f"every {' × '.join(it.columns)} appears" + (f" per {', '.join(it.per)}" if it.per else ""),
                    columns=[*it.columns, *it.per], params={"columns": list(it.columns), "per": list(it.per)})
    if isinstance(r, CorrelationRule):
        it = r.correlation
        if not need(it.columns, "correlation.columns"):
            return None
        for c in it.columns:
            col = t.columns[c]
            drawn = (col.gen == "distribution" and col.dist is not None) or (
                col.gen == "cases" and bool(col.cases) and all(k.kind == "distribution" and k.base is None for k in col.cases))
            if not drawn:
                P.add(f"{rp}.correlation.columns", f"{c!r} must be generated by a distribution "
                      "(or by cases that are all distributions) to be correlated")
                return None
        when = None
        if it.when is not None:
            when = _parse(it.when, scope, f"{rp}.correlation.when", P, want_bool=True)
            if when is None:
                return None
            inside = sorted({c.name for c in E.columns_of(when) if c.table is None} & set(it.columns))
            if inside:
                P.add(f"{rp}.correlation.when", f"the condition may not use the correlated column(s) {', '.join(inside)}")
                return None
        k = len(it.columns)
        m = np.eye(k)
        if it.matrix is not None:
            m = np.asarray(it.matrix, dtype=float)
            if not np.allclose(m, m.T, atol=1e-9) or not np.allclose(np.diag(m), 1.0):
                P.add(f"{rp}.correlation.matrix", "must be symmetric with ones on the diagonal")
                return None
        else:
            m[0, 1] = m[1, 0] = float(it.target)  # type: ignore[arg-type]
        name = r.name or f"{t.name}.correlation_{'_'.join(it.columns)}"
        return Rule(name, "correlation", t.name, rp,
                    text=f"corr({', '.join(it.columns)}) = " + (f"{it.target:g}" if it.matrix is None else "matrix")
                    + (f" where {it.when}" if it.when else ""),
                    columns=list(it.columns), params={"matrix": m, "method": it.method, "tolerance": it.tolerance,
                                                      "when": when, "when_text": it.when})
    return None


def _build_corr_groups(t: Table, tp: str, P: _Problems) -> None:
    rules = [r for r in t.rules if r.kind == "correlation"]
    if not rules:
        return
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for r in rules:
        for c in r.columns[1:]:
            parent[find(c)] = find(r.columns[0])
    groups: dict[str, list[str]] = {}
    for r in rules:
        for c in r.columns:
            g = groups.setdefault(find(c), [])
            if c not in g:
                g.append(c)
    for cols in groups.values():
        mine = [r for r in rules if find(r.columns[0]) == find(cols[0])]
        # one matrix per condition (None: every row), in the order the conditions first appear
        scopes: dict[str | None, list[Rule]] = {}
        for r in mine:
            scopes.setdefault(r.params.get("when_text"), []).append(r)
        # conditional matrices first (first match wins), the unconditional one covers the rest
        for when_text, srules in sorted(scopes.items(), key=lambda kv: kv[0] is None):
            k = len(cols)
            m = np.eye(k)
            methods = set()
            for r in srules:
                methods.add(r.params["method"])
                idx = [cols.index(c) for c in r.columns]
                for a, ia in enumerate(idx):
                    for b, ib in enumerate(idx):
                        if ia != ib:
                            m[ia, ib] = r.params["matrix"][a, b]
            when = srules[0].params.get("when")
            deps = {c.name for c in E.columns_of(when) if c.table is None} if when is not None else set()
            t.corr.append(CorrGroup(cols, m, methods.pop() if len(methods) == 1 else "spearman",
                                    ", ".join(r.name for r in srules), when=when, when_text=when_text, when_deps=deps))


def _order_columns(t: Table, tp: str, P: _Problems) -> None:
    group_of: dict[str, int] = {}
    for gi, g in enumerate(t.corr):
        first = next((i for i, h in enumerate(t.corr) if h.columns == g.columns), gi)
        for c in g.columns:
            group_of[c] = first

    def graph(with_null_deps: bool) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
        nodes: dict[str, set[str]] = {}
        members: dict[str, list[str]] = {}
        for cname, col in t.columns.items():
            key = f"@corr{group_of[cname]}" if cname in group_of else cname
            members.setdefault(key, []).append(cname)
            nodes.setdefault(key, set())
            for d in col.deps | (col.null_deps if with_null_deps else set()):
                dk = f"@corr{group_of[d]}" if d in group_of else d
                if dk != key:
                    nodes[key].add(dk)
        for g in t.corr:  # a group's condition is evaluated before its columns are drawn
            key = f"@corr{group_of[g.columns[0]]}"
            for d in g.when_deps:
                dk = f"@corr{group_of[d]}" if d in group_of else d
                if dk != key and d in t.columns:
                    nodes[key].add(dk)
        return nodes, members

    # a column is drawn after the columns its nulls depend on when that is possible; otherwise its
    # nulls are applied later, once those columns exist (engine: pending nulls)
    for with_null_deps in (True, False):
        nodes, members = graph(with_null_deps)
        try:
            order = list(graphlib.TopologicalSorter({k: sorted(v) for k, v in nodes.items()}).static_order())
            break
        except graphlib.CycleError as exc:
            if not with_null_deps:
                P.add(f"{tp}.columns", f"columns depend on each other in a cycle: {' → '.join(exc.args[1])}")
                return
    t.order = [members[k] for k in order if k in members]


def load_project(path_or_spec: str | Path | dict | ProjectSpec, source: str | None = None) -> Project:
    """Load a data project: a YAML path, a packaged project name (``edinburgh``), text or a mapping."""
    if isinstance(path_or_spec, str) and "\n" not in path_or_spec and not path_or_spec.endswith((".yaml", ".yml")):
        pkg = resources.files("fabrication") / "projects" / f"{path_or_spec}.yaml"
        if pkg.is_file():
            return compile_project(pkg.read_text(), source=f"{path_or_spec} (packaged)")
        raise ProjectError([("", f"no such project file or packaged project: {path_or_spec!r} "
                              f"(packaged: {', '.join(packaged_projects())})")], path_or_spec)
    return compile_project(path_or_spec, source)


def packaged_projects() -> list[str]:
    return sorted(p.name[:-5] for p in (resources.files("fabrication") / "projects").iterdir() if p.name.endswith(".yaml"))
