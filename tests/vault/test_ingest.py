"""Ingest -> read -> as-of history, on SQLite and PostgreSQL; bad rows; crashes leave nothing."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from vault import IngestError, IngestRejected, PatientNotFound, UnknownSection, Vault
from vault import schema as S

from .conftest import ALL_SECTIONS, FIXTURES, TABLES, first_patient_id

ROOT = Path(__file__).resolve().parents[2]


def _counts(v: Vault) -> dict[str, int]:
    s = v.stats()
    return {"patients": s.patients, "satellites": s.satellites, "links": s.links, "batches": s.batches,
            **{f"hub_{k}": n for k, n in s.hubs.items()}}


def _rows(table: str) -> list[dict[str, str]]:
    with (FIXTURES / f"{table}.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_ingest_then_read_every_section(loaded: Vault):
    stats = loaded.stats()
    assert stats.patients == 8 and stats.batches == len(TABLES)
    assert stats.hubs["location"] >= 5 and stats.hubs["time"] > 20
    ref = loaded.find_patient(first_patient_id())
    record = loaded.read_record(ref)
    assert set(record.sections) == ALL_SECTIONS and not record.withheld
    demo = record.sections["demographics"].entries[0]
    assert demo.attributes == {"given_name": "Morag", "family_name": "MacLeod", "date_of_birth": "1958-03-14",
                               "sex": "F"}
    assert demo.hub.kind == "person" and demo.hub.key == first_patient_id()
    assert record.sections["contact"].entries[0].attributes == {"postcode": "EH4 2XU"}
    episodes = record.sections["admissions"].entries
    assert [e.hub.key for e in episodes] == ["E1001", "E1002"]
    assert episodes[0].attributes["length_of_stay"] == 8 and episodes[0].attributes["sex"] == "F"  # "2" -> F
    admitted = [link for link in record.sections["admissions"].links if link.name == "ndc_smr01.admitted"]
    assert sorted(link.to_hub.key for link in admitted) == ["E1001", "E1002"]  # a person has many events
    located = [link for link in record.sections["admissions"].links if link.to_hub.kind == "location"]
    assert located and located[0].to_hub.name.startswith("Western General")
    assert located[0].to_hub.latitude == pytest.approx(55.9621)
    conditions = {link.to_hub.key for link in record.sections["conditions"].links}
    assert "C50.9" in conditions
    treatment = record.sections["oncology.treatment"]
    drugs = {e.attributes["drug_name"] for e in treatment.entries if e.satellite.endswith(".administration")}
    assert drugs == {"Fluorouracil", "Epirubicin", "Cyclophosphamide"}
    cycles = [e for e in treatment.entries if e.satellite == "chemocare_treatment.cycle"]
    assert all(isinstance(e.attributes["cycle_delayed"], bool) for e in cycles)
    tox = record.sections["oncology.toxicity"]
    assert tox.entries and all(link.to_hub.kind in ("event", "time") for link in tox.links)
    # the toxicity links to the same treatment-cycle hub the treatment table created
    cycle_ids = {e.hub.id for e in cycles}
    during = {link.to_hub.id for link in tox.links if link.name == "chemocare_toxicity.during_cycle"}
    assert during and during <= cycle_ids
    assert record.sections["comorbidities"].entries[0].attributes["any_malignancy"] is True
    # the record serialises, and its digest is stable for the same state
    doc = record.to_dict()
    json.dumps(doc)
    assert loaded.read_record(ref).digest() == record.digest()


def test_sections_filter_and_withheld_markers(loaded: Vault):
    ref = loaded.find_patient(first_patient_id())
    record = loaded.read_record(ref, sections=["admissions", "oncology.toxicity"])
    assert set(record.sections) == {"admissions", "oncology.toxicity"}
    assert set(record.withheld) == ALL_SECTIONS - {"admissions", "oncology.toxicity"}
    doc = record.to_dict()
    assert doc["sections"]["demographics"] == {"status": "withheld", "reason": "not-granted"}
    text = json.dumps(doc)
    assert "Morag" not in text and first_patient_id() not in text and "C50.9" not in text
    # the person's national identifier is released only with the demographics section
    assert all(e.hub.key is None for e in record.entries() if e.hub.kind == "person")
    with pytest.raises(UnknownSection, match="unknown section"):
        loaded.read_record(ref, sections=["genomics"])


def test_reingest_is_idempotent_and_changes_make_new_versions(loaded: Vault, clock, tmp_path: Path):
    before = _counts(loaded)
    report = loaded.ingest_file(FIXTURES / "ndc_smr01.csv")
    assert report.satellites_written == 0 and report.links_written == 0 and report.satellites_unchanged > 0
    assert _counts(loaded)["satellites"] == before["satellites"]

    ref = loaded.find_patient(first_patient_id())
    t_before_change = clock()
    clock.advance(60)
    rows = _rows("ndc_smr01")
    rows[0]["discharge_date"] = "2020-01-25"
    rows[0]["length_of_stay"] = "12"
    rows[0]["main_condition"] = "C50.4"  # the diagnosis link moves to another condition
    rows[0]["other_condition_1"] = ""  # and this one ends
    report = loaded.ingest_file(_write(tmp_path / "ndc_smr01.csv", rows))
    assert report.satellites_written == 2  # episode and diagnoses of one admission
    assert report.links_written == 2

    now = loaded.read_record(ref, sections=["admissions", "conditions"])
    then = loaded.read_record(ref, sections=["admissions", "conditions"], as_of=t_before_change)
    e_now = next(e for e in now.sections["admissions"].entries if e.hub.key == "E1001")
    e_then = next(e for e in then.sections["admissions"].entries if e.hub.key == "E1001")
    assert (e_now.attributes["length_of_stay"], e_then.attributes["length_of_stay"]) == (12, 8)
    assert e_now.loaded_at > e_then.loaded_at

    def conditions(rec):
        return sorted((link.name, link.to_hub.key) for link in rec.sections["conditions"].links
                      if link.from_hub.key == "E1001")

    assert conditions(then) == [("ndc_smr01.main_condition", "C50.9"), ("ndc_smr01.other_condition_1", "E11.9")]
    assert conditions(now) == [("ndc_smr01.main_condition", "C50.4")]
    # history lists the ingests that touched the patient
    versions = loaded.history(ref)
    assert versions[-1].sections == ("admissions", "conditions") and versions[-1].satellites == 2
    # a read as of before the first ingest knows nothing
    empty = loaded.read_record(ref, as_of=versions[0].load_ts - (versions[1].load_ts - versions[0].load_ts))
    assert not empty.entries()


def test_bad_rows_are_reported_with_row_numbers_and_nothing_is_written(loaded: Vault, tmp_path: Path):
    before = _counts(loaded)
    rows = _rows("chemocare_toxicity") + [dict(_rows("chemocare_toxicity")[0], toxicity_id="X1")]
    rows[2]["nausea_grade"] = "7"
    rows[5]["assessment_date"] = "2020-31-12"
    rows[5]["hospitalised"] = "perhaps"
    rows[-1]["patient_id"] = "9999999999"  # a new patient in a good row: must not appear either
    path = _write(tmp_path / "chemocare_toxicity.csv", rows)
    with pytest.raises(IngestRejected) as err:
        loaded.ingest_file(path)
    problems = err.value.problems
    assert [(p.row, p.location) for p in problems] == [(3, "chemocare_toxicity.csv line 4"),
                                                        (6, "chemocare_toxicity.csv line 7")]
    assert "nausea_grade: 7 is above the maximum 5" in problems[0].reason
    assert "assessment_date: '2020-31-12' is not a valid calendar date" in problems[1].reason
    assert "hospitalised: 'perhaps' is not a boolean" in problems[1].reason
    assert err.value.type == "ingest-rejected" and "nothing was written" in str(err.value)
    assert _counts(loaded) == before
    with pytest.raises(PatientNotFound):
        loaded.find_patient("9999999999")


def test_file_level_problems(vault: Vault, tmp_path: Path):
    (tmp_path / "unknown.csv").write_text("a,b\n1,2\n")
    with pytest.raises(IngestError, match="has no table 'unknown'.*pass --table"):
        vault.ingest_file(tmp_path / "unknown.csv")
    (tmp_path / "ndc_smr06.csv").write_text("patient_id,tumour_id,date_of_diagnosis,icd10_site,wrong\n")
    with pytest.raises(IngestRejected, match="missing column.*morphology.*unexpected column.*wrong"):
        vault.ingest_file(tmp_path / "ndc_smr06.csv")
    (tmp_path / "ragged.csv").write_text("patient_id,tumour_id,date_of_diagnosis,icd10_site,morphology,laterality,"
                                         "tnm_t,tnm_n,tnm_m\n0101501234,T1,2020-01-01,C50.9\n")
    with pytest.raises(IngestRejected, match="has 4 fields; the header has 9"):
        vault.ingest_file(tmp_path / "ragged.csv", table="ndc_smr06")
    assert vault.stats().satellites == 0


def test_failure_in_the_middle_of_an_ingest_leaves_nothing(loaded: Vault, tmp_path: Path):
    before = _counts(loaded)
    rows = [dict(r, treatment_id=r["treatment_id"] + "B") for r in _rows("chemocare_treatment")]

    def explode(n: int) -> None:
        if n >= 20:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        loaded.ingest_rows("chemocare_treatment", rows, chunk_size=10, progress=explode)
    assert _counts(loaded) == before
    report = loaded.ingest_rows("chemocare_treatment", rows, chunk_size=10)  # and the vault still works
    assert report.satellites_written > 0


def test_a_killed_ingest_process_leaves_nothing(backend, make_vault, tmp_path: Path):
    v = make_vault()
    v.ingest_file(FIXTURES / "patients.csv")
    before = _counts(v)
    cfg = v.config
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from vault import Vault, VaultConfig
        cfg = VaultConfig(database_url={cfg.database_url!r}, key_dir=Path({str(cfg.key_dir)!r}),
                          schema={cfg.schema!r}, scrypt_n={cfg.scrypt_n})
        v = Vault.open(cfg)
        def die(n):
            if n >= 25:
                print("killing", n, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        v.ingest_file(Path({str(FIXTURES / "chemocare_treatment.csv")!r}), chunk_size=5, progress=die)
        print("not reached", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "killing" in proc.stdout and "not reached" not in proc.stdout
    reopened = make_vault(cfg)
    assert _counts(reopened) == before
    with reopened.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(S.hub_event)).scalar_one() == 0
    assert reopened.ingest_file(FIXTURES / "chemocare_treatment.csv").satellites_written > 0


def test_xlsx_and_json_sources(vault: Vault, tmp_path: Path):
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for table in ("patients", "ndc_smr06"):
        ws = wb.create_sheet(table)
        rows = _rows(table)
        ws.append(list(rows[0]))
        for r in rows:
            ws.append([int(v) if k == "charlson_index" else v for k, v in r.items()])
    wb.save(tmp_path / "extract.xlsx")
    report = vault.ingest_file(tmp_path / "extract.xlsx")
    assert report.tables == {"patients": 8, "ndc_smr06": 8}

    doc = {"ndc_charlson": [{**r, "charlson_index": int(r["charlson_index"]),
                             "dementia": r["dementia"] in ("1", "true")} for r in _rows("ndc_charlson")]}
    (tmp_path / "extract.json").write_text(json.dumps(doc))
    assert vault.ingest_file(tmp_path / "extract.json").tables == {"ndc_charlson": 12}
    (tmp_path / "tox.json").write_text(json.dumps(_rows("chemocare_toxicity")[:3] + ["not a row"]))
    with pytest.raises(IngestRejected, match=r"tox.json chemocare_toxicity\[4\]: is not an object"):
        vault.ingest_file(tmp_path / "tox.json", table="chemocare_toxicity")


def test_records_live_encrypted_in_the_database(loaded: Vault):
    """Nothing clinical or identifying is stored in clear: not the CHI, not a name, not a grade."""
    chi = first_patient_id()
    with loaded.engine.connect() as conn:
        dump = []
        for table in S.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                dump.extend(repr(v) for v in row)
    blob = "\n".join(dump)
    for secret in (chi, "Morag", "MacLeod", "EH4 2XU", "1958-03-14", "E1001", "8500/3"):
        assert secret not in blob, secret
    # reference data (codes, places, days) is in clear on purpose
    assert "C50.9" in blob and "S314H" in blob


def test_a_vault_keeps_its_format_and_accepts_compatible_versions(vault: Vault, clock, tmp_path: Path):
    from importlib import resources

    from vault import FormatError, load_format

    text = (resources.files("vault.formats") / "edinburgh.yaml").read_text()
    newer = tmp_path / "edinburgh-v2.yaml"
    newer.write_text(text.replace("version: 1", "version: 2").replace(
        "  imaging: Scans and documents (blobs).", "  imaging: Scans and documents (blobs).\n  notes: Free-text notes."))
    vault.ingest_file(FIXTURES / "patients.csv", record_format=load_format(newer))
    assert "notes" in vault.sections
    reopened = Vault.open(vault.config, clock=clock)
    try:
        assert reopened.format.version == 2 and "notes" in reopened.sections
    finally:
        reopened.close()
    moved = tmp_path / "edinburgh-moved.yaml"
    moved.write_text(newer.read_text().replace(
        "        hub: person\n        section: contact", "        hub: person\n        section: demographics"))
    with pytest.raises(FormatError, match="satellite patients.contact moved from section contact to demographics"):
        vault.ingest_file(FIXTURES / "patients.csv", record_format=load_format(moved))
    other = tmp_path / "other.yaml"
    other.write_text(text.replace("name: edinburgh", "name: other"))
    with pytest.raises(FormatError, match="a vault keeps one format"):
        vault.ingest_file(FIXTURES / "patients.csv", record_format=load_format(other))


def test_the_vault_is_a_fabrication_sink(vault: Vault):
    """fabrication's VaultWriter hands over plain-Python rows (bools, ints, ISO dates, None)."""
    rows = [{**r, "charlson_index": int(r["charlson_index"]),
             **{k: v in ("1", "true") for k, v in r.items() if k not in ("patient_id", "assessment_date",
                                                                           "charlson_index")}}
            for r in _rows("ndc_charlson")]
    report = vault.ingest("ndc_charlson", rows)
    assert report.rows == 12 and report.satellites_written == 12
