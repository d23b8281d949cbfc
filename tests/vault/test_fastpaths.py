"""The vault's fast paths give exactly what the plain forms give.

Ingest: HMACs with precomputed key states, link hash keys from a hashed prefix, JSON from a
reusable C encoder, nonces drawn in blocks — every stored row must still satisfy the definitions
(hash keys, keyed hash diffs, associated data) that reads, change detection and erasure rely on.
Reads: the driver-level queries, the reference-hub cache, the data-key cache (bounded, and
useless as soon as the key's row is gone — also when another process erased the patient).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import os

import pytest
import sqlalchemy as sa

import vault.core as core
from vault import PatientNotFound, Vault, VaultError
from vault import schema as S
from vault.core import _canonical
from vault.ingest import _json, link_key, link_key_prefix
from vault.keys import DataKey, HashKeys, bk_aad, hmac_sha256, nonce_stream, sat_aad
from vault.recordformat import utc_iso

from .conftest import ALL_SECTIONS, FIXTURES, first_patient_id

# --------------------------------------------------------------------------- primitives


@pytest.mark.parametrize("key_len", [0, 16, 32, 64, 65, 200])
def test_hmac_sha256_is_hmac(key_len: int) -> None:
    key = os.urandom(key_len)
    mac = hmac_sha256(key)
    for msg in (b"", b"x", os.urandom(55), os.urandom(64), os.urandom(1000)):
        assert mac(msg) == hmac.digest(key, msg, "sha256")
    assert mac(b"again") == mac(b"again")  # the precomputed states are copied, never consumed


def test_hash_keys_and_hash_diffs_keep_their_definitions() -> None:
    index_key = os.urandom(32)
    assert HashKeys(index_key)("event", "admission", "ab" * 16, "E1") == hmac.digest(
        index_key, b"event\x1fadmission\x1f" + b"ab" * 16 + b"\x1fE1", "sha256")[:16].hex()
    dek = DataKey.generate()
    hash_key = hmac.digest(dek.key, b"serums hash-diff key", "sha256")
    assert dek.hash_diff(b"sat\x1f{}") == hmac.digest(hash_key, b"sat\x1f{}", "sha256").hex()


def test_nonce_stream_gives_fresh_nonces_that_seal() -> None:
    take = nonce_stream(block=8).__next__
    nonces = [take() for _ in range(50)]  # several blocks
    assert all(len(n) == 12 for n in nonces) and len(set(nonces)) == 50
    dek = DataKey.generate()
    sealed = dek.seal(b"payload", b"aad", nonces[0])
    assert sealed[:12] == nonces[0] and dek.open(sealed, b"aad") == b"payload"


def test_link_key_prefix_is_link_key() -> None:
    for to in ("f" * 32, None):
        h = link_key_prefix("smr01.main_condition")
        h.update(f"{'a' * 32}\x1f{to or '-'}".encode())
        assert h.hexdigest() == link_key("smr01.main_condition", "a" * 32, to)


@pytest.mark.parametrize("value", [
    {"a": "x", "b": 1, "c": 2.5, "d": True, "e": None, "f": False},
    {"naïve": "café — \"quoted\" \\ back\nslash \u2028 \x00", "n": -0.0, "big": 10**30, "tiny": 1e-300},
    {},
])
def test_json_encoders_are_byte_identical(value) -> None:
    assert _json(value) == json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode(value).encode()
    doc = {"z": value, "a": [value, {"y": 1, "b": [None]}], "m": "é"}
    assert _canonical(doc) == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------- ingest rows


def test_ingested_rows_satisfy_their_definitions(loaded: Vault) -> None:
    """Every row the bulk writer stored (COPY on PostgreSQL, executemany on SQLite) is what the
    definitions say: hash keys, keyed hash diffs over the column-ordered JSON, associated data."""
    fmt = loaded.format
    sats = fmt.satellites_by_name()
    with loaded.engine.connect() as conn:
        keys = {r.dek_id: (r.person_hk, loaded.unwrap_data_key(r.dek_id, r.person_hk, r.wrapped, r.kek_id))
                for r in conn.execute(sa.select(S.data_keys))}
        events = {r.hk: r for r in conn.execute(sa.select(S.hub_event))}
        n = 0
        for r in conn.execute(sa.select(S.satellites)):
            person, dek = keys[r.dek_id]
            data = dek.open(r.sealed, sat_aad(r.satellite, r.hub_kind, r.hub_hk, r.section, r.dek_id,
                                              utc_iso(r.load_ts), r.record_source, r.hash_diff))
            columns = sats[r.satellite][1].columns
            attrs = json.loads(data)
            assert tuple(attrs) == tuple(columns)  # column order, as written
            assert data == json.dumps(attrs, separators=(",", ":"), ensure_ascii=False).encode()
            assert r.hash_diff == dek.hash_diff(r.satellite.encode() + b"\x1f" + data)
            if r.hub_kind == "person":
                assert r.hub_hk == person
            n += 1
        assert n > 0
        for e in events.values():
            person, dek = keys[e.dek_id]
            assert e.patient_hk == person
            bk = dek.open(e.bk_sealed, bk_aad("event", e.hk, e.dek_id)).decode()
            assert e.hk == loaded.hash_keys("event", e.type, person, bk)
        for link in conn.execute(sa.select(S.links)):
            assert link.hk == link_key(link.name, link.from_hk, link.to_hk)


# --------------------------------------------------------------------------- reads and caches


def _satellite_rows(v: Vault, ref: str) -> list:
    with v.engine.connect() as conn:
        dek_id = conn.execute(sa.select(S.data_keys.c.dek_id).where(S.data_keys.c.person_hk == ref)).scalar_one()
        return conn.execute(sa.select(S.satellites).where(S.satellites.c.dek_id == dek_id)).all()


def test_read_equals_a_plain_decryption_of_the_latest_versions(loaded: Vault) -> None:
    ref = loaded.find_patient(first_patient_id())
    record = loaded.read_record(ref)
    latest = {}
    for r in sorted(_satellite_rows(loaded, ref), key=lambda r: (r.load_ts, r.id)):
        latest[(r.hub_hk, r.satellite)] = r
    got = {(e.hub.id, e.satellite): (e.attributes, e.loaded_at, e.source) for e in record.entries()}
    dek = loaded._patient_key(loaded.engine.connect(), ref)
    want = {k: (json.loads(dek.open(r.sealed, sat_aad(r.satellite, r.hub_kind, r.hub_hk, r.section, r.dek_id,
                                                          utc_iso(r.load_ts), r.record_source, r.hash_diff))),
                r.load_ts, r.record_source) for k, r in latest.items()}
    assert got == want
    # the reference-hub cache changes nothing: a cold read gives the same bytes
    warm = loaded.read_record(ref).canonical_json()
    loaded._ref_hubs.clear()
    assert loaded.read_record(ref).canonical_json() == warm == record.canonical_json()
    # HubRef dicts are copies: a caller editing one does not change the next body
    record.to_dict()["sections"]["demographics"]["entries"][0]["hub"]["id"] = "edited"
    assert loaded.read_record(ref).canonical_json() == warm


def test_as_of_reads_bind_the_stored_timestamp_format(loaded: Vault, clock) -> None:
    ref = loaded.find_patient(first_patient_id())
    with loaded.engine.connect() as conn:
        times = sorted({r.load_ts for r in conn.execute(sa.select(S.satellites.c.load_ts))})
    assert len(times) >= 2
    first = loaded.read_record(ref, as_of=times[0])
    assert {e.loaded_at for e in first.entries()} <= {times[0]}
    just_before = loaded.read_record(ref, as_of=times[0] - dt.timedelta(microseconds=1))
    assert just_before.entries() == []
    assert loaded.read_record(ref, as_of=times[-1]).canonical_json().replace(
        f'"as_of":"{utc_iso(times[-1])}"'.encode(), b'"as_of":null') == loaded.read_record(ref).canonical_json()


def test_cached_data_key_is_reused_but_only_while_its_row_holds_it(loaded: Vault, monkeypatch) -> None:
    ref = loaded.find_patient(first_patient_id())
    unwraps = []
    real = loaded.unwrap_data_key

    def counting(*args):
        unwraps.append(args[0])
        return real(*args)

    monkeypatch.setattr(loaded, "unwrap_data_key", counting)
    loaded._keys.clear()
    loaded.read_record(ref)
    loaded.read_record(ref)
    assert len(unwraps) == 1  # the second read used the cached key (after finding its row)
    monkeypatch.setattr(core, "DEK_CACHE_SECONDS", 0.0)
    loaded._keys.clear()
    loaded.read_record(ref)
    loaded.read_record(ref)
    assert len(unwraps) == 3  # expired at once: unwrapped again on every read


def test_erasure_by_another_process_makes_the_cached_key_useless(loaded: Vault, make_vault, ledger, clock) -> None:
    """Two servers share one vault database; one erases the patient the other has just read.
    The other's cached key must not open anything any more: the next read and redeem refuse."""
    other = make_vault(loaded.config)  # a second Vault on the same database and key file
    ref = loaded.find_patient(first_patient_id())
    grant = ledger.grant(ref, sorted(ALL_SECTIONS), requester="dr-bob")
    token = loaded.mint_token(grant.grant_id).token
    loaded.redeem(token, "dr-bob")  # caches the key in `loaded`
    assert ref in loaded._keys
    accesses = len(ledger.accesses)
    other.erase_patient(ref, reason="GDPR art. 17, request 2025-3")
    with pytest.raises(PatientNotFound):
        loaded.read_record(ref)
    assert ref not in loaded._keys  # and the stale copy is dropped
    with pytest.raises(VaultError):
        loaded.redeem(token, "dr-bob")
    assert len(ledger.accesses) == accesses  # nothing released, no access logged
    with pytest.raises(PatientNotFound):
        loaded.export_fhir(ref)


def test_reads_survive_a_rotation_with_cached_keys(loaded: Vault, make_vault) -> None:
    ref = loaded.find_patient(first_patient_id())
    before = loaded.read_record(ref).canonical_json()
    other = make_vault(loaded.config)
    other.rotate_kek()
    assert loaded.read_record(ref).canonical_json() == before  # cached key: same dek id, still valid
    loaded._keys.clear()
    assert loaded.read_record(ref).canonical_json() == before  # unwrapped under the new KEK


def test_a_failing_flush_two_chunks_behind_still_rolls_everything_back(vault: Vault, monkeypatch) -> None:
    """Flushes run up to two chunks behind the computation: a failure in any of them surfaces,
    the queued ones are dropped, and the ingest's transaction leaves nothing."""
    real = Vault.bulk_insert
    calls = []

    def failing(self, conn, table, columns, rows, **kw):
        calls.append(table.name)
        if table.name == "vault_satellites" and calls.count("vault_satellites") == 3:
            raise RuntimeError("disk full")
        return real(self, conn, table, columns, rows, **kw)

    monkeypatch.setattr(Vault, "bulk_insert", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        vault.ingest_file(FIXTURES / "chemocare_treatment.csv", chunk_size=3)
    monkeypatch.setattr(Vault, "bulk_insert", real)
    with vault.engine.connect() as conn:
        for table in (S.satellites, S.links, S.hub_event, S.data_keys, S.batches):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    report = vault.ingest_file(FIXTURES / "chemocare_treatment.csv", chunk_size=3)
    assert report.satellites_written > 0
