"""The chaincode stub: what a contract may ask of the ledger while it runs.

Both engines implement :class:`ChaincodeStub`: the embedded node's transaction simulator
(reads and writes recorded into a Fabric read-write set) and the chaincode-as-a-service shim
that speaks Fabric's chaincode protocol to a real peer. Semantics follow Fabric's shim:

- reads see the committed state, not the transaction's own writes;
- range queries return keys in ``[start, end)`` in byte order; an empty ``end`` means "to the end";
- composite keys are ``\\x00`` + object type + ``\\x00`` + each attribute + ``\\x00``;
- paginated queries are for read-only transactions (a transaction that writes and used one fails).
"""

from __future__ import annotations

import abc
import datetime as _dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

COMPOSITE_NS = "\x00"
MIN_RUNE = "\x00"
MAX_RUNE = "\U0010ffff"
FABRIC_ATTRS_OID = x509.ObjectIdentifier("1.2.3.4.5.6.7.8.1")


class StubError(Exception):
    """A misuse of the stub (bad key, paginated query in a writing transaction, …)."""


# --------------------------------------------------------------------------- composite keys


def _check_part(part: str, what: str) -> None:
    if not isinstance(part, str):
        raise StubError(f"{what} must be a string")
    if MIN_RUNE in part or MAX_RUNE in part:
        raise StubError(f"{what} must not contain U+0000 or U+10FFFF")


def create_composite_key(object_type: str, attributes: list[str] | tuple[str, ...]) -> str:
    _check_part(object_type, "object type")
    if not object_type:
        raise StubError("object type must not be empty")
    key = COMPOSITE_NS + object_type + MIN_RUNE
    for a in attributes:
        _check_part(a, "composite key attribute")
        key += a + MIN_RUNE
    return key


def split_composite_key(key: str) -> tuple[str, list[str]]:
    if not key.startswith(COMPOSITE_NS):
        raise StubError("not a composite key")
    parts = key[1:].split(MIN_RUNE)
    return parts[0], parts[1:-1]


def validate_simple_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise StubError("key must be a non-empty string")
    if key.startswith(COMPOSITE_NS):
        raise StubError("simple keys must not start with U+0000 (reserved for composite keys)")


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes


@dataclass(frozen=True)
class KeyModification:
    tx_id: str
    value: bytes
    timestamp: _dt.datetime
    is_delete: bool


@dataclass(frozen=True)
class QueryPage:
    """One page of a paginated query: the records and the bookmark to fetch the next page
    (empty when there is none)."""

    records: list[KV]
    fetched_records_count: int
    bookmark: str


# --------------------------------------------------------------------------- client identity

NODE_ROLES = ("client", "peer", "orderer", "admin")


def certificate_attributes(cert: x509.Certificate) -> dict[str, str]:
    """Application attributes in the Fabric CA extension (JSON ``{"attrs": {...}}``)."""
    try:
        ext = cert.extensions.get_extension_for_oid(FABRIC_ATTRS_OID)
        data = json.loads(ext.value.value)  # type: ignore[attr-defined]
    except (x509.ExtensionNotFound, ValueError, AttributeError):
        return {}
    attrs = data.get("attrs", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in attrs.items()}


def certificate_node_role(cert: x509.Certificate) -> str | None:
    """Fabric NodeOU role (client, peer, orderer, admin) from the subject's OUs."""
    for ou in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME):
        if str(ou.value) in NODE_ROLES:
            return str(ou.value)
    return None


def certificate_common_name(cert: x509.Certificate) -> str:
    vals = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(vals[0].value) if vals else ""


def certificate_id(cert: x509.Certificate) -> str:
    """Fabric's client identity id: ``x509::<subject>::<issuer>``."""
    return f"x509::{cert.subject.rfc4514_string()}::{cert.issuer.rfc4514_string()}"


class ClientIdentity:
    """The transaction creator: MSP id, certificate and helpers for roles and attributes.

    Mirrors Fabric's ``cid`` package: ``get_id()``, ``get_msp_id()``, ``get_attribute_value()``,
    ``assert_attribute_value()``; plus the certificate fingerprint SERUMS binds user ids to."""

    def __init__(self, msp_id: str, cert_pem: bytes):
        self.msp_id = msp_id
        self.cert_pem = cert_pem

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @cached_property
    def attributes(self) -> dict[str, str]:
        return certificate_attributes(self.certificate)

    @cached_property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @cached_property
    def node_role(self) -> str | None:
        return certificate_node_role(self.certificate)

    @property
    def common_name(self) -> str:
        return certificate_common_name(self.certificate)

    def get_id(self) -> str:
        return certificate_id(self.certificate)

    def get_msp_id(self) -> str:
        return self.msp_id

    def get_attribute_value(self, name: str) -> str | None:
        return self.attributes.get(name)

    def assert_attribute_value(self, name: str, value: str) -> bool:
        return self.attributes.get(name) == value


# --------------------------------------------------------------------------- the stub


class ChaincodeStub(abc.ABC):
    """What a running transaction can see and do. See the module docstring for semantics."""

    # -- transaction context
    @abc.abstractmethod
    def get_args(self) -> list[bytes]: ...

    @abc.abstractmethod
    def get_tx_id(self) -> str: ...

    @abc.abstractmethod
    def get_channel_id(self) -> str: ...

    @abc.abstractmethod
    def get_tx_timestamp(self) -> _dt.datetime:
        """The client's timestamp from the proposal's channel header (UTC): the same on every
        endorser, so contracts stay deterministic."""

    @abc.abstractmethod
    def get_creator(self) -> ClientIdentity: ...

    @abc.abstractmethod
    def get_transient(self) -> dict[str, bytes]: ...

    @abc.abstractmethod
    def set_event(self, name: str, payload: bytes) -> None:
        """Set the transaction's chaincode event (one per transaction; a later call replaces it)."""

    # -- state
    @abc.abstractmethod
    def get_state(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    def put_state(self, key: str, value: bytes) -> None: ...

    @abc.abstractmethod
    def del_state(self, key: str) -> None: ...

    @abc.abstractmethod
    def get_state_by_range(self, start_key: str, end_key: str) -> Iterator[KV]: ...

    @abc.abstractmethod
    def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> QueryPage: ...

    @abc.abstractmethod
    def get_history_for_key(self, key: str) -> Iterator[KeyModification]:
        """Every committed modification of ``key``, oldest first."""

    # -- composite keys (shared implementation)
    def create_composite_key(self, object_type: str, attributes: list[str] | tuple[str, ...]) -> str:
        return create_composite_key(object_type, attributes)

    def split_composite_key(self, key: str) -> tuple[str, list[str]]:
        return split_composite_key(key)

    def get_state_by_partial_composite_key(self, object_type: str, attributes: list[str]) -> Iterator[KV]:
        start = create_composite_key(object_type, attributes)
        return self.get_state_by_range(start, start + MAX_RUNE)

    def get_state_by_partial_composite_key_with_pagination(
        self, object_type: str, attributes: list[str], page_size: int, bookmark: str = ""
    ) -> QueryPage:
        start = create_composite_key(object_type, attributes)
        return self.get_state_by_range_with_pagination(start, start + MAX_RUNE, page_size, bookmark)

    # -- conveniences
    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        args = self.get_args()
        if not args:
            return "", []
        return args[0].decode(), [a.decode() for a in args[1:]]
