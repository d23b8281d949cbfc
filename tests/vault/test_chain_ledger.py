"""The vault against the real chain: steps 5-10 on the embedded node, no stand-ins.

A Lothian specialist treating a patient requests access (the chain decides), the vault of the
patient's hospital mints a token and binds its hash on chain, the token is redeemed for only the
granted sections, and the access is logged on chain; revocation, a token of another user, a
tampered token and an expired grant are refused by the vault, and every refusal is on the ledger.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.chaincode.conftest import BASELINE_RULES, SETTINGS, World
from vault import Vault, VaultConfig
from vault.chain import ChainGrantLedger

from .conftest import FAST_SCRYPT_N, FIXTURES, TABLES, first_patient_id


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("chain") / "network")
    admin = w.admins["lothian"]
    admin.submit("UserContract", "RegisterHospital", "NHS Lothian")
    for rule in BASELINE_RULES:
        admin.submit("PolicyContract", "PutRule", rule)
    admin.submit("PolicyContract", "SetPolicySettings", SETTINGS)
    yield w
    w.close()


@pytest.fixture(scope="module")
def setup(world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vault")
    vault_actor = world.user("lothian", "vault")
    ledger = ChainGrantLedger.connect(vault_actor.ident, vault_actor.signer, world.address)
    v = Vault.open(VaultConfig(database_url=f"sqlite:///{tmp / 'vault.db'}", key_dir=tmp / "keys",
                               scrypt_n=FAST_SCRYPT_N), ledger=ledger)
    for table in TABLES:
        v.ingest_file(FIXTURES / f"{table}.csv")
    ref = v.find_patient(first_patient_id())
    # the patient's on-chain id is the vault's pseudonymous reference
    patient = world.user("lothian", "patient", ref)
    spec = world.user("lothian", "specialist")
    other = world.user("lothian", "specialist")
    world.treat(patient, spec)
    yield v, ledger, patient, spec, other
    v.close()
    ledger.close()


def _grant(spec, patient, sections=("oncology.treatment", "conditions", "demographics")) -> dict:
    decision = spec.submit("TransportContract", "RequestAccess", patient.name, list(sections), "treatment", "")
    assert decision["grant_id"], decision
    return decision


def test_steps_5_to_10_release_only_granted_sections_and_log_on_chain(setup, world):
    v, _ledger, patient, spec, _other = setup
    decision = _grant(spec, patient)
    granted = set(decision["granted"])
    assert "oncology.treatment" in granted and "demographics" not in granted  # no rule lets a specialist see it
    minted = v.mint_token(decision["grant_id"])
    grant = spec.evaluate("TransportContract", "GetGrant", decision["grant_id"])
    assert minted.token_hash in grant["token_hashes"]  # step 7: bound on chain
    release = v.redeem(minted.token, spec.name)
    assert set(release.sections) == granted
    body = release.body()
    assert body["sections"]["demographics"]["status"] == "withheld"
    assert body["sections"]["oncology.treatment"].get("status") != "withheld"
    world.synced(world.node.orderer.height - 1)
    log = world.admins["lothian"].evaluate("AuditContract", "AuditByPatient", patient.name, "access", "", "", 50, "")
    entries = [e["record"] for e in log["records"] if e["record"]["grant_id"] == decision["grant_id"]]
    assert len(entries) == 1 and entries[0]["digest"] == release.digest and not entries[0]["anomalies"]
    assert sorted(entries[0]["sections_returned"]) == sorted(release.sections)


def test_revocation_between_mint_and_use_refuses_and_the_refusal_is_on_chain(setup, world):
    from vault import GrantRevoked

    v, _ledger, patient, spec, _other = setup
    decision = _grant(spec, patient)
    minted = v.mint_token(decision["grant_id"])
    patient.submit("TransportContract", "Revoke", decision["grant_id"], "patient-request")
    with pytest.raises(GrantRevoked):
        v.redeem(minted.token, spec.name)
    world.synced(world.node.orderer.height - 1)
    refusals = world.admins["lothian"].evaluate("AuditContract", "AuditByPatient", patient.name, "refusal", "", "",
                                                50, "")
    assert any(r["record"]["grant_id"] == decision["grant_id"] and r["record"]["reason"] == "grant-revoked"
               for r in refusals["records"])


def test_another_users_token_and_a_tampered_token_are_refused(setup):
    from vault import TokenError

    v, _ledger, patient, spec, other = setup
    minted = v.mint_token(_grant(spec, patient)["grant_id"])
    with pytest.raises(TokenError) as e:
        v.redeem(minted.token, other.name)  # stolen token
    assert e.value.type == "token-presenter-mismatch"
    tampered = minted.token[:-6] + ("A" if minted.token[-6] != "A" else "B") + minted.token[-5:]
    with pytest.raises(TokenError) as e:
        v.redeem(tampered, spec.name)
    assert e.value.type in ("token-invalid", "token-signature-invalid")


def test_a_grant_the_chain_no_longer_considers_live_releases_nothing(setup, world):
    from vault import VaultError

    v, ledger, patient, spec, _other = setup
    decision = _grant(spec, patient)
    minted = v.mint_token(decision["grant_id"])
    world.admins["lothian"].submit("UserContract", "EndTreatment", patient.name, spec.name)
    try:
        g = ledger.get_grant(decision["grant_id"])
        assert not g.is_live(dt.datetime.now(dt.UTC))
        with pytest.raises(VaultError) as e:
            v.redeem(minted.token, spec.name)
        assert e.value.type in ("grant-revoked", "grant-expired"), e.value.type  # ending treatment revokes
    finally:
        world.treat(patient, spec)
    assert ledger.get_grant("no-such-grant-000") is None


def test_release_is_checked_and_logged_in_one_transaction(setup, world):
    """ReleaseAccess refuses (and records nothing) unless the token is bound, the grant live and the
    sections within it; the vault maps each refusal to its token error."""
    from vault import LedgerRefusal

    v, ledger, patient, spec, _other = setup
    decision = _grant(spec, patient)
    minted = v.mint_token(decision["grant_id"])
    digest = "ab" * 32
    granted = sorted(decision["granted"])
    with pytest.raises(LedgerRefusal) as e:
        ledger.release(decision["grant_id"], "cd" * 32, granted, digest)
    assert e.value.reason == "token-not-bound"
    with pytest.raises(LedgerRefusal) as e:
        ledger.release(decision["grant_id"], minted.token_hash, [*granted, "contact"], digest)
    assert e.value.reason == "token-grant-mismatch"
    with pytest.raises(LedgerRefusal) as e:
        ledger.release("20990101T000000000000Z-" + "0" * 32, minted.token_hash, granted, digest)
    assert e.value.reason == "grant-not-found"
    ledger.release(decision["grant_id"], minted.token_hash, granted, digest)  # accepted and logged
    patient.submit("TransportContract", "Revoke", decision["grant_id"], "patient-request")
    with pytest.raises(LedgerRefusal) as e:
        ledger.release(decision["grant_id"], minted.token_hash, granted, digest)
    assert e.value.reason == "grant-revoked"
    world.synced(world.node.orderer.height - 1)
    log = world.admins["lothian"].evaluate("AuditContract", "AuditByPatient", patient.name, "access", "", "", 200, "")
    mine = [e["record"] for e in log["records"] if e["record"]["grant_id"] == decision["grant_id"]]
    assert len(mine) == 1 and mine[0]["digest"] == digest  # only the accepted release is on the ledger


def test_a_grant_at_its_token_limit_is_a_conflict_not_an_outage(setup):
    from chaincode.serums.vocab import MAX_TOKENS_PER_GRANT
    from vault import GrantTokenLimit

    v, _ledger, patient, spec, _other = setup
    decision = _grant(spec, patient, sections=("oncology.treatment",))
    minted = [v.mint_token(decision["grant_id"]) for _ in range(MAX_TOKENS_PER_GRANT)]
    with pytest.raises(GrantTokenLimit) as refused:
        v.mint_token(decision["grant_id"])
    assert refused.value.status == 409 and f"{MAX_TOKENS_PER_GRANT} tokens" in str(refused.value)
    assert set(v.redeem(minted[-1].token, spec.name).sections) == {"oncology.treatment"}  # the bound ones still open
