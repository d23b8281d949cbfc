"""The data project: what a YAML file may say, checked field by field.

Only the *shape* is checked here (pydantic, ``extra="forbid"`` so a misspelt key is an error, not a
silently ignored setting). Meaning — does that column exist, does that expression type-check, is
the table graph acyclic — is checked by :mod:`fabrication.model`. Both report problems as
``ProjectError`` with one line per problem: the field path and the reason.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

TYPES = ("int", "decimal", "bool", "string", "date", "datetime", "categorical", "code")


class ProjectError(ValueError):
    """A data project that cannot be used; ``problems`` lists (path, reason)."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = problems
        self.source = source
        head = f"invalid data project {source}" if source else "invalid data project"
        lines = [f"{head}: {len(problems)} problem(s)"] + [f"  {p or '<root>'}: {r}" for p, r in problems]
        super().__init__("\n".join(lines) if len(problems) > 1 else f"{head}: {problems[0][0] or '<root>'}: {problems[0][1]}")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Scalar = int | float | str | bool | _dt.date | _dt.datetime


class DistributionSpec(_M):
    kind: str
    # numeric parameters (dates given as YYYY-MM-DD are converted where a location is meant)
    mean: Scalar | None = None
    sd: float | None = None
    min: Scalar | None = None
    max: Scalar | None = None
    scale: float | None = None
    loc: Scalar | None = None
    a: float | None = None
    b: float | None = None
    shape: float | None = None
    sigma: float | None = None
    lam: float | None = None
    p: float | None = None
    weights: dict[Any, float] | list[float] | None = None
    edges: list[Scalar] | None = None
    base: str | None = Field(None, description="expression added to every draw (offset from another column)")


class NullSpec(_M):
    ratio: float | None = Field(None, ge=0, le=1)
    when: str | None = None
    iff: str | None = Field(None, description="null exactly on the rows where this condition holds")

    @model_validator(mode="after")
    def _one(self):
        if self.ratio is None and self.when is None and self.iff is None:
            raise ValueError("give ratio, when, or both (or iff alone)")
        return self


class SequenceSpec(_M):
    start: int = 1
    step: int = 1
    per_parent: bool = False
    format: str | None = None


class CaseSpec(_M):
    when: str | None = None
    distribution: DistributionSpec | None = None
    formula: str | None = None
    value: Scalar | None = None
    pattern: str | None = None


class RangeSpec(_M):
    min: Scalar | None = None
    max: Scalar | None = None


class ColumnSpec(_M):
    type: Literal["int", "decimal", "bool", "string", "date", "datetime", "categorical", "code"]
    description: str | None = None
    categories: list[Scalar] | None = None
    codelist: str | None = None
    precision: int = Field(2, ge=0, le=6)
    step: float | None = Field(None, gt=0, description="values are multiples of step (a value lattice)")
    significant: int | None = Field(None, ge=1, le=15, description="values are rounded to this many significant digits")
    nulls: float | NullSpec | None = None
    unique: bool = False
    output: bool = True
    range: RangeSpec | None = None
    # generators: exactly one
    distribution: DistributionSpec | None = None
    formula: str | None = None
    pattern: str | None = None
    sequence: SequenceSpec | None = None
    references: str | None = None
    value: Scalar | None = None
    cases: list[CaseSpec] | None = None

    @model_validator(mode="after")
    def _one_generator(self):
        given = [
            g for g in ("distribution", "formula", "pattern", "sequence", "references", "value", "cases")
            if getattr(self, g) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"a column has one generator, got {', '.join(given)}")
        return self

    @property
    def generator(self) -> str | None:
        for g in ("distribution", "formula", "pattern", "sequence", "references", "value", "cases"):
            if getattr(self, g) is not None:
                return g
        return None


class CountSpec(_M):
    per: str
    count: int | str | DistributionSpec | None = None
    expand: ExpandSpec | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.count is None) == (self.expand is None):
            raise ValueError("give either count (int, expression or distribution) or expand")
        return self


class ExpandSpec(_M):
    table: str
    when: str | None = None


CountSpec.model_rebuild()


class SourceSpec(_M):
    rows: list[dict[str, Any]] | None = None
    csv: str | None = None
    sample: Literal["all", "with_replacement", "without_replacement"] = "all"

    @model_validator(mode="after")
    def _one(self):
        if (self.rows is None) == (self.csv is None):
            raise ValueError("give exactly one of rows or csv")
        return self


class CheckRule(_M):
    name: str | None = None
    description: str | None = None
    check: str
    when: str | None = None


class RangeRule(_M):
    name: str | None = None
    description: str | None = None
    range: RangeItem


class RangeItem(RangeSpec):
    column: str


RangeRule.model_rebuild()


class UniqueRule(_M):
    name: str | None = None
    description: str | None = None
    unique: list[str]


class IncreasingItem(_M):
    column: str
    order_by: str
    per: list[str] = []
    strict: bool = True


class IncreasingRule(_M):
    name: str | None = None
    description: str | None = None
    increasing: IncreasingItem


class CoverageItem(_M):
    columns: list[str]
    per: list[str] = []


class CoverageRule(_M):
    name: str | None = None
    description: str | None = None
    coverage: CoverageItem


class CorrelationItem(_M):
    columns: list[str]
    target: float | None = Field(None, ge=-1, le=1)
    matrix: list[list[float]] | None = None
    method: Literal["pearson", "spearman", "copula"] = "spearman"
    tolerance: float = Field(0.1, gt=0, le=1)
    when: str | None = Field(None, description="the correlation holds among the rows where this condition holds "
                             "(several rules over the same columns with different conditions: one matrix per subset)")

    @model_validator(mode="after")
    def _shape(self):
        k = len(self.columns)
        if k < 2:
            raise ValueError("correlation needs two or more columns")
        if self.matrix is None:
            if k != 2 or self.target is None:
                raise ValueError("give target for two columns, or matrix for several")
        else:
            if len(self.matrix) != k or any(len(r) != k for r in self.matrix):
                raise ValueError(f"matrix must be {k}×{k}")
        return self


class CorrelationRule(_M):
    name: str | None = None
    description: str | None = None
    correlation: CorrelationItem


Rule = CheckRule | RangeRule | UniqueRule | IncreasingRule | CoverageRule | CorrelationRule
RULE_KEYS = {
    "check": CheckRule, "range": RangeRule, "unique": UniqueRule, "increasing": IncreasingRule,
    "coverage": CoverageRule, "correlation": CorrelationRule,
}


class ComponentTable(_M):
    """One mixture component, a named table: its weight (real rows it stands for), each drawn column's
    marginal, and the Gaussian copula's correlation matrix over ``columns`` (in that order)."""
    weight: float = Field(gt=0)
    marginals: dict[str, DistributionSpec]
    correlation: list[list[float]] | None = None
    tolerance: float = Field(0.15, gt=0)


class ComponentsSpec(_M):
    """A mixture of Gaussian copulas stated once: the hidden column ``column`` (``output: false``)
    takes one component name per row with the components' weights; every column of the components'
    ``marginals`` draws from its component's marginal, correlated by the component's matrix. Rules and
    conditions refer to a component by name (``component == 'c2'``, ``component in ['c1', 'c4']``)."""
    column: str = "component"
    description: str | None = None
    columns: list[str] = Field([], description="the copula's columns: the order of every correlation matrix")
    tables: dict[str, ComponentTable]

    @model_validator(mode="after")
    def _shape(self):
        if not self.tables:
            raise ValueError("give at least one component")
        names = [set(t.marginals) for t in self.tables.values()]
        if any(n != names[0] for n in names):
            raise ValueError("every component gives a marginal for the same columns")
        k = len(self.columns)
        for name, t in self.tables.items():
            if t.correlation is not None and (len(t.correlation) != k or any(len(r) != k for r in t.correlation)):
                raise ValueError(f"{name}: correlation must be {k}×{k} (one row per column of columns)")
            if t.correlation is not None and not set(self.columns) <= names[0]:
                raise ValueError(f"{name}: every column of columns needs a marginal")
        return self


def expand_components(raw: dict, table: str = "") -> dict:
    """A table's ``components`` block written out as the general mechanisms it stands for: the hidden
    categorical column, each drawn column's ``cases`` (one per component) and one conditional
    ``correlation`` rule per component. A drawn column states its type (and range, nulls …) but no
    generator of its own."""
    try:
        comp = ComponentsSpec.model_validate(raw["components"])
    except ValidationError as exc:
        raise ValueError("; ".join(f"components.{p}: {m}" if p else f"components: {m}"
                                   for p, m in _pyd_problems(exc))) from None
    out = {k: v for k, v in raw.items() if k != "components"}
    cols = dict(out.get("columns") or {})
    if comp.column in cols:
        raise ValueError(f"components.column {comp.column!r} is also a column of the table")
    names = list(comp.tables)
    cols[comp.column] = {"type": "categorical", "categories": names, "output": False,
                         "description": comp.description or "mixture component (hidden)",
                         "distribution": {"kind": "categorical", "weights": {n: t.weight for n, t in comp.tables.items()}}}
    for c in comp.tables[names[0]].marginals:
        spec = cols.get(c)
        if not isinstance(spec, dict):
            raise ValueError(f"components: {c!r} is not a column of the table")
        gens = [g for g in ("distribution", "formula", "pattern", "sequence", "references", "value", "cases") if g in spec]
        if gens:
            raise ValueError(f"components: column {c!r} is drawn by its component, give it no {gens[0]}")
        cases = []
        for i, (n, t) in enumerate(comp.tables.items()):
            case: dict = {"distribution": t.marginals[c].model_dump(exclude_none=True)}
            if i < len(names) - 1:
                case = {"when": f"{comp.column} == '{n}'", **case}
            cases.append(case)
        cols[c] = {**spec, "cases": cases}
    rules = list(out.get("rules") or [])
    for n, t in comp.tables.items():
        if t.correlation is not None and len(comp.columns) >= 2:
            rules.append({"name": f"{table}_copula_{n}" if table else f"copula_{n}", "correlation": {
                "columns": list(comp.columns), "method": "copula", "when": f"{comp.column} == '{n}'",
                "tolerance": t.tolerance, "matrix": t.correlation}})
    out["columns"], out["rules"] = cols, rules
    return out


class TableSpec(_M):
    description: str | None = None
    mode: Literal["new", "reuse", "other"] = "new"
    rows: int | CountSpec | None = None
    key: str | None = None
    primary_key: list[str] = []
    source: SourceSpec | None = None
    output: bool | None = None
    columns: dict[str, ColumnSpec]
    conditions: dict[str, str] = Field({}, description="named conditions, usable by name in every expression")
    rules: list[dict[str, Any]] = []

    @model_validator(mode="before")
    @classmethod
    def _components(cls, data):
        if isinstance(data, dict) and "components" in data:
            return expand_components(data)
        return data

    @field_validator("rows")
    @classmethod
    def _pos(cls, v):
        if isinstance(v, int) and v < 0:
            raise ValueError("rows must be ≥ 0")
        return v

    @model_validator(mode="after")
    def _mode(self):
        if self.mode in ("reuse", "other") and self.source is None:
            raise ValueError(f"mode {self.mode} needs a source (rows or csv)")
        if self.mode == "new" and self.source is not None:
            raise ValueError("a source belongs to mode reuse or other")
        if self.mode == "new" and self.rows is None:
            raise ValueError("mode new needs rows (an int, or {per: parent, count|expand: …})")
        return self

    def parsed_rules(self, path: str) -> list[tuple[str, Any]]:
        out, problems = [], []
        for i, raw in enumerate(self.rules):
            p = f"{path}.rules[{i}]"
            if not isinstance(raw, dict):
                problems.append((p, "a rule is a mapping"))
                continue
            kinds = [k for k in raw if k in RULE_KEYS]
            if len(kinds) != 1:
                problems.append((p, f"a rule has exactly one of {', '.join(RULE_KEYS)}"))
                continue
            try:
                out.append((p, RULE_KEYS[kinds[0]].model_validate(raw)))
            except ValidationError as exc:
                problems.extend(_pyd_problems(exc, p))
        if problems:
            raise ProjectError(problems)
        return out


class OutputSpec(_M):
    kind: Literal["csv", "json", "xlsx", "sqlite", "postgresql", "mqtt", "vault"]
    path: str | None = None
    url: str | None = None
    topic: str | None = None
    schema_: str | None = Field(None, alias="schema")
    if_exists: Literal["replace", "append", "fail"] = "replace"


class ProjectSpec(_M):
    name: str
    description: str | None = None
    seed: int = 0
    batch_size: int = Field(2000, ge=1)
    codelists: dict[str, str | dict[str, Any] | list[Any]] = {}
    tables: dict[str, TableSpec]
    outputs: list[OutputSpec] = []


def _pyd_problems(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"] if not str(x).startswith(("function-", "tagged-union"))]
        # drop pydantic's union-branch names (e.g. 'int', 'CountSpec') from the path
        clean = []
        for part in loc:
            if part in ("int", "float", "str", "bool", "date", "datetime", "CountSpec", "NullSpec",
                        "DistributionSpec", "list[float]", "dict[any,float]", "constrained-int"):
                continue
            clean.append(f"[{part}]" if part.isdigit() else part)
        path = ".".join(clean).replace(".[", "[")
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        msg = err["msg"].removeprefix("Value error, ")
        out.append((path, msg))
    # collapse duplicates (union branches repeat the same path)
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def load_spec(data: dict | str | Path, source: str | None = None) -> ProjectSpec:
    """Read and shape-check a project (a mapping, YAML text, or a path to a YAML file)."""
    if isinstance(data, Path) or (isinstance(data, str) and "\n" not in data and data.endswith((".yaml", ".yml"))):
        path = Path(data)
        source = source or str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ProjectError([("", f"cannot read {path}: {exc.strerror}")], source) from None
        data = text
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ProjectError([(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")], source) from None
    if not isinstance(data, dict):
        raise ProjectError([("", "a data project is a YAML mapping")], source)
    try:
        return ProjectSpec.model_validate(data)
    except ValidationError as exc:
        raise ProjectError(_pyd_problems(exc), source) from None
