"""Rule-guided synthetic data fabrication with MiniZinc, profiler and realism verification.

Public API (what other packages and ``serums`` use)::

    project = load_project("edinburgh")            # or a YAML path / mapping
    result = fabricate(project, rows=933, workers=2, seed=2021)
    result.report.ok, result.report.rule_validity  # the diagnostic report, every rule at 100 %
    frames = result.frames()                       # {table: DataFrame}, ISO dates, labels
    write_vault(result, sink)                      # sink.ingest(table_name, rows) per table, parents first
    open_target("out/").write(frames)              # CSV / JSON / XLSX / SQLite / PostgreSQL / MQTT

    spec = profile(real_df, name="gbsg2")          # a data project from a real table, no values copied
    report = verify(real_df, fake_df)              # ML distinguisher + copy check
    spec, report, fake = iterate(real_df)          # profile → fabricate → verify → refine …
"""

from __future__ import annotations

from typing import Any

from .data import TableData, TableEnv
from .engine import FabricationResult, fabricate
from .generate import FabricationError, UnsatisfiableRuleError
from .masking import MaskingError, mask_frame
from .model import Project, load_project, packaged_projects
from .privacy import PrivacyReport, privacy_evaluation, privacy_report
from .profiler import profile
from .sources import InputError, read_table
from .spec import ProjectError
from .verify import VerifyError, VerifyReport, iterate, verify
from .writers import OutputError, VaultSink, VaultWriter, open_target, records, writers_from_project

#: exceptions whose message is a complete one-line explanation for the user
USER_ERRORS: tuple[type[BaseException], ...] = (ProjectError, FabricationError, OutputError, VerifyError, InputError,
                                                 MaskingError)


def write_vault(result: FabricationResult, sink: VaultSink) -> str:
    """Hand every output table to the vault (``sink.ingest(table_name, rows)``), parents first."""
    return VaultWriter(sink).write(result.frames())


def fabricate_edinburgh(patients: int = 933, seed: int = 2021, workers: int = 1) -> FabricationResult:
    """The Edinburgh Cancer Centre project, as ``serums up`` uses it."""
    return fabricate(load_project("edinburgh"), rows=patients, seed=seed, workers=workers)


def sample_rule(project: Project | str, rule: str, n: int = 10, seed: int | None = None) -> list[dict[str, Any]]:
    """A few fabricated rows showing the columns of one rule (or ``table.column``), each row valid.

    Like the DFP rule editor's preview: the project is fabricated at a small size (every rule
    enforced) and the rows of the rule's table are shown with the rule's columns."""
    import numpy as np

    from . import expr as E
    from .data import external_column

    if not isinstance(project, Project):
        project = load_project(project)
    try:
        r = project.rule(rule)
        table, cols = r.table, r.columns
    except KeyError:
        tname, _, cname = rule.partition(".")
        if tname in project.tables and (not cname or cname in project.tables[tname].columns):
            table, cols = tname, [cname] if cname else list(project.tables[tname].columns)
        else:
            names = sorted(x.name for x in project.all_rules())
            raise ProjectError([("", f"no rule or column {rule!r}; rules: {', '.join(names[:40])}"
                                 f"{' …' if len(names) > 40 else ''}")], project.source) from None
    t = project.tables[table]
    if t.is_global:
        raise ProjectError([("", f"{table} is a reference table (mode {t.mode}); nothing is fabricated")], project.source)
    res = fabricate(project, rows=max(2, n), seed=seed, batch_size=max(2, n), check=False)
    env = TableEnv(project, t, res.tables)
    k = min(n, res.tables[table].n)
    rows: list[dict[str, Any]] = [{} for _ in range(k)]
    for c in cols:
        tn, _, cn = c.rpartition(".")
        col = project.tables[tn or table].columns[cn]
        v, m = env.get(E.Col(tn or None, cn))
        ext = external_column(col, np.asarray(v[:k]), None if m is None else m[:k])
        for i in range(k):
            val = ext[i]
            rows[i][c] = None if val is None else (val.item() if hasattr(val, "item") else val)
    return rows


__all__ = [
    "FabricationError", "FabricationResult", "OutputError", "PrivacyReport", "Project", "ProjectError", "TableData",
    "USER_ERRORS", "InputError", "MaskingError", "VerifyError", "mask_frame", "privacy_evaluation", "privacy_report", "read_table",
    "UnsatisfiableRuleError", "VaultSink", "VerifyReport", "fabricate", "fabricate_edinburgh", "iterate",
    "load_project", "open_target", "packaged_projects", "profile", "records", "sample_rule", "verify",
    "write_vault", "writers_from_project",
]
