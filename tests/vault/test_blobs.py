"""Blobs: encrypted before they reach a content-addressed store, anchored, released by token."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest

from vault import (
    BlobNotFound,
    FilesystemBlobStore,
    IntegrityError,
    IpfsBlobStore,
    LedgerUnavailable,
    SectionNotGranted,
    Vault,
    VaultConfig,
)

from . import ipfs_node
from .conftest import FIXTURES, first_patient_id

SCAN = b"DICM" + os.urandom(2048) + b"PATIENT NAME: Morag MacLeod"


def test_put_blob_encrypts_stores_by_content_and_anchors(loaded: Vault, ledger):
    ref = loaded.find_patient(first_patient_id())
    blob = loaded.put_blob(ref, SCAN, section="imaging", media_type="application/dicom", name="ct-chest.dcm")
    store = loaded.blob_store
    assert isinstance(store, FilesystemBlobStore)
    stored = store.get(blob.address)
    assert blob.address == hashlib.sha256(stored).hexdigest() == blob.sha256
    assert b"Morag" not in stored and SCAN[4:100] not in stored  # only ciphertext leaves the vault
    [anchor] = ledger.anchors
    assert (anchor.blob_id, anchor.sha256, anchor.patient, anchor.store) == (blob.blob_id, blob.sha256, ref, "fs")
    got, data = loaded.get_blob(ref, blob.blob_id)
    assert data == SCAN and got.name == "ct-chest.dcm" and got.media_type == "application/dicom"
    record = loaded.read_record(ref, sections=["imaging"])
    assert [b.blob_id for b in record.sections["imaging"].blobs] == [blob.blob_id]
    assert record.sections["imaging"].blobs[0].size == len(SCAN)


def test_blob_released_only_with_its_section(loaded: Vault, ledger):
    ref = loaded.find_patient(first_patient_id())
    blob = loaded.put_blob(ref, SCAN, section="imaging", media_type="application/dicom")
    imaging = ledger.grant(ref, ["imaging"], requester="dr-rad")
    out = loaded.redeem_blob(loaded.mint_token(imaging.grant_id).token, "dr-rad", blob.blob_id)
    assert out.data == SCAN and out.digest == hashlib.sha256(SCAN).hexdigest()
    assert ledger.accesses[-1].sections == ["imaging"] and ledger.accesses[-1].digest == out.digest
    other = ledger.grant(ref, ["demographics"], requester="dr-rad")
    with pytest.raises(SectionNotGranted):
        loaded.redeem_blob(loaded.mint_token(other.grant_id).token, "dr-rad", blob.blob_id)
    assert ledger.refusals[-1].reason == "section-not-granted"
    with pytest.raises(BlobNotFound):
        loaded.redeem_blob(loaded.mint_token(imaging.grant_id).token, "dr-rad", "0" * 32)


def test_tampered_blob_is_detected(loaded: Vault):
    ref = loaded.find_patient(first_patient_id())
    blob = loaded.put_blob(ref, SCAN, section="imaging")
    path = loaded.blob_store._path(blob.address)
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its anchored digest"):
        loaded.get_blob(ref, blob.blob_id)


def test_unanchored_blobs_are_not_kept(loaded: Vault, ledger):
    ref = loaded.find_patient(first_patient_id())
    ledger.down = True
    with pytest.raises(LedgerUnavailable):
        loaded.put_blob(ref, SCAN, section="imaging")
    ledger.down = False
    assert loaded.stats().blobs == 0


def test_erasure_covers_blobs(loaded: Vault):
    ref = loaded.find_patient(first_patient_id())
    loaded.put_blob(ref, SCAN, section="imaging")
    report = loaded.erase_patient(ref, reason="request 7")
    assert report.blobs == 1 and report.blobs_decrypted == 0 and report.verified


@pytest.fixture(scope="module")
def ipfs_api(tmp_path_factory) -> Iterator[str]:
    """A real IPFS node's RPC API: ``SERUMS_IPFS_API`` when it names a reachable kubo, else a
    js-ipfs daemon started here (tests/vault/ipfs_node.py). Under CI a missing node is an error."""
    api = os.environ.get("SERUMS_IPFS_API")
    if api and ipfs_node.reachable(api):
        yield api
        return
    why = ipfs_node.unavailable()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"no IPFS node for the IPFS blob store's tests under CI: {why}")
        pytest.skip(why)
    with ipfs_node.ipfs_node(tmp_path_factory.mktemp("ipfs") / "repo") as url:
        yield url


def test_ipfs_store_against_a_real_node(tmp_path, clock, ledger, ipfs_api):
    api = ipfs_api
    store = IpfsBlobStore(api)
    cid = store.put(b"serums ipfs round trip")
    assert store.get(cid) == b"serums ipfs round trip" and store.exists(cid)
    cfg = VaultConfig(database_url=f"sqlite:///{tmp_path / 'v.db'}", key_dir=tmp_path / "keys", ipfs_api=api)
    v = Vault.open(cfg, ledger=ledger, clock=clock)
    try:
        v.ingest_file(FIXTURES / "patients.csv")
        ref = v.find_patient(first_patient_id())
        blob = v.put_blob(ref, SCAN, section="imaging")
        assert blob.store == "ipfs" and blob.address.startswith("b")  # CIDv1, base32
        assert b"Morag" not in store.get(blob.address)
        assert v.get_blob(ref, blob.blob_id)[1] == SCAN
    finally:
        v.close()
    store.remove(cid)
    assert not store.exists(cid)  # unpinned


def test_ipfs_client_speaks_the_kubo_rpc_api():
    """The client's requests and error handling, against a stand-in transport (no daemon needed)."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, dict(request.url.params)))
        if request.url.path == "/api/v0/add":
            assert b'name="file"' in request.read()
            return httpx.Response(200, json={"Name": "blob", "Hash": "bafkreitest", "Size": "10"})
        if request.url.path == "/api/v0/cat":
            if request.url.params["arg"] == "missing":
                return httpx.Response(500, json={"Message": "block was not found locally (offline)", "Code": 0})
            return httpx.Response(200, content=b"ciphertext")
        if request.url.path == "/api/v0/pin/rm":
            return httpx.Response(500, json={"Message": "not pinned or pinned indirectly", "Code": 0})
        return httpx.Response(404)

    store = IpfsBlobStore("http://kubo:5001", client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert store.put(b"ciphertext") == "bafkreitest"
    assert store.get("bafkreitest") == b"ciphertext"
    with pytest.raises(BlobNotFound):
        store.get("missing")
    store.remove("bafkreitest")  # "not pinned" is fine: removal is idempotent
    assert all(method == "POST" for method, _, _ in seen)
    assert seen[0][2] == {"pin": "true", "cid-version": "1", "cid-base": "base32", "hash": "sha2-256", "quieter": "true"}


def test_filesystem_store_concurrent_writers_of_one_blob(tmp_path):
    """Threads storing the same content at once (two uploads of one scan) each get the address;
    the stored file is whole, owner-only, and no temporary file is left."""
    from concurrent.futures import ThreadPoolExecutor

    store = FilesystemBlobStore(tmp_path / "blobs")
    data = os.urandom(256 * 1024)
    with ThreadPoolExecutor(8) as pool:
        addresses = set(pool.map(lambda _: store.put(data), range(32)))
    assert addresses == {hashlib.sha256(data).hexdigest()}
    assert store.get(addresses.pop()) == data
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1 and (files[0].stat().st_mode & 0o777) == 0o600


def test_filesystem_store_write_failure_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    """A full disk while the blob is written: BlobStoreError, and neither the blob nor a
    temporary file is left behind."""
    import errno

    from vault import BlobStoreError

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    store = FilesystemBlobStore(tmp_path / "blobs")
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(BlobStoreError, match="cannot write blob .*No space left on device"):
        store.put(b"scan")
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    address = store.put(b"scan")  # and the store works once there is room
    assert store.get(address) == b"scan"
