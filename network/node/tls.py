"""TLS for the embedded node, from the network's TLS CAs (one per organisation, as Fabric has)::

    orgs/<org>/tlsca/                   the organisation's TLS CA (ca.pem, ca.key 0600)
    orgs/<orderer org>/node/tls/        the node's server certificate: server.crt, server.key, ca.crt
    orgs/<org>/users/<user>/tls/        a user's client certificate for mutual TLS (same file names)

The node's certificate is issued by the ordering organisation's TLS CA for localhost and 127.0.0.1
(the node serves loopback); it is also the Raft consenter certificate in the channel configuration.
With mutual TLS the node accepts client certificates of every organisation's TLS CA, as a Fabric
peer accepts those of its channels' MSPs (read again when a hospital joins: no restart).

Clients take their side from :func:`client_tls_options` (``SERUMS_NODE_TLS``: off, on, mutual).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import NetworkConfig
from ..fabric.crypto import load_or_create_tlsca, write_tls
from ..identity import CertificateAuthority


@dataclass(frozen=True)
class TLSFiles:
    """A TLS key pair and the root certificate of the CA that issued it."""

    directory: Path

    @property
    def cert(self) -> bytes:
        return (self.directory / "server.crt").read_bytes()

    @property
    def key(self) -> bytes:
        return (self.directory / "server.key").read_bytes()

    @property
    def ca(self) -> bytes:
        return (self.directory / "ca.crt").read_bytes()


def tls_cas(cfg: NetworkConfig) -> dict[str, CertificateAuthority]:
    """Every organisation's TLS CA by MSP id (made on first use)."""
    return {o.msp_id: load_or_create_tlsca(cfg.org_dir(o.name) / "tlsca", o.msp_id, o.name)
            for o in [*cfg.hospitals, cfg.orderer]}


def _issued(directory: Path, ca: CertificateAuthority, common_name: str, role: str) -> TLSFiles:
    if not (directory / "server.key").exists():
        write_tls(directory, ca, common_name, role)
    return TLSFiles(directory)


def node_tls(cfg: NetworkConfig) -> TLSFiles:
    """The node's TLS server certificate (made on first use)."""
    ca = tls_cas(cfg)[cfg.orderer.msp_id]
    return _issued(cfg.org_dir(cfg.orderer.name) / "node" / "tls", ca, f"node.{cfg.orderer.name}", "orderer")


def client_tls(cfg: NetworkConfig, org: str, user: str = "admin") -> TLSFiles:
    """A user's TLS client certificate from their organisation's TLS CA (made on first use)."""
    o = cfg.org(org)
    ca = tls_cas(cfg)[o.msp_id]
    return _issued(cfg.user_dir(o.name, user) / "tls", ca, f"{user}.{o.name}", "client")


def client_root_certs(cfg: NetworkConfig) -> bytes:
    """The TLS CAs whose client certificates the node accepts (PEM bundle)."""
    from cryptography.hazmat.primitives import serialization

    return b"".join(ca.certificate.public_bytes(serialization.Encoding.PEM) for ca in tls_cas(cfg).values())


#: ``SERUMS_NODE_TLS``: plaintext, TLS, or TLS with client certificates (mutual)
NODE_TLS_MODES = ("off", "on", "mutual")


def client_tls_options(cfg: NetworkConfig, mode: str = "off", ca_file: str | Path | None = None,
                       org: str | None = None) -> dict[str, bytes]:
    """What a client passes to :func:`network.connect` to reach a node served with ``mode``:
    nothing (``off`` without ``ca_file``: plaintext); the CA to trust — ``ca_file``, else the
    node's own TLS CA (``on``); and, for ``mutual``, the client certificate of ``org``'s admin
    (default the first hospital) from that organisation's TLS CA."""
    if mode not in NODE_TLS_MODES:
        raise ValueError(f"node TLS must be one of {', '.join(NODE_TLS_MODES)}, not {mode!r}")
    if mode == "off" and not ca_file:
        return {}
    opts = {"tls_root_certs": Path(ca_file).read_bytes() if ca_file else node_tls(cfg).ca}
    if mode == "mutual":
        mine = client_tls(cfg, org or cfg.hospitals[0].name)
        opts.update(tls_client_cert=mine.cert, tls_client_key=mine.key)
    return opts


def channel_credentials(options: dict[str, bytes]):
    """gRPC channel credentials from :func:`client_tls_options` (None: plaintext)."""
    import grpc

    if not options:
        return None
    return grpc.ssl_channel_credentials(options["tls_root_certs"], private_key=options.get("tls_client_key"),
                                        certificate_chain=options.get("tls_client_cert"))
