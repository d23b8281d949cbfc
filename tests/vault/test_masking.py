"""Masking for test copies: format-preserving, deterministic per key, joins survive."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import Masker, Vault, VaultConfig, chi_is_valid, load_format, load_mask_key, mask_file
from vault.masking import FAMILY_NAMES, GIVEN_NAMES

from .conftest import FIXTURES, TABLES

KEY = bytes(range(32))
POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}$")


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(KEY, load_format("edinburgh"))


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def masked(tmp_path_factory, masker: Masker) -> dict[str, list[dict[str, str]]]:
    out = tmp_path_factory.mktemp("masked")
    for table in TABLES:
        mask_file(FIXTURES / f"{table}.csv", out / f"{table}.csv", masker.format, KEY)
    return {t: _read(out / f"{t}.csv") for t in TABLES} | {"_dir": out}  # type: ignore[dict-item]


def test_identifiers_keep_their_shape_and_validity(masked, masker):
    originals = {r["patient_id"]: r for r in _read(FIXTURES / "patients.csv")}
    for orig, row in zip(originals.values(), masked["patients"], strict=True):
        chi = row["patient_id"]
        assert chi != orig["patient_id"] and len(chi) == 10 and chi.isdigit()
        assert chi_is_valid(chi) and chi_is_valid(orig["patient_id"])
        assert int(chi[8]) % 2 == int(orig["patient_id"][8]) % 2  # the sex digit's parity survives
        # the CHI's date prefix is the masked date of birth, as in a real CHI
        assert dt.date.fromisoformat(row["date_of_birth"]).strftime("%d%m%y") == chi[:6]
        assert row["given_name"] in GIVEN_NAMES and row["family_name"] in FAMILY_NAMES
        assert POSTCODE.match(row["postcode"]) and row["postcode"][:2] == orig["postcode"][:2]
        assert row["postcode"] != orig["postcode"]
        assert row["hospital"] == orig["hospital"] and row["sex"] == orig["sex"]


def test_joins_survive_across_tables(masked):
    patients = {r["patient_id"] for r in masked["patients"]}
    for table in TABLES[1:]:
        assert {r["patient_id"] for r in masked[table]} <= patients, table
    treatments = {r["treatment_id"] for r in masked["chemocare_treatment"]}
    assert {r["treatment_id"] for r in masked["chemocare_toxicity"]} <= treatments
    assert all(re.fullmatch(r"[A-Z]{2}\d{4}", t) for t in treatments)  # TR7001 -> two letters, four digits


def test_dates_shift_by_one_offset_per_patient(masked):
    orig = _read(FIXTURES / "ndc_smr01.csv")
    for o, m in zip(orig, masked["ndc_smr01"], strict=True):
        shift_adm = dt.date.fromisoformat(m["admission_date"]) - dt.date.fromisoformat(o["admission_date"])
        shift_dis = dt.date.fromisoformat(m["discharge_date"]) - dt.date.fromisoformat(o["discharge_date"])
        assert shift_adm == shift_dis and shift_adm.days != 0 and abs(shift_adm.days) <= 180
        assert m["length_of_stay"] == o["length_of_stay"] and m["age_at_admission"] == o["age_at_admission"]
        assert m["main_condition"] == o["main_condition"]  # clinical codes are kept


def test_deterministic_per_key_and_different_across_keys(masker):
    other = Masker(bytes(32), masker.format)
    assert masker.mask_chi("1403589186") == masker.mask_chi("1403589186")
    assert masker.mask_chi("1403589186") != other.mask_chi("1403589186")
    assert masker.mask_name("Morag", "given_name") == masker.mask_name("MORAG ", "given_name").title()
    assert masker.mask_identifier("E1001") == masker.mask_identifier("E1001") != "E1001"
    with pytest.raises(ValueError):
        Masker(b"short", masker.format)


@settings(max_examples=300, deadline=None)
@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2023, 12, 31)), st.integers(0, 999))
def test_masked_chi_is_always_a_valid_chi(masker, born, serial):
    first9 = born.strftime("%d%m%y") + f"{serial:03d}"
    masked = masker.mask_chi(first9 + "0")
    assert chi_is_valid(masked) and masked[:6] != "" and int(masked[8]) % 2 == serial % 2
    dt.datetime.strptime(masked[:6], "%d%m%y")  # a real date


def test_masked_copy_ingests_into_a_test_vault(masked, tmp_path, clock):
    vault = Vault.open(VaultConfig(database_url=f"sqlite:///{tmp_path / 'test.db'}", key_dir=tmp_path / "keys"),
                       clock=clock)
    try:
        for table in TABLES:
            vault.ingest_file(masked["_dir"] / f"{table}.csv")
        assert vault.stats().patients == 8
        ref = vault.find_patient(masked["patients"][0]["patient_id"])
        record = vault.read_record(ref)
        assert record.sections["oncology.treatment"].entries and record.sections["admissions"].entries
    finally:
        vault.close()


def test_mask_key_file(tmp_path):
    key = load_mask_key(tmp_path / "mask.key")
    assert len(key) == 32 and load_mask_key(tmp_path / "mask.key") == key
    assert (tmp_path / "mask.key").stat().st_mode & 0o777 == 0o600
