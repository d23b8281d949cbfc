"""The fabrication studio's application layer (the deliverable's DFP GUI): data projects kept per
user, a rule editor whose form view and textual view are two renderings of one expression tree,
samples of one rule, profiling an uploaded table, and fabrication runs in the background with
their report and plots. Functions take plain values and return data; every refusal is a
:class:`~gateway.problems.Problem` (the pages show it inline).

Everything a rule means is decided by :mod:`fabrication` itself: the text is parsed by
``fabrication.expr.parse`` and printed by ``fabrication.text.to_text``; a rule is accepted only
when the whole project compiles with it (``fabrication.load_project``), so the studio can never
save a project the command line would refuse.

Storage: ``<data dir>/studio/<user id>/<project>/`` holds ``project.yaml``, for a profiled table
the real rows it was profiled from (``train.csv``) and the rows held back for the privacy report
(``holdout.csv``), and ``runs/<run id>/`` per fabrication (``status.json``, ``out/*.csv``,
``report.json``, ``verify.json``, ``plots/*.svg``). A run is a child process
(``python -m gateway.studio RUN_DIR``) that writes its progress to ``status.json``; the pages
poll it, so every gunicorn worker sees the same run.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

import fabrication as F
from fabrication import expr as E
from fabrication.text import literal, to_text

from . import problems as P

#: who may use the studio: researchers (synthetic data for studies) and hospital admins (test data)
STUDIO_ROLES = ("researcher", "hospital_admin")
MAX_RUN_ROWS = 200_000
SAMPLE_ROWS = 6

INVALID_RULE = P.problem_type(
    "invalid-rule", 422, "Rule not valid",
    "The rule does not parse, or the project does not compile with it; `detail` names the place and the reason.",
)
INVALID_PROJECT = P.problem_type(
    "invalid-project", 422, "Data project not valid",
    "The data project cannot be used; `detail` lists each field path and the reason.",
)
INVALID_UPLOAD = P.problem_type(
    "invalid-upload", 422, "Upload not usable", "The uploaded table cannot be read or profiled; `detail` says why.",
)
FABRICATION_FAILED = P.problem_type(
    "fabrication-failed", 422, "Fabrication failed",
    "The project could not be fabricated (for example a rule no row can satisfy); `detail` names the rule.",
)
RUN_BUSY = P.problem_type(
    "run-in-progress", 409, "A fabrication is already running",
    "Each person runs one fabrication at a time; wait for the running one to finish.",
)

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10× faster
_CACHE: dict[str, tuple[tuple[int, int], dict, F.Project]] = {}
_CACHE_LOCK = threading.Lock()
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_RUN = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$")
_PLOT = re.compile(r"^[a-z_]{1,40}\.svg$")

# ----------------------------------------------------------------------------- the rule language's form


CMP_OPS = ("<", "<=", ">", ">=", "==", "!=")
BIN_OPS = ("+", "-", "*", "/", "//", "%", "**")
FUNCTIONS = tuple(sorted(E.FUNCS - {"date", "datetime"}))
#: the operator drop-down: (group, [(value, label)])
OPERATORS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Compare", [("<", "<  less than"), ("<=", "≤  at most"), (">", ">  more than"), (">=", "≥  at least"),
                 ("==", "=  equals"), ("!=", "≠  differs from"), ("in", "is one of"), ("not in", "is none of")]),
    ("Logic", [("and", "and (all hold)"), ("or", "or (one holds)"), ("not", "not"), ("if", "… if … else …")]),
    ("Arithmetic", [("+", "+  plus"), ("-", "−  minus"), ("*", "×  times"), ("/", "÷  divided by"),
                    ("//", "whole division"), ("%", "remainder"), ("**", "to the power"), ("neg", "negative of")]),
    ("Functions", [(f, f"{f}(…)") for f in FUNCTIONS]),
    ("Operand", [("column", "a column"), ("value", "a value")]),
]
OPERATOR_VALUES = {v for _, group in OPERATORS for v, _ in group}
_ARITY = {"not": (1, 1), "neg": (1, 1), "if": (3, 3), "and": (2, None), "or": (2, None), "in": (2, None),
          "not in": (2, None), "column": (1, 1), "value": (1, 1),
          **{o: (2, 2) for o in CMP_OPS + BIN_OPS},
          **{f: (1, 1) for f in ("abs", "sqrt", "floor", "ceil", "int", "exp", "log", "is_null", "not_null",
                                 "length", "str", "cumsum")},
          **{f: (2, 2) for f in ("years", "implies", "digit", "strftime", "matches")},
          **{f: (3, 3) for f in ("clip", "lookup", "substr")},
          "min": (2, None), "max": (2, None), "coalesce": (2, None), "round": (1, 2), "lag": (1, 2),
          "row_number": (0, 0), "group_size": (0, 0)}
KINDS = ("column", "value", "expression")


def arity(op: str) -> tuple[int, int | None]:
    return _ARITY.get(op, (1, None))


def operand_labels(op: str, n: int) -> list[str]:
    if op == "if":
        return ["value", "if", "else"][:n]
    if op in ("in", "not in"):
        return ["value"] + ["one of"] * (n - 1)
    if op in ("column", "value"):
        return [op]
    if op in CMP_OPS or op in BIN_OPS:
        return ["left", "right"]
    return [f"operand {i + 1}" for i in range(n)]


def parts(node: E.Node) -> tuple[str, list[E.Node]]:
    """A node as the form shows it: its operator and its operands."""
    if isinstance(node, E.Cmp | E.Bin):
        return node.op, [node.left, node.right]
    if isinstance(node, E.Logic):
        return node.op, list(node.items)
    if isinstance(node, E.Unary):
        if node.op == "-" and isinstance(node.x, E.Lit):
            return "value", [node]
        return ("not" if node.op == "not" else "neg"), [node.x]
    if isinstance(node, E.InList):
        return ("not in" if node.negate else "in"), [node.x, *node.values]
    if isinstance(node, E.Cond):
        return "if", [node.a, node.cond, node.b]
    if isinstance(node, E.Call):
        return node.fn, list(node.args)
    if isinstance(node, E.Col):
        return "column", [node]
    return "value", [node]


def kind_of(node: E.Node) -> str:
    if isinstance(node, E.Col):
        return "column"
    if isinstance(node, E.Lit) or (isinstance(node, E.Unary) and node.op == "-" and isinstance(node.x, E.Lit)):
        return "value"
    return "expression"


def build(op: str, operands: list[E.Node]) -> E.Node:
    """The node the form describes; a Problem when the operands do not fit the operator."""
    lo, hi = arity(op)
    if len(operands) < lo or (hi is not None and len(operands) > hi):
        want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
        raise P.Problem(INVALID_RULE, f"{op!r} takes {want} operand(s), got {len(operands)}")
    if op in CMP_OPS:
        return E.Cmp(op, *operands)
    if op in BIN_OPS:
        return E.Bin(op, *operands)
    if op in ("and", "or"):
        return E.Logic(op, list(operands))
    if op == "not":
        return E.Unary("not", operands[0])
    if op == "neg":
        return E.Unary("-", operands[0])
    if op in ("in", "not in"):
        values = operands[1:]
        if not all(isinstance(v, E.Lit) for v in values):
            raise P.Problem(INVALID_RULE, f"the values of '{op}' are literal values, not columns or expressions")
        return E.InList(operands[0], values, op == "not in")  # type: ignore[arg-type]
    if op == "if":
        return E.Cond(operands[1], operands[0], operands[2])
    if op in ("column", "value"):
        return operands[0]
    if op in E.FUNCS:
        return E.Call(op, list(operands))
    raise P.Problem(INVALID_RULE, f"unknown operator {op!r}")


MAX_RULE_TEXT = 4000


def parse_text(text: str, what: str = "the rule") -> E.Node:
    if len(text) > MAX_RULE_TEXT:
        raise P.Problem(INVALID_RULE, f"{what}: longer than {MAX_RULE_TEXT} characters")
    try:
        return E.parse(text)
    except E.ExprError as exc:
        raise P.Problem(INVALID_RULE, f"{what}: {exc}") from None
    except (RecursionError, MemoryError):
        raise P.Problem(INVALID_RULE, f"{what}: nested too deeply") from None


def subtree(root: E.Node, path: list[int]) -> E.Node:
    node = root
    for i in path:
        node = parts(node)[1][i]
    return node


def replace_at(root: E.Node, path: list[int], new: E.Node) -> E.Node:
    if not path:
        return new
    op, ops = parts(root)
    ops = list(ops)
    ops[path[0]] = replace_at(ops[path[0]], path[1:], new)
    return build(op, ops)


def valid_path(root: E.Node, path: list[int]) -> list[int]:
    """The longest prefix of ``path`` that still names a compound operand of ``root``."""
    out, node = [], root
    for i in path:
        _, ops = parts(node)
        if not (0 <= i < len(ops)) or kind_of(ops[i]) != "expression":
            break
        node = ops[i]
        out.append(i)
    return out


# ----------------------------------------------------------------------------- storage


def _atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def project_problem(exc: F.ProjectError, pt: P.ProblemType = INVALID_PROJECT) -> P.Problem:
    problems = getattr(exc, "problems", None) or [("", str(exc))]
    detail = "; ".join(f"{path or 'project'}: {reason}" for path, reason in problems[:8])
    if len(problems) > 8:
        detail += f"; … {len(problems) - 8} more"
    return P.Problem(pt, detail, extra={"errors": [f"{p}: {r}" for p, r in problems[:100]]})


def dump_project(spec: dict) -> str:
    from fabrication.profiler import project_yaml

    return project_yaml(spec)


def compile_spec(spec: dict, name: str, pt: P.ProblemType = INVALID_PROJECT) -> F.Project:
    try:
        return F.load_project(copy.deepcopy(spec), source=name)
    except F.ProjectError as exc:
        raise project_problem(exc, pt) from None


@dataclasses.dataclass
class Studio:
    """One person's studio: their data projects under ``root``."""

    root: Path

    @classmethod
    def for_user(cls, data_dir: Path, user_id: str) -> Studio:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", user_id)[:80] or "_"
        return cls(Path(data_dir) / "studio" / safe)

    # -- projects

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name or ""):
            raise P.Problem(P.NOT_FOUND, f"no data project {name!r}")
        return self.root / name

    def projects(self) -> list[dict[str, Any]]:
        out = []
        if self.root.is_dir():
            for d in sorted(self.root.iterdir()):
                f = d / "project.yaml"
                if f.is_file() and _NAME.match(d.name):
                    out.append({"name": d.name, "profiled": (d / "train.csv").is_file(),
                                "modified": f.stat().st_mtime, "runs": len(self.runs(d.name))})
        return out

    def _cached(self, name: str) -> tuple[dict, F.Project]:
        """The project's mapping and its compiled form, parsed once per version of the file (the
        editor asks on every change); callers get their own copy of the mapping."""
        f = self._dir(name) / "project.yaml"
        try:
            st = f.stat()
        except OSError:
            raise P.Problem(P.NOT_FOUND, f"no data project {name!r}") from None
        key, stamp = str(f), (st.st_mtime_ns, st.st_size)
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
        if hit is None or hit[0] != stamp:
            spec = yaml.load(f.read_text(), Loader=_YAML_LOADER)
            hit = (stamp, spec, compile_spec(spec, name))
            with _CACHE_LOCK:
                _CACHE[key] = hit
                while len(_CACHE) > 16:
                    _CACHE.pop(next(iter(_CACHE)))
        return hit[1], hit[2]

    def spec(self, name: str) -> dict:
        return copy.deepcopy(self._cached(name)[0])

    def project(self, name: str) -> tuple[dict, F.Project]:
        """The project's mapping (a copy to change) and its compiled form (read only)."""
        spec, project = self._cached(name)
        return copy.deepcopy(spec), project

    def save(self, name: str, spec: dict, pt: P.ProblemType = INVALID_PROJECT) -> F.Project:
        """Write the project only if it compiles (never a partial or broken file)."""
        project = compile_spec(spec, name, pt)
        _atomic_write(self._dir(name) / "project.yaml", dump_project(spec))
        return project

    def _new_name(self, name: str) -> str:
        name = (name or "").strip().lower()
        if not _NAME.match(name):
            raise P.Problem(P.VALIDATION, "a project name starts with a letter and has at most 40 lower-case "
                                          "letters, digits, '-' or '_'")
        if (self._dir(name) / "project.yaml").exists():
            raise P.Problem(P.CONFLICT, f"you already have a project called {name!r}")
        return name

    def create_packaged(self, name: str, packaged: str) -> str:
        name = self._new_name(name)
        if packaged not in F.packaged_projects():
            raise P.Problem(P.NOT_FOUND, f"no packaged project {packaged!r}")
        text = (resources.files("fabrication") / "projects" / f"{packaged}.yaml").read_text()
        spec = yaml.load(text, Loader=_YAML_LOADER)
        compile_spec(spec, name)
        _atomic_write(self._dir(name) / "project.yaml", text)
        return name

    def create_from_yaml(self, name: str, data: bytes) -> str:
        name = self._new_name(name)
        try:
            spec = yaml.load(data.decode("utf-8"), Loader=_YAML_LOADER)
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise P.Problem(INVALID_UPLOAD, f"not a YAML data project: {str(exc).splitlines()[0]}") from None
        if not isinstance(spec, dict):
            raise P.Problem(INVALID_UPLOAD, "a data project is a YAML mapping")
        self.save(name, spec)
        return name

    def create_from_table(self, name: str, filename: str, data: bytes, holdout_share: float = 0.3,
                          seed: int = 0) -> str:
        """Profile an uploaded table (CSV, JSON, XLSX, XML) into a new project; a share of the rows
        is held back (never profiled) for the privacy report of every run."""
        import numpy as np

        name = self._new_name(name)
        if not 0 <= holdout_share <= 0.5:
            raise P.Problem(P.VALIDATION, "hold back between 0 and 50 % of the rows")
        suffix = Path(filename or "table.csv").suffix.lower()
        if suffix not in (".csv", ".json", ".xlsx", ".xml"):
            raise P.Problem(INVALID_UPLOAD, f"upload a CSV, JSON, XLSX or XML table (not {suffix or 'a file without a suffix'})")
        if not data:
            raise P.Problem(INVALID_UPLOAD, "the uploaded file is empty")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                df = F.read_table(str(path))
            except F.InputError as exc:
                raise P.Problem(INVALID_UPLOAD, str(exc).replace(str(path), filename or "the upload")) from None
        if df.shape[1] == 0 or len(df) < 20:
            raise P.Problem(INVALID_UPLOAD, f"the table has {len(df)} row(s) and {df.shape[1]} column(s); "
                                            "profiling needs at least 20 rows")
        perm = np.random.default_rng(seed).permutation(len(df))
        n_hold = int(round(len(df) * holdout_share))
        hold, train = df.iloc[perm[:n_hold]], df.iloc[perm[n_hold:]]
        try:
            spec = F.profile(train.reset_index(drop=True), name=name, seed=seed)
        except F.ProjectError as exc:
            raise project_problem(exc, INVALID_UPLOAD) from None
        except (ValueError, TypeError) as exc:  # a table the profiler cannot model
            raise P.Problem(INVALID_UPLOAD, f"cannot profile this table: {str(exc).splitlines()[0]}") from None
        d = self._dir(name)
        self.save(name, spec)
        _atomic_write(d / "train.csv", train.to_csv(index=False))
        if n_hold:
            _atomic_write(d / "holdout.csv", hold.to_csv(index=False))
        _atomic_write(d / "meta.json", json.dumps({"table": next(iter(spec["tables"])), "source": filename,
                                                   "rows": len(df), "held_out": n_hold}))
        return name

    def delete(self, name: str) -> None:
        import shutil

        d = self._dir(name)
        if not (d / "project.yaml").exists():
            raise P.Problem(P.NOT_FOUND, f"no data project {name!r}")
        shutil.rmtree(d)

    def yaml_text(self, name: str) -> str:
        f = self._dir(name) / "project.yaml"
        if not f.is_file():
            raise P.Problem(P.NOT_FOUND, f"no data project {name!r}")
        return f.read_text()

    def meta(self, name: str) -> dict:
        f = self._dir(name) / "meta.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    # -- the project as a table of columns with their rules

    def overview(self, name: str) -> dict[str, Any]:
        spec, project = self.project(name)
        tables = []
        for t in project.tables.values():
            raw = spec["tables"][t.name]
            own = [r for r in t.rules if r.path.startswith(f"tables.{t.name}.rules[")]
            rules = []
            for r in own:
                index = int(r.path.split("rules[", 1)[1].split("]", 1)[0])
                entry = raw.get("rules", [])[index] if index < len(raw.get("rules", [])) else {}
                rules.append({"index": index, "name": r.name, "kind": r.kind, "text": r.text, "columns": r.columns,
                              "when": entry.get("when", "") if isinstance(entry, dict) else "",
                              "editable": isinstance(entry, dict) and "check" in entry})
            seen: set[int] = set()
            columns = []
            for c in t.columns.values():
                implicit = [r.text for r in t.rules if r.path.startswith(f"tables.{t.name}.columns.{c.name}")
                            and r.kind not in ("not_null",)]
                mine = [r for r in rules if c.name in r["columns"] and (r["kind"] == "check" or r["index"] not in seen)]
                seen.update(r["index"] for r in mine)
                columns.append({"name": c.name, "type": c.type.value, "generator": c.gen, "output": c.output,
                                "nullable": c.nullable, "unique": c.unique, "implicit": implicit,
                                "range": _range_of(c), "description": c.description or "", "rules": mine})
            rest = [r for r in rules if r["index"] not in seen]
            tables.append({"name": t.name, "mode": t.mode, "rows": t.rows, "parent": t.parent, "columns": columns,
                           "table_rules": rest, "description": t.description or "",
                           "conditions": sorted(t.conditions)})
        return {"name": name, "description": project.description or "", "tables": tables,
                "profiled": (self._dir(name) / "train.csv").is_file(), "meta": self.meta(name),
                "runs": self.runs(name)}

    # -- the rule editor

    def editor(self, name: str, table: str, index: int | None = None, column: str | None = None) -> Editor:
        """The editor on rule ``index`` of ``table`` (a ``check`` rule), or on a new rule for ``column``."""
        spec, project = self.project(name)
        t = _table(project, table)
        if index is None:
            col = t.columns.get(column or "") or next(iter(t.columns.values()))
            text = default_rule(col)
            taken = {r.name for r in project.all_rules()}
            rule_name = next(n for n in (f"{col.name}_rule", *(f"{col.name}_rule_{i}" for i in range(2, 999)))
                             if n not in taken)
            ed = Editor(name, table, None, rule_name, "", text, [], column=col.name)
        else:
            raw = _raw_rule(spec, table, index)
            if "check" not in raw:
                raise P.Problem(INVALID_RULE, "only check rules are edited here; other kinds are changed in the YAML")
            ed = Editor(name, table, index, raw.get("name") or "", raw.get("when") or "", raw["check"], [])
        return self.refresh(ed, spec, project)

    def refresh(self, ed: Editor, spec: dict | None = None, project: F.Project | None = None,
                check: bool = True) -> Editor:
        """Re-derive the form from the text (the one source of truth) and check the rule in its project."""
        if spec is None or project is None:
            spec, project = self.project(ed.project)
        ed.columns = column_choices(project, ed.table)
        try:
            root = parse_text(ed.text, "check")
            ed.focus = valid_path(root, ed.focus)
            ed.text = to_text(root)
            ed.form = form_of(subtree(root, ed.focus), ed.focus, root)
        except P.Problem as problem:
            ed.form = None
            ed.problem = ed.problem or problem
            return ed
        if check and ed.problem is None:
            try:
                compile_spec(with_rule(spec, ed.table, ed.index, ed.rule()), ed.project, INVALID_RULE)
            except P.Problem as problem:
                ed.problem = problem
        return ed

    def apply(self, ed: Editor, action: str, form: dict[str, Any]) -> Editor:
        """One round trip: ``action`` is ``text`` (the textual view changed), ``form`` (the form view
        changed), ``add``, ``remove:i``, ``zoom:i``, ``goto:path`` or ``new-column``."""
        spec, project = self.project(ed.project)
        ed.problem = None
        ed.columns = column_choices(project, ed.table)
        if action != "text":
            try:
                root = parse_text(ed.text, "check")
                ed.focus = valid_path(root, ed.focus)
                if action == "form" or action == "add" or action.startswith("remove:"):
                    sub = node_from_form(form, project, ed, subtree(root, ed.focus))
                    op, ops = parts(sub)
                    if action == "add":
                        ops = [*ops, pad_for(op, ed, project)]
                        sub = build(op, ops)
                    elif action.startswith("remove:"):
                        i = int(action.split(":", 1)[1])
                        if 0 <= i < len(ops) and len(ops) > arity(op)[0]:
                            sub = build(op, ops[:i] + ops[i + 1:])
                    root = replace_at(root, ed.focus, sub)
                elif action.startswith("zoom:"):
                    ed.focus = valid_path(root, [*ed.focus, int(action.split(":", 1)[1])])
                elif action.startswith("goto:"):
                    path = action.split(":", 1)[1]
                    ed.focus = valid_path(root, [int(x) for x in path.split(".") if x != ""])
                ed.text = to_text(root)
            except P.Problem as problem:
                ed.problem = problem
            except (ValueError, IndexError):
                ed.problem = P.Problem(INVALID_RULE, f"unknown editor action {action!r}")
        return self.refresh(ed, spec, project)

    def save_rule(self, ed: Editor) -> int:
        """Write the edited rule into the project (only when the project compiles with it)."""
        spec, _ = self.project(ed.project)
        root = parse_text(ed.text, "check")
        ed.text = to_text(root)
        if ed.when.strip():
            parse_text(ed.when, "when")
        new = with_rule(spec, ed.table, ed.index, ed.rule())
        self.save(ed.project, new, INVALID_RULE)
        return ed.index if ed.index is not None else len(new["tables"][ed.table]["rules"]) - 1

    def delete_rule(self, name: str, table: str, index: int) -> None:
        spec, _ = self.project(name)
        _raw_rule(spec, table, index)
        del spec["tables"][table]["rules"][index]
        self.save(name, spec)

    def sample(self, ed: Editor, n: int = SAMPLE_ROWS, seed: int | None = None) -> dict[str, Any]:
        """Rows fabricated for the rule as it stands in the editor (not yet saved), with a fresh seed
        each time unless one is given: every row satisfies every rule of the project."""
        spec, _ = self.project(ed.project)
        rule = ed.rule()
        rule["name"] = rule.get("name") or "studio_preview"
        project = compile_spec(with_rule(spec, ed.table, ed.index, rule), ed.project, INVALID_RULE)
        seed = secrets.randbelow(2**31) if seed is None else seed
        try:
            rows = F.sample_rule(project, rule["name"], n=n, seed=seed)
        except F.ProjectError as exc:
            raise project_problem(exc, INVALID_RULE) from None
        except F.FabricationError as exc:
            raise P.Problem(FABRICATION_FAILED, str(exc).splitlines()[0]) from None
        columns = list(rows[0]) if rows else []
        return {"seed": seed, "columns": columns, "rows": [[r.get(c) for c in columns] for r in rows]}

    # -- runs

    def runs(self, name: str) -> list[dict[str, Any]]:
        d = self._dir(name) / "runs"
        if not d.is_dir():
            return []
        return [self.status(name, r.name) for r in sorted(d.iterdir(), reverse=True) if _RUN.match(r.name)]

    def run_dir(self, name: str, run: str) -> Path:
        d = self._dir(name) / "runs" / run
        if not _RUN.match(run or "") or not d.is_dir():
            raise P.Problem(P.NOT_FOUND, f"no run {run!r} of {name!r}")
        return d

    def start_run(self, name: str, rows: int | None = None, *, wait: bool = False) -> str:
        """Start fabricating ``name`` in a child process; returns the run id (progress in its status)."""
        _, project = self.project(name)
        if rows is not None and not 1 <= rows <= MAX_RUN_ROWS:
            raise P.Problem(P.VALIDATION, f"rows: between 1 and {MAX_RUN_ROWS:,}")
        for other in self.projects():
            for r in self.runs(other["name"]):
                if r["state"] in ("queued", "running") and _alive(r):
                    raise P.Problem(RUN_BUSY, f"{other['name']}'s run {r['id']} is still {r['state']}")
        if not project.roots:
            raise P.Problem(FABRICATION_FAILED, "the project has no table to fabricate (mode new)")
        run = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
        d = self._dir(name) / "runs" / run
        d.mkdir(parents=True)
        job = {"project": str(self._dir(name) / "project.yaml"), "name": name, "rows": rows,
               "train": str(self._dir(name) / "train.csv") if (self._dir(name) / "train.csv").is_file() else None,
               "holdout": str(self._dir(name) / "holdout.csv") if (self._dir(name) / "holdout.csv").is_file() else None,
               "table": self.meta(name).get("table")}
        _atomic_write(d / "job.json", json.dumps(job))
        write_status(d, state="queued", stage="waiting to start", done=0, total=1)
        if wait:
            run_job(d)
            return run
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        with open(d / "job.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gateway.studio", str(d)], stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, env=env, cwd=str(d),
                                    start_new_session=True)  # its own process group: cancel stops its solvers too
        write_status(d, state="queued", stage="waiting to start", done=0, total=1, pid=proc.pid)
        threading.Thread(target=proc.wait, daemon=True, name=f"studio-run-{run}").start()  # reap the child
        return run

    def cancel_run(self, name: str, run: str, *, grace: float = 5.0) -> dict[str, Any]:
        """Cancel a queued or running fabrication: the run is marked first (so the child's later
        progress never overwrites it), its process group is sent SIGTERM (SIGKILL after ``grace``
        seconds) and its status then says *cancelled*. A run that has ended is a 409."""
        d = self.run_dir(name, run)
        st = self.status(name, run)
        if st["state"] not in ("queued", "running"):
            raise P.Problem(P.CONFLICT, f"run {run} has already ended ({st['state']}); only a running one is cancelled")
        (d / CANCELLED).touch()
        pid = st.get("pid")
        if pid and _alive(st):
            _stop_group(int(pid), grace)
        write_status(d, state="cancelled", stage="cancelled", finished=time.time(), cancelled=True)
        return self.status(name, run)

    def status(self, name: str, run: str) -> dict[str, Any]:
        d = self.run_dir(name, run)
        try:
            st = json.loads((d / "status.json").read_text())
        except (OSError, ValueError):
            st = {"state": "queued", "stage": "waiting to start", "done": 0, "total": 1}
        st["id"] = run
        if st["state"] in ("queued", "running") and not _alive(st) and time.time() - st.get("at", 0) > 30:
            st.update(state="failed", problem={"title": FABRICATION_FAILED.title,
                                               "detail": "the fabrication process ended without a report"})
        total = max(1, int(st.get("total") or 1))
        st["percent"] = 100 if st["state"] == "done" else int(100 * min(1.0, float(st.get("done") or 0) / total))
        return st

    def result(self, name: str, run: str) -> dict[str, Any]:
        d = self.run_dir(name, run)
        st = self.status(name, run)
        out: dict[str, Any] = {"status": st, "report": None, "verify": None, "plots": [], "files": []}
        if (d / "report.json").is_file():
            out["report"] = json.loads((d / "report.json").read_text())
        if (d / "verify.json").is_file():
            out["verify"] = json.loads((d / "verify.json").read_text())
        if (d / "plots").is_dir():
            out["plots"] = sorted(p.name for p in (d / "plots").iterdir() if _PLOT.match(p.name))
        if (d / "out").is_dir():
            out["files"] = sorted(p.name for p in (d / "out").iterdir() if p.suffix == ".csv")
        return out

    def plot(self, name: str, run: str, plot: str) -> bytes:
        f = self.run_dir(name, run) / "plots" / plot
        if not _PLOT.match(plot or "") or not f.is_file():
            raise P.Problem(P.NOT_FOUND, f"no plot {plot!r}")
        return f.read_bytes()

    def download(self, name: str, run: str, what: str) -> tuple[str, bytes, str]:
        """(file name, bytes, media type) of one output: ``outputs.zip``, ``report.json``,
        ``verify.json`` or one table's CSV."""
        d = self.run_dir(name, run)
        if what == "outputs.zip":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in sorted((d / "out").glob("*.csv")):
                    z.write(p, p.name)
                for extra in ("report.json", "verify.json"):
                    if (d / extra).is_file():
                        z.write(d / extra, extra)
            return f"{name}-{run}.zip", buf.getvalue(), "application/zip"
        if what in ("report.json", "verify.json") and (d / what).is_file():
            return f"{name}-{run}-{what}", (d / what).read_bytes(), "application/json"
        f = d / "out" / what
        if re.match(r"^[A-Za-z0-9_]+\.csv$", what or "") and f.is_file():
            return f"{name}-{run}-{what}", f.read_bytes(), "text/csv"
        raise P.Problem(P.NOT_FOUND, f"no output {what!r}")


def _alive(st: dict) -> bool:
    pid = st.get("pid")
    if not pid:
        return time.time() - st.get("at", 0) < 30
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    try:  # a zombie (ended, not yet reaped) is not running
        return "Z" not in Path(f"/proc/{int(pid)}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True


def _table(project: F.Project, table: str):
    t = project.tables.get(table)
    if t is None:
        raise P.Problem(P.NOT_FOUND, f"the project has no table {table!r}")
    return t


def _raw_rule(spec: dict, table: str, index: int) -> dict:
    rules = (spec.get("tables", {}).get(table) or {}).get("rules") or []
    if not 0 <= index < len(rules) or not isinstance(rules[index], dict):
        raise P.Problem(P.NOT_FOUND, f"{table} has no rule number {index + 1}")
    return rules[index]


def with_rule(spec: dict, table: str, index: int | None, rule: dict) -> dict:
    """A copy of ``spec`` with rule ``index`` of ``table`` replaced by ``rule`` (appended if None)."""
    out = copy.deepcopy(spec)
    if table not in out.get("tables", {}):
        raise P.Problem(P.NOT_FOUND, f"the project has no table {table!r}")
    rules = out["tables"][table].setdefault("rules", [])
    if index is None:
        rules.append(rule)
    else:
        _raw_rule(out, table, index)
        rules[index] = rule
    return out


def _range_of(col) -> str:
    if col.lo is None and col.hi is None:
        return ""

    def show(v):
        if v is None:
            return "…"
        if col.type == E.T.DATE:
            return str(E.days_to_iso([int(v)])[0])
        if col.type == E.T.DATETIME:
            return str(E.seconds_to_iso([int(v)])[0])
        return f"{v:g}" if isinstance(v, float) else str(v)

    return f"{show(col.lo)} – {show(col.hi)}"


def default_rule(col) -> str:
    """A sensible first rule for a column, from its type and range."""
    name = col.name

    def lit(v):
        if col.type == E.T.DECIMAL:
            return literal(round(float(v), col.precision), E.T.DECIMAL)
        return literal(int(v), col.type) if col.type in (E.T.INT, E.T.DATE, E.T.DATETIME) else literal(v, col.type)

    if col.type in (E.T.INT, E.T.DECIMAL, E.T.DATE, E.T.DATETIME):
        lo, hi = col.lo, col.hi
        if lo is not None and hi is not None:
            return f"{name} >= {lit(lo)} and {name} <= {lit(hi)}"
        if lo is not None:
            return f"{name} >= {lit(lo)}"
        if hi is not None:
            return f"{name} <= {lit(hi)}"
        return f"{name} >= 0" if col.type in (E.T.INT, E.T.DECIMAL) else f"not_null({name})"
    if col.type == E.T.CATEGORICAL and col.categories:
        return f"{name} in [{', '.join(literal(c, E.T.STRING) for c in col.categories[:8])}]"
    if col.type == E.T.BOOL:
        return f"{name} or not {name}"
    return f"not_null({name})"


def column_choices(project: F.Project, table: str) -> list[tuple[str, list[str]]]:
    """The columns an expression of ``table`` may name: its own, then each other table's as ``t.c``."""
    t = _table(project, table)
    groups = [(f"{table} (this table)", list(t.columns) + sorted(t.conditions))]
    for other in project.tables.values():
        if other.name != table:
            groups.append((other.name, [f"{other.name}.{c}" for c in other.columns]))
    return groups


@dataclasses.dataclass
class Editor:
    """The rule editor's state: everything the page shows, derived from ``text``."""

    project: str
    table: str
    index: int | None
    name: str
    when: str
    text: str
    focus: list[int]
    column: str | None = None
    form: dict[str, Any] | None = None
    columns: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)
    problem: P.Problem | None = None

    @property
    def known_columns(self) -> set[str]:
        return {c for _, cols in self.columns for c in cols}

    @property
    def focus_key(self) -> str:
        return ".".join(map(str, self.focus))

    def rule(self) -> dict:
        rule: dict[str, Any] = {}
        if self.name.strip():
            rule["name"] = self.name.strip()
        if self.when.strip():
            rule["when"] = self.when.strip()
        rule["check"] = self.text
        return rule

    @classmethod
    def from_form(cls, project: str, table: str, form: dict[str, Any]) -> Editor:
        index = str(form.get("index", "")).strip()
        focus = [int(x) for x in str(form.get("focus", "")).split(".") if x.isdigit()]
        return cls(project, table, int(index) if index.isdigit() else None, str(form.get("name", "")),
                   str(form.get("when", "")), str(form.get("text", "")), focus, column=form.get("column") or None)


def form_of(node: E.Node, focus: list[int], root: E.Node) -> dict[str, Any]:
    """The form view of one level of the expression: operator, operands, the way back up."""
    op, ops = parts(node)
    lo, hi = arity(op)
    labels = operand_labels(op, len(ops))
    operands = []
    for i, o in enumerate(ops):
        k = kind_of(o)
        operands.append({"kind": k, "text": to_text(o), "label": labels[i] if i < len(labels) else f"operand {i + 1}",
                         "removable": len(ops) > lo})
    crumbs = [("the whole rule", "")]
    n = root
    for depth, i in enumerate(focus):
        sub_op, sub_ops = parts(n)
        n = sub_ops[i]
        crumbs.append((f"{operand_labels(sub_op, len(sub_ops))[i] if i < len(sub_ops) else i} of {sub_op}",
                       ".".join(map(str, focus[: depth + 1]))))
    return {"op": op, "operands": operands, "can_add": hi is None or len(ops) < hi, "crumbs": crumbs,
            "text": to_text(node)}


def pad_for(op: str, ed: Editor, project: F.Project) -> E.Node:
    """A new operand for ``op``: a value of the column's kind, or True for logic."""
    if op in ("and", "or", "not"):
        return E.Lit(True, E.T.BOOL)
    t = project.tables[ed.table]
    col = t.columns.get(ed.column or "") if ed.column else None
    if op in ("in", "not in") and col is not None and col.categories:
        return E.Lit(col.categories[0], E.T.STRING)
    return E.Lit(0, E.T.INT)


def node_from_form(form: dict[str, Any], project: F.Project, ed: Editor, current: E.Node) -> E.Node:
    """The sub-expression the form view describes (operator + operands), each operand parsed by
    the rule language's parser; switching an operand's kind or the operator keeps what it can."""
    op = str(form.get("op") or parts(current)[0])
    if op not in OPERATOR_VALUES:
        raise P.Problem(INVALID_RULE, f"unknown operator {op!r}")
    operands: list[E.Node] = []
    i = 0
    known = ed.known_columns
    while f"arg-{i}" in form:
        kind = str(form.get(f"kind-{i}") or "expression")
        text = str(form.get(f"arg-{i}", "")).strip()
        node = parse_text(text, f"operand {i + 1}") if text else None
        if kind == "column":
            if not isinstance(node, E.Col) or node.key not in known:
                node = E.Col(None, ed.column or next(iter(project.tables[ed.table].columns)))
        elif kind == "value":
            if node is None or kind_of(node) != "value":
                node = E.Lit(0, E.T.INT)
        elif node is None:
            raise P.Problem(INVALID_RULE, f"operand {i + 1} is empty")
        operands.append(node)
        i += 1
    lo, hi = arity(op)
    if op in ("column", "value"):
        first = operands[0] if operands else current
        operands = [first if kind_of(first) == op else
                    (E.Col(None, ed.column or next(iter(project.tables[ed.table].columns))) if op == "column"
                     else E.Lit(0, E.T.INT))]
    while len(operands) < lo:
        operands.append(pad_for(op, ed, project))
    if hi is not None and len(operands) > hi:
        operands = operands[:hi]
    if op in ("in", "not in"):  # the list's entries are values
        operands = operands[:1] + [o if isinstance(o, E.Lit) else pad_for(op, ed, project) for o in operands[1:]]
    return build(op, operands)


# ----------------------------------------------------------------------------- the background run


#: the file that marks a run cancelled: once it exists only the canceller writes the run's status
CANCELLED = "cancelled"


def _stop_group(pid: int, grace: float) -> None:
    """SIGTERM the run's process group (the child and its solvers), SIGKILL what remains after ``grace`` s."""
    import signal

    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"gateway.studio" not in cmdline:  # the pid is no longer the run's (reused): leave it alone
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _alive({"pid": pid}):
                return
            time.sleep(0.05)


def write_status(d: Path, **fields: Any) -> None:
    if (d / CANCELLED).exists() and fields.get("state") != "cancelled":
        return  # cancelled: the child's late progress must not bring the run back to life
    prev: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        prev = json.loads((d / "status.json").read_text())
    prev.update(fields, at=time.time())
    _atomic_write(d / "status.json", json.dumps(prev))


def run_job(d: Path) -> None:
    """Fabricate, write the outputs and the report, verify against the real rows (if the project was
    profiled from an upload) and draw the plots; progress and the outcome go to ``status.json``."""
    job = json.loads((d / "job.json").read_text())
    write_status(d, state="running", stage="compiling the project", done=0, total=1, started=time.time())
    try:
        project = F.load_project(Path(job["project"]), source=job["name"])
        verifying = bool(job.get("train") and job.get("table"))
        steps_after = 3 if verifying else 2  # writing, (verifying,) plots

        def progress(done: int, total: int, rows: int) -> None:
            write_status(d, stage=f"fabricating: batch {done} of {total} ({rows:,} rows)", done=done,
                         total=total + steps_after)

        result = F.fabricate(project, rows=job.get("rows"), seed=secrets.randbelow(2**31), progress=progress)
        total = result.batches + steps_after
        write_status(d, stage="writing the outputs", done=result.batches, total=total)
        frames = result.frames()
        F.open_target(str(d / "out") + "/").write(frames)
        report = result.report.to_dict()
        _atomic_write(d / "report.json", json.dumps(report, default=_jsonable, indent=1))
        verified = None
        if verifying:
            write_status(d, stage="verifying: distinguisher and privacy attacks", done=result.batches + 1, total=total)
            real = F.read_table(job["train"])
            holdout = F.read_table(job["holdout"]) if job.get("holdout") else None
            fake = frames.get(job["table"])
            if fake is not None:
                vr = F.verify(real, fake, project=project, holdout=holdout, folds=5, repeats=1)
                verified = vr.to_dict()
                _atomic_write(d / "verify.json", json.dumps(verified, default=_jsonable, indent=1))
        write_status(d, stage="drawing the plots", done=total - 1, total=total)
        from . import studio_plots

        studio_plots.draw(d / "plots", report, verified,
                          real=F.read_table(job["train"]) if verifying else None,
                          fake=frames.get(job.get("table") or ""))
        write_status(d, state="done", stage="done", done=total, total=total, finished=time.time(),
                     rows=result.total_rows, seconds=round(result.seconds, 2))
    except Exception as exc:  # noqa: BLE001 - the outcome is written for the page, never lost
        if isinstance(exc, F.USER_ERRORS):
            detail = str(exc).splitlines()[0] if not isinstance(exc, F.ProjectError) else str(exc)
        else:
            detail = f"unexpected error: {type(exc).__name__}: {exc}"
        write_status(d, state="failed", stage="failed", problem={"title": FABRICATION_FAILED.title, "detail": detail},
                     finished=time.time())
        if not isinstance(exc, F.USER_ERRORS):
            raise


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


if __name__ == "__main__":  # python -m gateway.studio RUN_DIR (started by Studio.start_run)
    run_job(Path(sys.argv[1]))
