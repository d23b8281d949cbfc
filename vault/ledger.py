"""The vault's seam to the chain: what it needs from the TransportContract, as a protocol.

The vault decides nothing about who may see what — the chain does (steps 5–6). The vault only
asks the chain for a grant, binds the hash of the token it minted for it (step 7), checks the
grant is still live when the token comes back (step 9), and writes what it released or refused
(step 10). Blob digests are anchored through the same seam.

``GrantLedger`` is that seam. Every identifier crossing it is pseudonymous: patient
references are the vault's keyed hash keys, never a CHI; digests, never content.

NOTE — next step: the chain-backed implementation (``ChainGrantLedger``, in this package,
built on ``network``'s Gateway client) maps the methods onto TransportContract transactions:
``get_grant`` -> evaluate GetGrant (status, scope, expiry and the bound token hashes, read from
the committed world state, so that a revocation is seen as soon as it commits),
``bind_token`` -> submit BindToken, ``log_access`` -> submit LogAccess, ``log_refusal`` ->
submit LogRefusal (refusals are recorded too), ``anchor_blob`` -> submit AnchorBlob; each
raises when the transaction is refused. ``log_access`` sits on the read path: waiting for the
orderer's acceptance (Submit) keeps a read within its 20 ms budget; the commit status can be
confirmed asynchronously. Until then, only tests (and the benchmark) use in-memory ledgers.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .refusals import RefusalSummary

GRANT_ACTIVE = "active"
GRANT_REVOKED = "revoked"
GRANT_EXPIRED = "expired"


@dataclass(frozen=True)
class Grant:
    """A grant as the chain records it (TransportContract, step 6).

    ``patient`` is the vault's patient reference; ``sections`` the record sections granted;
    ``token_hashes`` the SHA-256 hashes of the tokens bound to this grant (step 7).
    """

    grant_id: str
    requester_id: str
    patient: str
    sections: frozenset[str]
    purpose: str
    expires_at: _dt.datetime
    status: str = GRANT_ACTIVE
    token_hashes: frozenset[str] = field(default_factory=frozenset)

    def is_live(self, now: _dt.datetime) -> bool:
        return self.status == GRANT_ACTIVE and now < self.expires_at


@dataclass(frozen=True)
class Refusal:
    """A refused token presentation, for the chain's access log (refusals are recorded too)."""

    reason: str  # the error's stable type slug, e.g. "grant-revoked"
    detail: str
    presenter_id: str
    token_hash: str
    grant_id: str | None  # as claimed by the token; unverified when the signature failed
    at: _dt.datetime


@dataclass(frozen=True)
class BlobAnchor:
    """What the chain keeps of a blob: its digest and address, never its content or its owner's name."""

    blob_id: str
    patient: str
    section: str
    sha256: str  # of the encrypted bytes, as stored
    store: str
    address: str
    size: int
    at: _dt.datetime


class LedgerRefusal(Exception):
    """The chain refused a release (:meth:`AtomicGrantLedger.release`) or a token binding:
    ``reason`` is the stable slug (``grant-revoked``, ``grant-expired``, ``grant-not-live``,
    ``token-not-bound``, ``token-grant-mismatch``, ``grant-not-found``, ``grant-token-limit``)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@runtime_checkable
class GrantLedger(Protocol):
    """What the vault needs from the chain. Implementations raise on failure; the vault then
    releases nothing (fail closed) and reports ``LedgerUnavailable``."""

    def get_grant(self, grant_id: str) -> Grant | None:
        """The grant as the chain holds it now, or None when the chain has no such grant."""
        ...

    def bind_token(self, grant_id: str, token_hash: str) -> None:
        """Record the hash of a token minted for a grant (step 7)."""
        ...

    def log_access(self, grant_id: str, token_hash: str, sections_returned: Sequence[str], digest: str) -> None:
        """Record a release (step 10): which sections went out and the SHA-256 of what was returned."""
        ...

    def log_refusal(self, refusal: Refusal) -> None:
        """Record a refused presentation (tampered, expired, wrong presenter, grant not live…)."""
        ...

    def log_refusal_summary(self, summary: RefusalSummary) -> None:
        """Record, as one entry, the refusals of one presenter in one interval beyond those
        recorded one by one (:mod:`vault.refusals`)."""
        ...

    def anchor_blob(self, anchor: BlobAnchor) -> None:
        """Anchor a blob's digest on chain."""
        ...


@runtime_checkable
class AtomicGrantLedger(GrantLedger, Protocol):
    """A ledger that checks and logs a release in one transaction (the chain's ReleaseAccess): the
    grant is live and the token bound at the moment the access is recorded, with no window between
    a check and its log, and one round trip instead of two."""

    def release(self, grant_id: str, token_hash: str, sections_returned: Sequence[str], digest: str) -> None:
        """Record the release, or raise :class:`LedgerRefusal` (nothing recorded)."""
        ...
