"""Fixtures for the vault's tests: a vault on SQLite and on PostgreSQL, a controllable clock,
and an in-memory GrantLedger standing in for the chain's TransportContract.

The in-memory ledger exists only here, to test the vault's side of the seam; the chain-backed
ledger (TransportContract through network's Gateway client) replaces it in the running system.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from vault import GRANT_ACTIVE, GRANT_REVOKED, BlobAnchor, Grant, Refusal, Vault, VaultConfig

FIXTURES = Path(__file__).parent / "fixtures"
TABLES = ("patients", "ndc_smr01", "ndc_smr06", "ndc_charlson", "chemocare_treatment", "chemocare_toxicity")
ALL_SECTIONS = frozenset({"demographics", "contact", "admissions", "conditions", "procedures", "oncology.diagnosis",
                          "oncology.treatment", "oncology.toxicity", "comorbidities", "imaging"})
FAST_SCRYPT_N = 2**12  # passphrase-derived KEKs in tests: same code path, less work


class Clock:
    """A clock the tests move by hand (always timezone-aware UTC, strictly increasing by default)."""

    def __init__(self, start: dt.datetime | None = None):
        self.now = start or dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


@dataclass
class Access:
    grant_id: str
    token_hash: str
    sections: list[str]
    digest: str


@dataclass
class MemoryLedger:
    """In-memory GrantLedger: grants, token bindings, access and refusal logs, blob anchors."""

    clock: Clock
    grants: dict[str, Grant] = field(default_factory=dict)
    accesses: list[Access] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    summaries: list = field(default_factory=list)  # vault.refusals.RefusalSummary
    anchors: list[BlobAnchor] = field(default_factory=list)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("ledger unreachable")

    # -- what the chain would do in steps 5-6 (here, for the tests)
    def grant(self, patient: str, sections: Sequence[str] = tuple(ALL_SECTIONS), *, requester: str = "dr-alice",
              purpose: str = "treatment", ttl: float = 3600) -> Grant:
        gid = f"grant-{uuid.uuid4().hex[:12]}"
        g = Grant(gid, requester, patient, frozenset(sections), purpose, self.clock() + dt.timedelta(seconds=ttl))
        self.grants[gid] = g
        return g

    def revoke(self, grant_id: str) -> None:
        self.grants[grant_id] = replace(self.grants[grant_id], status=GRANT_REVOKED)

    # -- the GrantLedger protocol
    def get_grant(self, grant_id: str) -> Grant | None:
        self._check()
        return self.grants.get(grant_id)

    def bind_token(self, grant_id: str, token_hash: str) -> None:
        self._check()
        g = self.grants[grant_id]
        if g.status != GRANT_ACTIVE:
            raise RuntimeError("grant not active")
        self.grants[grant_id] = replace(g, token_hashes=g.token_hashes | {token_hash})

    def log_access(self, grant_id: str, token_hash: str, sections_returned: Sequence[str], digest: str) -> None:
        self._check()
        self.accesses.append(Access(grant_id, token_hash, list(sections_returned), digest))

    def log_refusal(self, refusal: Refusal) -> None:
        self._check()
        self.refusals.append(refusal)

    def log_refusal_summary(self, summary) -> None:
        self._check()
        self.summaries.append(summary)

    def anchor_blob(self, anchor: BlobAnchor) -> None:
        self._check()
        self.anchors.append(anchor)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> MemoryLedger:
    return MemoryLedger(clock)


@dataclass
class Backend:
    """Makes vault configs on one database; PostgreSQL ones each get a fresh schema, dropped after."""

    name: str
    tmp: Path
    url: str | None = None
    schemas: list[str] = field(default_factory=list)

    def config(self, key_dir: Path | None = None, *, db: str = "vault", **kw) -> VaultConfig:
        key_dir = key_dir or self.tmp / "keys"
        kw.setdefault("scrypt_n", FAST_SCRYPT_N)
        if self.name == "sqlite":
            return VaultConfig(database_url=f"sqlite:///{self.tmp / f'{db}.db'}", key_dir=key_dir, **kw)
        if "schema" not in kw:
            kw["schema"] = f"t_vault_{uuid.uuid4().hex[:12]}"
            self.schemas.append(kw["schema"])
        return VaultConfig(database_url=self.url, key_dir=key_dir, **kw)

    def cleanup(self) -> None:
        if not self.schemas:
            return
        engine = sa.create_engine(self.url)
        with engine.begin() as conn:
            for schema in self.schemas:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        b = Backend("postgres", tmp_path, request.getfixturevalue("postgres_url"))
    else:
        b = Backend("sqlite", tmp_path)
    yield b
    b.cleanup()


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Backend:
    return Backend("sqlite", tmp_path)


@pytest.fixture
def make_vault(backend: Backend, clock: Clock, ledger: MemoryLedger) -> Iterator:
    """Open vaults on the parametrised backend (closed after the test)."""
    opened: list[Vault] = []

    def make(config: VaultConfig | None = None, **kw) -> Vault:
        v = Vault.open(config or backend.config(**kw), ledger=ledger, clock=clock)
        opened.append(v)
        return v

    yield make
    for v in opened:
        v.close()


@pytest.fixture
def vault(make_vault) -> Vault:
    return make_vault()


@pytest.fixture
def loaded(vault: Vault, clock: Clock) -> Vault:
    """A vault with every fixture table ingested (one batch a table, one second apart)."""
    for table in TABLES:
        clock.advance()
        vault.ingest_file(FIXTURES / f"{table}.csv")
    clock.advance()
    return vault


def first_patient_id() -> str:
    return (FIXTURES / "patients.csv").read_text().splitlines()[1].split(",")[0]
