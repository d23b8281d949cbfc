"""What every SERUMS contract shares: the transaction context, the caller, authorization checks,
JSON records, the audit index and events.

Who is calling is decided by the caller's certificate only:

- a **hospital admin** of MSP ``M`` is a certificate of ``M`` whose node role is ``admin`` or whose
  Fabric-CA attribute ``role`` is ``hospital_admin``; if that certificate is also bound to a
  registered user, the user must be active and registered as ``hospital_admin`` of ``M``;
- a **user** is the registered user whose certificate fingerprint (SHA-256 of the DER
  certificate) matches the caller's, of the same MSP. When the certificate carries the
  attributes ``uid`` or ``role`` they must agree with the registration;
- **auditors** are active users with role ``auditor``; **service identities** (the vault, the
  analytics service) are users with role ``vault`` / ``analytics``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Callable
from functools import cached_property
from typing import Any

from chaincode import ChaincodeStub, ClientIdentity, Context, Contract, Forbidden, NotFound

from . import keys
from .vocab import ID_RE, compact_time, fmt_time

ACTIVE = "active"
SUSPENDED = "suspended"


def a_role(role: str) -> str:
    """``a gp``, ``an auditor``, ``an insurer``: a role after its article, for messages."""
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


def dumps(doc: Any) -> bytes:
    """Compact JSON; key order is the (deterministic) insertion order, the same on every endorser."""
    return json.dumps(doc, separators=(",", ":")).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# What a certificate says is a pure function of its bytes: parse each certificate once per process.
_CERT_FACTS: dict[bytes, tuple[str, str | None, dict[str, str]]] = {}
_CERT_FACTS_MAX = 4096

# Parsed forms of records that many transactions read (a hospital's rules), keyed by the exact
# bytes read: a pure function of the committed value, so every endorser computes the same.
_PARSED: dict[tuple[str, bytes], Any] = {}
_PARSED_MAX = 256


def _cert_facts(ident: ClientIdentity) -> tuple[str, str | None, dict[str, str]]:
    facts = _CERT_FACTS.get(ident.cert_pem)
    if facts is None:
        facts = (ident.fingerprint, ident.node_role, dict(ident.attributes))
        if len(_CERT_FACTS) >= _CERT_FACTS_MAX:
            _CERT_FACTS.clear()
        _CERT_FACTS[ident.cert_pem] = facts
    return facts


class Caller:
    """The transaction's creator as SERUMS sees it."""

    def __init__(self, ctx: SerumsContext):
        ident = ctx.client_identity
        self._ctx = ctx
        self.msp = ident.get_msp_id()
        self.fingerprint, self.node_role, self.attrs = _cert_facts(ident)

    @property
    def admin_claim(self) -> bool:
        return self.node_role == "admin" or self.attrs.get("role") == "hospital_admin"

    @cached_property
    def user(self) -> dict | None:
        """The registered user bound to this certificate, or None. A certificate whose ``uid``
        attribute names its user is found in one read; otherwise through the fingerprint index."""
        claimed = self.attrs.get("uid")
        if claimed and ID_RE.match(claimed):
            doc = self._ctx.get(keys.user(claimed))
            if doc is not None and doc["fingerprint"] == self.fingerprint and doc["hospital"] == self.msp:
                return doc
        uid = self._ctx.get_raw(keys.fingerprint(self.msp, self.fingerprint))
        if uid is None:
            return None
        doc = self._ctx.get(keys.user(uid.decode()))
        if doc is None or doc.get("fingerprint") != self.fingerprint or doc.get("hospital") != self.msp:
            return None
        return doc

    @property
    def mismatch(self) -> str | None:
        """Why the certificate's own attributes contradict the registration, if they do."""
        u = self.user
        if u is None:
            return None
        if "uid" in self.attrs and self.attrs["uid"] != u["id"]:
            return f"the certificate's uid attribute ({self.attrs['uid']}) is not the registered user {u['id']}"
        if "role" in self.attrs and self.attrs["role"] != u["role"]:
            return f"the certificate's role attribute ({self.attrs['role']}) is not the registered role {u['role']}"
        return None

    def is_admin_of(self, msp: str) -> bool:
        if self.msp != msp or not self.admin_claim:
            return False
        u = self.user
        if u is None:
            return True
        return u["status"] == ACTIVE and u["role"] == "hospital_admin" and self.mismatch is None

    @property
    def is_admin(self) -> bool:
        return self.is_admin_of(self.msp)

    def active_user(self) -> dict | None:
        u = self.user
        if u is None or u["status"] != ACTIVE or self.mismatch is not None:
            return None
        return u

    def has_role(self, *roles: str) -> bool:
        u = self.active_user()
        return u is not None and u["role"] in roles

    @property
    def is_auditor(self) -> bool:
        return self.has_role("auditor")

    @property
    def label(self) -> str:
        """How the ledger names this caller: the user id, or ``admin:<msp>:<fingerprint prefix>``
        for a hospital admin that is not a registered user."""
        u = self.user
        if u is not None:
            return u["id"]
        return f"admin:{self.msp}:{self.fingerprint[:16]}"

    def require_user(self, *roles: str, allow_suspended: bool = False) -> dict:
        """The caller's registered user, active (unless ``allow_suspended``) and of one of ``roles``."""
        u = self.user
        if u is None:
            who = f"only {' or '.join(roles)} users may do this: " if roles else ""
            raise Forbidden(
                f"{who}the caller's certificate ({self.msp}, fingerprint {self.fingerprint[:16]}…) is not bound to a "
                "registered user; a hospital admin must register it first"
            )
        if self.mismatch is not None:
            raise Forbidden(self.mismatch)
        if u["status"] != ACTIVE and not allow_suspended:
            raise Forbidden(f"user {u['id']} is suspended")
        if roles and u["role"] not in roles:
            raise Forbidden(f"this function is for {' or '.join(roles)} users; user {u['id']} is {a_role(u['role'])}")
        return u

    def forbid(self, message: str) -> Forbidden:
        """A Forbidden error that also says when the caller's own registration is the obstacle."""
        u = self.user
        if u is not None and u["status"] != ACTIVE:
            message += f" (and the caller, user {u['id']}, is suspended)"
        elif self.mismatch is not None:
            message += f" (and {self.mismatch})"
        return Forbidden(message)

    def require_admin_of(self, msp: str) -> None:
        if not self.is_admin_of(msp):
            if self.msp != msp:
                raise self.forbid(f"only an admin of {msp} may do this; the caller belongs to {self.msp}")
            raise self.forbid(f"only a hospital admin of {msp} may do this (node role admin or role=hospital_admin, active)")


class SerumsContext(Context):
    """The context of one invocation: the stub, the caller, the transaction's time, and a cache of
    the records read (reads see committed state, so a record read twice is the same record)."""

    def __init__(self, stub: ChaincodeStub):
        super().__init__(stub)
        self._docs: dict[str, Any] = {}
        self.event_sent: str | None = None

    @cached_property
    def now(self) -> _dt.datetime:
        return self.stub.get_tx_timestamp().astimezone(_dt.UTC)

    @cached_property
    def now_s(self) -> str:
        return fmt_time(self.now)

    @cached_property
    def tx_id(self) -> str:
        return self.stub.get_tx_id()

    @cached_property
    def rid(self) -> str:
        """The id of the record this transaction creates (request/grant, access, refusal,
        cohort): its time, then the transaction id — unique, and in time order."""
        return f"{compact_time(self.now)}-{self.tx_id[:32]}"

    @cached_property
    def caller(self) -> Caller:
        return Caller(self)

    # -- records
    def get_raw(self, key: str) -> bytes | None:
        return self.stub.get_state(key)

    def get(self, key: str) -> Any:
        """The JSON record at ``key`` (committed state), or None. The returned object is cached:
        a caller that changes it must :meth:`put` it."""
        if key not in self._docs:
            raw = self.stub.get_state(key)
            self._docs[key] = None if raw is None else json.loads(raw)
        return self._docs[key]

    def get_parsed(self, key: str, build: Callable[[Any], Any]) -> Any:
        """``build(record)`` for the record at ``key`` (None when absent), memoised per process
        on the exact committed bytes. The result is shared: never change it."""
        raw = self.stub.get_state(key)
        if raw is None:
            return build(None)
        hit = _PARSED.get((key, raw))
        if hit is None:
            hit = build(json.loads(raw))
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[(key, raw)] = hit
        return hit

    def put(self, key: str, doc: Any) -> None:
        self._docs[key] = doc
        self.stub.put_state(key, dumps(doc))

    def put_raw(self, key: str, value: bytes) -> None:
        self._docs.pop(key, None)
        self.stub.put_state(key, value)

    def event(self, name: str, payload: dict) -> None:
        """The transaction's chaincode event (Fabric keeps one per transaction)."""
        self.event_sent = name
        self.stub.set_event(name, dumps(payload))

    # -- audit index
    def index(self, kind: str, rid: str, *, patient: str | None = None, user: str | None = None,
              extra: dict | None = None, patients: list[str] = (), by_time: bool = False) -> None:
        """Record ``rid`` of ``kind`` in the audit indexes by patient(s) and by user (and by time
        when the record's own key is not in time order). The key holds kind, time and id; the
        value only what filters need (``extra``)."""
        value = dumps(extra or {})
        for p in [patient, *patients] if patient else patients:
            self.stub.put_state(keys.audit_patient(p, kind, self.now_s, rid), value)
        if user:
            self.stub.put_state(keys.audit_user(user, kind, self.now_s, rid), value)
        if by_time:
            self.stub.put_state(keys.audit_time(kind, self.now_s, rid), value)


def index_entry(stub: ChaincodeStub, key: str, value: bytes) -> dict:
    """An audit index entry as a dict: kind, id, time and the stored extras."""
    _, attrs = stub.split_composite_key(key)
    kind, at, rid = attrs[-3:]
    return {"kind": kind, "id": rid, "at": at, **json.loads(value)}


class SerumsContract(Contract):
    """Base of the SERUMS contracts: gives every function a :class:`SerumsContext`."""

    def create_context(self, stub: ChaincodeStub) -> SerumsContext:
        return SerumsContext(stub)


# --------------------------------------------------------------------------- shared lookups


def load_hospital(ctx: SerumsContext, msp: str, field: str = "hospital") -> dict:
    doc = ctx.get(keys.hospital(msp))
    if doc is None:
        raise NotFound(f"{field}: hospital {msp} is not registered (its admin calls UserContract:RegisterHospital)")
    return doc


def load_user(ctx: SerumsContext, uid: str, field: str = "user_id") -> dict:
    doc = ctx.get(keys.user(uid))
    if doc is None:
        raise NotFound(f"{field}: no user {uid!r}")
    return doc


def load_patient(ctx: SerumsContext, uid: str, field: str = "patient") -> dict:
    doc = load_user(ctx, uid, field)
    if doc["role"] != "patient":
        raise NotFound(f"{field}: {uid!r} is not a patient")
    return doc


def require_patient_reader(ctx: SerumsContext, patient: dict) -> None:
    """The patient themself, an auditor, or an admin of the patient's hospital."""
    c = ctx.caller
    u = c.active_user()
    if u is not None and (u["id"] == patient["id"] or u["role"] == "auditor"):
        return
    if c.is_admin_of(patient["hospital"]):
        return
    raise ctx.caller.forbid(f"only patient {patient['id']}, an auditor or an admin of {patient['hospital']} may read this")


def require_user_reader(ctx: SerumsContext, user: dict) -> None:
    """The user themself, an auditor, or an admin of the user's hospital."""
    c = ctx.caller
    u = c.active_user()
    if u is not None and (u["id"] == user["id"] or u["role"] == "auditor"):
        return
    if c.is_admin_of(user["hospital"]):
        return
    raise ctx.caller.forbid(f"only user {user['id']}, an auditor or an admin of {user['hospital']} may read this")


def require_auditor(ctx: SerumsContext) -> None:
    if not ctx.caller.is_auditor:
        raise ctx.caller.forbid("only auditors may run this query")


def public_user(doc: dict) -> dict:
    return {k: doc[k] for k in ("id", "role", "hospital", "status", "fingerprint", "registered_at", "updated_at",
                                "version", "suspended_at", "suspend_reason") if k in doc}
