"""Sessions, refresh-token rotation, revocation and the suspension check.

A session is the family of every token issued after one login. Access tokens are short (10 min)
and carry the session id; every request checks the session is still live, so logout, an
administrator's revocation or a suspension take effect at once. Refresh tokens rotate: each use
returns a new one and marks the old one used; presenting a used one again means it was copied,
and the whole session is revoked (OAuth 2.0 Security BCP, refresh token reuse detection).

Suspension is decided on chain (UserContract). The gateway passes ``is_suspended(user_id)``; its
answers are cached for ``suspension_cache_ttl`` seconds (< the access-token lifetime), so a
suspended user's tokens stop working within that time at the latest. If the chain cannot answer,
a cached answer is used for ``suspension_stale_grace`` more seconds, then requests fail closed.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable

import sqlalchemy as sa

from .config import AuthConfig, Clock
from .crypto import Sealed, new_id
from .errors import (
    AccountSuspended,
    RefreshTokenReused,
    SuspensionCheckUnavailable,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    WalletLocked,
    WalletNotHeld,
)
from .models import RefreshTokenRow, SessionRow, Sessions, UserRow
from .records import RefreshGrant, SessionInfo
from .wallet import open_for_session, seal_for_session

log = logging.getLogger(__name__)

SuspensionCheck = Callable[[str], bool]


class SuspensionGate:
    """Caches ``is_suspended`` answers per user; see the module docstring for the failure policy."""

    def __init__(self, check: SuspensionCheck | None, clock: Clock, ttl: float, grace: float):
        self.check = check
        self._clock = clock
        self._ttl = ttl
        self._grace = grace
        self._cache: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def set_check(self, check: SuspensionCheck | None) -> None:
        with self._lock:
            self.check = check
            self._cache.clear()

    def forget(self, user_id: str) -> None:
        with self._lock:
            self._cache.pop(user_id, None)

    def is_suspended(self, user_id: str) -> bool:
        check = self.check
        if check is None:
            return False
        now = self._clock()
        with self._lock:
            cached = self._cache.get(user_id)
        if cached and now - cached[1] < self._ttl:
            return cached[0]
        try:
            value = bool(check(user_id))
        except Exception as exc:  # noqa: BLE001 - any failure of the chain lookup is handled alike
            if cached and now - cached[1] < self._ttl + self._grace:
                log.warning("suspension check for %s failed (%s); using the answer from %.0f s ago",
                            user_id, exc, now - cached[1])
                return cached[0]
            raise SuspensionCheckUnavailable(
                "The account status cannot be confirmed right now; please retry shortly.", retry_after=5
            ) from exc
        with self._lock:
            self._cache[user_id] = (value, now)
        return value


class SessionManager:
    def __init__(self, db: Sessions, config: AuthConfig, clock: Clock, gate: SuspensionGate):
        self._db = db
        self._cfg = config
        self._clock = clock
        self.gate = gate

    # ------------------------------------------------------------------ lifecycle

    def create(
        self, *, user_id: str, method: str, second_factor: str, client_addr: str | None, dek: bytes | None
    ) -> tuple[SessionInfo, bytes | None]:
        """Open a session; with a wallet DEK, seal it under a fresh session wallet key (returned,
        never stored)."""
        now = self._clock()
        sid = new_id(18)
        wallet_key = None
        sealed: Sealed | None = None
        if dek is not None:
            wallet_key = secrets.token_bytes(32)
            sealed = seal_for_session(dek, wallet_key, sid, user_id)
        row = SessionRow(
            id=sid, user_id=user_id, method=method, second_factor=second_factor, client_addr=client_addr,
            created_at=now, last_refresh_at=now, expires_at=now + self._cfg.session_max_age,
            wallet_nonce=sealed.nonce if sealed else None, wallet_ct=sealed.ciphertext if sealed else None,
        )
        with self._db.begin() as s:
            s.add(row)
        return _info(row), wallet_key

    def issue_refresh(self, session_id: str) -> RefreshGrant:
        """Record the session's first refresh token."""
        now = self._clock()
        with self._db.begin() as s:
            sess = s.get(SessionRow, session_id)
            if sess is None or sess.revoked_at is not None:
                raise TokenRevoked("This session has ended; please log in again.")
            grant = RefreshGrant(new_id(24), min(now + self._cfg.refresh_ttl, sess.expires_at))
            s.add(RefreshTokenRow(jti=grant.jti, session_id=session_id, issued_at=now, expires_at=grant.expires_at))
            sess.current_refresh_jti = grant.jti
        return grant

    def rotate(self, session_id: str, jti: str) -> RefreshGrant:
        """Exchange a refresh token for a new one. A token used before revokes the session."""
        info = self.get(session_id)
        if info is None:
            raise TokenInvalid("Unknown refresh token.")
        self._raise_if_ended(info)
        self._raise_if_suspended(info.user_id)  # outside any transaction: it may ask the chain
        now = self._clock()
        with self._db.begin() as s:
            tok = s.get(RefreshTokenRow, jti)
            sess = s.get(SessionRow, session_id)
            if tok is None or sess is None or tok.session_id != session_id:
                raise TokenInvalid("Unknown refresh token.")
            if sess.revoked_at is not None:
                raise TokenRevoked("This session has ended; please log in again.")
            if tok.used_at is None:
                if tok.expires_at <= now or sess.expires_at <= now:
                    raise TokenExpired("The session expired; please log in again.")
                claimed = s.execute(
                    sa.update(RefreshTokenRow)
                    .where(RefreshTokenRow.jti == jti, RefreshTokenRow.used_at.is_(None))
                    .values(used_at=now)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if claimed == 1:
                    grant = RefreshGrant(new_id(24), min(now + self._cfg.refresh_ttl, sess.expires_at))
                    s.add(RefreshTokenRow(jti=grant.jti, session_id=session_id, issued_at=now,
                                          expires_at=grant.expires_at))
                    sess.current_refresh_jti = grant.jti
                    sess.last_refresh_at = now
                    return grant
        # The token had already been rotated: someone holds a copy. Revoke the whole family.
        self.revoke(session_id, "refresh-reuse")
        log.warning("refresh token reuse on session %s: session revoked", session_id)
        raise RefreshTokenReused(
            "This refresh token was already used. For safety the session has been ended; please log in again."
        )

    def revoke(self, session_id: str, reason: str) -> bool:
        now = self._clock()
        with self._db.begin() as s:
            n = s.execute(
                sa.update(SessionRow)
                .where(SessionRow.id == session_id, SessionRow.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason, wallet_ct=None, wallet_nonce=None)
                .execution_options(synchronize_session=False)
            ).rowcount
        return n == 1

    def revoke_user(self, user_id: str, reason: str, *, except_session: str | None = None) -> int:
        """End every live session of a user (suspension, secret change, admin action)."""
        now = self._clock()
        q = sa.update(SessionRow).where(SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None))
        if except_session:
            q = q.where(SessionRow.id != except_session)
        with self._db.begin() as s:
            return s.execute(
                q.values(revoked_at=now, revoked_reason=reason, wallet_ct=None, wallet_nonce=None)
                .execution_options(synchronize_session=False)
            ).rowcount

    # ------------------------------------------------------------------ checks

    def check_claims(self, claims: dict) -> None:
        """Raise unless a token's session is live, the token unexpired by the service clock, and
        the user neither suspended locally nor on chain. Called on every authenticated request."""
        sid = claims.get("sid")
        sub = claims.get("sub")
        if not isinstance(sid, str) or not isinstance(sub, str):
            raise TokenInvalid("The token lacks a session.")
        now = self._clock()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now:
            raise TokenExpired("The token has expired.")
        with self._db() as s:
            row = s.execute(
                sa.select(SessionRow.revoked_at, SessionRow.revoked_reason, SessionRow.expires_at,
                          SessionRow.user_id, UserRow.status)
                .join(UserRow, UserRow.id == SessionRow.user_id)
                .where(SessionRow.id == sid)
            ).one_or_none()
        if row is None or row.user_id != sub:
            raise TokenRevoked("This session does not exist.")
        if row.revoked_at is not None:
            _raise_revoked(row.revoked_reason)
        if row.expires_at <= now:
            raise TokenExpired("The session has reached its maximum age; please log in again.")
        if row.status != "active" or self.gate.is_suspended(sub):
            self.revoke_user(sub, "suspended")
            raise AccountSuspended("The account is suspended.")

    def _raise_if_ended(self, info: SessionInfo) -> None:
        if info.revoked_at is not None:
            _raise_revoked(info.revoked_reason)
        if info.expires_at <= self._clock():
            raise TokenExpired("The session has reached its maximum age; please log in again.")

    def _raise_if_suspended(self, user_id: str) -> None:
        """Locally suspended, or suspended on chain: end every session of the user and refuse."""
        with self._db() as s:
            status = s.scalar(sa.select(UserRow.status).where(UserRow.id == user_id))
        if status != "active" or self.gate.is_suspended(user_id):
            self.revoke_user(user_id, "suspended")
            raise AccountSuspended("The account is suspended.")

    # ------------------------------------------------------------------ queries

    def get(self, session_id: str) -> SessionInfo | None:
        with self._db() as s:
            row = s.get(SessionRow, session_id)
            return _info(row) if row else None

    def active_for_user(self, user_id: str) -> list[SessionInfo]:
        now = self._clock()
        with self._db() as s:
            rows = s.scalars(
                sa.select(SessionRow).where(
                    SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None), SessionRow.expires_at > now
                ).order_by(SessionRow.created_at)
            )
            return [_info(r) for r in rows]

    @staticmethod
    def wallet_dek(row: SessionRow, wallet_key: bytes) -> bytes:
        """The wallet's DEK sealed in a live session's ``row``, opened with the session wallet key
        its client presented (the caller has read the row and checked the session is live)."""
        if row.wallet_ct is None or row.wallet_nonce is None:
            raise WalletNotHeld("No server wallet is open for this session (the key is held by the user, "
                                "or the login method cannot unlock it).")
        dek = open_for_session(Sealed(row.wallet_nonce, row.wallet_ct), wallet_key, row.id, row.user_id)
        if dek is None:
            raise WalletLocked("The session wallet key is wrong.")
        return dek


def _raise_revoked(reason: str | None) -> None:
    if reason == "suspended":
        raise AccountSuspended("The account is suspended.")
    raise TokenRevoked("This session has ended; please log in again.")


def _info(row: SessionRow) -> SessionInfo:
    return SessionInfo(
        session_id=row.id, user_id=row.user_id, method=row.method, second_factor=row.second_factor,
        client_addr=row.client_addr, created_at=row.created_at, last_refresh_at=row.last_refresh_at,
        expires_at=row.expires_at, revoked_at=row.revoked_at, revoked_reason=row.revoked_reason,
    )


__all__ = ["SessionManager", "SuspensionCheck", "SuspensionGate"]
