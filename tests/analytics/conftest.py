"""Fixtures of analytics tests: fabricated Edinburgh data ingested into one vault per hospital."""

from __future__ import annotations

from pathlib import Path

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
