"""Masked given names follow the record's sex, in the vault's test copies and in fabrication's
move/transform masking alike: one pick and one set of name lists (``pseudonyms``) serve both."""

from __future__ import annotations

import pandas as pd
import pytest

import pseudonyms
from fabrication.masking import mask_frame
from vault import Masker, load_format, mask_file

from .conftest import FIXTURES

KEY = bytes(range(32))


def test_test_copies_keep_a_womans_name_for_a_woman(tmp_path):
    out = tmp_path / "patients.csv"
    mask_file(FIXTURES / "patients.csv", out, load_format("edinburgh"), KEY)
    real, masked = pd.read_csv(FIXTURES / "patients.csv", dtype=str), pd.read_csv(out, dtype=str)
    assert set(real["sex"]) >= {"F", "M"}  # the fixture has both, so the test can fail
    for original, name, sex in zip(real["given_name"], masked["given_name"], masked["sex"], strict=True):
        assert name in pseudonyms.given_names(sex), (original, name, sex)
    assert masked["family_name"].isin(pseudonyms.family_names()).all()


def test_vault_and_fabrication_mask_names_with_one_piece_of_code():
    masker = Masker(KEY, load_format("edinburgh"))
    women = {masker.mask_name(n, "given_name", "F") for n in ("Sheila", "Morag", "Ann", "Isla", "Jean", "Rhona")}
    men = {masker.mask_name(n, "given_name", "M") for n in ("Peter", "Hamish", "John", "Iain", "Craig", "Euan")}
    assert women <= set(pseudonyms.given_names("F")) and men <= set(pseudonyms.given_names("M"))
    assert masker.mask_name("Sheila", "given_name", "F") == pseudonyms.pick_name(
        KEY, "given_name", "Sheila", pseudonyms.given_names("F"))
    # unknown sex: either list, still deterministic and case-preserving
    assert masker.mask_name("SHEILA", "given_name", "U") == masker.mask_name("sheila", "given_name", None).upper()
    frame = pd.DataFrame({"given_name": ["Sheila", "Peter"], "sex": ["female", "M"]})
    moved = mask_frame(frame, {"given_name": {"substitute": "given_names", "sex": "sex"}}, KEY)
    assert moved["given_name"][0] == pseudonyms.pick_name(KEY, "substitute:given_name", "Sheila",
                                                          pseudonyms.given_names("F"))
    assert moved["given_name"][1] in pseudonyms.given_names("M")


def test_name_lists():
    assert not set(pseudonyms.given_names("F")) & set(pseudonyms.given_names("M"))
    assert pseudonyms.given_names("?") == pseudonyms.given_names("F") + pseudonyms.given_names("M")
    assert [pseudonyms.sex_of(v) for v in ("F", " female", "m", "1", "U", None)] == ["F", "F", "M", "M", None, None]
    with pytest.raises(ValueError, match="no name list"):
        pseudonyms.names("klingon")
