"""Fixtures of analytics tests: fabricated Edinburgh data ingested into one vault per hospital."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def edinburgh(tmp_path_factory):
    """(fabricated frames, {hospital: Vault}) for 90 patients, ingested as ``serums up`` does."""
    from fabrication import fabricate_edinburgh
    from serums.commands.up import _split_by_hospital
    from vault import Vault, VaultConfig

    root: Path = tmp_path_factory.mktemp("analytics-vaults")
    frames = fabricate_edinburgh(90, seed=7).frames()
    vaults = {}
    for hospital, tables in sorted(_split_by_hospital(frames).items()):
        v = Vault.open(VaultConfig(database_url=f"sqlite:///{root / hospital}.db", key_dir=root / hospital,
                                   scrypt_n=2**10))
        v.ingest_tables(tables, source="fabrication:edinburgh")
        vaults[hospital] = v
    yield frames, vaults
    for v in vaults.values():
        v.close()


class RecordingVault:
    """A vault whose record reads are recorded (the real vault underneath, every other attribute its)."""

    def __init__(self, vault):
        self.vault, self.read, self.sections = vault, [], set()

    def __getattr__(self, name):
        return getattr(self.vault, name)

    def read_record(self, patient, **kw):
        self.read.append(patient)
        self.sections |= set(kw["sections"])
        return self.vault.read_record(patient, **kw)


@dataclass
class Chain:
    """An embedded node with the three hospitals, their patients (two in three consent to research),
    each hospital's vault reopened on its own chain identity and each site's analytics service."""

    w: Any
    researcher: Any
    analytics: Any  # Lothian's analytics service: spends Lothian's datasets
    ledger: Any  # ChainAnalyticsLedger as ``analytics``
    consenting: set
    refusing: set
    vaults: dict  # hospital -> Vault with a ChainGrantLedger
    services: dict  # hospital -> analytics Actor

    def sites(self, wrap=None) -> dict:
        from analytics.jobs import CohortSite

        return {h: CohortSite(h, wrap(v) if wrap else v, self.services[h].name) for h, v in self.vaults.items()}

    def cohort(self) -> str:
        from analytics.features import TOXICITY_SECTIONS

        c = self.researcher.submit("TransportContract", "RequestCohort", sorted(self.consenting | self.refusing),
                                   list(TOXICITY_SECTIONS), "research", "research-protocol")
        assert sorted(c["included"]) == sorted(self.consenting)
        return c["cohort_id"]


@pytest.fixture(scope="session")
def chain(tmp_path_factory, edinburgh):
    from analytics.chain import ChainAnalyticsLedger
    from serums.bootstrap import DEFAULT_RULES, DEFAULT_SETTINGS
    from tests.chaincode.conftest import HOSPITALS, World
    from tests.chaincode.test_serums_transport import allow
    from vault import Vault
    from vault.chain import ChainGrantLedger

    _, plain = edinburgh
    w = World(tmp_path_factory.mktemp("analytics-chain") / "network")
    vaults, ledgers = {}, []
    try:
        for org in HOSPITALS:
            w.admins[org].submit("UserContract", "RegisterHospital", org.upper())
            for rule in DEFAULT_RULES:  # the rules `serums up` publishes
                w.admins[org].submit("PolicyContract", "PutRule", rule)
            w.admins[org].submit("PolicyContract", "SetPolicySettings", DEFAULT_SETTINGS)
        consenting, refusing = set(), set()
        for hospital, v in plain.items():
            for i, ref in enumerate(v.patients()):
                p = w.user(hospital, "patient", ref)
                if i % 3:  # two in three allow research by researchers
                    p.submit("PreferenceContract", "AddPreference", ref,
                             allow("role", "researcher", purposes=["research"]))
                    consenting.add(ref)
                else:
                    refusing.add(ref)
            actor = w.user(hospital, "vault")
            ledgers.append(ChainGrantLedger.connect(actor.ident, actor.signer, w.address))
            vaults[hospital] = Vault.open(v.config, ledger=ledgers[-1])
        services = {h: w.user(h, "analytics") for h in plain}
        researcher = w.user("lothian", "researcher")
        ledger = ChainAnalyticsLedger.of(services["lothian"].gw.network(w.cfg.channel))
        yield Chain(w, researcher, services["lothian"], ledger, consenting, refusing, vaults, services)
    finally:
        for v in vaults.values():
            v.close()
        for led in ledgers:
            led.close()
        w.close()
