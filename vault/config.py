"""How a vault is opened: database, key directory, KEK source, blob store, record format."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import VaultConfigError
from .keys import DEFAULT_SCRYPT_N


class SettingsLike(Protocol):
    """What the vault reads from ``serums.config.Settings`` or ``gateway.services.GatewaySettings``
    (the vault imports neither)."""

    data_dir: Path
    database_url: str | None
    ipfs_api: str | None
    key_passphrase: str | None


_HOSPITAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class VaultConfig:
    """Everything needed to open a vault.

    - ``database_url``: SQLAlchemy URL; ``sqlite:///…`` by default, ``postgresql+psycopg://…``.
    - ``key_dir``: where the KEK file (``kek.key``, 0600), the token-signing key and the
      filesystem blob store live; ``<data dir>/vaults/<hospital>`` (:meth:`for_hospital`).
    - ``passphrase``: when set at creation, the KEK is derived from it (scrypt) instead of a key
      file; the choice is recorded in the database and later opens follow it.
    - ``format``: the record format a new vault starts with (a shipped name or a YAML path); an
      existing vault keeps the definition stored in its database.
    - ``schema``: PostgreSQL schema for the vault's tables (tests, several vaults in one database).
    - ``encrypt_payloads``: False only for the benchmark's plain baseline; such a database is
      marked and a normal (encrypting) open refuses it, and the other way round.
    """

    database_url: str
    key_dir: Path
    passphrase: str | None = None
    ipfs_api: str | None = None
    format: str = "edinburgh"
    schema: str | None = None
    scrypt_n: int = DEFAULT_SCRYPT_N
    encrypt_payloads: bool = True
    token_ttl_seconds: int = 900

    @classmethod
    def for_hospital(cls, settings: SettingsLike, hospital: str, **overrides) -> VaultConfig:
        """The one layout every command and service opens a hospital's vault with: keys (and the
        filesystem blob store) under ``<data dir>/vaults/<hospital>/``; the database is the SQLite
        file ``vault.db`` there, or, when ``database_url`` is PostgreSQL, the schema
        ``vault_<hospital>`` of that database."""
        if not isinstance(hospital, str) or not _HOSPITAL_RE.match(hospital):
            raise VaultConfigError(f"{hospital!r} is not a hospital name (letters, digits, '-' and '_')")
        key_dir = Path(settings.data_dir) / "vaults" / hospital
        url = settings.database_url
        values: dict = dict(key_dir=key_dir, passphrase=settings.key_passphrase, ipfs_api=settings.ipfs_api)
        if url and url.startswith("postgresql"):
            values.update(database_url=url, schema=f"vault_{hospital.replace('-', '_')}")
        else:
            values.update(database_url=f"sqlite:///{key_dir / 'vault.db'}")
        values.update(overrides)
        return cls(**values)
