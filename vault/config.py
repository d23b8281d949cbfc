"""How a vault is opened: database, key directory, KEK source, blob store, record format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .keys import DEFAULT_SCRYPT_N


class SettingsLike(Protocol):
    """What the vault reads from ``serums.config.Settings`` (the vault does not import serums)."""

    data_dir: Path
    database_url: str | None
    ipfs_api: str | None
    key_passphrase: str | None


@dataclass(frozen=True)
class VaultConfig:
    """Everything needed to open a vault.

    - ``database_url``: SQLAlchemy URL; ``sqlite:///…`` by default, ``postgresql+psycopg://…``.
    - ``key_dir``: where the KEK file (``kek.key``, 0600), the token-signing key and the
      filesystem blob store live; ``<data dir>/vault`` by default.
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
    def from_settings(cls, settings: SettingsLike, **overrides) -> VaultConfig:
        data_dir = Path(settings.data_dir)
        values = dict(
            database_url=settings.database_url or f"sqlite:///{data_dir / 'vault.db'}",
            key_dir=data_dir / "vault",
            passphrase=settings.key_passphrase,
            ipfs_api=settings.ipfs_api,
        )
        values.update(overrides)
        return cls(**values)
