"""Identities, Fabric protocol messages, the Gateway client and the embedded ledger node."""

from . import protocol
from .client import (
    ChaincodeEvent,
    Checkpointer,
    Commit,
    CommitError,
    CommitStatusError,
    Contract,
    EndorseError,
    FileCheckpointer,
    Gateway,
    GatewayError,
    InMemoryCheckpointer,
    Status,
    SubmitError,
    connect,
)
from .config import (
    BatchConfig,
    ChaincodeDefinition,
    ConfigError,
    NetworkConfig,
    OrgConfig,
    init_network,
    msp_id_for,
    parse_hospitals,
)
from .identity import (
    MSP,
    CertificateAuthority,
    Identity,
    IdentityError,
    Signer,
    is_low_s,
    load_credentials,
    save_credentials,
    sign,
    sign_digest,
    verify,
    write_private_file,
)
from .node.tls import NODE_TLS_MODES, channel_credentials, client_tls_options
from .policy import PolicyError, parse_policy

__all__ = [
    "NODE_TLS_MODES",
    "channel_credentials",
    "client_tls_options",
    "ChaincodeEvent",
    "Checkpointer",
    "Commit",
    "CommitError",
    "CommitStatusError",
    "Contract",
    "EndorseError",
    "FileCheckpointer",
    "Gateway",
    "GatewayError",
    "InMemoryCheckpointer",
    "Status",
    "SubmitError",
    "connect",
    "protocol",
    "PolicyError",
    "parse_policy",
    "verify_ledger",
    "MSP",
    "BatchConfig",
    "CertificateAuthority",
    "ChaincodeDefinition",
    "ConfigError",
    "Identity",
    "IdentityError",
    "NetworkConfig",
    "OrgConfig",
    "Signer",
    "init_network",
    "is_low_s",
    "load_credentials",
    "msp_id_for",
    "parse_hospitals",
    "save_credentials",
    "sign",
    "sign_digest",
    "verify",
    "write_private_file",
]


def verify_ledger(cfg, ledger_dir=None):
    """Re-check every peer's chain and state from its blocks (``serums ledger verify``)."""
    from .audit import verify_ledger as _verify

    return _verify(cfg, ledger_dir)
