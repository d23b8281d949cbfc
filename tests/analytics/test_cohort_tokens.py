"""Cohort tokens (vault.cohorts) against the chain: a hospital's vault releases a research cohort's
rows only against a token it minted for the cohort and the site's analytics identity, checked like
a record token (signature, expiry, presenter, cohort live on chain), only active members, only the
cohort's sections, each release logged on chain and each refusal too."""

from __future__ import annotations

import datetime as dt

import pytest

import vault
from analytics.features import TOXICITY_SECTIONS

from .conftest import RecordingVault


class Later(RecordingVault):
    """The same vault, its clock ``seconds`` ahead."""

    def __init__(self, v, seconds: float):
        super().__init__(v)
        self.clock = lambda: v.clock() + dt.timedelta(seconds=seconds)


def _refusals(chain, presenter: str) -> list[str]:
    page = chain.w.admins["lothian"].evaluate("AuditContract", "AuditByUser", presenter, "refusal", "", "", 50, "")
    return [e["record"]["reason"] for e in page["records"]]


def test_release_holds_only_active_members_and_the_cohorts_sections_and_is_logged(chain):
    cid, v, me = chain.cohort(), RecordingVault(chain.vaults["lothian"]), chain.services["lothian"].name
    minted = vault.mint_cohort_token(v, cid, me)
    bound = chain.researcher.evaluate("TransportContract", "GetCohortToken", cid, minted.token_hash)
    assert bound["presenter_id"] == me and bound["live"] and minted.claims.sections == tuple(sorted(TOXICITY_SECTIONS))
    rel = vault.redeem_cohort(v, minted.token, me)
    here = set(chain.vaults["lothian"].patients())
    assert set(rel.patients()) == here & chain.consenting and set(v.read) == set(rel.patients())
    assert v.sections == set(TOXICITY_SECTIONS)  # never demographics
    with pytest.raises(vault.SectionNotGranted):
        rel.read_record(rel.patients()[0], sections=["demographics"])
    with pytest.raises(vault.MemberNotActive):
        rel.read_record(sorted(here & chain.refusing)[0], sections=list(TOXICITY_SECTIONS))
    logged = chain.researcher.evaluate("TransportContract", "CohortReleases", cid, 10, "")["records"]
    assert [(r["digest"], r["patients"], r["presenter_id"]) for r in logged] == [(rel.digest, len(here & chain.consenting), me)]


def test_forged_and_foreign_tokens_are_refused_and_logged(chain):
    cid, v, me = chain.cohort(), RecordingVault(chain.vaults["lothian"]), chain.services["lothian"].name
    minted = vault.mint_cohort_token(v, cid, me)
    head, payload, sig = minted.token.split(".")
    other = vault.mint_cohort_token(chain.vaults["zmc"], cid, chain.services["zmc"].name)  # zmc's vault's key
    for forged in (f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{sig}",
                   f"{head}.{other.token.split('.')[1]}.{sig}", other.token, "sct1.e30.AA", "not a token"):
        with pytest.raises((vault.TokenSignatureInvalid, vault.TokenMalformed)):
            vault.redeem_cohort(v, forged, me)
    record_token = "srt1." + payload + "." + sig  # a cohort token is not a record token, nor the reverse
    with pytest.raises(vault.TokenMalformed):
        vault.redeem_cohort(v, record_token, me)
    assert v.read == []
    assert {"token-signature-invalid", "token-malformed"} <= set(_refusals(chain, me))


def test_wrong_presenter_and_expired_tokens_read_nothing(chain):
    cid, v, me = chain.cohort(), RecordingVault(chain.vaults["lothian"]), chain.services["lothian"].name
    minted = vault.mint_cohort_token(v, cid, me, ttl=dt.timedelta(seconds=60))
    for presenter in (chain.researcher.name, chain.services["zmc"].name):
        with pytest.raises(vault.TokenPresenterMismatch):
            vault.redeem_cohort(v, minted.token, presenter)
    with pytest.raises(vault.TokenExpired):
        vault.redeem_cohort(Later(chain.vaults["lothian"], 61), minted.token, me)
    assert v.read == []
    assert "token-presenter-mismatch" in _refusals(chain, chain.researcher.name)
    assert "token-expired" in _refusals(chain, me)
    # the chain binds tokens only for this hospital's own analytics service
    with pytest.raises(vault.TokenPresenterMismatch):
        vault.mint_cohort_token(v, cid, chain.services["zmc"].name)
    with pytest.raises(vault.TokenPresenterMismatch):
        vault.mint_cohort_token(v, cid, chain.researcher.name)


def test_revoked_cohort_releases_nothing(chain):
    cid, v, me = chain.cohort(), RecordingVault(chain.vaults["lothian"]), chain.services["lothian"].name
    minted = vault.mint_cohort_token(v, cid, me)
    chain.researcher.submit("TransportContract", "RevokeCohort", cid, "relinquished")
    with pytest.raises(vault.CohortRevoked):
        vault.redeem_cohort(v, minted.token, me)
    with pytest.raises(vault.CohortRevoked):
        vault.mint_cohort_token(v, cid, me)
    with pytest.raises(vault.CohortNotFound):
        vault.mint_cohort_token(v, "cohort-missing", me)
    assert v.read == []
    assert "cohort-revoked" in _refusals(chain, me)


def test_a_member_who_withdraws_is_never_read(chain):
    cid, v, me = chain.cohort(), RecordingVault(chain.vaults["lothian"]), chain.services["lothian"].name
    minted = vault.mint_cohort_token(v, cid, me)
    gone = sorted(set(chain.vaults["lothian"].patients()) & chain.consenting)[0]
    patient = next(a for a in chain.w.actors if a.name == gone)
    consent = next(iter(patient.evaluate("PreferenceContract", "ListPreferences", gone)["rules"]))
    assert cid in patient.submit("PreferenceContract", "WithdrawPreference", gone, consent)["withdrawn_cohorts"]
    chain.consenting.discard(gone)  # later cohorts of this session no longer include them
    chain.refusing.add(gone)
    rel = vault.redeem_cohort(v, minted.token, me)
    assert gone not in v.read and gone not in rel.patients() and rel.patients()
