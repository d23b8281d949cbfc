"""The diagnostic report produced after every run.

Every hard rule is checked again on the final, merged output — independently of the repair that
was supposed to make it hold — and must reach 100 %. Statistical rules (correlations, null ratios)
and the columns' distributions are reported as achieved against asked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as sstats

from . import expr as E
from .data import TableData, TableEnv

if TYPE_CHECKING:
    from .generate import RepairStats
    from .model import Project


@dataclass
class RuleResult:
    name: str
    table: str
    kind: str
    text: str
    checked: int
    passed: int
    repaired: int = 0
    detail: str = ""

    @property
    def validity(self) -> float:
        return 1.0 if self.checked == 0 else self.passed / self.checked


@dataclass
class TargetResult:
    name: str
    table: str
    kind: str  # correlation | null_ratio | distribution
    columns: list[str]
    asked: Any
    achieved: Any
    ok: bool
    detail: str = ""


@dataclass
class Report:
    project: str
    rows: dict[str, int]
    rules: list[RuleResult] = field(default_factory=list)
    targets: list[TargetResult] = field(default_factory=list)
    repair: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.passed == r.checked for r in self.rules) and all(
            t.ok for t in self.targets if t.kind == "null_ratio")

    @property
    def rule_validity(self) -> float:
        """Fraction of (rule, row) checks that pass, over all hard rules."""
        checked = sum(r.checked for r in self.rules)
        return 1.0 if checked == 0 else sum(r.passed for r in self.rules) / checked

    def to_dict(self) -> dict:
        return {
            "project": self.project, "rows": self.rows, "seconds": round(self.seconds, 3), "ok": self.ok,
            "rule_validity": self.rule_validity,
            "rules": [{**asdict(r), "validity": r.validity} for r in self.rules],
            "targets": [asdict(t) for t in self.targets],
            "repair": self.repair,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_jsonable)

    def render_failures(self) -> str:
        lines = [f"  {r.name} [{r.kind}] {r.text}: {r.validity:.2%} ({r.checked - r.passed} of {r.checked} rows fail)"
                 + (f" — {r.detail}" if r.detail else "") for r in self.rules if r.passed != r.checked]
        lines += [f"  {t.name}: asked {t.asked}, got {t.achieved}" for t in self.targets
                  if t.kind == "null_ratio" and not t.ok]
        return "\n".join(lines)

    def render(self, console=None) -> None:
        """Print the report with rich tables."""
        from rich.console import Console
        from rich.table import Table as RTable

        console = console or Console()
        rt = RTable(title=f"{self.project}: rules checked on the output", show_lines=False)
        for col in ("table", "rule", "kind", "rows", "valid", "repaired"):
            rt.add_column(col, justify="right" if col in ("rows", "valid", "repaired") else "left")
        notnull: dict[str, list[RuleResult]] = {}
        for r in self.rules:
            if r.kind == "not_null":
                notnull.setdefault(r.table, []).append(r)
        for table, rs in notnull.items():
            bad = [r for r in rs if r.passed != r.checked]
            rt.add_row(table, f"{len(rs)} not-null rules", "not_null", str(rs[0].checked),
                       f"{min(r.validity for r in rs):.2%}", "0", style="bold red" if bad else None)
        for r in self.rules:
            if r.kind == "not_null":
                continue
            style = None if r.passed == r.checked else "bold red"
            rt.add_row(r.table, f"{r.name}\n[dim]{r.text}[/dim]", r.kind, str(r.checked), f"{r.validity:.2%}",
                       str(r.repaired), style=style)
        console.print(rt)
        if self.targets:
            tt = RTable(title="distributions, correlations and null ratios: asked vs achieved")
            for col in ("table", "target", "kind", "asked", "achieved", ""):
                tt.add_column(col)
            for t in self.targets:
                tt.add_row(t.table, t.name, t.kind, _fmt(t.asked), _fmt(t.achieved), "ok" if t.ok else "off",
                           style=None if t.ok else "yellow")
            console.print(tt)
        console.print(f"rule validity {self.rule_validity:.2%} over {sum(self.rows.values())} rows "
                      f"in {self.seconds:.2f} s" + ("" if self.ok else " — [bold red]FAILED[/bold red]"))


def _key(v) -> str:
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in list(v.items())[:6])
    return str(v)


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def build_report(project: Project, data: dict[str, TableData], repair: dict[str, RepairStats] | None = None) -> Report:
    from .engine import duplicated_rows
    from .generate import check_increasing, check_rule, coverage_labels, coverage_missing

    rows = {n: td.n for n, td in data.items() if project.tables[n].output}
    rep = Report(project.name, rows)
    repair = repair or {}
    for name, st in repair.items():
        rep.repair[name] = {"rows_checked": st.rows_checked, "rows_repaired": st.rows_repaired,
                            "solver_calls": st.solver_calls, "solver_seconds": round(st.solver_seconds, 3),
                            "redrawn": st.redrawn}
    for t in project.tables.values():
        td = data.get(t.name)
        if td is None:
            continue
        env = TableEnv(project, t, data)
        fixed = repair.get(t.name).per_rule if t.name in repair else {}
        for r in t.rules:
            rr = RuleResult(r.name, t.name, r.kind, r.text, td.n, td.n, fixed.get(r.name, 0))
            if r.row_level:
                ok = check_rule(r, env)
                rr.passed = int(ok.sum())
            elif r.kind == "unique":
                rr.passed = td.n - int(duplicated_rows(td, r.columns).sum())
            elif r.kind == "increasing":
                rr.passed = int(check_increasing(r, t, td).sum())
            elif r.kind == "foreign_key":
                other = data[r.params["table"]]
                ok = np.isin(td.values[r.columns[0]], other.values[r.params["column"]])
                m = td.null(r.columns[0])
                rr.passed = int((ok | (m if m is not None else False)).sum())
            elif r.kind == "coverage":
                missing = coverage_missing(r, t, td)
                total_missing = sum(len(m[0]) for m in missing.values())
                groups = max(1, len(missing))
                rr.checked = max(1, sum(m[2] for m in missing.values())) if missing else 1
                rr.passed = rr.checked - total_missing if missing else 1
                if missing:
                    g, (miss, members, total) = next(iter(missing.items()))
                    where, shown = coverage_labels(r, t, g, list(miss)[:3])
                    rr.detail = (f"{total_missing} combination(s) missing in {groups} group(s), e.g. where {where}: "
                                 f"{'; '.join(shown)}{' …' if len(miss) > 3 else ''} "
                                 f"({len(members)} rows for {total} combinations)")
            elif r.kind == "null_ratio":
                m = td.null(r.columns[0])
                got = float(m.mean()) if m is not None and td.n else 0.0
                asked = r.params["ratio"]
                # exact per batch; the merge of rounded batch counts may differ by < 1 row per batch
                tol = (0.5 * _batches(project, td) + 1) / max(td.n, 1)
                rep.targets.append(TargetResult(r.name, t.name, "null_ratio", r.columns, asked, round(got, 6),
                                                bool(abs(got - asked) <= tol)))
                continue
            elif r.kind == "correlation":
                _correlation_targets(rep, r, t, td, env)
                continue
            rep.rules.append(rr)
        _distribution_targets(rep, t, td, env)
    return rep


def _batches(project, td) -> int:
    roots = project.roots
    if not roots:
        return 1
    return max(1, max(-(-(t.rows or 0) // project.batch_size) for t in roots))


def _correlation_targets(rep: Report, r, t, td: TableData, env: TableEnv | None = None) -> None:
    cols = r.columns
    m = r.params["matrix"]
    scope = np.ones(td.n, dtype=bool)
    if r.params.get("when") is not None and env is not None:  # measured among the rows the rule speaks of
        v, nm = E.evaluate(r.params["when"], env)
        scope = v.astype(bool) & (~nm if nm is not None else True)
    for a in range(len(cols)):
        for b in range(a + 1, len(cols)):
            x = td.values[cols[a]].astype(float)
            y = td.values[cols[b]].astype(float)
            keep = scope.copy()
            for c in (cols[a], cols[b]):
                nm = td.null(c)
                if nm is not None:
                    keep &= ~nm
            x, y = x[keep], y[keep]
            if len(x) < 3 or x.std() == 0 or y.std() == 0:
                got = float("nan")
            elif r.params["method"] == "spearman":
                got = float(sstats.spearmanr(x, y).statistic)
            elif r.params["method"] == "copula":
                zx = sstats.norm.ppf(sstats.rankdata(x) / (len(x) + 1))
                zy = sstats.norm.ppf(sstats.rankdata(y) / (len(y) + 1))
                got = float(np.corrcoef(zx, zy)[0, 1])
            else:
                got = float(np.corrcoef(x, y)[0, 1])
            asked = float(m[a, b])
            rep.targets.append(TargetResult(r.name if len(cols) == 2 else f"{r.name}[{cols[a]},{cols[b]}]", t.name,
                                            "correlation", [cols[a], cols[b]], asked, round(got, 4),
                                            bool(abs(got - asked) <= r.params["tolerance"]), r.params["method"]))


def _distribution_targets(rep: Report, t, td: TableData, env: TableEnv | None = None) -> None:
    for cname, col in t.columns.items():
        if td.n == 0:
            continue
        nm = td.null(cname)
        if col.gen == "cases" and env is not None and all(c.kind == "distribution" and c.base is None for c in col.cases):
            # each case against the rows it applies to (the first case whose condition holds)
            free = np.ones(td.n, dtype=bool)
            for i, case in enumerate(col.cases):
                if case.when is None:
                    sel = free.copy()
                else:
                    cv, cm = E.evaluate(case.when, env)
                    sel = free & cv.astype(bool) & (~cm if cm is not None else True)
                free &= ~sel
                keep = sel & (~nm if nm is not None else True)
                if keep.sum() >= 2:
                    label = f"{t.name}.{cname}[{case.when_text}]" if case.when_text else f"{t.name}.{cname}[case {i + 1}]"
                    _distribution_target(rep, t, col, case.dist, td.values[cname][keep], label)
            continue
        d = col.dist
        if d is None or col.cases[0].base is not None:
            continue
        v = td.values[cname]
        if nm is not None:
            v = v[~nm]
        if len(v) == 0:
            continue
        _distribution_target(rep, t, col, d, v, f"{t.name}.{cname}")


def _distribution_target(rep: Report, t, col, d, v: np.ndarray, label: str) -> None:
    cname = col.name
    if d.kind == "categorical" or col.type in (E.T.CATEGORICAL, E.T.BOOL):
        tot = sum(d.weights) if d.kind == "categorical" else 1.0
        if d.kind == "categorical":
            asked = {_key(k): w / tot for k, w in zip(d.values, d.weights, strict=True)}
        elif d.kind == "bernoulli":
            asked = {"True": d.p("p"), "False": 1 - d.p("p")}
        else:
            return
        uniq, cnt = np.unique(v, return_counts=True)  # count codes first: labels only for distinct values
        if col.type == E.T.CATEGORICAL:
            uniq = np.asarray(col.categories, dtype=object)[uniq]
        got: dict[str, float] = {}
        for k, c in zip(uniq.tolist(), cnt.tolist(), strict=True):
            got[_key(k)] = got.get(_key(k), 0.0) + c / len(v)
        diff = max(abs(got.get(k, 0.0) - a) for k, a in asked.items())
        tol = 3 * np.sqrt(0.25 / len(v)) + 0.02
        rep.targets.append(TargetResult(label, t.name, "distribution", [cname],
                                        {k: round(a, 4) for k, a in list(asked.items())[:8]},
                                        {k: round(got.get(k, 0.0), 4) for k in list(asked)[:8]},
                                        bool(diff <= tol), f"max frequency difference {diff:.4f}"))
    else:
        mom = d.moments()
        if mom is None:
            return
        x = v.astype(float) / (1.0 if col.type != E.T.DECIMAL else 1.0)
        got = (float(x.mean()), float(x.std()))
        se = mom[1] / np.sqrt(len(x))
        ok = abs(got[0] - mom[0]) <= 4 * se + 0.05 * mom[1] and abs(got[1] - mom[1]) <= 4 * se + 0.1 * mom[1]
        rep.targets.append(TargetResult(label, t.name, "distribution", [cname],
                                        {"kind": d.kind, "mean": round(mom[0], 4), "sd": round(mom[1], 4)},
                                        {"mean": round(got[0], 4), "sd": round(got[1], 4)}, bool(ok)))
