"""Profiler on tables it was never tuned on: joint missing values, value lattices, any column name,
no single patient's value in the project, verify's column mapping, the privacy report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from fabrication import expr as E
from fabrication import fabricate, profile, verify
from fabrication.model import compile_project
from fabrication.privacy import privacy_evaluation, privacy_report
from fabrication.profiler import identifier, lattice


@pytest.fixture(scope="module")
def awkward() -> pd.DataFrame:
    """600 patients: cause of death filled exactly when the patient died, a lab value missing mostly
    in two sampling years, half-step and whole-number columns, keyword and dotted column names."""
    rng = np.random.default_rng(7)
    n = 600
    age = rng.integers(40, 90, n)
    died = rng.random(n) < 0.15 + 0.5 * (age > 75)
    year = rng.choice(["1995", "1996", "1997", "2003"], n, p=[0.3, 0.3, 0.25, 0.15])
    lab = np.round(rng.lognormal(0.2, 0.3, n), 1)
    lab_missing = rng.random(n) < np.where(np.isin(year, ["1995", "2003"]), 0.7, 0.05)
    return pd.DataFrame({
        "age": age.astype(float),  # floats that are whole numbers
        "lambda": np.round(rng.gamma(4, 0.5, n) * 2) / 2,  # halves
        "class": rng.choice(["a", "b", "c"], n),
        "pass": (rng.random(n) < 0.4),
        "sample.yr": year,
        "creatinine": np.where(lab_missing, np.nan, lab),
        "died": died,
        "cause": np.where(died, rng.choice(["Circulatory", "Neoplasms", "Respiratory"], n), None),
    })


@pytest.fixture(scope="module")
def awkward_profile(awkward):
    spec = profile(awkward, name="awkward", seed=3)
    fake = fabricate(compile_project(spec), rows=3000, seed=4).frame("awkward")
    return spec, fake


def test_any_column_name_profiles_and_fabricates(awkward_profile):
    spec, fake = awkward_profile
    cols = spec["tables"]["awkward"]["columns"]
    assert {"lambda_", "class_", "pass_", "sample_yr"} <= set(cols)
    assert identifier("lambda_") == "lambda_" and identifier("True") == "true_" and identifier("2nd dose") == "c_2nd_dose"
    assert "column 'sample.yr' in the source" in cols["sample_yr"]["description"]
    with pytest.raises(E.ExprError, match="'lambda' is a Python keyword"):
        E.parse("lambda > 3")


def test_missing_values_are_modelled_jointly(awkward, awkward_profile):
    spec, fake = awkward_profile
    cols = spec["tables"]["awkward"]["columns"]
    # an exact rule: the cause is null exactly when the patient did not die
    assert cols["cause"]["nulls"] == {"iff": "not died"}
    assert (fake["cause"].isna() == ~fake["died"].astype(bool)).all()
    # a pattern: the lab value is missing mostly in two sampling years (a hidden indicator in the trees)
    assert cols["creatinine"]["nulls"] == {"iff": "creatinine_missing"} and cols["creatinine_missing"]["output"] is False
    miss = fake["creatinine"].isna().groupby(fake["sample_yr"]).mean()
    assert miss["1995"] > 0.45 and miss["2003"] > 0.45 and miss["1996"] < 0.2 and miss["1997"] < 0.2


def test_values_stay_on_their_lattice(awkward_profile):
    spec, fake = awkward_profile
    cols = spec["tables"]["awkward"]["columns"]
    assert cols["age"]["type"] == "int"
    assert cols["lambda_"]["type"] == "decimal" and cols["lambda_"]["step"] == 0.5
    halves = fake["lambda_"].to_numpy(dtype=float) * 2
    assert np.allclose(halves, np.round(halves)) and (np.mod(halves, 2) == 1).mean() > 0.2
    lab = fake["creatinine"].dropna().to_numpy(dtype=float) * 10
    assert np.allclose(lab, np.round(lab))
    assert lattice(np.r_[np.arange(0, 50, 0.5), 4.333333]) == (0.5, 1)  # one odd value sets no precision
    assert lattice(np.arange(0, 500, 5.0))[0] == 5


def test_project_states_no_single_patients_value(awkward):
    df = awkward.copy()
    df.loc[0, "age"] = 104.0  # the one oldest patient
    df.loc[1, "lambda"] = 37.5
    spec = profile(df, name="awkward")
    cols = spec["tables"]["awkward"]["columns"]
    srt = np.sort(df["age"].to_numpy())
    assert cols["age"]["range"]["max"] == srt[-5] and cols["age"]["range"]["min"] == srt[4]
    text = yaml.safe_dump(spec)
    assert "104" not in text and "37.5" not in text


def test_profile_seed_is_honoured(tmp_path):
    from serums.cli import main

    out = tmp_path / "g.yaml"
    assert main(["fabricate", "profile", "lifelines:gbsg2", "--seed", "11", "--out", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["seed"] == 11


def test_verify_maps_original_names_and_reports_left_out_columns(awkward, awkward_profile):
    _, fake = awkward_profile
    rep = verify(awkward, fake.drop(columns=["cause"]), repeats=1, folds=3, classifiers=("dt_gini",))
    assert rep.columns["sample.yr"] == "sample_yr" and rep.columns["lambda"] == "lambda_"
    assert rep.left_out == {"real": ["cause"], "fabricated": []}
    assert rep.to_dict()["left_out"]["real"] == ["cause"]


def test_privacy_report_catches_copies_and_passes_the_profile():
    from lifelines.datasets import load_gbsg2

    real = load_gbsg2()
    half = len(real) // 2
    train, holdout = real.iloc[:half], real.iloc[half:]
    leaked = privacy_report(train, holdout, train.copy())  # a "synthetic" table that is the training data
    assert leaked.exact_copies == half and leaked.mia_auc > 0.9 and not leaked.ok
    rep = privacy_evaluation(real, seed=1)
    assert rep.exact_copies == 0 and rep.mia_auc <= 0.6, rep
    assert 0.3 <= rep.closer_to_train_share <= 0.7


def test_coverage_failure_names_labels_not_codes():
    from fabrication import FabricationError

    text = """
name: cov
seed: 1
tables:
  t:
    rows: 6
    columns:
      site: {type: categorical, categories: [north, south], distribution: {kind: categorical, weights: [1, 1]}}
      regimen: {type: categorical, categories: [AC, TC, FEC, EC], distribution: {kind: categorical, weights: [1, 1, 1, 1]}}
    rules:
      - {coverage: {columns: [regimen], per: [site]}}
"""
    with pytest.raises(FabricationError) as err:
        fabricate(compile_project(text))
    msg = str(err.value)
    assert "site = 'north'" in msg or "site = 'south'" in msg
    assert "regimen = '" in msg and "np.int64" not in msg and "(0,)" not in msg


def test_named_conditions_are_stated_once_and_used_by_name():
    text = """
name: c
tables:
  t:
    rows: 300
    conditions: {old: "age > 60", old_man: "old and sex == 'M'"}
    columns:
      age: {type: int, distribution: {kind: uniform, min: 20, max: 90}}
      sex: {type: categorical, categories: [F, M], distribution: {kind: categorical, weights: [1, 1]}}
      dose: {type: int, cases: [{when: old_man, value: 1}, {when: old, value: 2}, {value: 3}]}
    rules:
      - {name: r, when: old, check: "dose <= 2"}
"""
    df = fabricate(compile_project(text)).frame("t")
    old = df["age"] > 60
    assert (df["dose"][old & (df["sex"] == "M")] == 1).all() and (df["dose"][old & (df["sex"] == "F")] == 2).all()
    assert (df["dose"][~old] == 3).all()
    with pytest.raises(Exception, match="conditions.age: a condition cannot have a column's name"):
        compile_project(text.replace("old_man: ", "age: "))


def test_profiled_project_states_shared_leaf_conditions_once():
    from fabrication.profiler import _name_shared_conditions

    long = "component in ['c1', 'c2', 'c5', 'c7']"
    cols = {"a": {"cases": [{"when": f"age <= 50 and {long}"}, {"when": f"age > 50 and {long}"}, {}]},
            "b": {"cases": [{"when": f"{long} and sex == 'F'"}, {"when": "component in ['c3', 'c4', 'c6', 'c8']"}, {}]}}
    conditions = _name_shared_conditions(cols)
    assert conditions == {"component_set1": long}  # used 3 times: stated once; the one used once stays inline
    assert cols["a"]["cases"][0]["when"] == "age <= 50 and component_set1"
    assert cols["b"]["cases"][1]["when"] == "component in ['c3', 'c4', 'c6', 'c8']"


def test_values_keep_their_significant_digits():
    from fabrication.profiler import significant_digits

    rng = np.random.default_rng(5)
    raw = rng.lognormal(0.3, 0.8, 3000)
    three = np.array([float(f"{v:.3g}") for v in raw])  # a lab value recorded to 3 significant digits
    assert significant_digits(three, lattice(three)[0]) == 3
    assert significant_digits(np.round(raw, 2), 0.01) is None  # a fixed grid says it all
    spec = profile(pd.DataFrame({"kappa": three, "age": rng.integers(40, 90, 3000)}), name="sig")
    assert spec["tables"]["sig"]["columns"]["kappa"]["significant"] == 3
    fake = fabricate(compile_project(spec), rows=2000, seed=2).frame("sig")["kappa"].to_numpy(dtype=float)
    assert np.allclose(fake, [float(f"{v:.3g}") for v in fake])  # 2.41, never 2.413
    assert (fake < 1).mean() > 0.1 and not np.allclose(fake[fake < 1], np.round(fake[fake < 1], 2))  # 0.791 stays


def test_rare_categories_keep_their_share_without_small_counts():
    from fabrication.profiler import pooled_counts

    counts = np.array([[40, 3, 0], [30, 2, 6], [50, 1, 0], [45, 0, 2]])
    w = pooled_counts(counts, 5)
    # the second category has < 5 in every leaf: not stated per leaf, yet its 6 rows survive in total
    assert np.isclose(w[:, 1].sum(), 6) and np.isclose(w[:, 0].sum(), counts[:, 0].sum())
    assert w[1, 2] == 6 and np.isclose(w[:, 2].sum(), 6)  # a count ≥ 5 stays; a pool of 2 (< 5) is not stated
    assert w[3, 1] > 0 and w[2, 1] > w[1, 1]  # pooled rows are spread over the leaves with fewer than 5, by size
    assert pooled_counts(np.array([[40, 3], [30, 1]]), 5)[:, 1].sum() == 0  # a pool below 5 is not stated


def test_profiled_mixture_is_written_as_named_component_tables(tmp_path):
    from lifelines.datasets import load_gbsg2

    from fabrication.profiler import project_yaml
    from fabrication.spec import load_spec

    real = load_gbsg2()
    spec = profile(real, name="gbsg2", components=4)
    text = project_yaml(spec)
    data = yaml.safe_load(text)
    t = data["tables"]["gbsg2"]
    block = t["components"]
    assert block["column"] == "component" and list(block["tables"]) == ["c1", "c2", "c3", "c4"]
    assert "component" not in t["columns"] and "cases" not in t["columns"]["age"]  # drawn by the components
    c1 = block["tables"]["c1"]
    assert c1["weight"] >= 30 and set(block["columns"]) <= set(c1["marginals"])
    assert len(c1["correlation"]) == len(block["columns"])
    assert not any(r.get("correlation", {}).get("method") == "copula" for r in t["rules"])
    assert len(text.splitlines()) < 400
    # loading expands the block into the general mechanisms: the same project as the in-memory profile
    expanded = load_spec(text).tables["gbsg2"]
    assert expanded.columns["component"].output is False
    assert len(expanded.columns["age"].cases) == 4 and expanded.columns["age"].cases[0].when == "component == 'c1'"
    fake = fabricate(compile_project(text), rows=500, seed=1).frame("gbsg2")
    assert list(fake.columns) == [c.lower() for c in real.columns]
    # a drawn column with a generator of its own, or a marginal for an unknown column, is refused by name
    bad = yaml.safe_load(text)
    bad["tables"]["gbsg2"]["columns"]["age"]["distribution"] = {"kind": "normal", "mean": 50, "sd": 10}
    with pytest.raises(Exception, match="column 'age' is drawn by its component"):
        load_spec(bad)
    bad = yaml.safe_load(text)
    for comp in bad["tables"]["gbsg2"]["components"]["tables"].values():
        comp["marginals"]["nope"] = {"kind": "normal", "mean": 0, "sd": 1}
    with pytest.raises(Exception, match="'nope' is not a column"):
        load_spec(bad)


def test_tree_leaf_size_is_chosen_by_held_out_likelihood():
    from fabrication.profiler import MIN_SUPPORT, leaf_size

    rng = np.random.default_rng(3)
    x = rng.random((8000, 2))
    stripes = (np.floor(x[:, 0] * 160) % 2).astype(np.int64)  # bands of ~50 rows: only small leaves follow them
    assert leaf_size(x, stripes, 2) <= 45
    assert leaf_size(x, rng.integers(0, 2, 8000), 2) >= 70  # no structure: large leaves
    small = rng.random((500, 2))  # a small table keeps leaves of ≥ MIN_SUPPORT rows whatever the data
    assert leaf_size(small, (np.floor(small[:, 0] * 40) % 2).astype(np.int64), 2) >= MIN_SUPPORT


def test_sparse_spikes_come_out_exactly_with_their_shares():
    """A column whose common values lie far apart (meal sizes heaped on 1025, 1225 … kcal among
    scattered other values; a float column with 3 % exact zeros at its minimum) keeps each common
    value as a point: drawn exactly, at its share, not spread half-way to its sparse neighbours."""
    rng = np.random.default_rng(11)
    n = 800
    spikes = np.array([413, 588, 825, 975, 1025, 1225])
    share = np.array([0.04, 0.05, 0.06, 0.08, 0.14, 0.07])
    on_spike = rng.random(n) < share.sum()
    meal = np.where(on_spike, rng.choice(spikes, n, p=share / share.sum()), rng.integers(250, 2400, n))
    conc = np.where(rng.random(n) < 0.03, 0.0, np.round(rng.gamma(2.0, 0.04, n) + 0.0005, 5))
    df = pd.DataFrame({"meal": meal, "conc": conc, "age": rng.integers(40, 80, n)})
    spec = profile(df, name="spiky", seed=1)
    fake = fabricate(compile_project(spec), rows=8000, seed=2).frame("spiky")
    for v in spikes:  # each common value at its share (± 2 points), as the value itself
        assert abs((fake["meal"] == v).mean() - (df["meal"] == v).mean()) < 0.02, v
    assert abs((fake["conc"] == 0).mean() - (df["conc"] == 0).mean()) < 0.015
    # the values right next to a spike are no more frequent than elsewhere between spikes
    assert fake["meal"].isin(spikes + 1).mean() + fake["meal"].isin(spikes - 1).mean() < 0.01


def test_a_step_must_hold_the_values_the_coarser_grid_leaves_out():
    """Values recorded to 0.01 with a few to 0.001 (4 significant digits below 10): the grid is 0.001,
    not 0.002 — half of the 3-decimal values would be off a 0.002 grid, and draws would never end
    in an odd digit. Halves with a few quarters stay halves."""
    rng = np.random.default_rng(5)
    big = np.round(rng.uniform(10, 500, 600), 2)
    small = np.round(rng.uniform(6, 10, 20), 3)
    assert lattice(np.r_[big, small])[0] == 0.001
    halves = np.r_[np.arange(0, 200, 1.0), np.arange(0.5, 24, 1.0), [9.75, 11.75, 6.2]]
    assert lattice(halves)[0] == 0.5


def test_a_spike_next_to_the_clipped_tail_profiles():
    """A fine-grained column (4 significant digits, 3 % exact zeros): the spike's one-point bin
    (0 ± ½ 1e-6) and the tail gathered on the 5th largest value must not collapse into equal edges
    (they did when edges were written with 6 significant digits: the profile would not fabricate)."""
    from fabrication.generate import round_significant

    rng = np.random.default_rng(3)
    for k in range(4):
        x = round_significant(rng.gamma(1.5, 0.06, 284), 4)
        x[rng.random(284) < 0.03] = 0.0
        spec = profile(pd.DataFrame({"conc": x, "other": rng.normal(size=284)}), name="t", seed=k)
        edges = spec["tables"]["t"]["columns"]["conc"]["distribution"]["edges"]
        assert all(b > a for a, b in zip(edges, edges[1:], strict=False))


def test_a_near_exact_relation_between_columns_survives():
    """Area and radius of a nucleus (area ≈ π r², rank correlation ≈ 0.9995) stay on their curve: the
    copula keeps a correlation the sample pins down, instead of shrinking it like the weak ones —
    shrunk to 0.97 the fabricated rows scattered off the curve, and a tree on the two columns alone
    told them apart at 0.69."""
    rng = np.random.default_rng(8)
    n = 500
    radius = np.round(rng.gamma(9.0, 1.6, n), 2)
    area = np.round(np.pi * radius**2 * rng.normal(1.0, 0.01, n), 1)
    df = pd.DataFrame({"radius": radius, "area": area, "texture": np.round(rng.normal(19, 4, n), 2),
                       "smooth": np.round(rng.normal(0.1, 0.014, n), 4)})
    spec = profile(df, name="nuclei", seed=0)
    fake = fabricate(compile_project(spec), rows=2000, seed=1).frame("nuclei")
    rel = np.abs(fake["area"] / (np.pi * fake["radius"] ** 2) - 1)
    assert float(np.median(rel)) < 0.02  # real: 0.0066; 0.105 with every correlation Ledoit–Wolf shrunk
    assert fake[["radius", "area"]].corr(method="spearman").iloc[0, 1] > 0.995


def test_a_category_decided_by_a_total_follows_the_total():
    """A group that is the decile of a sum of two columns (FLCHAIN's flc_grp of kappa + lambda): in a
    table large enough for it, the trees split on the sum, so a fabricated row's group agrees with its
    own total — axis-parallel splits on the parts only approximated the diagonal boundaries."""
    rng = np.random.default_rng(4)
    n = 3000
    kappa = np.round(rng.lognormal(0.3, 0.4, n), 2)
    lam = np.round(rng.lognormal(0.4, 0.35, n), 2)
    total = kappa + lam
    cuts = np.quantile(total, np.linspace(0.1, 0.9, 9))
    df = pd.DataFrame({"kappa": kappa, "lam": lam, "age": rng.integers(50, 90, n),
                       "grp": np.searchsorted(cuts, total, side="right") + 1})
    spec = profile(df, name="flc", seed=0)
    assert "kappa + lam" in yaml.safe_dump(spec)
    fake = fabricate(compile_project(spec), rows=6000, seed=1).frame("flc")
    band = np.searchsorted(cuts, fake["kappa"] + fake["lam"], side="right") + 1
    assert (band == fake["grp"]).mean() > 0.9
