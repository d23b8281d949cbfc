"""Per-hospital vaults on PostgreSQL: ``SERUMS_DATABASE_URL`` with one schema ``vault_<hospital>`` each."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.services import GatewaySettings, Services

from .stack import split_fixtures


@pytest.mark.postgres
def test_each_hospital_gets_its_own_schema(world, postgres_url, tmp_path):
    base = world.services.settings
    settings = GatewaySettings(base.data_dir, database_url=postgres_url, node_address=world.services.address,
                               auth_database_url=f"sqlite:///{tmp_path / 'auth.db'}")
    engine = sa.create_engine(postgres_url)

    def drop():
        with engine.begin() as conn:
            conn.exec_driver_sql('DROP SCHEMA IF EXISTS "vault_zmc" CASCADE')

    drop()
    svc = Services.open(settings, auth_config=world.services.auth.config)
    try:
        cfg = svc.vault_config("zmc")
        assert cfg.schema == "vault_zmc" and cfg.database_url == postgres_url
        assert cfg.key_dir == base.data_dir / "vaults" / "zmc"
        v = svc.ensure_vault("zmc")
        tables = split_fixtures()["zmc"]
        v.ingest_tables(tables, source="fixtures")
        chi = tables["patients"][0]["patient_id"]
        ref = v.find_patient(chi)
        assert len(ref) == 32 and v.read_record(ref, sections=["demographics"]).sections["demographics"].entries
        with engine.connect() as conn:
            n = conn.execute(sa.text("select count(*) from vault_zmc.vault_hub_person")).scalar()
        assert n == len(tables["patients"])
    finally:
        svc.close()
        drop()
        engine.dispose()
