"""Cohort tokens: the vault releases a research cohort's rows only against a token it minted.

A research cohort is a chain grant (``TransportContract.RequestCohort``): the patients whose
hospital rules and own preferences allow every requested section for ``research``. Analytics read
a hospital's rows the way a doctor reads a record (steps 7–10), with the cohort in place of the
grant and the site's ``analytics`` service identity in place of the doctor:

- :func:`mint_cohort_token` — for a cohort the chain says is live and for ``research``, the vault
  mints a token bound to the cohort, the analytics identity that will present it, the cohort's
  sections and an expiry (never past the cohort's), signed by the vault's key, and binds its
  SHA-256 on chain (``BindCohortToken``: the chain accepts only this hospital's vault and an
  ``analytics`` identity of the same hospital).
- :func:`redeem_cohort` — checks, like a record token, form and signature, expiry and presenter,
  then reads only the cohort's *active* members held here (patients who withdrew consent are
  withdrawn from the cohort and never read), only the cohort's sections, and releases them only
  after the chain accepted and logged the release (``ReleaseCohort``: cohort live, token bound
  and unexpired, every patient an active member, sections within the cohort's; one transaction,
  so a revocation or withdrawal cannot slip between a check and its log). Each refusal is logged
  on chain like a record token's (``LogRefusal``, the cohort id in place of the grant id).

Format: ``sct1.<payload>.<signature>`` signed like record tokens (:meth:`TokenIssuer.sign`).
Claims: ``v``, ``kid``, ``cid`` cohort id, ``sub`` the analytics identity (the only presenter
accepted), ``sec`` sections, ``pur`` ``research``, ``iat``/``exp``, ``n`` a nonce.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .errors import (
    GrantError,
    LedgerUnavailable,
    SectionNotGranted,
    TokenError,
    TokenExpired,
    TokenGrantMismatch,
    TokenMalformed,
    TokenNotBound,
    TokenPresenterMismatch,
    TokenSignatureInvalid,
    VaultError,
)
from .ledger import LedgerRefusal, Refusal
from .tokens import TokenIssuer, _b64e, token_hash

PREFIX = "sct1"
PURPOSE = "research"
log = logging.getLogger(__name__)


class CohortNotFound(GrantError):
    type = "cohort-not-found"
    status = 403


class CohortRevoked(GrantError):
    type = "cohort-revoked"
    status = 403


class CohortExpired(GrantError):
    type = "cohort-expired"
    status = 403


class CohortNotLive(GrantError):
    """The cohort is not live on chain (revoked, expired, empty, its requester suspended) or not
    for research."""

    type = "cohort-not-live"
    status = 403


class MemberNotActive(GrantError):
    """A patient of the release is not (or no longer) an active member of the cohort."""

    type = "member-not-active"
    status = 403


_REFUSALS: dict[str, type[TokenError]] = {
    "token-not-bound": TokenNotBound, "token-expired": TokenExpired, "cohort-revoked": CohortRevoked,
    "cohort-expired": CohortExpired, "cohort-not-live": CohortNotLive, "cohort-not-found": CohortNotFound,
    "member-not-active": MemberNotActive, "token-grant-mismatch": TokenGrantMismatch,
    "token-presenter-mismatch": TokenPresenterMismatch,
}


@dataclass(frozen=True)
class Cohort:
    """A research cohort as the chain holds it now (``GetCohort``): ``live`` is the chain's verdict."""

    cohort_id: str
    status: str
    live: bool
    purpose: str
    sections: frozenset[str]
    expires_at: _dt.datetime | None


@runtime_checkable
class CohortLedger(Protocol):
    """What the vault needs from the chain for cohort tokens (``vault.chain.ChainGrantLedger``)."""

    def get_cohort(self, cohort_id: str) -> Cohort | None: ...

    def cohort_members(self, cohort_id: str) -> list[str]:
        """The cohort's active members (withdrawn ones left out)."""
        ...

    def bind_cohort_token(self, cohort_id: str, token_hash: str, presenter_id: str,
                          expires_at: _dt.datetime) -> None: ...

    def release_cohort(self, cohort_id: str, token_hash: str, patients: Sequence[str], sections: Sequence[str],
                       digest: str) -> dict:
        """Check and log a release in one transaction, or raise :class:`LedgerRefusal`."""
        ...

    def log_refusal(self, refusal: Refusal) -> None: ...


@dataclass(frozen=True)
class CohortClaims:
    cohort_id: str
    presenter_id: str
    sections: tuple[str, ...]
    issued_at: _dt.datetime
    expires_at: _dt.datetime
    nonce: str
    key_id: str
    purpose: str = PURPOSE

    def to_json(self) -> bytes:
        doc = {"v": 1, "kid": self.key_id, "cid": self.cohort_id, "sub": self.presenter_id,
               "sec": sorted(self.sections), "pur": self.purpose, "iat": int(self.issued_at.timestamp()),
               "exp": int(self.expires_at.timestamp()), "n": self.nonce}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> CohortClaims:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise TokenMalformed("cohort token payload is not JSON") from None
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise TokenMalformed("unsupported cohort token version")
        if not all(isinstance(doc.get(k), str) and doc.get(k) for k in ("kid", "cid", "sub", "pur", "n")):
            raise TokenMalformed("cohort token lacks one of kid, cid, sub, pur, n")
        sec = doc.get("sec")
        if not isinstance(sec, list) or not all(isinstance(s, str) for s in sec):
            raise TokenMalformed("cohort token sections are not a list of names")
        if not all(isinstance(doc.get(k), int) and not isinstance(doc.get(k), bool) for k in ("iat", "exp")):
            raise TokenMalformed("cohort token iat/exp are not timestamps")
        claims = cls(cohort_id=doc["cid"], presenter_id=doc["sub"], sections=tuple(sec),
                     issued_at=_dt.datetime.fromtimestamp(doc["iat"], _dt.UTC),
                     expires_at=_dt.datetime.fromtimestamp(doc["exp"], _dt.UTC), nonce=doc["n"], key_id=doc["kid"],
                     purpose=doc["pur"])
        if claims.to_json() != data:
            raise TokenMalformed("cohort token payload is not in canonical form")
        return claims


@dataclass(frozen=True)
class MintedCohortToken:
    token: str
    token_hash: str
    claims: CohortClaims


@dataclass
class CohortRelease:
    """What a vault released for a cohort token: the active members' records held here, limited to
    the cohort's sections, and the chain's log entry. Reads like a vault (``patients``,
    ``read_record``) so analytics build their matrices from it and from nothing else."""

    cohort_id: str
    token_hash: str
    presenter_id: str
    sections: tuple[str, ...]
    records: dict[str, Any]
    digest: str
    log: dict = field(default_factory=dict)

    def patients(self) -> list[str]:
        return sorted(self.records)

    def read_record(self, patient: str, *, sections: Iterable[str] | None = None, **_: Any) -> Any:
        if patient not in self.records:
            raise MemberNotActive(f"patient {patient} is not in this cohort release")
        outside = sorted(set(sections or ()) - set(self.sections))
        if outside:
            raise SectionNotGranted(f"sections {', '.join(outside)} are not released for cohort {self.cohort_id}")
        return self.records[patient]


def _ledger(vault: Any) -> CohortLedger:
    ledger = vault.ledger
    if not isinstance(ledger, CohortLedger):
        raise LedgerUnavailable("this vault's ledger cannot speak of research cohorts; cohort tokens need the chain")
    return ledger


def _call(what: str, fn, *args):
    try:
        return fn(*args)
    except (VaultError, LedgerRefusal):
        raise
    except Exception as exc:  # noqa: BLE001 - any ledger failure means: release nothing
        raise LedgerUnavailable(f"cannot {what} on the ledger; nothing released: {exc}") from exc


def _live_cohort(vault: Any, cohort_id: str) -> Cohort:
    cohort = _call("read the cohort", _ledger(vault).get_cohort, cohort_id)
    if cohort is None:
        raise CohortNotFound(f"the ledger has no cohort {cohort_id}")
    if not cohort.live:
        err = {"revoked": CohortRevoked, "expired": CohortExpired}.get(cohort.status, CohortNotLive)
        raise err(f"cohort {cohort_id} is not live ({cohort.status})")
    if cohort.purpose != PURPOSE:
        raise CohortNotLive(f"cohort {cohort_id} was granted for {cohort.purpose!r}, not research")
    return cohort


def mint_cohort_token(vault: Any, cohort_id: str, presenter_id: str, *,
                      ttl: _dt.timedelta | None = None) -> MintedCohortToken:
    """Mint a token for a live research cohort, for ``presenter_id`` (this site's analytics service
    identity), and bind its hash on chain. The sections come from the chain, not from the caller."""
    cohort = _live_cohort(vault, cohort_id)
    sections = tuple(sorted(s for s in cohort.sections if s in vault.format.sections))
    if not sections:
        raise TokenGrantMismatch(f"cohort {cohort_id} names no section this vault holds")
    now = vault.clock()
    ttl = ttl or _dt.timedelta(seconds=vault.config.token_ttl_seconds)
    expires = min(cohort.expires_at, now + ttl) if cohort.expires_at else now + ttl
    issuer: TokenIssuer = vault.issuer
    claims = CohortClaims(cohort_id=cohort_id, presenter_id=str(presenter_id), sections=sections, issued_at=now,
                          expires_at=expires.replace(microsecond=0), nonce=_b64e(os.urandom(16)),
                          key_id=issuer.key_id)
    token = issuer.sign(PREFIX, claims.to_json())
    th = token_hash(token)
    try:
        _call("bind the cohort token", _ledger(vault).bind_cohort_token, cohort_id, th, claims.presenter_id,
              claims.expires_at)
    except LedgerRefusal as refusal:
        raise _REFUSALS.get(refusal.reason, CohortNotLive)(refusal.detail) from None
    return MintedCohortToken(token=token, token_hash=th, claims=claims)


def check_cohort_token(vault: Any, token: str, presenter_id: str) -> CohortClaims:
    """The token's own checks, in order: form and signature, expiry, presenter."""
    issuer: TokenIssuer = vault.issuer
    claims = CohortClaims.from_json(issuer.open(token, PREFIX))
    if claims.key_id != issuer.key_id:
        raise TokenSignatureInvalid("cohort token was not signed by this vault's key")
    if vault.clock() >= claims.expires_at:
        raise TokenExpired(f"cohort token expired at {claims.expires_at.isoformat()}")
    if presenter_id != claims.presenter_id:
        raise TokenPresenterMismatch("this cohort token was issued to another analytics service")
    return claims


def _peek(token: Any) -> CohortClaims | None:
    payload = TokenIssuer.payload(token) if isinstance(token, str) else None
    try:
        return CohortClaims.from_json(payload) if payload is not None else None
    except TokenMalformed:
        return None


def redeem_cohort(vault: Any, token: str, presenter_id: str) -> CohortRelease:
    """Release the cohort's active members held here, only the cohort's sections, against ``token``
    presented by ``presenter_id``; the chain checks and logs the release before anything leaves."""
    th = token_hash(token) if isinstance(token, str) else ""
    claims: CohortClaims | None = None
    try:
        claims = check_cohort_token(vault, token, presenter_id)
        cohort = _live_cohort(vault, claims.cohort_id)
        if not set(claims.sections) <= set(cohort.sections):
            raise TokenGrantMismatch(f"the token's sections exceed cohort {claims.cohort_id}'s")
        members = set(_call("read the cohort's members", _ledger(vault).cohort_members, claims.cohort_id))
        here = [p for p in vault.patients() if p in members]
        sections = sorted(set(claims.sections) & set(vault.format.sections))
        records = {p: vault.read_record(p, sections=sections) for p in here}
        digest = hashlib.sha256(json.dumps({p: r.to_dict() for p, r in records.items()}, sort_keys=True,
                                           separators=(",", ":"), default=str).encode()).hexdigest()
        try:
            log = _call("log the cohort release", _ledger(vault).release_cohort, claims.cohort_id, th, here,
                        sections, digest)
        except LedgerRefusal as refusal:
            raise _REFUSALS.get(refusal.reason, CohortNotLive)(refusal.detail) from None
    except TokenError as exc:
        _log_refusal(vault, exc, th, presenter_id, claims or _peek(token))
        raise
    return CohortRelease(cohort_id=claims.cohort_id, token_hash=th, presenter_id=presenter_id,
                         sections=tuple(sections), records=records, digest=digest, log=log or {})


def _log_refusal(vault: Any, exc: TokenError, th: str, presenter_id: str, claims: CohortClaims | None) -> None:
    try:
        vault.refusals.record(Refusal(reason=exc.type, detail=exc.message, presenter_id=str(presenter_id),
                                      token_hash=th, grant_id=claims.cohort_id if claims else None,
                                      at=vault.clock()))
    except Exception:  # noqa: BLE001 - the refusal stands even if it cannot be logged
        log.exception("could not log a cohort token refusal (%s) on the ledger", exc.type)
