"""Fabric MSP folders made from the hospitals' own CAs (``network init``), plus one TLS CA each.

For every organisation (each hospital and the ordering organisation)::

    orgs/<org>/msp/               the organisation's MSP for the channel: cacerts, tlscacerts, NodeOUs
    orgs/<org>/tlsca/             its TLS CA (ca.pem, ca.key 0600)
    orgs/<org>/<node>/msp/        the node's local MSP (peer0 or orderer0): signcerts, keystore
    orgs/<org>/<node>/tls/        the node's TLS server certificate (127.0.0.1, localhost and the
                                  organisation's host when it has one), key, ca.crt
    orgs/<org>/admin/msp/ , tls/  the organisation admin's MSP (OU admin) and TLS client certificate
    orgs/<org>/chaincode/tls/     the hospital's chaincode server certificate (TLS CA of the hospital)

Identities are the ones ``network init`` issued (the node role as a NodeOU, the SERUMS attributes in
the Fabric CA extension), so the rest of SERUMS signs with the same keys on both engines. Fabric
reads unencrypted PKCS#8 keys only: keys are written 0600.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization

from ..config import NetworkConfig
from ..identity import CertificateAuthority, Identity, Signer, write_private_file
from .configs import LOOPBACK


def tls_hosts(host: str | None = None) -> dict[str, list[str]]:
    """The subject alternative names of a node's TLS certificate: 127.0.0.1 and localhost, and
    ``host`` (an IP address or a DNS name) where other machines reach it."""
    names = {"dns_names": ["localhost"], "ip_addresses": [LOOPBACK]}
    if host and host not in ("localhost", LOOPBACK):
        try:
            names["ip_addresses"].append(str(ipaddress.ip_address(host)))
        except ValueError:
            names["dns_names"].append(host)
    return names


def _pem(ca: CertificateAuthority) -> bytes:
    return ca.certificate.public_bytes(serialization.Encoding.PEM)


def node_ous() -> dict:
    def ou(name: str) -> dict:
        return {"Certificate": "cacerts/ca.pem", "OrganizationalUnitIdentifier": name}

    return {"NodeOUs": {"Enable": True, "ClientOUIdentifier": ou("client"), "PeerOUIdentifier": ou("peer"),
                        "AdminOUIdentifier": ou("admin"), "OrdererOUIdentifier": ou("orderer")}}


def write_msp(directory: Path, ca_pem: bytes, tlsca_pem: bytes, identity: Identity | None = None,
              signer: Signer | None = None) -> Path:
    """An MSP folder: CA and TLS CA certificates, NodeOUs, and a signing identity when given."""
    for sub, pem in (("cacerts/ca.pem", ca_pem), ("tlscacerts/tlsca.pem", tlsca_pem)):
        (directory / sub).parent.mkdir(parents=True, exist_ok=True)
        (directory / sub).write_bytes(pem)
    (directory / "config.yaml").write_text(yaml.safe_dump(node_ous(), sort_keys=False))
    if identity is not None:
        (directory / "signcerts").mkdir(parents=True, exist_ok=True)
        (directory / "signcerts" / "cert.pem").write_bytes(identity.pem)
    if signer is not None:
        write_private_file(directory / "keystore" / "priv_sk", signer.private_key_pem())
    return directory


def write_tls(directory: Path, tlsca: CertificateAuthority, common_name: str, role: str,
              host: str | None = None) -> Path:
    """A TLS key pair from ``tlsca`` valid for 127.0.0.1, localhost and ``host``: server.crt,
    server.key, ca.crt."""
    ident, signer = tlsca.issue(common_name, role, **tls_hosts(host))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "server.crt").write_bytes(ident.pem)
    (directory / "ca.crt").write_bytes(_pem(tlsca))
    assert signer is not None
    write_private_file(directory / "server.key", signer.private_key_pem())
    return directory


def load_or_create_tlsca(directory: Path, msp_id: str, org: str) -> CertificateAuthority:
    if (directory / "ca.pem").exists():
        return CertificateAuthority.load(directory)
    ca = CertificateAuthority.create(msp_id, org, common_name=f"tlsca.{org}")
    ca.save(directory)
    return ca


def org_material(cfg: NetworkConfig, root: Path, org: str, passphrase: str | None = None,
                 host: str | None = None) -> None:
    """Write (or complete) the Fabric material of one organisation under ``root/orgs/<org>``; its
    node's and chaincode server's TLS certificates also name ``host``."""
    o = cfg.org(org)
    base = root / "orgs" / org
    ca = cfg.load_ca(org, passphrase)
    tlsca = load_or_create_tlsca(base / "tlsca", o.msp_id, org)
    ca_pem, tlsca_pem = _pem(ca), _pem(tlsca)
    write_msp(base / "msp", ca_pem, tlsca_pem)
    is_orderer = org == cfg.orderer.name
    node = "orderer0" if is_orderer else "peer0"
    if not (base / node / "msp" / "keystore" / "priv_sk").exists():
        ident, signer = cfg.load_peer(org, passphrase)
        write_msp(base / node / "msp", ca_pem, tlsca_pem, ident, signer)
        write_tls(base / node / "tls", tlsca, f"{node}.{org}", "orderer" if is_orderer else "peer", host)
    if not (base / "admin" / "msp" / "keystore" / "priv_sk").exists():
        ident, signer = cfg.load_user(org, "admin", passphrase)
        write_msp(base / "admin" / "msp", ca_pem, tlsca_pem, ident, signer)
        write_tls(base / "admin" / "tls", tlsca, f"admin.{org}", "client")
    if not is_orderer and not (base / "chaincode" / "tls" / "server.key").exists():
        write_tls(base / "chaincode" / "tls", tlsca, f"chaincode.{org}", "peer", host)
