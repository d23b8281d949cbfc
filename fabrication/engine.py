"""The parallel engine: a manager process splits the root rows into batches, worker processes
fabricate each batch's whole table tree, and the manager merges them.

Determinism: every (batch, table) draws from its own ``SeedSequence([seed, batch, table])`` and the
batch plan depends only on the row counts and ``batch_size`` — never on the number of workers — so
a seed gives the same data with 1 worker or 8. MiniZinc runs with a seed derived the same way.

What only the manager can do happens at the merge: global sequences (ids) are numbered, unique
values that collide *across* batches are redrawn, and copies of parent keys are materialised from
the final parents (children hold parent row indices, never key values, until then).
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import expr as E
from .data import TableData, TableEnv, to_frame
from .generate import (
    MAX_ROUNDS,
    FabricationError,
    RepairStats,
    UnsatisfiableRuleError,
    apply_pending_nulls,
    check_increasing,
    check_rule,
    coerce,
    coverage_missing,
    fix_increasing,
    generate_column,
    generate_step,
    make_rows,
    rederive,
)
from .model import Project, Table, _to_internal, compile_project, load_project
from .report import Report, build_report

log = logging.getLogger(__name__)

REPAIRABLE = ("check", "range")


def _rng(seed: int, *path: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, *path])))


# ---------------------------------------------------------------------------- global tables


def global_tables(project: Project) -> dict[str, TableData]:
    """Tables in mode reuse/other, from their sources; shared by every batch."""
    out: dict[str, TableData] = {}
    for ti, t in enumerate(project.tables.values()):
        if not t.is_global:
            continue
        rows = t.source_rows or []
        n = len(rows)
        rng = _rng(project.seed, 1_000_000, ti)
        if t.mode == "reuse" and t.source_sample != "all" and t.rows is not None:
            if t.source_sample == "with_replacement":
                pick = rng.integers(0, max(n, 1), t.rows) if n else np.zeros(0, dtype=np.int64)
            else:
                if t.rows > n:
                    raise FabricationError(f"{t.name}: cannot draw {t.rows} rows without replacement from {n}")
                pick = rng.permutation(n)[: t.rows]
        else:
            pick = np.arange(n)
        td = TableData(t.name, len(pick))
        for cname, col in t.columns.items():
            raw = [rows[i].get(cname) for i in pick]
            nulls = np.array([v is None or v == "" for v in raw], dtype=bool)
            vals = []
            for v, isnull in zip(raw, nulls, strict=True):
                if isnull:
                    vals.append(None)
                    continue
                try:
                    vals.append(_to_internal(v, col.type, col.categories))
                except ValueError as exc:
                    raise FabricationError(f"{t.name}.{cname}: source value {v!r}: {exc}") from None
            if col.type == E.T.CATEGORICAL:
                pos = {c: i for i, c in enumerate(col.categories or ())}
                arr = np.array([pos.get(v, 0) if v is not None else 0 for v in vals], dtype=np.int64)
            elif col.type == E.T.STRING:
                arr = np.array(["" if v is None else v for v in vals], dtype=object)
            elif col.type == E.T.BOOL:
                arr = np.array([bool(v) if v is not None else False for v in vals], dtype=bool)
            else:
                arr = coerce(col, np.array([0.0 if v is None else float(v) for v in vals], dtype=float))
            td.values[cname] = arr
            td.nulls[cname] = nulls
        out[t.name] = td
    return out


# ---------------------------------------------------------------------------- one batch


@dataclass
class BatchResult:
    index: int
    tables: dict[str, TableData]
    stats: dict[str, RepairStats]
    seconds: float


def fabricate_table(project: Project, t: Table, data: dict[str, TableData], rng: np.random.Generator,
                    root_n: int | None, seed: int, stats: RepairStats) -> TableData:
    from .solver import TableRepair

    td = make_rows(project, t, data, rng, root_n)
    data[t.name] = td
    env = TableEnv(project, t, data)
    pending: list = []  # columns whose nulls wait for the columns their condition reads
    for step in t.order:
        pending += generate_step(step, t, env, rng)
        pending = apply_pending_nulls(pending, env, rng)
    if pending:
        raise UnsatisfiableRuleError(t.name, [f"{t.name}.{c.name}.null_when" for c in pending],
                                     "the null conditions read columns that are never generated")
    stats.rows_checked += td.n
    row_rules = [r for r in t.rules if r.row_level]
    repair = TableRepair(project, t, data, seed, stats)
    covered = False
    for rnd in range(MAX_ROUNDS + 2):
        env = TableEnv(project, t, data)
        violated = {}
        for r in row_rules:
            ok = check_rule(r, env)
            if not ok.all():
                violated[r.name] = ~ok
        inc_bad = {}
        for r in t.rules:
            if r.kind == "increasing":
                ok = check_increasing(r, t, td)
                if not ok.all():
                    inc_bad[r.name] = ~ok
        cov = []
        if not violated and not inc_bad:
            if covered:
                return td
            covered = True
            # coverage: once the rows are valid, only for groups large enough to hold every combination
            # (smaller groups are left to the final diagnostic, which checks the merged table)
            cov = [r for r in t.rules if r.kind == "coverage" and any(
                len(members) >= total for _, members, total in coverage_missing(r, t, td).values())]
            if not cov:
                return td
        fixed_kinds = {project_rule.name: project_rule.kind for project_rule in row_rules}
        stuck = [name for name in violated if fixed_kinds[name] not in REPAIRABLE]
        if stuck:
            r = next(x for x in row_rules if x.name == stuck[0])
            raise UnsatisfiableRuleError(
                t.name, stuck, f"{int(violated[stuck[0]].sum())} row(s) break {r.text!r}, which is structural "
                "(not-null, nulls.when or format) and so is not repaired by the solver: fix the generator")
        if rnd >= MAX_ROUNDS:
            names = list(violated) + list(inc_bad) + [r.name for r in cov]
            counts = [int(m.sum()) for m in violated.values()]
            raise UnsatisfiableRuleError(
                t.name, names, f"{sum(counts)} violation(s) remain after {MAX_ROUNDS} repair rounds "
                "(a rule that the solver cannot express, e.g. one over strings or window functions, keeps failing)")
        changed = repair.repair({k: v for k, v in violated.items()}) if violated else set()
        for name in inc_bad:
            r = next(x for x in t.rules if x.name == name)
            n = fix_increasing(r, t, td)
            stats.per_rule[name] = stats.per_rule.get(name, 0) + n
            if n:
                changed.add(r.params["column"])
            elif rnd > 0 or not t.columns[r.params["column"]].sampled:
                raise UnsatisfiableRuleError(t.name, [name], f"{int(inc_bad[name].sum())} row(s) out of order and "
                                             f"{r.params['column']} is derived, not sampled: fix its formula")
        for r in cov:
            changed |= repair.cover(r, rng)
        if changed:
            rederive(t, TableEnv(project, t, data), rng, changed)
    return td


def run_batch(project: Project, index: int, root_sizes: dict[str, int], globals_: dict[str, TableData]) -> BatchResult:
    t0 = time.perf_counter()
    data: dict[str, TableData] = dict(globals_)
    stats: dict[str, RepairStats] = {}
    order = list(project.spec.tables)  # stable table numbers for the seeds (not hash-order dependent)
    for t in project.tables.values():
        if t.is_global:
            continue
        ti = order.index(t.name)
        st = RepairStats()
        rng = _rng(project.seed, index, ti)
        solver_seed = int(rng.integers(0, 2**31 - 1))
        fabricate_table(project, t, data, rng, root_sizes.get(t.name), solver_seed, st)
        stats[t.name] = st
    tables = {k: v for k, v in data.items() if k not in globals_}
    return BatchResult(index, tables, stats, time.perf_counter() - t0)


# ---------------------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


def _payload(project: Project) -> dict:
    return {
        "spec": project.spec.model_dump(mode="python", by_alias=True, exclude_none=True),
        "source": project.source,
        "base_dir": str(project.base_dir) if project.base_dir else None,
        "rows": {t.name: t.rows for t in project.roots},
        "seed": project.seed,
        "batch_size": project.batch_size,
    }


def _init_worker(payload: dict) -> None:
    project = compile_project(payload["spec"], payload["source"],
                              base_dir=Path(payload["base_dir"]) if payload["base_dir"] else None)
    project.with_rows(payload["rows"])
    project.seed = payload["seed"]
    project.batch_size = payload["batch_size"]
    _WORKER["project"] = project
    _WORKER["globals"] = global_tables(project)


def _worker_batch(index: int, root_sizes: dict[str, int]) -> BatchResult:
    return run_batch(_WORKER["project"], index, root_sizes, _WORKER["globals"])


# ---------------------------------------------------------------------------- the run


@dataclass
class FabricationResult:
    project: Project
    tables: dict[str, TableData]
    report: Report
    seconds: float
    workers: int
    batches: int
    stats: dict[str, RepairStats] = field(default_factory=dict)

    @property
    def rows(self) -> dict[str, int]:
        return {n: td.n for n, td in self.tables.items() if self.project.tables[n].output}

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def frame(self, name: str, all_columns: bool = False) -> pd.DataFrame:
        return to_frame(self.project.tables[name], self.tables[name], all_columns)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {n: self.frame(n) for n in self.tables if self.project.tables[n].output}


def plan(project: Project) -> list[dict[str, int]]:
    """Root rows per batch: as many batches as the largest root table needs, sizes split evenly."""
    roots = project.roots
    if not roots:
        return [{}]
    nb = max(1, max(math.ceil((t.rows or 0) / project.batch_size) for t in roots))
    out = [{} for _ in range(nb)]
    for t in roots:
        total = t.rows or 0
        base, extra = divmod(total, nb)
        for b in range(nb):
            out[b][t.name] = base + (1 if b < extra else 0)
    return out


def fabricate(
    project: Project | str | Path,
    rows: int | dict[str, int] | None = None,
    *,
    workers: int = 1,
    seed: int | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    check: bool = True,
) -> FabricationResult:
    """Fabricate a project's tables.

    ``rows`` overrides the root tables' row counts (an int applies to each root table); child tables
    follow from their per-parent rules. Raises :class:`UnsatisfiableRuleError` naming the rule when
    the rows cannot be made valid, and :class:`FabricationError` if the final diagnostic finds any
    hard rule below 100 % (which would be a bug, never an accepted outcome).
    """
    if not isinstance(project, Project):
        project = load_project(project)
    project.with_rows(rows)
    if seed is not None:
        project.seed = seed
    if batch_size is not None:
        project.batch_size = batch_size
    t0 = time.perf_counter()
    globals_ = global_tables(project)
    batches = plan(project)
    results: list[BatchResult | None] = [None] * len(batches)
    done_rows = 0
    workers = max(1, min(workers, len(batches)))
    log.info("fabricating %s: %d batch(es), %d worker(s), seed %d", project.name, len(batches), workers, project.seed)
    if workers == 1:
        for b, sizes in enumerate(batches):
            results[b] = run_batch(project, b, sizes, globals_)
            done_rows += sum(td.n for td in results[b].tables.values())  # type: ignore[union-attr]
            if progress:
                progress(b + 1, len(batches), done_rows)
    else:
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(_payload(project),)) as pool:
            pending = {pool.submit(_worker_batch, b, sizes): b for b, sizes in enumerate(batches)}
            finished = 0
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    b = pending.pop(fut)
                    try:
                        results[b] = fut.result()
                    except BaseException:
                        for other in pending:
                            other.cancel()
                        raise
                    finished += 1
                    done_rows += sum(td.n for td in results[b].tables.values())  # type: ignore[union-attr]
                    if progress:
                        progress(finished, len(batches), done_rows)
    merged, stats = merge(project, [r for r in results if r is not None], globals_)
    report = build_report(project, merged, stats)
    seconds = time.perf_counter() - t0
    result = FabricationResult(project, merged, report, seconds, workers, len(batches), stats)
    report.seconds = seconds
    if check and not report.ok:
        raise FabricationError("diagnostic failed (a hard rule is below 100 %):\n" + report.render_failures())
    return result


# ---------------------------------------------------------------------------- merge


def merge(project: Project, results: list[BatchResult], globals_: dict[str, TableData]):
    results = sorted(results, key=lambda r: r.index)
    merged: dict[str, TableData] = dict(globals_)
    stats: dict[str, RepairStats] = {}
    offsets: dict[str, list[int]] = {}
    for ti, t in enumerate(project.tables.values()):
        if t.is_global:
            continue
        parts = [r.tables[t.name] for r in results]
        offs = list(np.cumsum([0] + [p.n for p in parts])[:-1])
        offsets[t.name] = offs
        n = sum(p.n for p in parts)
        td = TableData(t.name, n)
        for cname in t.columns:
            td.values[cname] = np.concatenate([p.values[cname] for p in parts]) if parts else np.zeros(0)
            if any(cname in p.nulls for p in parts):
                td.nulls[cname] = np.concatenate([p.nulls.get(cname, np.zeros(p.n, dtype=bool)) for p in parts])
        if t.parent:
            poffs = offsets[t.parent]
            td.parent_idx = np.concatenate([p.parent_idx + poffs[b] for b, p in enumerate(parts)]).astype(np.int64)
        if t.expand:
            td.expand_idx = np.concatenate([p.expand_idx for p in parts]).astype(np.int64)
        merged[t.name] = td
        st = RepairStats()
        for r in results:
            if t.name in r.stats:
                st.add(r.stats[t.name])
        stats[t.name] = st
        env = TableEnv(project, t, merged)
        # global sequences and copies of (now final) ancestor values
        for col in t.columns.values():
            if col.deferred:
                generate_column(col, env, _rng(project.seed, 2_000_000, ti))
        _enforce_unique(project, t, merged, st, ti)
    return merged, stats


def _enforce_unique(project: Project, t: Table, merged: dict[str, TableData], st: RepairStats, ti: int) -> None:
    td = merged[t.name]
    for r in t.rules:
        if r.kind != "unique" or td.n == 0:
            continue
        redraw = [c for c in r.columns if t.columns[c].gen in ("distribution", "pattern", "cases")]
        for rnd in range(60):
            dup = duplicated_rows(td, r.columns)
            if not dup.any():
                break
            if not redraw:
                raise UnsatisfiableRuleError(t.name, [r.name], f"{int(dup.sum())} duplicate row(s) and none of "
                                             f"{', '.join(r.columns)} is drawn at random, so none can be redrawn")
            rows = np.flatnonzero(dup)
            env = TableEnv(project, t, merged)
            col = t.columns[redraw[rnd % len(redraw)]]
            generate_column(col, env, _rng(project.seed, 3_000_000, ti, rnd), rows=rows)
            st.redrawn += len(rows)
            st.per_rule[r.name] = st.per_rule.get(r.name, 0) + len(rows)
        else:
            raise UnsatisfiableRuleError(t.name, [r.name], f"values still repeat after 60 redraws: the value space of "
                                         f"{', '.join(r.columns)} is too small for {td.n} rows")
        # children copy this table's values: re-derive dependents within the table
        if redraw:
            rederive(t, TableEnv(project, t, merged), _rng(project.seed, 4_000_000, ti), set(redraw))


def duplicated_rows(td: TableData, columns: list[str]) -> np.ndarray:
    if len(columns) == 1:
        v = td.values[columns[0]]
        s = pd.Series(v.astype(str) if v.dtype == object else v)
        return s.duplicated(keep="first").to_numpy()
    df = pd.DataFrame({c: td.values[c] for c in columns})
    return df.duplicated(keep="first").to_numpy()


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))
