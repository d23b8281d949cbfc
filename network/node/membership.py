"""The channel's members as the node sees them: MSPs, identity checks and signature checks.

Deserialising and chain-validating a certificate, and verifying an ECDSA signature, are the
costliest steps of endorsement and validation. Both are pure functions of their inputs (plus the
clock, for certificate validity), so results are cached: an identity by its serialized bytes
(validity re-checked against the clock on every use), a signature check by the SHA-256 of
(certificate, message, signature). Only successful checks are cached. Every peer of the embedded
node lives in one process and trusts the same channel configuration, so they share one cache;
set ``shared_cache=False`` to give each its own.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import threading
import time
from collections import OrderedDict

from ..identity import MSP, Identity, IdentityError, verify


class MembershipError(Exception):
    """An identity that is not a valid member of the channel, or a bad signature."""


class Membership:
    def __init__(self, msps: dict[str, MSP], *, cache_size: int = 200_000):
        self.msps = dict(msps)
        self._ids: OrderedDict[bytes, Identity] = OrderedDict()
        self._sigs: OrderedDict[bytes, bool] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        #: changes whenever the set of members does (results computed under another are stale)
        self.generation = 0

    def accept(self, msps: dict[str, MSP]) -> None:
        """Accept the organisations a configuration update added (members are never removed)."""
        with self._lock:
            for msp_id, msp in msps.items():
                self.msps.setdefault(msp_id, msp)
            self.generation += 1

    @property
    def msp_ids(self) -> list[str]:
        return list(self.msps)

    def identity(self, serialized: bytes) -> Identity:
        """Deserialize a creator/endorser and check it belongs to a channel MSP and is valid now."""
        with self._lock:
            ident = self._ids.get(serialized)
        if ident is not None:
            not_before, not_after = ident.validity_s
            if not_before <= time.time() <= not_after:
                return ident
        now = _dt.datetime.now(_dt.UTC)
        try:
            ident = Identity.deserialize(serialized)
        except IdentityError as exc:
            raise MembershipError(str(exc)) from exc
        msp = self.msps.get(ident.msp_id)
        if msp is None:
            raise MembershipError(f"organisation {ident.msp_id!r} is not a member of the channel")
        try:
            msp.validate(ident, now)
        except IdentityError as exc:
            raise MembershipError(str(exc)) from exc
        with self._lock:
            self._ids[serialized] = ident
            if len(self._ids) > self._cache_size:
                self._ids.popitem(last=False)
        return ident

    @staticmethod
    def _sig_key(ident: Identity, message: bytes, signature: bytes) -> bytes:
        h = hashlib.sha256(ident.pem_digest)
        h.update(hashlib.sha256(message).digest())
        h.update(signature)
        return h.digest()

    def _remember(self, k: bytes) -> None:
        with self._lock:
            self._sigs[k] = True
            if len(self._sigs) > self._cache_size:
                self._sigs.popitem(last=False)

    def check_signature(self, ident: Identity, message: bytes, signature: bytes) -> bool:
        k = self._sig_key(ident, message, signature)
        with self._lock:
            if k in self._sigs:
                return True
        ok = verify(ident.public_key, message, signature)
        if ok:
            self._remember(k)
        return ok

    def remember_signature(self, ident: Identity, message: bytes, signature: bytes) -> None:
        """Record a signature this process has just made with ``ident``'s own key (a peer's
        endorsement): it is valid by construction, so validation need not verify it again."""
        self._remember(self._sig_key(ident, message, signature))

    def verified_identity(self, serialized: bytes, message: bytes, signature: bytes) -> Identity:
        """The member behind ``serialized`` if it signed ``message`` with ``signature``."""
        ident = self.identity(serialized)
        if not self.check_signature(ident, message, signature):
            raise MembershipError(f"signature of {ident.common_name!r} ({ident.msp_id}) does not verify")
        return ident
