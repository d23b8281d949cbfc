"""Shared fixtures and the rules for optional infrastructure.

- ``postgres``-marked tests use ``postgres_url`` (``SERUMS_TEST_POSTGRES_URL``, default the local
  server's ``test`` database). When the ``CI`` variable is set they are mandatory: an unreachable
  server fails them instead of skipping.
- ``fabric``-marked tests need the Fabric binaries (``peer``, ``orderer``, ``configtxgen``,
  ``osnadmin``) in ``FABRIC_BIN``, on PATH or in ``../shared/fabric/bin``; they are skipped with
  the reason otherwise, and fail when ``CI`` is set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("SERUMS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FABRIC_TOOLS = ("peer", "orderer", "configtxgen", "osnadmin")


def _postgres_reachable(url: str) -> str | None:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable", with the reason
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


#: where the project's tests find Fabric when neither FABRIC_BIN nor PATH has it (never committed)
SHARED_FABRIC_BIN = Path(__file__).resolve().parents[2] / "shared" / "fabric" / "bin"


def fabric_bin() -> Path | None:
    """FABRIC_BIN, else PATH, else ``../shared/fabric/bin`` next to the project."""
    from network.fabric import FabricError, find_fabric_bin

    try:
        return find_fabric_bin(os.environ.get("FABRIC_BIN"), (SHARED_FABRIC_BIN,))
    except FabricError:
        return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    problem = _postgres_reachable(POSTGRES_URL)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is mandatory under CI and {POSTGRES_URL} is unreachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {problem}")
    return POSTGRES_URL


def pytest_collection_modifyitems(config, items):
    if fabric_bin() is None:
        reason = ("Hyperledger Fabric binaries (peer, orderer, configtxgen, osnadmin) are not in FABRIC_BIN, "
                  "on PATH or in ../shared/fabric/bin")
        if os.environ.get("CI"):
            return  # mandatory under CI, like PostgreSQL: the fabric fixtures fail with the reason
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if "fabric" in item.keywords:
                item.add_marker(skip)
