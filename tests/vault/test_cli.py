"""``serums vault …`` end to end on SQLite, through serums.cli.main."""

from __future__ import annotations

import json
import shutil

import pytest

from serums.cli import main

from .conftest import FIXTURES, TABLES, first_patient_id


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    for var in ("SERUMS_DATABASE_URL", "SERUMS_IPFS_API", "SERUMS_KEY_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--data-dir", str(tmp_path / "data"), "vault", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_init_ingest_read_history_status(cli):
    code, out, _ = cli("init")
    assert code == 0 and "vault ready: format edinburgh, payloads aes-256-gcm" in out
    code, out, _ = cli("ingest", "--format", "edinburgh", *(str(FIXTURES / f"{t}.csv") for t in TABLES))
    assert code == 0 and out.count("satellites") == len(TABLES)
    code, ref, _ = cli("find", first_patient_id())
    ref = ref.strip()
    assert code == 0 and len(ref) == 32
    code, out, _ = cli("read", ref, "--section", "demographics", "--section", "contact")
    doc = json.loads(out)
    assert doc["sections"]["demographics"]["entries"][0]["attributes"]["given_name"] == "Morag"
    assert doc["sections"]["admissions"] == {"status": "withheld", "reason": "not-granted"}
    code, out, _ = cli("read", "--chi", first_patient_id(), "--fhir")
    assert code == 0 and json.loads(out)["resourceType"] == "Bundle"
    code, out, _ = cli("read", ref, "--as-of", "2000-01-01T00:00:00")
    assert code == 0 and all(s.get("entries") == [] for s in json.loads(out)["sections"].values())
    code, out, _ = cli("history", ref)
    assert code == 0 and len(out.strip().splitlines()) == len(TABLES)
    code, out, _ = cli("status")
    assert json.loads(out)["patients"] == 8
    code, out, _ = cli("patients")
    assert ref in out.split()


def test_bad_input_is_one_line_errors_not_tracebacks(cli, tmp_path):
    cli("init")
    bad = tmp_path / "patients.csv"
    shutil.copy(FIXTURES / "patients.csv", bad)
    bad.write_text(bad.read_text().replace("1958-03-14", "1958-02-30"))
    code, _, err = cli("ingest", "--format", "edinburgh", str(bad))
    assert code == 1
    assert "patients.csv line 2: date_of_birth: '1958-02-30' is not a valid calendar date" in err
    assert "ingest rejected: 1 bad row(s) of 8; nothing was written" in err
    assert "Traceback" not in err
    code, _, err = cli("ingest", "--format", "nope", str(bad))
    assert code == 1 and "no shipped format named 'nope'" in err
    code, _, err = cli("read", "0" * 32)
    assert code == 1 and "no patient" in err
    code, _, err = cli("read", "0" * 32, "--as-of", "yesterday")
    assert code == 1 and "not an ISO 8601 time" in err
    code, _, err = cli("erase", "0" * 32, "--reason", "x")
    assert code == 1 and "add --yes" in err


def test_erase_rotate_and_mask(cli, tmp_path):
    cli("init")
    cli("ingest", "--format", "edinburgh", str(FIXTURES / "patients.csv"))
    code, out, _ = cli("rotate-kek")
    assert code == 0 and "KEK rotated" in out and "2 system keys re-wrapped" in out
    code, out, _ = cli("erase", "--chi", first_patient_id(), "--reason", "request 42", "--yes")
    report = json.loads(out)
    assert code == 0 and report["verified"] and report["satellites_decrypted"] == 0
    code, out, _ = cli("mask", "--format", "edinburgh", str(FIXTURES / "patients.csv"), str(tmp_path / "m.csv"))
    assert code == 0 and "8 rows masked" in out
    assert first_patient_id() not in (tmp_path / "m.csv").read_text()
    assert (tmp_path / "data" / "vault" / "mask.key").exists()
    code, out, _ = cli("formats")
    assert code == 0 and "edinburgh" in out
