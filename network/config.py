"""The network's configuration and crypto material on disk: who the hospitals are.

``serums network init --hospitals lothian,zmc,fcrb`` writes, under ``<data dir>/network``::

    network.json                     channel, organisations, endpoint, block cutting, chaincodes
    orgs/<org>/ca/                   the organisation's CA (ca.pem, ca.key 0600)
    orgs/<org>/peers/peer0/          the peer's certificate and key
    orgs/<org>/users/admin/          the hospital admin's certificate and key
    orgs/orderer/...                 the ordering service's organisation and its orderer node

Keys are 0600 and encrypted when a passphrase is given (``SERUMS_KEY_PASSPHRASE``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .identity import (
    CertificateAuthority,
    Identity,
    IdentityError,
    Signer,
    load_credentials,
    save_credentials,
)

ORDERER_ORG = "orderer"
DEFAULT_CHANNEL = "serums"
_ORG_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class ConfigError(Exception):
    """The network configuration is missing or invalid."""


def msp_id_for(org: str) -> str:
    return "".join(part.capitalize() for part in org.split("-")) + "MSP"


@dataclass
class OrgConfig:
    name: str
    msp_id: str


@dataclass
class BatchConfig:
    """Block cutting: a block is cut at ``max_message_count`` transactions, ``preferred_max_bytes``
    bytes, or ``timeout_ms`` after its first transaction arrived, whichever comes first."""

    max_message_count: int = 500
    preferred_max_bytes: int = 2 * 1024 * 1024
    timeout_ms: float = 1.0


@dataclass
class ChaincodeDefinition:
    """A chaincode deployed on the channel: where its code is and who must endorse."""

    name: str
    module: str  # "package.module:factory" returning a chaincode object
    version: str = "1.0"
    endorsement_policy: str = "MAJORITY"


@dataclass
class NetworkConfig:
    root: Path
    channel: str = DEFAULT_CHANNEL
    hospitals: list[OrgConfig] = field(default_factory=list)
    orderer: OrgConfig = field(default_factory=lambda: OrgConfig(ORDERER_ORG, "OrdererMSP"))
    endpoint: str = "127.0.0.1:7051"
    batch: BatchConfig = field(default_factory=BatchConfig)
    chaincodes: list[ChaincodeDefinition] = field(default_factory=list)

    # -- paths
    @property
    def path(self) -> Path:
        return self.root / "network.json"

    def org_dir(self, org: str) -> Path:
        return self.root / "orgs" / org

    def ca_dir(self, org: str) -> Path:
        return self.org_dir(org) / "ca"

    def peer_dir(self, org: str) -> Path:
        return self.org_dir(org) / "peers" / "peer0"

    def user_dir(self, org: str, user: str) -> Path:
        return self.org_dir(org) / "users" / user

    def ledger_dir(self) -> Path:
        return self.root / "ledger"

    # -- lookups
    def org(self, name_or_msp: str) -> OrgConfig:
        for o in [*self.hospitals, self.orderer]:
            if name_or_msp in (o.name, o.msp_id):
                return o
        raise ConfigError(f"unknown organisation {name_or_msp!r}")

    def chaincode(self, name: str) -> ChaincodeDefinition:
        for cc in self.chaincodes:
            if cc.name == name:
                return cc
        raise ConfigError(f"chaincode {name!r} is not deployed on channel {self.channel!r}")

    def load_ca(self, org: str, passphrase: str | None = None) -> CertificateAuthority:
        return CertificateAuthority.load(self.ca_dir(org), passphrase)

    def load_user(self, org: str, user: str = "admin", passphrase: str | None = None) -> tuple[Identity, Signer]:
        return load_credentials(self.user_dir(org, user), passphrase)

    def load_peer(self, org: str, passphrase: str | None = None) -> tuple[Identity, Signer]:
        return load_credentials(self.peer_dir(org), passphrase)

    def root_certs(self) -> dict[str, list]:
        out = {}
        for o in [*self.hospitals, self.orderer]:
            out[o.msp_id] = [_load_cert(self.ca_dir(o.name) / "ca.pem")]
        return out

    # -- persistence
    def to_json(self) -> dict:
        return {
            "channel": self.channel,
            "hospitals": [asdict(h) for h in self.hospitals],
            "orderer": asdict(self.orderer),
            "endpoint": self.endpoint,
            "batch": asdict(self.batch),
            "chaincodes": [asdict(c) for c in self.chaincodes],
        }

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(self.path)

    @classmethod
    def load(cls, root: Path) -> NetworkConfig:
        root = Path(root)
        path = root / "network.json"
        if not path.exists():
            raise ConfigError(f"no network in {root}: run `serums up` to create one and start the system "
                              "(or `serums network init` for the network alone)")
        try:
            data = json.loads(path.read_text())
            return cls(
                root=root,
                channel=data["channel"],
                hospitals=[OrgConfig(**h) for h in data["hospitals"]],
                orderer=OrgConfig(**data["orderer"]),
                endpoint=data.get("endpoint", "127.0.0.1:7051"),
                batch=BatchConfig(**data.get("batch", {})),
                chaincodes=[ChaincodeDefinition(**c) for c in data.get("chaincodes", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path} is not a valid network configuration: {exc}") from exc


def _load_cert(path: Path):
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes())


def parse_hospitals(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--hospitals needs at least one hospital name")
    for n in names:
        if not _ORG_NAME.match(n) or n == ORDERER_ORG:
            raise ConfigError(
                f"hospital name {n!r} must be lowercase letters, digits or '-', start with a letter, "
                f"and not be {ORDERER_ORG!r}"
            )
    if len(set(names)) != len(names):
        raise ConfigError("hospital names must be distinct")
    return names


def init_network(
    root: Path,
    hospitals: list[str],
    *,
    channel: str = DEFAULT_CHANNEL,
    endpoint: str = "127.0.0.1:7051",
    passphrase: str | None = None,
    force: bool = False,
    batch: BatchConfig | None = None,
) -> NetworkConfig:
    """Create every organisation's CA, peer, orderer and admin identities and ``network.json``.

    Refuses to overwrite an existing network unless ``force`` is set (a new network means new
    keys: the old ledger would no longer verify)."""
    root = Path(root)
    if (root / "network.json").exists() and not force:
        raise ConfigError(f"a network already exists in {root} (use --force to replace it)")
    if not re.match(r"^[a-z][a-z0-9.-]{0,48}$", channel):
        raise ConfigError(f"channel name {channel!r} must be lowercase letters, digits, '.' or '-'")
    batch = batch or BatchConfig()
    if batch.max_message_count < 1 or batch.preferred_max_bytes < 1024 or not 0 < batch.timeout_ms <= 60_000:
        raise ConfigError(
            "block cutting needs max_message_count ≥ 1, preferred_max_bytes ≥ 1024 and 0 < timeout ≤ 60000 ms"
        )
    cfg = NetworkConfig(root=root, channel=channel, endpoint=endpoint, batch=batch)
    cfg.hospitals = [OrgConfig(h, msp_id_for(h)) for h in hospitals]
    for org in [*cfg.hospitals, cfg.orderer]:
        _create_org(cfg, org, "orderer" if org is cfg.orderer else "peer", passphrase)
    cfg.save()
    return cfg


def _create_org(cfg: NetworkConfig, org: OrgConfig, node_role: str, passphrase: str | None) -> None:
    """The organisation's CA, its node's identity and its admin's."""
    ca = CertificateAuthority.create(org.msp_id, org.name)
    ca.save(cfg.ca_dir(org.name), passphrase)
    node_ident, node_signer = ca.issue(f"{node_role}0.{org.name}", node_role, dns_names=["localhost"])
    save_credentials(cfg.peer_dir(org.name), node_ident, node_signer, passphrase)
    admin_ident, admin_signer = ca.issue(
        f"admin@{org.name}", "admin", attributes={"role": "hospital_admin", "hf.EnrollmentID": "admin"}
    )
    save_credentials(cfg.user_dir(org.name, "admin"), admin_ident, admin_signer, passphrase)


def add_hospital_config(cfg: NetworkConfig, name: str, passphrase: str | None = None) -> OrgConfig:
    """A new hospital in ``cfg``: its CA, peer and admin identities; ``network.json`` saved."""
    names = parse_hospitals(name)
    if len(names) != 1:
        raise ConfigError("add one hospital at a time")
    name = names[0]
    if any(h.name == name for h in cfg.hospitals):
        raise ConfigError(f"hospital {name!r} is already in the network")
    org = OrgConfig(name, msp_id_for(name))
    _create_org(cfg, org, "peer", passphrase)
    cfg.hospitals.append(org)
    cfg.save()
    return org


__all__ = [
    "BatchConfig",
    "add_hospital_config",
    "ChaincodeDefinition",
    "ConfigError",
    "IdentityError",
    "NetworkConfig",
    "OrgConfig",
    "init_network",
    "msp_id_for",
    "parse_hospitals",
]
