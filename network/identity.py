"""Identities, certificate authorities, MSPs and signatures, the way Fabric sees them.

Every hospital is an organisation with its own certificate authority (ECDSA P-256, X.509) and
MSP id. Certificates carry the node role as an organisational unit (Fabric's NodeOUs: client,
peer, orderer, admin) and application attributes (the SERUMS role, the pseudonymous user id…)
in the Fabric CA attribute extension, so that certificates issued here and by a real Fabric CA
read the same way.

Signatures are ECDSA over SHA-256, DER encoded and low-S normalised: Fabric rejects high-S
signatures, and so do we.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID
from fabric_protos.msp import identities_pb2

# Certificates read the same on both sides of the chaincode boundary.
from chaincode import (
    FABRIC_ATTRS_OID,
    NODE_ROLES,
    certificate_attributes,
    certificate_common_name,
    certificate_id,
    certificate_node_role,
)

# Order of the P-256 group: a signature (r, s) with s > n/2 is "high-S" and Fabric refuses it.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER = P256_ORDER >> 1



class IdentityError(Exception):
    """An identity, certificate or key that cannot be used (unknown CA, bad format, expired)."""


# --------------------------------------------------------------------------- signatures


def _low_s(signature: bytes) -> bytes:
    r, s = decode_dss_signature(signature)
    if s > _HALF_ORDER:
        s = P256_ORDER - s
        return encode_dss_signature(r, s)
    return signature


def is_low_s(signature: bytes) -> bool:
    try:
        _, s = decode_dss_signature(signature)
    except ValueError:
        return False
    return s <= _HALF_ORDER


# the signature algorithms (immutable: made once, not per signature)
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_ECDSA_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))


def sign_digest(private_key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """Sign a SHA-256 digest; DER, low-S."""
    if len(digest) != 32:
        raise ValueError("digest must be a SHA-256 digest (32 bytes)")
    return _low_s(private_key.sign(digest, _ECDSA_PREHASHED))


def sign(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """Sign a message (hashed with SHA-256); DER, low-S."""
    return _low_s(private_key.sign(message, _ECDSA_SHA256))


def verify(public_key: ec.EllipticCurvePublicKey, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid low-S ECDSA/SHA-256 signature of ``message``."""
    if not is_low_s(signature):
        return False
    try:
        public_key.verify(signature, message, _ECDSA_SHA256)
    except (InvalidSignature, ValueError):
        return False
    return True


class Signer:
    """Holds a private key and signs with it. ``sign_digest`` is what offline signing uses."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey):
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise IdentityError("only ECDSA keys are supported")
        self._key = private_key

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, message: bytes) -> bytes:
        return sign(self._key, message)

    def sign_digest(self, digest: bytes) -> bytes:
        return sign_digest(self._key, digest)

    def __call__(self, digest: bytes) -> bytes:  # fabric-gateway style: a signer signs digests
        return self.sign_digest(digest)

    def private_key_pem(self, passphrase: bytes | str | None = None) -> bytes:
        return private_key_to_pem(self._key, passphrase)

    @classmethod
    def generate(cls) -> Signer:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes, passphrase: bytes | str | None = None) -> Signer:
        return cls(load_private_key(pem, passphrase))


def private_key_to_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | str | None = None) -> bytes:
    if isinstance(passphrase, str):
        passphrase = passphrase.encode()
    enc = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def load_private_key(pem: bytes, passphrase: bytes | str | None = None) -> ec.EllipticCurvePrivateKey:
    if isinstance(passphrase, str):
        passphrase = passphrase.encode()
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError as exc:  # encrypted key without passphrase, or the other way round
        raise IdentityError(f"private key: {exc}") from exc
    except ValueError as exc:
        raise IdentityError("private key: cannot decrypt or parse (wrong passphrase?)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise IdentityError("private key is not an ECDSA key")
    return key


# --------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class Identity:
    """A member of an organisation: its MSP id and X.509 certificate."""

    msp_id: str
    certificate: x509.Certificate
    _pem: bytes = field(default=b"", repr=False, compare=False)

    @cached_property
    def pem(self) -> bytes:
        return self._pem or self.certificate.public_bytes(serialization.Encoding.PEM)

    @cached_property
    def pem_digest(self) -> bytes:
        """SHA-256 of the PEM certificate (computed once): what caches key an identity by."""
        return hashlib.sha256(self.pem).digest()

    @cached_property
    def validity_s(self) -> tuple[float, float]:
        """The certificate's validity window as POSIX seconds (not before, not after)."""
        return self.certificate.not_valid_before_utc.timestamp(), self.certificate.not_valid_after_utc.timestamp()

    @cached_property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.certificate.public_key()  # type: ignore[return-value]

    @cached_property
    def common_name(self) -> str:
        return certificate_common_name(self.certificate)

    @cached_property
    def node_role(self) -> str | None:
        """Fabric NodeOU role: client, peer, orderer or admin."""
        return certificate_node_role(self.certificate)

    @cached_property
    def attributes(self) -> dict[str, str]:
        return certificate_attributes(self.certificate)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, hex: what the chain binds a user id to."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def id(self) -> str:
        """Fabric's client identity id: x509::<subject>::<issuer>."""
        return certificate_id(self.certificate)

    def serialize(self) -> bytes:
        return identities_pb2.SerializedIdentity(mspid=self.msp_id, id_bytes=self.pem).SerializeToString()

    @classmethod
    def from_pem(cls, msp_id: str, pem: bytes) -> Identity:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise IdentityError(f"not a PEM certificate: {exc}") from exc
        return cls(msp_id, cert, pem)

    @classmethod
    def deserialize(cls, data: bytes) -> Identity:
        sid = identities_pb2.SerializedIdentity()
        try:
            sid.ParseFromString(data)
        except Exception as exc:  # protobuf DecodeError
            raise IdentityError("malformed SerializedIdentity") from exc
        if not sid.mspid or not sid.id_bytes:
            raise IdentityError("SerializedIdentity lacks mspid or certificate")
        return cls.from_pem(sid.mspid, sid.id_bytes)


# --------------------------------------------------------------------------- key files


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600), atomically and durably: a
    temporary file of this process and thread, synced, then renamed over ``path``. Concurrent
    writers of one path never share a temporary file; a failed write leaves none behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_credentials(
    directory: Path, identity: Identity, signer: Signer | None, passphrase: bytes | str | None = None
) -> None:
    """Store a certificate (cert.pem) and, if given, its private key (key.pem, 0600) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cert.pem").write_bytes(identity.pem)
    (directory / "mspid").write_text(identity.msp_id)
    if signer is not None:
        write_private_file(directory / "key.pem", signer.private_key_pem(passphrase))


def load_credentials(directory: Path, passphrase: bytes | str | None = None) -> tuple[Identity, Signer]:
    directory = Path(directory)
    try:
        msp_id = (directory / "mspid").read_text().strip()
        identity = Identity.from_pem(msp_id, (directory / "cert.pem").read_bytes())
        signer = Signer.from_pem((directory / "key.pem").read_bytes(), passphrase)
    except FileNotFoundError as exc:
        raise IdentityError(f"no credentials in {directory}: {exc.filename} missing") from exc
    if signer.public_key.public_numbers() != identity.public_key.public_numbers():
        raise IdentityError(f"{directory}: key.pem does not match cert.pem")
    return identity, signer


# --------------------------------------------------------------------------- certificate authority


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class CertificateAuthority:
    """An organisation's CA: a self-signed P-256 root that issues member certificates."""

    def __init__(self, msp_id: str, org_name: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey):
        self.msp_id = msp_id
        self.org_name = org_name
        self.certificate = certificate
        self._key = key

    @classmethod
    def create(
        cls, msp_id: str, org_name: str, *, valid_days: int = 3650, common_name: str | None = None
    ) -> CertificateAuthority:
        """A new root CA; ``common_name`` defaults to ``ca.<org>`` (a TLS CA gets ``tlsca.<org>``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"ca.{org_name}"),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(msp_id, org_name, cert, key)

    @property
    def identity(self) -> Identity:
        return Identity(self.msp_id, self.certificate)

    def issue(
        self,
        common_name: str,
        node_role: str = "client",
        *,
        attributes: dict[str, str] | None = None,
        public_key: ec.EllipticCurvePublicKey | None = None,
        valid_days: int = 825,
        dns_names: list[str] | None = None,
        ip_addresses: list[str] | None = None,
    ) -> tuple[Identity, Signer | None]:
        """Issue a certificate. Without ``public_key`` a key pair is generated and its signer returned;
        with one (a key the holder keeps), only the certificate is returned."""
        if node_role not in NODE_ROLES:
            raise IdentityError(f"node role must be one of {', '.join(NODE_ROLES)}, not {node_role!r}")
        if not common_name:
            raise IdentityError("common name must not be empty")
        signer = None
        if public_key is None:
            signer = Signer.generate()
            public_key = signer.public_key
        now = _now()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.org_name),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, node_role),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if dns_names or ip_addresses:
            import ipaddress

            names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names or ()]
            names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses or ()]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if attributes:
            payload = json.dumps({"attrs": {str(k): str(v) for k, v in attributes.items()}}, sort_keys=True)
            builder = builder.add_extension(
                x509.UnrecognizedExtension(FABRIC_ATTRS_OID, payload.encode()), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        return Identity(self.msp_id, cert), signer

    # -- persistence
    def save(self, directory: Path, passphrase: bytes | str | None = None) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.pem").write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        (directory / "org.json").write_text(json.dumps({"msp_id": self.msp_id, "org_name": self.org_name}))
        write_private_file(directory / "ca.key", private_key_to_pem(self._key, passphrase))

    @classmethod
    def load(cls, directory: Path, passphrase: bytes | str | None = None) -> CertificateAuthority:
        directory = Path(directory)
        try:
            meta = json.loads((directory / "org.json").read_text())
            cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
            key = load_private_key((directory / "ca.key").read_bytes(), passphrase)
        except FileNotFoundError as exc:
            raise IdentityError(f"no CA in {directory}: {exc.filename} missing") from exc
        return cls(meta["msp_id"], meta["org_name"], cert, key)


# --------------------------------------------------------------------------- MSP


class MSP:
    """Membership service provider of one organisation: which certificates belong to it."""

    def __init__(self, msp_id: str, root_certs: list[x509.Certificate]):
        if not root_certs:
            raise IdentityError(f"MSP {msp_id} has no root certificate")
        self.msp_id = msp_id
        self.root_certs = list(root_certs)

    def validate(self, identity: Identity, at: _dt.datetime | None = None) -> None:
        """Raise IdentityError unless ``identity`` was issued by one of this MSP's roots and is valid now."""
        if identity.msp_id != self.msp_id:
            raise IdentityError(f"identity belongs to {identity.msp_id}, not {self.msp_id}")
        cert = identity.certificate
        at = at or _now()
        if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
            raise IdentityError(f"certificate of {identity.common_name!r} is not valid at {at.isoformat()}")
        for root in self.root_certs:
            if cert.issuer != root.subject:
                continue
            try:
                cert.verify_directly_issued_by(root)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return
        raise IdentityError(f"certificate of {identity.common_name!r} was not issued by a CA of {self.msp_id}")

    def satisfies(self, identity: Identity, role: str) -> bool:
        """Fabric MSPPrincipal roles: member, client, peer, orderer, admin."""
        if identity.msp_id != self.msp_id:
            return False
        if role == "member":
            return True
        return identity.node_role == role


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
