"""Configuration: the one place that reads ``SERUMS_*`` environment variables.

:meth:`Settings.from_env` is called once per process (the ``serums`` command, the gunicorn workers'
:mod:`serums.wsgi`) and the result is passed down. The packages below ``serums`` never read the
environment: they take plain values and config objects built here (:meth:`Settings.gateway_settings`,
:meth:`Settings.auth_config`, :meth:`Settings.vault_config`, ``max_proposal_skew_s`` for the node).

All state of the embedded default lives under one data directory (``SERUMS_DATA_DIR``, default
``$XDG_DATA_HOME/serums``, i.e. ``~/.local/share/serums``): the network's crypto material and
ledgers, the vaults, blobs, the user directory, logs. Every variable is listed in :data:`VARIABLES`
(and in the README's configuration table).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the lower packages are imported lazily: `serums --help` stays fast
    from auth import AuthConfig
    from gateway.services import GatewaySettings
    from vault import VaultConfig

ENGINES = ("embedded", "fabric")

#: Every ``SERUMS_*`` variable (``SERUMS_AUTH_*``: see :data:`AUTH_VARIABLES`) and what it sets.
VARIABLES: dict[str, str] = {
    "SERUMS_DATA_DIR": "all state of the embedded default (default $XDG_DATA_HOME/serums, ~/.local/share/serums)",
    "SERUMS_DATABASE_URL": "PostgreSQL URL for the vaults (schema vault_<hospital> each) and the user directory; "
                           "unset: SQLite files in the data directory",
    "SERUMS_AUTH_DATABASE_URL": "the user directory's database, when it differs from SERUMS_DATABASE_URL",
    "SERUMS_NODE_ADDRESS": "the ledger node's gRPC endpoint (default: the running node's, else the network's)",
    "SERUMS_NODE_TLS_CA": "PEM file of the CA of the ledger endpoint's TLS certificate (unset: plaintext); "
                          "`serums up --engine fabric` sets it for its gateway",
    "SERUMS_NODE_TLS": "the embedded node's TLS: off (default), on (TLS from the network's TLS CA) or mutual (client "
                       "certificates too); `serums up` and `serums node` serve it, the gateway and the commands "
                       "connect with it",
    "SERUMS_KEY_PASSPHRASE": "decrypts the network's private keys and derives the vaults' KEKs",
    "SERUMS_IPFS_API": "kubo RPC API URL for blobs (unset: a filesystem blob store)",
    "SERUMS_CORS_ORIGINS": "comma-separated origins allowed to call the HTTP API from a browser (unset: none)",
    "SERUMS_LOG_LEVEL": "the gateway workers' log level (default INFO)",
    "SERUMS_MAX_PROPOSAL_SKEW_S": "the node refuses proposals dated further than this from its clock (default 600)",
    "SERUMS_ENGINE": "the ledger engine: embedded (default) or fabric",
    "SERUMS_MQTT": "the MQTT broker (host:port) the notification service publishes to (default 127.0.0.1:1883; "
                   "off: none)",
}

#: The user directory's tunables, parsed by :meth:`auth.AuthConfig.from_env` from the values read here.
AUTH_VARIABLES: dict[str, str] = {
    "SERUMS_AUTH_PEPPER": "HMAC pepper for secrets (hex; default: <data dir>/auth/pepper.key, created once)",
    "SERUMS_AUTH_JWT_SECRET": "JWT signing secret (hex; default: <data dir>/auth/jwt.key, created once)",
    "SERUMS_AUTH_ARGON2_MEMORY_KIB": "Argon2id memory (default 19456)",
    "SERUMS_AUTH_ARGON2_ITERATIONS": "Argon2id iterations (default 2)",
    "SERUMS_AUTH_ARGON2_PARALLELISM": "Argon2id lanes (default 1)",
    "SERUMS_AUTH_ACCESS_TTL": "access token lifetime, seconds (default 600)",
    "SERUMS_AUTH_REFRESH_TTL": "refresh token lifetime, seconds (default 3600)",
    "SERUMS_AUTH_SESSION_MAX_AGE": "longest session, seconds (default 43200)",
    "SERUMS_AUTH_SUSPENSION_CACHE_TTL": "how long a chain suspension check is cached, seconds (default 30)",
    "SERUMS_AUTH_TOTP_ISSUER": "issuer shown by authenticator apps (default SERUMS)",
    "SERUMS_AUTH_EVALUATION": "1: evaluation mode (records login timings)",
}


def named_variable(name: str) -> str | None:
    """The value of an environment variable the user named on the command line (``--key-env VAR``,
    ``--passphrase-env VAR``: secrets kept off the command line), or None when unset or empty."""
    return os.environ.get(name) or None


class SettingsError(ValueError):
    """A ``SERUMS_*`` variable holds a value that cannot be used (one line, names the variable)."""


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "serums"


@dataclass(frozen=True)
class Settings:
    """Every ``SERUMS_*`` setting of one process (see :data:`VARIABLES`), read once by :meth:`from_env`
    and passed down; the packages get theirs from :meth:`gateway_settings`, :meth:`auth_config`,
    :meth:`vault_config` and plain fields (``max_proposal_skew_s`` for the node, ``engine``)."""

    data_dir: Path
    database_url: str | None = None
    auth_database_url: str | None = None
    node_address: str | None = None
    node_tls_ca: str | None = None
    #: the embedded node's TLS: "off", "on" or "mutual" (``SERUMS_NODE_TLS``)
    node_tls: str = "off"
    key_passphrase: str | None = None
    ipfs_api: str | None = None
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    max_proposal_skew_s: float = 600.0
    engine: str = "embedded"
    #: the notification service's MQTT broker ``host:port``, or None (``SERUMS_MQTT=off``): no publishing
    mqtt: str | None = "127.0.0.1:1883"
    #: the ``SERUMS_AUTH_*`` values, as read (auth parses and checks them)
    auth_vars: Mapping[str, str] = field(default_factory=dict)

    @property
    def network_dir(self) -> Path:
        return self.data_dir / "network"

    @property
    def postgres_url(self) -> str | None:
        url = self.database_url
        return url if url and url.startswith("postgresql") else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, data_dir: str | os.PathLike | None = None) -> Settings:
        """Read every ``SERUMS_*`` variable (``env`` defaults to ``os.environ``); ``data_dir`` (the
        ``--data-dir`` option) wins over ``SERUMS_DATA_DIR``."""
        env = os.environ if env is None else env
        root = Path(data_dir or env.get("SERUMS_DATA_DIR") or default_data_dir(env)).expanduser()
        engine = (env.get("SERUMS_ENGINE") or "embedded").strip().lower()
        if engine not in ENGINES:
            raise SettingsError(f"SERUMS_ENGINE must be one of {', '.join(ENGINES)}, not {engine!r}")
        raw_skew = env.get("SERUMS_MAX_PROPOSAL_SKEW_S") or "600"
        try:
            skew = float(raw_skew)
        except ValueError:
            raise SettingsError(f"SERUMS_MAX_PROPOSAL_SKEW_S must be a number of seconds, not {raw_skew!r}") from None
        if not skew > 0:
            raise SettingsError(f"SERUMS_MAX_PROPOSAL_SKEW_S must be positive, not {raw_skew!r}")
        node_tls = (env.get("SERUMS_NODE_TLS") or "off").strip().lower()
        if node_tls not in ("off", "on", "mutual"):
            raise SettingsError(f"SERUMS_NODE_TLS must be off, on or mutual, not {node_tls!r}")
        mqtt = (env.get("SERUMS_MQTT") or "127.0.0.1:1883").strip()
        broker_host, _, broker_port = mqtt.rpartition(":")
        if mqtt.lower() in ("off", "-"):
            mqtt = ""
        elif not (broker_host and broker_port.isdigit() and 0 < int(broker_port) < 65536):
            raise SettingsError(f"SERUMS_MQTT must be host:port or off, not {mqtt!r}")
        return cls(
            data_dir=root,
            database_url=env.get("SERUMS_DATABASE_URL") or None,
            auth_database_url=env.get("SERUMS_AUTH_DATABASE_URL") or None,
            node_address=env.get("SERUMS_NODE_ADDRESS") or None,
            node_tls_ca=env.get("SERUMS_NODE_TLS_CA") or None,
            node_tls=node_tls,
            key_passphrase=env.get("SERUMS_KEY_PASSPHRASE") or None,
            ipfs_api=env.get("SERUMS_IPFS_API") or None,
            cors_origins=tuple(o.strip() for o in (env.get("SERUMS_CORS_ORIGINS") or "").split(",") if o.strip()),
            log_level=(env.get("SERUMS_LOG_LEVEL") or "INFO").upper(),
            max_proposal_skew_s=skew,
            engine=engine,
            mqtt=mqtt or None,
            auth_vars={k: v for k, v in env.items() if k.startswith("SERUMS_AUTH_")},
        )

    # ------------------------------------------------------------------ what the packages take

    @property
    def auth_url(self) -> str:
        """The user directory's database: ``SERUMS_AUTH_DATABASE_URL``, else ``SERUMS_DATABASE_URL``
        (tables prefixed ``auth_``), else ``<data dir>/auth.db``."""
        from auth import database_url_from_env

        return database_url_from_env(self.data_dir, {**self.auth_vars, "SERUMS_DATABASE_URL": self.database_url or ""})

    def auth_config(self) -> AuthConfig:
        from auth import AuthConfig

        return AuthConfig.from_env(self.data_dir, env=self.auth_vars)

    def running_node_address(self) -> str | None:
        """``SERUMS_NODE_ADDRESS``, else the address the running node wrote to ``node.json`` (None when
        no node runs on this data directory: a ``node.json`` left by a killed one is stale)."""
        from .datadir import running_file

        return self.node_address or (running_file(self.data_dir, "node.json") or {}).get("address")

    def gateway_settings(self, **overrides: Any) -> GatewaySettings:
        from gateway.services import GatewaySettings

        values: dict[str, Any] = dict(
            data_dir=self.data_dir, database_url=self.postgres_url, node_address=self.running_node_address(),
            node_tls_ca=self.node_tls_ca, node_tls=self.node_tls, engine=self.engine,
            key_passphrase=self.key_passphrase, ipfs_api=self.ipfs_api, auth_database_url=self.auth_database_url,
        )
        values.update(overrides)
        return GatewaySettings(**values)

    def app_config(self) -> dict[str, Any]:
        """Flask configuration of the gateway app."""
        return {"SERUMS_CORS_ORIGINS": ",".join(self.cors_origins)}

    def vault_config(self, hospital: str, **overrides: Any) -> VaultConfig:
        from vault import VaultConfig

        return VaultConfig.for_hospital(self, hospital, **overrides)
