"""Inflate mode over a database of related tables: new parents come with children (and grandchildren)
keyed after the rows already there, children of existing parents refer to real parents, and every
reference resolves. SQLite with keys inferred from names and values, PostgreSQL with declared keys."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from fabrication import InputError
from fabrication.modes import database_keys, inflate
from fabrication.sources import read_database


def _hospital(n: int = 150, seed: int = 5) -> dict[str, pd.DataFrame]:
    """patients ← treatments ← cycles (no key of their own), and toxicity referring to both a
    treatment and (redundantly) its patient."""
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame({"patient_id": np.arange(1001, 1001 + n), "age": rng.integers(30, 90, n),
                             "sex": rng.choice(["F", "M"], n, p=[0.8, 0.2])})
    per = rng.choice([0, 1, 1, 2, 3], n)
    owner = np.repeat(patients["patient_id"].to_numpy(), per)
    treatments = pd.DataFrame({"treatment_id": [f"TR{i:06d}" for i in range(1, len(owner) + 1)],
                               "patient_id": owner, "regimen": rng.choice(["AC", "TC", "PAC-W"], len(owner)),
                               "ps": rng.choice([0, 1, 2], len(owner))})
    cyc = rng.integers(3, 7, len(treatments))
    cycles = pd.DataFrame({"treatment_id": np.repeat(treatments["treatment_id"].to_numpy(), cyc),
                           "cycle_no": np.concatenate([np.arange(1, k + 1) for k in cyc]),
                           "dose": np.round(rng.normal(100, 10, cyc.sum()), 1)})
    tox_of = treatments.sample(frac=0.8, random_state=1)
    toxicity = pd.DataFrame({"toxicity_id": np.arange(1, len(tox_of) + 1), "treatment_id": tox_of["treatment_id"].to_numpy(),
                             "patient_id": tox_of["patient_id"].to_numpy(),
                             "grade": rng.choice([0, 1, 2, 3, 4], len(tox_of))})
    return {"patients": patients, "treatments": treatments, "cycles": cycles, "toxicity": toxicity}


def _check_references(after: dict[str, pd.DataFrame]) -> None:
    p, tr, cy, tx = (after[t] for t in ("patients", "treatments", "cycles", "toxicity"))
    assert p["patient_id"].is_unique and tr["treatment_id"].is_unique and tx["toxicity_id"].is_unique
    assert tr["patient_id"].isin(p["patient_id"]).all() and cy["treatment_id"].isin(tr["treatment_id"]).all()
    joined = tx.merge(tr[["treatment_id", "patient_id"]], on="treatment_id", suffixes=("", "_of_treatment"))
    assert len(joined) == len(tx) and (joined["patient_id"] == joined["patient_id_of_treatment"]).all()


def _grown(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    for t, df in before.items():  # the rows already there are untouched
        pd.testing.assert_frame_equal(after[t].iloc[:len(df)].reset_index(drop=True), df.reset_index(drop=True),
                                      check_dtype=False)
    return {t: after[t].iloc[len(df):] for t, df in before.items()}


def test_keys_and_relations_are_inferred(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    for t, df in _hospital().items():
        df.to_sql(t, url, index=False)
    keys, rels = database_keys(read_database(url))
    assert keys == {"patients": "patient_id", "treatments": "treatment_id", "toxicity": "toxicity_id"}
    assert {(r.child, r.column, r.parent) for r in rels} == {
        ("treatments", "patient_id", "patients"), ("cycles", "treatment_id", "treatments"),
        ("toxicity", "treatment_id", "treatments"), ("toxicity", "patient_id", "patients")}


def test_new_parents_come_with_children_and_grandchildren(tmp_path):
    before = _hospital()
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    for t, df in before.items():
        df.to_sql(t, url, index=False)
    message = inflate(url, "patients", 40, seed=3)
    after = read_database(url).frames
    new = _grown(before, after)
    assert len(new["patients"]) == 40 and new["patients"]["patient_id"].tolist() == list(range(1151, 1191))
    assert "40 row(s) to patients" in message and "treatments.treatment_id from TR" in message
    _check_references(after)
    # every new row below hangs from the new patients; keys continue after the real ones
    assert len(new["treatments"]) > 0 and new["treatments"]["patient_id"].isin(new["patients"]["patient_id"]).all()
    assert new["treatments"]["treatment_id"].iloc[0] == f"TR{len(before['treatments']) + 1:06d}"
    assert new["cycles"]["treatment_id"].isin(new["treatments"]["treatment_id"]).all() and len(new["cycles"])
    assert new["toxicity"]["patient_id"].isin(new["patients"]["patient_id"]).all()
    assert new["toxicity"]["toxicity_id"].min() == before["toxicity"]["toxicity_id"].max() + 1
    # children per parent as the real ones, never more than the 5th largest real count
    per = new["treatments"]["patient_id"].value_counts().reindex(new["patients"]["patient_id"], fill_value=0)
    assert per.max() <= 3 and 0.8 < per.mean() / (len(before["treatments"]) / len(before["patients"])) < 1.25
    # values drawn from the profile, on the real columns' supports
    assert set(new["treatments"]["regimen"]) <= {"AC", "TC", "PAC-W"} and new["patients"]["age"].between(30, 90).all()


def test_children_of_existing_parents(tmp_path):
    before = _hospital()
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    for t, df in before.items():
        df.to_sql(t, url, index=False)
    inflate(url, "treatments", 25, seed=4)
    after = read_database(url).frames
    new = _grown(before, after)
    assert len(new["patients"]) == 0 and len(new["treatments"]) == 25
    assert new["treatments"]["patient_id"].isin(before["patients"]["patient_id"]).all()
    assert new["cycles"]["treatment_id"].isin(new["treatments"]["treatment_id"]).all()
    _check_references(after)
    with pytest.raises(InputError, match="no table 'nope'"):
        inflate(url, "nope", 5)


@pytest.mark.postgres
def test_postgres_declared_keys(postgres_url):
    import sqlalchemy as sa

    schema = f"fab_inflate_{uuid.uuid4().hex[:8]}"
    before = _hospital(90, seed=8)
    engine = sa.create_engine(postgres_url)
    ddl = [f'create schema "{schema}"',
           f'create table "{schema}".patients (patient_id integer primary key, age integer, sex text)',
           f'create table "{schema}".treatments (treatment_id text primary key, '
           f'patient_id integer not null references "{schema}".patients, regimen text, ps integer)',
           f'create table "{schema}".cycles (treatment_id text references "{schema}".treatments, cycle_no integer, '
           'dose double precision, primary key (treatment_id, cycle_no))',
           f'create table "{schema}".toxicity (toxicity_id integer primary key, '
           f'treatment_id text references "{schema}".treatments, patient_id integer references "{schema}".patients, '
           'grade integer)']
    try:
        with engine.begin() as conn:
            for statement in ddl:
                conn.execute(sa.text(statement))
        for t, df in before.items():
            df.to_sql(t, engine, schema=schema, index=False, if_exists="append")
        db = read_database(postgres_url, schema)
        assert ("toxicity", "patient_id", "patients", "patient_id") in db.foreign_keys
        inflate(postgres_url, "patients", 20, seed=2, schema=schema)  # the server checks every reference
        after = {t: df.sort_values(list(df.columns[:2])).reset_index(drop=True)
                 for t, df in read_database(postgres_url, schema).frames.items()}
        assert len(after["patients"]) == 110 and after["patients"]["patient_id"].max() == 1110
        assert len(after["treatments"]) > len(before["treatments"]) and len(after["cycles"]) > len(before["cycles"])
        _check_references(after)
        # the composite key (treatment_id, cycle_no): each new treatment's cycles are numbered 1, 2, …
        fresh = after["cycles"][~after["cycles"]["treatment_id"].isin(before["treatments"]["treatment_id"])]
        assert len(fresh) and all(sorted(g) == list(range(1, len(g) + 1)) for _, g in fresh.groupby("treatment_id")["cycle_no"])
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
        engine.dispose()


def test_cli_no_children_and_errors(tmp_path, capsys):
    from serums.cli import main

    before = _hospital(80)
    db = tmp_path / "h.sqlite"
    for t, df in before.items():
        df.to_sql(t, f"sqlite:///{db}", index=False)
    assert main(["fabricate", "inflate", str(db), "--table", "patients", "--rows", "10", "--no-children"]) == 0
    assert "added 10 row(s) to patients (patients.patient_id from 1081)" in capsys.readouterr().out
    after = read_database(f"sqlite:///{db}").frames
    assert len(after["patients"]) == 90 and all(len(after[t]) == len(before[t]) for t in ("treatments", "cycles", "toxicity"))
    assert main(["fabricate", "inflate", str(db), "--table", "patients", "--rows", "0"]) != 0
    assert "inflate adds at least one row" in capsys.readouterr().err
