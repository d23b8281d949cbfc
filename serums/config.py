"""Configuration from ``SERUMS_*`` environment variables, with sane defaults.

All state of the embedded default lives under one data directory (``SERUMS_DATA_DIR``, default
``~/.local/share/serums``): the network's crypto material and ledgers, the vault database, blobs,
the user directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "serums"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    ipfs_api: str | None
    key_passphrase: str | None

    @property
    def network_dir(self) -> Path:
        return self.data_dir / "network"

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike | None = None) -> Settings:
        root = Path(data_dir or os.environ.get("SERUMS_DATA_DIR") or _default_data_dir()).expanduser()
        return cls(
            data_dir=root,
            database_url=os.environ.get("SERUMS_DATABASE_URL") or f"sqlite:///{root / 'vault.db'}",
            ipfs_api=os.environ.get("SERUMS_IPFS_API") or None,
            key_passphrase=os.environ.get("SERUMS_KEY_PASSPHRASE") or None,
        )
