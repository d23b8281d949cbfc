"""The fabrication studio's application layer (:mod:`gateway.studio`) without a browser: the rule
language printed back and parsed again, the form view and the textual view of a rule kept in sync,
zooming into a nested sub-expression, defaults for a new rule, samples, broken rules and bad uploads
answered as problems (nothing written), and a fabrication run to its report. Exact profile contents
are left to the fabrication tests (the profiler changes): only their shape is relied on here."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from fabrication import expr as E
from fabrication.text import to_text
from gateway import problems as P
from gateway.studio import INVALID_RULE, INVALID_UPLOAD, Studio, default_rule


def table_csv(n: int = 240, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, n).round().astype(int)
    size = np.clip(rng.lognormal(3, 0.5, n), 5, 120).round(1)
    grade = rng.choice([1, 2, 3], n, p=[0.2, 0.5, 0.3])
    sex = rng.choice(["F", "M"], n, p=[0.9, 0.1])
    diagnosed = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    return pd.DataFrame({"age": age, "tumour size": size, "grade": grade, "sex": sex,
                         "diagnosed": diagnosed.strftime("%Y-%m-%d")}).to_csv(index=False).encode()


def same(a: E.Node, b: E.Node) -> bool:
    """Structural equality of two expression trees (types ignored)."""
    if type(a) is not type(b):
        return False
    for f in dataclasses.fields(a):
        if f.name == "t":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, E.Node):
            if not same(x, y):
                return False
        elif isinstance(x, list):
            if len(x) != len(y) or not all(same(p, q) if isinstance(p, E.Node) else p == q for p, q in zip(x, y, strict=True)):
                return False
        elif x != y:
            return False
    return True


@pytest.fixture
def studio(tmp_path) -> Studio:
    s = Studio.for_user(tmp_path, "user/../1")
    s.create_packaged("ecc", "edinburgh")
    return s


def rule_index(studio: Studio, table: str, name: str) -> int:
    return next(i for i, r in enumerate(studio.spec("ecc")["tables"][table]["rules"]) if r.get("name") == name)


def test_the_printer_gives_back_what_the_parser_read(studio):
    spec = studio.spec("ecc")
    texts = [r[k] for t in spec["tables"].values() for r in t.get("rules", []) for k in ("check", "when") if r.get(k)]
    texts += ["-x ** 2", "(-x) ** 2", "2 ** -x", "a - (b - c)", "(a - b) - c", "not (a and b)", "(a or b) and c",
              "(a if b else c) if d else e", "x in [1, 2, 3.5]", "d >= date('2014-01-01')", "-(a + b)",
              "x // 2 % 3", "x / (y * z)", "\"o'k\" == s", "implies(a > 1, b)"]
    assert len(texts) > 20
    for text in texts:
        tree = E.parse(text)
        printed = to_text(tree)
        assert same(tree, E.parse(printed)), (text, printed)
        assert to_text(E.parse(printed)) == printed
    assert to_text(E.parse("(a - b) - c")) == "a - b - c" and to_text(E.parse("a - (b - c)")) == "a - (b - c)"


def test_the_form_changes_the_text_and_the_text_changes_the_form(studio):
    i = rule_index(studio, "ndc_smr01", "discharge_not_before_admission")
    ed = studio.editor("ecc", "ndc_smr01", i)
    assert ed.text == "discharge_date >= admission_date" and ed.problem is None
    assert ed.form["op"] == ">=" and [o["kind"] for o in ed.form["operands"]] == ["column", "column"]
    ed = studio.apply(ed, "form", {"op": ">", "kind-0": "column", "arg-0": "discharge_date",
                                   "kind-1": "column", "arg-1": "operation_date"})
    assert ed.text == "discharge_date > operation_date" and ed.problem is None
    ed.text = "length_of_stay >= 0 and discharge_date >= admission_date"
    ed = studio.apply(ed, "text", {})
    assert ed.form["op"] == "and" and [o["text"] for o in ed.form["operands"]] == [
        "length_of_stay >= 0", "discharge_date >= admission_date"]
    # switching an operand to a value, adding and removing operands
    ed = studio.apply(ed, "add", {"op": "and", "kind-0": "expression", "arg-0": "length_of_stay >= 0",
                                  "kind-1": "expression", "arg-1": "discharge_date >= admission_date"})
    assert ed.text == "length_of_stay >= 0 and discharge_date >= admission_date and True"
    ed = studio.apply(ed, "remove:2", {"op": "and", **{f"kind-{k}": "expression" for k in range(3)},
                                       "arg-0": "length_of_stay >= 0", "arg-1": "discharge_date >= admission_date",
                                       "arg-2": "True"})
    assert ed.text == "length_of_stay >= 0 and discharge_date >= admission_date"


def test_zooming_into_a_nested_sub_expression_edits_it_in_place(studio):
    ed = studio.editor("ecc", "ndc_smr01", rule_index(studio, "ndc_smr01", "discharge_not_before_admission"))
    ed.text = "length_of_stay >= 0 and (discharge_date >= admission_date or length_of_stay == 0)"
    ed = studio.apply(ed, "text", {})
    ed = studio.apply(ed, "zoom:1", {})
    assert ed.focus == [1] and ed.form["op"] == "or"
    ed = studio.apply(ed, "zoom:1", {})
    assert ed.focus == [1, 1] and ed.form["op"] == "==" and [c for c, _ in ed.form["crumbs"]] == [
        "the whole rule", "operand 2 of and", "operand 2 of or"]
    ed = studio.apply(ed, "form", {"op": "<=", "kind-0": "column", "arg-0": "length_of_stay",
                                   "kind-1": "value", "arg-1": "1"})
    assert ed.text == "length_of_stay >= 0 and (discharge_date >= admission_date or length_of_stay <= 1)"
    assert ed.focus == [1, 1] and ed.problem is None
    ed = studio.apply(ed, "goto:", {})
    assert ed.focus == [] and ed.form["op"] == "and"
    ed = studio.apply(ed, "zoom:0", {})  # into the comparison
    assert ed.focus == [0] and ed.form["op"] == ">="
    ed = studio.apply(ed, "zoom:0", {})  # a column is a leaf: the focus stays on its comparison
    assert ed.focus == [0]


def test_a_broken_rule_is_a_problem_and_never_saved(studio):
    before = (studio.root / "ecc" / "project.yaml").read_text()
    ed = studio.editor("ecc", "ndc_smr01", 0)
    ed.text = "discharge_date >="
    ed = studio.apply(ed, "text", {})
    assert ed.problem.type is INVALID_RULE and "syntax error" in ed.problem.detail and ed.form is None
    ed.text = "no_such_column > 1"
    ed = studio.apply(ed, "text", {})
    assert ed.problem.type is INVALID_RULE and "no_such_column" in ed.problem.detail
    with pytest.raises(P.Problem) as exc:
        studio.save_rule(ed)
    assert exc.value.type is INVALID_RULE
    ed = studio.apply(ed, "form", {"op": "between", "kind-0": "column", "arg-0": "x"})
    assert ed.problem.type is INVALID_RULE and "operator" in ed.problem.detail
    assert (studio.root / "ecc" / "project.yaml").read_text() == before


def test_a_saved_rule_is_in_the_project_and_the_project_still_compiles(studio):
    ed = studio.editor("ecc", "ndc_smr01", None, "length_of_stay")
    ed.text, ed.when = "length_of_stay <= 60", "admission_type != 'day_case'"
    index = studio.save_rule(ed)
    saved = studio.spec("ecc")["tables"]["ndc_smr01"]["rules"][index]
    assert saved == {"name": "length_of_stay_rule", "when": "admission_type != 'day_case'",
                     "check": "length_of_stay <= 60"}
    overview = studio.overview("ecc")
    smr01 = next(t for t in overview["tables"] if t["name"] == "ndc_smr01")
    los = next(c for c in smr01["columns"] if c["name"] == "length_of_stay")
    assert "length_of_stay_rule" in [r["name"] for r in los["rules"]]
    studio.delete_rule("ecc", "ndc_smr01", index)
    assert len(studio.spec("ecc")["tables"]["ndc_smr01"]["rules"]) == index


def test_a_new_rule_starts_from_its_columns_type_and_range(studio):
    _, project = studio.project("ecc")
    dob = project.tables["patients"].columns["date_of_birth"]
    assert default_rule(dob) == ("date_of_birth >= date('1915-01-01') and date_of_birth <= date('1996-12-31')")
    sex = project.tables["patients"].columns["sex"]
    assert default_rule(sex).startswith("sex in ['F', 'M']")
    ed = studio.editor("ecc", "patients", None, "date_of_birth")
    assert ed.problem is None and ed.name == "date_of_birth_rule" and ed.form["op"] == "and"
    assert ("patients (this table)", ed.columns[0][1]) == ed.columns[0] and "sex" in ed.columns[0][1]
    assert any(c.startswith("ndc_smr01.") for _, cols in ed.columns for c in cols)


def test_a_sample_of_one_rule_differs_each_time_and_keeps_its_rule(studio):
    ed = studio.editor("ecc", "ndc_smr01", None, "length_of_stay")
    ed.text = "length_of_stay <= 3"
    ed = studio.apply(ed, "text", {})
    a, b = studio.sample(ed), studio.sample(ed)
    assert a["seed"] != b["seed"] and a["columns"] == ["length_of_stay"]
    assert all(row[0] <= 3 for row in a["rows"] + b["rows"])
    assert studio.sample(ed, seed=5) == studio.sample(ed, seed=5)
    many = [studio.sample(ed)["rows"] for _ in range(3)]
    assert len({json.dumps(r) for r in many}) > 1


def test_bad_uploads_are_problems_and_leave_nothing(tmp_path):
    s = Studio(tmp_path / "u")
    cases = [("t.csv", b"\xff\xfe\x00\x01garbage"), ("t.csv", b""), ("t.csv", b"a,b\n1,2\n"), ("t.exe", b"a\n1\n"),
             ("t.csv", b"a,b\n1,2,3,4\n\"unterminated\n")]
    for filename, data in cases:
        with pytest.raises(P.Problem) as exc:
            s.create_from_table("bad", filename, data)
        assert exc.value.type is INVALID_UPLOAD, (filename, data, exc.value)
    with pytest.raises(P.Problem) as exc:
        s.create_from_yaml("bad", b"name: x\ntables: {t: {rows: 3, columns: {a: {type: nonsense}}}}\n")
    assert exc.value.type.slug == "invalid-project" and "tables.t.columns.a.type" in exc.value.detail
    with pytest.raises(P.Problem) as exc:
        s.create_packaged("Bad Name", "edinburgh")
    assert exc.value.type is P.VALIDATION
    assert s.projects() == []


def test_a_profiled_table_fabricates_to_its_report(tmp_path):
    s = Studio(tmp_path / "u")
    s.create_from_table("tumours", "tumours.csv", table_csv(), holdout_share=0.3)
    spec = s.spec("tumours")
    assert list(spec["tables"]) == ["tumours"] and "tumour_size" in spec["tables"]["tumours"]["columns"]
    train = pd.read_csv(s.root / "tumours" / "train.csv")
    hold = pd.read_csv(s.root / "tumours" / "holdout.csv")
    assert (len(train), len(hold)) == (168, 72)
    run = s.start_run("tumours", 200, wait=True)
    result = s.result("tumours", run)
    assert result["status"]["state"] == "done" and result["status"]["percent"] == 100
    report, verify = result["report"], result["verify"]
    assert report["rule_validity"] == 1.0 and report["rules"]
    assert set(verify["accuracy"]) == set(verify["baseline"]) and len(verify["accuracy"]) == 4
    assert verify["features"] and verify["privacy"]["rows_holdout"] == 72
    assert set(result["plots"]) == {"rules.svg", "distinguisher.svg", "features.svg", "privacy.svg", "columns.svg"}
    assert s.plot("tumours", run, "rules.svg").lstrip().startswith(b"<?xml")
    name, data, mime = s.download("tumours", run, "tumours.csv")
    assert mime == "text/csv" and len(pd.read_csv(pd.io.common.BytesIO(data))) == 200
    name, data, mime = s.download("tumours", run, "outputs.zip")
    assert mime == "application/zip" and data[:2] == b"PK"
    for bad in ("../project.yaml", "job.json", "x.svg"):
        with pytest.raises(P.Problem):
            s.download("tumours", run, bad)
    with pytest.raises(P.Problem):
        s.plot("tumours", run, "../status.json")


def test_a_run_that_cannot_fabricate_fails_with_the_reason(tmp_path):
    s = Studio(tmp_path / "u")
    spec = {"name": "tight", "tables": {"t": {"rows": 5, "columns": {
        "a": {"type": "int", "distribution": {"kind": "uniform", "min": 0, "max": 10}, "range": {"min": 0, "max": 10}}},
        "rules": [{"name": "impossible", "check": "a > 20"}]}}}
    s.create_from_yaml("tight", yaml.safe_dump(spec).encode())
    run = s.start_run("tight", 5, wait=True)
    st = s.status("tight", run)
    assert st["state"] == "failed" and "impossible" in st["problem"]["detail"]


def test_runs_are_refused_with_a_bad_row_count(studio):
    for rows in (0, 10**9):
        with pytest.raises(P.Problem) as exc:
            studio.start_run("ecc", rows)
        assert exc.value.type is P.VALIDATION
    assert not np.any([r for r in studio.runs("ecc")])


def test_a_sample_of_a_contradicting_rule_names_it_as_unsatisfiable(studio):
    ed = studio.editor("ecc", "ndc_smr01", None, "length_of_stay")
    ed.text = "length_of_stay < 0"
    ed = studio.apply(ed, "text", {})
    assert ed.problem is None  # it compiles: the contradiction shows only when rows are made
    with pytest.raises(P.Problem) as exc:
        studio.sample(ed)
    assert exc.value.type.slug == "fabrication-failed"
    assert exc.value.detail.startswith("unsatisfiable rule(s) in ndc_smr01") and "length_of_stay_rule" in exc.value.detail


def test_a_running_fabrication_is_cancelled_its_process_stopped_and_it_stays_cancelled(studio):
    import os
    import time

    run = studio.start_run("ecc", 200_000)  # the whole Edinburgh project at 200,000 rows: minutes of work
    deadline = time.monotonic() + 60
    while studio.status("ecc", run)["state"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    st = studio.status("ecc", run)
    assert st["state"] == "running", st
    pid = st["pid"]
    with pytest.raises(P.Problem) as busy:  # one run at a time …
        studio.start_run("ecc", 10)
    assert busy.value.type.slug == "run-in-progress"
    st = studio.cancel_run("ecc", run)
    assert st["state"] == "cancelled" and st["stage"] == "cancelled"
    for _ in range(100):  # the reaper thread collects the killed child
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the run's process {pid} is still there")
    time.sleep(1.5)  # nothing of the child comes back to overwrite the outcome
    result = studio.result("ecc", run)
    assert result["status"]["state"] == "cancelled" and result["report"] is None and not result["files"]
    assert [r["state"] for r in studio.runs("ecc")] == ["cancelled"]
    with pytest.raises(P.Problem) as again:  # an ended run is not cancelled twice
        studio.cancel_run("ecc", run)
    assert again.value.type is P.CONFLICT
    # … and the next one may start
    nxt = studio.start_run("ecc", 10)
    assert nxt != run and studio.status("ecc", nxt)["state"] in ("queued", "running", "done")
    if studio.status("ecc", nxt)["state"] in ("queued", "running"):
        studio.cancel_run("ecc", nxt)
