"""Tokens (steps 7, 9, 10): mint, redeem with section masking, and every refusal, logged."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest

from vault import (
    GRANT_EXPIRED,
    GrantExpired,
    GrantNotFound,
    GrantRevoked,
    LedgerUnavailable,
    TokenExpired,
    TokenGrantMismatch,
    TokenMalformed,
    TokenNotBound,
    TokenPresenterMismatch,
    TokenSignatureInvalid,
    Vault,
    token_hash,
)

from .conftest import ALL_SECTIONS, first_patient_id


@pytest.fixture
def patient(loaded: Vault) -> str:
    return loaded.find_patient(first_patient_id())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_mint_binds_the_hash_and_redeem_releases_only_granted_sections(loaded: Vault, ledger, patient):
    grant = ledger.grant(patient, ["demographics", "oncology.toxicity"], requester="dr-alice")
    minted = loaded.mint_token(grant.grant_id)
    assert minted.token.startswith("srt1.") and len(minted.token) < 600
    assert minted.token_hash == hashlib.sha256(minted.token.encode()).hexdigest() == token_hash(minted.token)
    assert ledger.grants[grant.grant_id].token_hashes == {minted.token_hash}  # bound on "chain"
    assert minted.claims.sections == ("demographics", "oncology.toxicity")
    assert minted.claims.requester_id == "dr-alice" and minted.claims.patient == patient

    release = loaded.redeem(minted.token, "dr-alice")
    body = release.body()
    assert body is release.body() and body == release.record.to_dict()  # built once, the record as read
    released = {s for s, d in body["sections"].items() if d["status"] == "released"}
    assert released == {"demographics", "oncology.toxicity"}
    for s in ALL_SECTIONS - released:
        assert body["sections"][s] == {"status": "withheld", "reason": "not-granted"}
    text = json.dumps(body)
    assert "Morag" in text and "E1001" not in text and "Fluorouracil" not in text and "EH4 2XU" not in text
    # step 10: the access is logged with the digest of exactly what was returned
    [access] = ledger.accesses
    assert access.grant_id == grant.grant_id and access.token_hash == minted.token_hash
    assert access.sections == ["demographics", "oncology.toxicity"]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert access.digest == release.digest == hashlib.sha256(canonical).hexdigest()
    assert not ledger.refusals


def test_fhir_release_is_filtered_the_same_way(loaded: Vault, ledger, patient):
    grant = ledger.grant(patient, ["oncology.treatment"], requester="dr-bob")
    release = loaded.redeem(loaded.mint_token(grant.grant_id).token, "dr-bob", fhir=True)
    kinds = {e["resource"]["resourceType"] for e in release.fhir["entry"]}
    assert kinds == {"Patient", "MedicationAdministration", "Observation"}
    patient_res = release.fhir["entry"][0]["resource"]
    assert "name" not in patient_res and "birthDate" not in patient_res
    withheld = {t["code"] for t in release.fhir["meta"]["tag"]}
    assert withheld == ALL_SECTIONS - {"oncology.treatment"}
    assert ledger.accesses[-1].digest == release.digest


def test_token_expiry_is_capped_by_the_grant(loaded: Vault, ledger, clock, patient):
    grant = ledger.grant(patient, ["demographics"], ttl=120)
    minted = loaded.mint_token(grant.grant_id, ttl=dt.timedelta(hours=2))
    assert minted.claims.expires_at == grant.expires_at.replace(microsecond=0)


def _refused(vault: Vault, ledger, token: str, presenter: str, exc_type: type, slug: str) -> None:
    accesses = len(ledger.accesses)
    with pytest.raises(exc_type) as err:
        vault.redeem(token, presenter)
    assert err.value.type == slug
    assert err.value.to_problem()["type"] == slug
    refusal = ledger.refusals[-1]
    assert refusal.reason == slug and refusal.presenter_id == presenter
    assert refusal.token_hash == token_hash(token)
    assert len(ledger.accesses) == accesses  # nothing released, nothing logged as access


def test_replay_after_revocation_is_refused(loaded: Vault, ledger, patient):
    grant = ledger.grant(patient, ["demographics"])
    token = loaded.mint_token(grant.grant_id).token
    loaded.redeem(token, "dr-alice")
    loaded.redeem(token, "dr-alice")  # reuse within validity is fine while the grant lives
    ledger.revoke(grant.grant_id)
    _refused(loaded, ledger, token, "dr-alice", GrantRevoked, "grant-revoked")
    assert ledger.refusals[-1].grant_id == grant.grant_id
    with pytest.raises(GrantRevoked):
        loaded.mint_token(grant.grant_id)


def test_another_users_token_is_refused(loaded: Vault, ledger, patient):
    grant = ledger.grant(patient, ["demographics"], requester="dr-alice")
    token = loaded.mint_token(grant.grant_id).token
    _refused(loaded, ledger, token, "dr-mallory", TokenPresenterMismatch, "token-presenter-mismatch")


def test_tampered_tokens_are_refused(loaded: Vault, ledger, patient):
    grant = ledger.grant(patient, ["demographics"], requester="dr-alice")
    token = loaded.mint_token(grant.grant_id).token
    prefix, payload, sig = token.split(".")
    claims = json.loads(_unb64(payload))
    claims["sec"] = sorted(ALL_SECTIONS)  # widen the sections, keep canonical form
    widened = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    _refused(loaded, ledger, f"{prefix}.{_b64(widened)}.{sig}", "dr-alice", TokenSignatureInvalid,
             "token-signature-invalid")
    assert ledger.refusals[-1].grant_id == grant.grant_id  # what the token claimed, for the audit
    claims["sec"], claims["sub"] = ["demographics"], "dr-mallory"
    other = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    _refused(loaded, ledger, f"{prefix}.{_b64(other)}.{sig}", "dr-mallory", TokenSignatureInvalid,
             "token-signature-invalid")
    flipped = bytearray(_unb64(sig))
    flipped[-1] ^= 1
    _refused(loaded, ledger, f"{prefix}.{payload}.{_b64(bytes(flipped))}", "dr-alice", TokenSignatureInvalid,
             "token-signature-invalid")
    _refused(loaded, ledger, token + ".x", "dr-alice", TokenMalformed, "token-malformed")
    _refused(loaded, ledger, f"{prefix}.{payload}!.{sig}", "dr-alice", TokenMalformed, "token-malformed")
    _refused(loaded, ledger, "not-a-token", "dr-alice", TokenMalformed, "token-malformed")
    _refused(loaded, ledger, token.replace("srt1.", "srt2.", 1), "dr-alice", TokenMalformed, "token-malformed")


def test_a_token_of_another_vault_is_refused(loaded: Vault, make_vault, backend, ledger, patient, tmp_path):
    other = make_vault(backend.config(tmp_path / "other", db="other"))
    assert other.issuer.key_id != loaded.issuer.key_id
    grant = ledger.grant(patient, ["demographics"])
    token = other.issuer.mint(grant_id=grant.grant_id, requester_id="dr-alice", patient=patient,
                              sections=("demographics",), purpose="treatment", issued_at=ledger.clock(),
                              expires_at=grant.expires_at).token
    ledger.bind_token(grant.grant_id, token_hash(token))
    _refused(loaded, ledger, token, "dr-alice", TokenSignatureInvalid, "token-signature-invalid")


def test_expired_tokens_and_grants_are_refused(loaded: Vault, ledger, clock, patient):
    grant = ledger.grant(patient, ["demographics"], ttl=3600)
    token = loaded.mint_token(grant.grant_id, ttl=dt.timedelta(minutes=5)).token
    clock.advance(301)
    _refused(loaded, ledger, token, "dr-alice", TokenExpired, "token-expired")
    # a grant the chain marks expired, with a token still within its own validity
    grant2 = ledger.grant(patient, ["demographics"], ttl=3600)
    token2 = loaded.mint_token(grant2.grant_id).token
    ledger.grants[grant2.grant_id] = ledger.grants[grant2.grant_id].__class__(
        **{**ledger.grants[grant2.grant_id].__dict__, "status": GRANT_EXPIRED})
    _refused(loaded, ledger, token2, "dr-alice", GrantExpired, "grant-expired")


def test_unbound_unknown_and_mismatched_grants_are_refused(loaded: Vault, ledger, patient):
    grant = ledger.grant(patient, ["demographics"])
    minted = loaded.issuer.mint(grant_id=grant.grant_id, requester_id="dr-alice", patient=patient,
                                sections=("demographics",), purpose="treatment", issued_at=ledger.clock(),
                                expires_at=grant.expires_at)  # signed, but never bound on chain
    _refused(loaded, ledger, minted.token, "dr-alice", TokenNotBound, "token-not-bound")

    ghost = loaded.issuer.mint(grant_id="grant-ghost", requester_id="dr-alice", patient=patient,
                               sections=("demographics",), purpose="treatment", issued_at=ledger.clock(),
                               expires_at=grant.expires_at)
    _refused(loaded, ledger, ghost.token, "dr-alice", GrantNotFound, "grant-not-found")

    wider = loaded.issuer.mint(grant_id=grant.grant_id, requester_id="dr-alice", patient=patient,
                               sections=("demographics", "contact"), purpose="treatment", issued_at=ledger.clock(),
                               expires_at=grant.expires_at)
    ledger.bind_token(grant.grant_id, wider.token_hash)
    _refused(loaded, ledger, wider.token, "dr-alice", TokenGrantMismatch, "token-grant-mismatch")
    with pytest.raises(GrantNotFound):
        loaded.mint_token("grant-ghost")


def test_ledger_outage_fails_closed(loaded: Vault, ledger, patient):
    grant = ledger.grant(patient, ["demographics"])
    token = loaded.mint_token(grant.grant_id).token
    ledger.down = True
    with pytest.raises(LedgerUnavailable) as err:
        loaded.redeem(token, "dr-alice")
    assert err.value.type == "ledger-unavailable" and err.value.status == 503
    with pytest.raises(LedgerUnavailable):
        loaded.mint_token(grant.grant_id)
    ledger.down = False
    assert not ledger.accesses
    # the access log failing after the grant check: still nothing released

    def broken_log(*args, **kwargs):
        raise ConnectionError("peer gone")

    ledger.log_access = broken_log
    with pytest.raises(LedgerUnavailable, match="nothing released"):
        loaded.redeem(token, "dr-alice")


def test_vault_without_ledger_refuses_token_operations(backend, clock, loaded):
    v = Vault.open(loaded.config, clock=clock)
    try:
        with pytest.raises(LedgerUnavailable, match="without a grant ledger"):
            v.mint_token("grant-x")
    finally:
        v.close()
