"""Protection at rest: payloads bound to their rows, crypto erasure with proof, KEK rotation."""

from __future__ import annotations

import os
import stat

import pytest
import sqlalchemy as sa

from vault import IntegrityError, PatientNotFound, Vault, VaultConfigError
from vault import schema as S
from vault.keys import KekFile, try_open

from .conftest import FIXTURES, TABLES, first_patient_id


def _sealed(v: Vault) -> dict[int, bytes]:
    with v.engine.connect() as conn:
        return {r.id: bytes(r.sealed) for r in conn.execute(sa.select(S.satellites.c.id, S.satellites.c.sealed))}


def test_ciphertext_moved_to_another_row_does_not_decrypt(loaded: Vault):
    ref = loaded.find_patient(first_patient_id())
    with loaded.engine.begin() as conn:
        dek_id = conn.execute(sa.select(S.data_keys.c.dek_id).where(S.data_keys.c.person_hk == ref)).scalar_one()
        rows = conn.execute(sa.select(S.satellites.c.id, S.satellites.c.sealed, S.satellites.c.section)
                            .where(S.satellites.c.dek_id == dek_id).order_by(S.satellites.c.id)).all()
        demographics = next(r for r in rows if r.section == "demographics")
        admission = next(r for r in rows if r.section == "admissions")
        # same patient, same key: only the associated data tells the rows apart
        conn.execute(S.satellites.update().where(S.satellites.c.id == admission.id)
                     .values(sealed=demographics.sealed))
    loaded.read_record(ref, sections=["demographics"])  # untouched rows still read
    with pytest.raises(IntegrityError, match="does not authenticate"):
        loaded.read_record(ref, sections=["admissions"])


def test_crypto_erasure_destroys_the_key_and_proves_rows_do_not_decrypt(loaded: Vault, clock):
    chi = first_patient_id()
    ref = loaded.find_patient(chi)
    other = next(p for p in loaded.patients() if p != ref)
    other_before = loaded.read_record(other).digest()
    with loaded.engine.connect() as conn:
        dek_id = conn.execute(sa.select(S.data_keys.c.dek_id).where(S.data_keys.c.person_hk == ref)).scalar_one()
        n_sats = conn.execute(sa.select(sa.func.count()).select_from(S.satellites)
                              .where(S.satellites.c.dek_id == dek_id)).scalar_one()
    report = loaded.erase_patient(ref, reason="GDPR art. 17 request 2024-117")
    assert report.verified and report.key_absent
    assert report.satellites == n_sats > 0 and report.satellites_decrypted == 0
    assert report.keys_checked == 7 and report.trial_keys == 7
    assert report.links_removed > 0 and report.hubs_removed > 1
    assert len(report.digest()) == 64
    # the ciphertext is still there — as evidence — and opens under no key the vault holds
    with loaded.engine.connect() as conn:
        left = conn.execute(sa.select(S.satellites).where(S.satellites.c.dek_id == dek_id)).all()
        assert len(left) == n_sats
        assert conn.execute(sa.select(S.data_keys).where(S.data_keys.c.dek_id == dek_id)).first() is None
        assert conn.execute(sa.select(S.links).where(S.links.c.patient_hk == ref)).first() is None
        erasure = conn.execute(sa.select(S.erasures).where(S.erasures.c.dek_id == dek_id)).one()
        assert erasure.report_digest == report.digest() and erasure.satellites == n_sats
        held = [loaded.unwrap_data_key(r.dek_id, r.person_hk, r.wrapped, r.kek_id)
                for r in conn.execute(sa.select(S.data_keys))]
    for r in left:
        assert not any(try_open(k.key, r.sealed, b"") for k in held)
    with pytest.raises(PatientNotFound):
        loaded.find_patient(chi)
    with pytest.raises(PatientNotFound):
        loaded.read_record(ref)
    with pytest.raises(PatientNotFound):
        loaded.erase_patient(ref, reason="again")
    assert loaded.read_record(other).digest() == other_before  # nobody else is affected
    # a reopened vault (no caches) cannot read the patient either
    reopened = Vault.open(loaded.config, clock=clock)
    try:
        with pytest.raises(PatientNotFound):
            reopened.read_record(ref)
        assert reopened.stats().erased == 1
    finally:
        reopened.close()
    # the same person ingested again is a new patient with a new key; old rows stay unreadable
    clock.advance()
    loaded.ingest_file(FIXTURES / "patients.csv")
    again = loaded.find_patient(chi)
    assert again == ref
    record = loaded.read_record(again)
    assert sorted(e.satellite for e in record.entries()) == ["patients.contact", "patients.demographics"]


def test_kek_rotation_rewraps_keys_without_touching_payloads(loaded: Vault, clock):
    ref = loaded.find_patient(first_patient_id())
    before = loaded.read_record(ref).digest()
    sealed_before = _sealed(loaded)
    old_kek = loaded.kek
    kek_file = KekFile(loaded.config.key_dir / "kek.key")
    report = loaded.rotate_kek()
    assert report.old_kek_id == old_kek.kek_id != report.new_kek_id
    assert report.data_keys_rewrapped == 8 and report.system_keys_rewrapped == 2  # index, token-signing
    assert report.payloads_untouched == len(sealed_before)
    assert _sealed(loaded) == sealed_before  # not one payload re-encrypted
    assert kek_file.current().kek_id == report.new_kek_id and kek_file.staged() is None
    assert stat.S_IMODE(os.stat(kek_file.path).st_mode) == 0o600
    with loaded.engine.connect() as conn:
        wrapped = conn.execute(sa.select(S.data_keys)).all()
    assert {r.kek_id for r in wrapped} == {report.new_kek_id}
    with pytest.raises(IntegrityError):  # the old KEK opens nothing any more
        old_kek.unwrap(wrapped[0].wrapped, b"")
    # the running vault, a fresh process, and one that cached the old KEK all read on
    loaded._keys.clear()
    assert loaded.read_record(ref).digest() == before
    reopened = Vault.open(loaded.config, clock=clock)
    try:
        assert reopened.read_record(ref).digest() == before
    finally:
        reopened.close()


def test_rotation_in_another_process_is_picked_up(make_vault, backend, clock):
    a = make_vault()
    a.ingest_file(FIXTURES / "patients.csv")
    b = make_vault(a.config)
    b.rotate_kek()
    clock.advance()
    a.ingest_file(FIXTURES / "ndc_smr06.csv")  # wraps nothing with the stale KEK
    assert a.kek.kek_id == b.kek.kek_id
    with a.engine.connect() as conn:
        assert {r.kek_id for r in conn.execute(sa.select(S.data_keys))} == {a.kek.kek_id}


def test_interrupted_rotation_is_recovered_on_open(loaded: Vault, clock):
    """A crash after the database committed but before the key file was renamed loses nothing."""
    ref = loaded.find_patient(first_patient_id())
    before = loaded.read_record(ref).digest()
    kek_file = KekFile(loaded.config.key_dir / "kek.key")
    real_promote = KekFile.promote
    KekFile.promote = lambda self: None  # the "crash"
    try:
        loaded.rotate_kek()
    finally:
        KekFile.promote = real_promote
    assert kek_file.staged() is not None
    reopened = Vault.open(loaded.config, clock=clock)
    try:
        assert reopened.read_record(ref).digest() == before
    finally:
        reopened.close()
    assert kek_file.staged() is None and kek_file.current().kek_id == loaded.kek.kek_id
    # and a rotation that failed before committing leaves the old key in charge
    with loaded.engine.begin() as conn:
        conn.execute(S.system_keys.update().values(wrapped=b"garbage-garbage-garbage-garbage!"))
    with pytest.raises(IntegrityError):
        loaded.rotate_kek()
    assert kek_file.staged() is None


def test_passphrase_kek(make_vault, backend, clock, tmp_path):
    cfg = backend.config(tmp_path / "pp", passphrase="correct horse battery staple")
    v = make_vault(cfg)
    v.ingest_file(FIXTURES / "patients.csv")
    ref = v.find_patient(first_patient_id())
    assert not (tmp_path / "pp" / "kek.key").exists()
    assert v.stats().kek_kind == "passphrase"
    with pytest.raises(VaultConfigError, match="wrong passphrase"):
        Vault.open(backend.config(tmp_path / "pp", passphrase="wrong", schema=cfg.schema))
    with pytest.raises(VaultConfigError, match="derived from a passphrase"):
        Vault.open(backend.config(tmp_path / "pp", passphrase=None, schema=cfg.schema))
    report = v.rotate_kek(new_passphrase="a new passphrase for 2025")
    assert report.kind == "passphrase"
    reopened = make_vault(backend.config(tmp_path / "pp", passphrase="a new passphrase for 2025",
                                         schema=cfg.schema))
    assert reopened.read_record(ref).sections["demographics"].entries
    # and from a passphrase to a key file
    reopened.rotate_kek()
    assert (tmp_path / "pp" / "kek.key").exists()
    again = make_vault(backend.config(tmp_path / "pp", passphrase="anything", schema=cfg.schema))
    assert again.stats().kek_kind == "file"
    assert again.read_record(ref).sections["demographics"].entries


def test_key_files_are_private_and_checked(make_vault, backend):
    v = make_vault()
    key_dir = v.config.key_dir
    assert stat.S_IMODE(os.stat(key_dir / "kek.key").st_mode) == 0o600
    os.chmod(key_dir / "kek.key", 0o644)
    with pytest.raises(VaultConfigError, match="readable by others"):
        Vault.open(v.config)
    os.chmod(key_dir / "kek.key", 0o600)
    os.replace(key_dir / "kek.key", key_dir / "kek.key.bak")
    with pytest.raises(VaultConfigError, match="key file .* is missing"):
        Vault.open(v.config)
    (key_dir / "kek.key").write_text("serums-vault-kek-v1 " + "A" * 43 + "=\n")
    os.chmod(key_dir / "kek.key", 0o600)
    with pytest.raises(VaultConfigError, match="holds KEK .* but this vault's keys are wrapped by KEK"):
        Vault.open(v.config)


def test_plain_benchmark_vault_is_marked_and_refused_by_normal_opens(backend, tmp_path, clock):
    plain = Vault.open(backend.config(tmp_path / "plain", db="plain", encrypt_payloads=False), clock=clock)
    try:
        plain.ingest_file(FIXTURES / "patients.csv")
        ref = plain.find_patient(first_patient_id())
        assert plain.read_record(ref).sections["demographics"].entries[0].attributes["given_name"] == "Morag"
        cfg = plain.config
    finally:
        plain.close()
    with pytest.raises(VaultConfigError, match="cannot be opened as 'aes-256-gcm'"):
        Vault.open(backend.config(tmp_path / "plain", db="plain", schema=cfg.schema))


def test_all_tables_survive_reopen(loaded: Vault, clock):
    ref = loaded.find_patient(first_patient_id())
    digest = loaded.read_record(ref).digest()
    loaded.close()
    again = Vault.open(loaded.config, clock=clock)
    try:
        assert again.read_record(ref).digest() == digest
        assert again.stats().batches == len(TABLES)
    finally:
        again.close()


@pytest.mark.slow
def test_concurrent_first_opens_agree_on_one_kek(backend, tmp_path):
    """Several servers starting at once on a new vault create one KEK, one keyring."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    cfg = backend.config(tmp_path / "race")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from vault import Vault, VaultConfig
        v = Vault.open(VaultConfig(database_url={cfg.database_url!r}, key_dir=Path({str(cfg.key_dir)!r}),
                                   schema={cfg.schema!r}))
        print(v.kek.kek_id, v.issuer.key_id)
    """)
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1
