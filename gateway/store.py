"""The gateway's own small state, shared by every worker: share codes and pending invitations.

Tables ``gateway_*`` live in the user directory's database (its own ``MetaData``), so gunicorn
workers see the same rows. Nothing is stored in the clear that could be used by itself: share
codes and invitation codes are kept as keyed hashes (HMAC-SHA-256 under a key derived from the
auth pepper).

**Share codes** (step 3): a patient creates a short-lived, single-use random code (60 bits,
``XXXX-XXXX-XXXX`` in Crockford's base32: no I, L, O, U; read back case-insensitively, O as 0 and
I/L as 1) and tells it to a doctor, who exchanges it for the patient's pseudonymous id. An
unknown, used or expired code all give the same answer. Guessing is throttled like logins
(:class:`auth.Throttle`, the same counters table): every attempt is charged to the redeeming
user and to the client address before the code is looked up and refunded when the code was
right; past the free failures each further one doubles the wait (429 ``share-code-throttled``
with ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import JSON, Float, MetaData, String
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from auth import LoginThrottled, Throttle, ThrottlePolicy, address_key

from . import problems as P

SHARE_CODE_INVALID = P.problem_type(
    "share-code-invalid", 404, "Share code not valid",
    "The share code is unknown, was already used, or has expired: ask the patient for a new one.",
)

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
SHARE_CODE_LENGTH = 12
DEFAULT_SHARE_TTL = 15 * 60
MAX_SHARE_TTL = 24 * 3600
MAX_LIVE_CODES_PER_PATIENT = 20
SHARE_CODE_THROTTLED = P.problem_type(
    "share-code-throttled", 429, "Too many share-code attempts",
    "Too many wrong share codes from this user or client address: wait `retry_after` seconds (Retry-After).",
)
#: A user may mistype a few codes; then each wrong one doubles the wait (2 s … 1 h).
SHARE_USER_THROTTLE = ThrottlePolicy(free_failures=5, base_delay=2.0, max_delay=3600.0, forget_after=3600.0)
#: A hospital's NAT carries many users: more free failures per address.
SHARE_ADDRESS_THROTTLE = ThrottlePolicy(free_failures=30, base_delay=1.0, max_delay=3600.0, forget_after=3600.0)


class Base(DeclarativeBase):
    metadata = MetaData()


class ShareCodeRow(Base):
    __tablename__ = "gateway_share_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(40), index=True)
    hospital: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(40), nullable=True)


class InvitationRow(Base):
    """What the gateway must remember of an invitation until it is accepted: the user id to enrol
    under (a patient's vault reference) and the treating relationships to record."""

    __tablename__ = "gateway_invitations"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    hospital: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    treating: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class ShareCode:
    code: str
    patient_id: str
    expires_at: float


@dataclass(frozen=True)
class PendingInvitation:
    hospital: str
    user_id: str | None
    treating: list[str]


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch not in "- ").translate(_READ_AS)


def format_code(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


class GatewayStore:
    def __init__(self, engine: Engine, pepper: bytes, clock: Callable[[], float] = time.time):
        self.engine = engine
        self._db = sessionmaker(engine, expire_on_commit=False)
        self._key = hmac.new(pepper, b"serums-gateway/codes/v1", hashlib.sha256).digest()
        self.clock = clock
        self.throttle = Throttle(self._db, clock)  # auth's counters (table auth_throttle, same database)

    def create_tables(self) -> None:
        Base.metadata.create_all(self.engine)

    def _hash(self, kind: str, code: str) -> str:
        return hmac.new(self._key, f"{kind}|{code}".encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ share codes

    def create_share_code(self, patient_id: str, hospital: str, ttl: float = DEFAULT_SHARE_TTL) -> ShareCode:
        if not 60 <= ttl <= MAX_SHARE_TTL:
            raise P.Problem(P.VALIDATION, f"ttl_seconds must be between 60 and {MAX_SHARE_TTL}")
        now = self.clock()
        with self._db.begin() as s:
            live = s.scalar(sa.select(sa.func.count()).select_from(ShareCodeRow).where(
                ShareCodeRow.patient_id == patient_id, ShareCodeRow.used_at.is_(None),
                ShareCodeRow.expires_at > now)) or 0
            if live >= MAX_LIVE_CODES_PER_PATIENT:
                raise P.Problem(P.TOO_MANY, f"you already have {live} unused share codes; wait until they expire",
                                headers={"Retry-After": "60"})
            s.execute(sa.delete(ShareCodeRow).where(ShareCodeRow.expires_at < now - 86400))
            raw = "".join(secrets.choice(_ALPHABET) for _ in range(SHARE_CODE_LENGTH))
            s.add(ShareCodeRow(code_hash=self._hash("share", raw), patient_id=patient_id, hospital=hospital,
                               created_at=now, expires_at=now + ttl))
        return ShareCode(format_code(raw), patient_id, now + ttl)

    def redeem_share_code(self, code: str, user_id: str, client_addr: str | None = None) -> tuple[str, str]:
        """(patient id, hospital) for a live code, which is used up; any failure is one answer.
        Throttled per user and per client address (429 ``share-code-throttled``)."""
        addr = address_key(client_addr)
        try:
            charges = self.throttle.reserve([(f"share-user:{user_id}", SHARE_USER_THROTTLE),
                                             (f"share-{addr}" if addr else None, SHARE_ADDRESS_THROTTLE)])
        except LoginThrottled as exc:
            wait = math.ceil(exc.retry_after_seconds or 1)
            raise P.Problem(SHARE_CODE_THROTTLED, f"too many wrong share codes; try again in {wait} s",
                            extra={"retry_after": wait}, headers={"Retry-After": str(wait)}) from None
        found = self._redeem(code, user_id)
        for charge in charges:  # a right code was no guess
            self.throttle.refund(charge)
        return found

    def _redeem(self, code: str, user_id: str) -> tuple[str, str]:
        raw = normalise_code(code)
        if len(raw) != SHARE_CODE_LENGTH or any(ch not in _ALPHABET for ch in raw):
            raise P.Problem(SHARE_CODE_INVALID)
        digest = self._hash("share", raw)
        now = self.clock()
        with self._db.begin() as s:
            done = s.execute(
                sa.update(ShareCodeRow)
                .where(ShareCodeRow.code_hash == digest, ShareCodeRow.used_at.is_(None), ShareCodeRow.expires_at > now)
                .values(used_at=now, used_by=user_id).execution_options(synchronize_session=False)
            ).rowcount
            row = s.get(ShareCodeRow, digest) if done == 1 else None
        if row is None:
            raise P.Problem(SHARE_CODE_INVALID)
        return row.patient_id, row.hospital

    # ------------------------------------------------------------------ invitations

    def remember_invitation(self, code: str, hospital: str, user_id: str | None, treating: list[str],
                            expires_at: float) -> None:
        with self._db.begin() as s:
            s.add(InvitationRow(code_hash=self._hash("invitation", code), hospital=hospital, user_id=user_id,
                                treating=list(treating), created_at=self.clock(), expires_at=expires_at))

    def pending_invitation(self, code: str) -> PendingInvitation | None:
        with self._db() as s:
            row = s.get(InvitationRow, self._hash("invitation", code))
        if row is None:
            return None
        return PendingInvitation(row.hospital, row.user_id, list(row.treating or []))

    def forget_invitation(self, code: str) -> None:
        with self._db.begin() as s:
            s.execute(sa.delete(InvitationRow).where(InvitationRow.code_hash == self._hash("invitation", code)))


__all__ = ["SHARE_CODE_INVALID", "SHARE_CODE_THROTTLED", "GatewayStore", "PendingInvitation", "ShareCode", "format_code", "normalise_code"]
