"""Identities, Fabric protocol messages, the Gateway client and the embedded ledger node."""

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

__all__ = [
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
