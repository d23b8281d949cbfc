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
        which = ["--hospital", "lothian"] if args[0] not in ("formats", "mask") else []
        code = main(["--data-dir", str(tmp_path / "data"), "vault", args[0], *which, *args[1:]])
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


def test_the_cli_opens_the_hospitals_vault_that_serums_up_uses(tmp_path, monkeypatch, capsys):
    """``serums vault`` opens ``<data dir>/vaults/<hospital>/``, chosen with --hospital when the network has
    several hospitals (one line otherwise), and never a vault of its own elsewhere."""
    from network import init_network

    for var in ("SERUMS_DATABASE_URL", "SERUMS_IPFS_API", "SERUMS_KEY_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    init_network(data / "network", ["lothian", "zmc"])
    base = ["--data-dir", str(data), "vault"]
    assert main([*base, "status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 hospitals (lothian, zmc): choose the vault with --hospital" in err
    assert main([*base, "init", "--hospital", "nowhere"]) == 1
    assert "no such hospital on this network (lothian, zmc)" in capsys.readouterr().err
    assert main([*base, "init", "--hospital", "zmc"]) == 0
    assert "vaults/zmc/vault.db" in capsys.readouterr().out
    assert (data / "vaults" / "zmc" / "vault.db").exists()
    assert not (data / "vault.db").exists() and not (data / "vaults" / "lothian").exists()


def test_a_vault_outside_a_network_needs_its_hospital_named(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SERUMS_DATABASE_URL", raising=False)
    assert main(["--data-dir", str(tmp_path), "vault", "status"]) == 1
    assert "say whose vault this is with --hospital NAME" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path), "vault", "init", "--hospital", "../up"]) == 1
    assert "is not a hospital name" in capsys.readouterr().err
