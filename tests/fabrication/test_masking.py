"""Masking rules for move/transform mode: substitution (given names follow sex), character
shuffling, FF3-1 format-preserving encryption (reversible with the key), mixed real + fabricated."""

from __future__ import annotations

import pandas as pd
import pytest

from fabrication.masking import Fpe, MaskingError, _names, mask_frame

KEY = bytes(range(32))


@pytest.fixture()
def people() -> pd.DataFrame:
    return pd.DataFrame({"given_name": ["Sheila", "Peter", "Margaret", "Sheila", None],
                         "sex": ["F", "M", "F", "F", "M"],
                         "chi": ["0101541234", "3112609876", "1505701111", "0101541234", "2002800002"],
                         "phone": ["0131-496-0000", "0141-496-0001", "0131-496-0002", "0131-496-0000", "0131-496-0009"],
                         "postcode": ["EH3 9AB", "G12 8QQ", "EH8 9YL", "EH3 9AB", "AB10 1XG"],
                         "notes": ["x", "y", "z", "w", "v"]})


def test_masking_methods(people):
    rules = {"given_name": {"substitute": "given_names", "sex": "sex"}, "chi": "fpe", "phone": "fpe",
             "postcode": "shuffle", "notes": "drop"}
    out = mask_frame(people, rules, KEY)
    assert "notes" not in out.columns and out["given_name"].isna().iloc[4]
    female, male = set(_names("female_given_names")), set(_names("male_given_names"))
    for name, sex in zip(out["given_name"][:4], out["sex"][:4], strict=True):
        assert name in (female if sex == "F" else male)  # Sheila becomes a woman's name, never Peter
    assert out["given_name"][0] == out["given_name"][3]  # same original, same substitute (joins survive)
    # format-preserving encryption: same shape, different digits, reversible with the key
    assert all(len(a) == len(b) and a.isdigit() and a != b for a, b in zip(out["chi"], people["chi"], strict=True))
    assert all(m[4] == "-" and m[8] == "-" for m in out["phone"])
    fpe = Fpe(KEY, "chi")
    assert [fpe.decrypt(v) for v in out["chi"]] == list(people["chi"])
    assert Fpe(bytes(32), "chi").encrypt("0101541234") != out["chi"][0]  # another key, another value
    # shuffling keeps the characters
    assert all(sorted(a) == sorted(b) for a, b in zip(out["postcode"], people["postcode"], strict=True))


def test_masking_errors_name_the_column(people):
    with pytest.raises(MaskingError, match="need the record's sex"):
        mask_frame(people, {"given_name": {"substitute": "given_names"}}, KEY)
    with pytest.raises(MaskingError, match="no column 'nope'"):
        mask_frame(people, {"nope": "fpe"}, KEY)
    with pytest.raises(MaskingError, match="at least 6"):
        mask_frame(pd.DataFrame({"id": ["12-34"]}), {"id": "fpe"}, KEY)


def test_cli_move_with_masking_and_mixed_rows(people, tmp_path):
    import yaml

    from serums.cli import main

    src = tmp_path / "people.csv"
    people.to_csv(src, index=False)
    rules = tmp_path / "masking.yaml"
    rules.write_text(yaml.safe_dump({"given_name": {"substitute": "given_names", "sex": "sex"}, "chi": "fpe",
                                     "postcode": "shuffle", "notes": "drop"}))
    out = tmp_path / "out"
    assert main(["fabricate", "mask", str(src), "--rules", str(rules), "--out", str(out),
                 "--key-file", str(tmp_path / "k.key"), "--table", "people"]) == 0
    moved = pd.read_csv(out / "people.csv", dtype=str)
    assert len(moved) == 5 and "notes" not in moved.columns and not (moved["chi"] == people["chi"]).any()
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600


def test_mixed_real_and_fabricated(people, tmp_path):
    from fabrication.modes import move

    src = tmp_path / "people.csv"
    people.to_csv(src, index=False)
    fake = pd.DataFrame({"given_name": ["Ann"], "sex": ["F"], "chi": ["0202020202"], "phone": ["0"], "postcode": ["X"]})
    move(str(src), str(tmp_path / "mixed.json"), {"chi": "fpe", "notes": "drop"}, KEY, table="people", fabricated=fake)
    import json

    rows = json.loads((tmp_path / "mixed.json").read_text())["people"]
    assert [r["source"] for r in rows] == ["real"] * 5 + ["fabricated"] and rows[5]["chi"] == "0202020202"


def test_inflate_adds_consistent_keyed_rows(tmp_path):
    import sqlite3

    import numpy as np

    from serums.cli import main

    rng = np.random.default_rng(3)
    n = 200
    db = tmp_path / "h.sqlite"
    pd.DataFrame({"patient_id": np.arange(1001, 1001 + n), "age": rng.integers(30, 90, n),
                  "sex": rng.choice(["F", "M"], n), "dose": np.round(rng.normal(50, 5, n) * 2) / 2}
                 ).to_sql("patients", f"sqlite:///{db}", index=False)
    assert main(["fabricate", "inflate", str(db), "--table", "patients", "--rows", "50"]) == 0
    with sqlite3.connect(db) as conn:
        df = pd.read_sql("select * from patients", conn)
    assert len(df) == 250 and df["patient_id"].is_unique and df["patient_id"].iloc[200:].tolist() == list(range(1201, 1251))
    new = df.iloc[200:]
    assert set(new["sex"]) <= {"F", "M"} and new["age"].between(30, 90).all()
    assert np.allclose(new["dose"] * 2, np.round(new["dose"] * 2))  # on the real rows' half-step lattice
