"""The user directory's tables (SQLAlchemy 2): users, wallets, second factors, throttles, sessions.

All tables are prefixed ``auth_`` and live in their own ``MetaData``, so the directory can share a
database with the vault. Times are seconds since the epoch (``float``), written from the injected
clock: tests move time without sleeping. Nothing here holds a key in the clear: key verifiers are
Argon2id PHC strings, recovery codes and invitation codes are keyed hashes, TOTP secrets and
wallet keys are AES-256-GCM ciphertexts.

Works on SQLite (the default: WAL, busy timeout, writes serialised with ``BEGIN IMMEDIATE``) and
PostgreSQL; ``schema_translate_map`` places the tables in another schema when wanted.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, LargeBinary, MetaData, String, Text, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class UserRow(Base):
    """A person who logs in. ``id`` is the pseudonymous id used on chain and in certificates."""

    __tablename__ = "auth_users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # normalised (NFKC, casefolded)
    role: Mapped[str] = mapped_column(String(32))
    hospital: Mapped[str] = mapped_column(String(64))
    msp_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | suspended
    created_at: Mapped[float] = mapped_column(Float)
    secret_changed_at: Mapped[float] = mapped_column(Float)
    text_hash: Mapped[str] = mapped_column(String(255))
    graphical_hash: Mapped[str] = mapped_column(String(255))
    graphical_grid: Mapped[list[str]] = mapped_column(JSON)
    totp_secret_ct: Mapped[bytes] = mapped_column(LargeBinary)
    totp_secret_nonce: Mapped[bytes] = mapped_column(LargeBinary)
    totp_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    certificate_pem: Mapped[str] = mapped_column(Text)
    certificate_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    key_custody: Mapped[str] = mapped_column(String(16))  # wallet | exported


class WalletRow(Base):
    """The user's Fabric private key (PKCS#8 DER) sealed under a random data key (DEK)."""

    __tablename__ = "auth_wallets"

    user_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), primary_key=True)
    key_nonce: Mapped[bytes] = mapped_column(LargeBinary)
    key_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)


class WalletWrapRow(Base):
    """The wallet's DEK wrapped under a key derived from one of the user's keys (text, graphical)."""

    __tablename__ = "auth_wallet_wraps"

    user_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(16), primary_key=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    kdf: Mapped[dict[str, Any]] = mapped_column(JSON)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)


class RecoveryCodeRow(Base):
    __tablename__ = "auth_recovery_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class InvitationRow(Base):
    """An enrolment invitation issued by a hospital admin; the code is stored keyed-hashed."""

    __tablename__ = "auth_invitations"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(32))
    hospital: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ThrottleRow(Base):
    """Failure counter of one account (keyed hash of the username) or client address.

    ``version`` makes updates compare-and-swap, so concurrent attempts cannot slip past a lock."""

    __tablename__ = "auth_throttle"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[float] = mapped_column(Float, default=0.0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)
    version: Mapped[int] = mapped_column(Integer, default=0)


class ChallengeRow(Base):
    """A login between the key and the second factor. The client holds ``id.secret``; only the
    secret's hash is stored, and the wallet DEK (if any) is sealed under a key from the secret."""

    __tablename__ = "auth_challenges"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    client_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | consumed | failed | denied
    dek_nonce: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    dek_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    attempt_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ApprovalRow(Base):
    """A push-style approval: the new login waits until another session of the user decides."""

    __tablename__ = "auth_approvals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    challenge_id: Mapped[str] = mapped_column(ForeignKey("auth_challenges.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), index=True)
    match_code: Mapped[str] = mapped_column(String(8))
    client_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    method: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | approved | denied
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class SessionRow(Base):
    """A logged-in session: the family of all its access and refresh tokens."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    second_factor: Mapped[str] = mapped_column(String(16))
    client_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    last_refresh_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    current_refresh_jti: Mapped[str | None] = mapped_column(String(48), nullable=True)
    wallet_nonce: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    wallet_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class RefreshTokenRow(Base):
    __tablename__ = "auth_refresh_tokens"

    jti: Mapped[str] = mapped_column(String(48), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LoginEventRow(Base):
    """Evaluation mode: one row per login attempt (method, second factor, timings, outcome)."""

    __tablename__ = "auth_login_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    second_factor: Mapped[str | None] = mapped_column(String(16), nullable=True)
    started_at: Mapped[float] = mapped_column(Float)
    key_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    completed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    success: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    outcome: Mapped[str] = mapped_column(String(40), default="started")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine suited to the directory. For SQLite: WAL, a busy timeout, foreign keys, and
    ``BEGIN IMMEDIATE`` so that read-then-write transactions from several threads queue for the
    write lock instead of failing with "database is locked"; reads through :class:`Sessions`
    begin deferred instead."""
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            raise ValueError("use a file for SQLite (an in-memory database is not shared between threads)")
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised through every SQLite test
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event decide how to begin
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: no corruption on power loss; at worst the last commits before it are lost
        # (a throttle counter, a session), never a half-written user.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - exercised through every SQLite test
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")


_READ_ONLY = "serums_auth_read_only"


class Sessions:
    """The directory's sessions, split by intent: ``db()`` opens a session for reading only,
    ``db.begin()`` a write transaction. On SQLite a read begins deferred (a WAL snapshot, no
    write lock) while a write begins ``IMMEDIATE``, so the checks every request makes never queue
    behind a login being recorded. Never write through ``db()``."""

    def __init__(self, engine: Engine):
        self._read = sessionmaker(engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False)
        self._write = sessionmaker(engine, expire_on_commit=False)

    def __call__(self) -> Session:
        return self._read()

    def begin(self) -> AbstractContextManager[Session]:
        return self._write.begin()


def create_tables(engine: Engine) -> None:
    Base.metadata.create_all(engine)


def drop_tables(engine: Engine) -> None:
    Base.metadata.drop_all(engine)


__all__ = [
    "ApprovalRow",
    "Base",
    "ChallengeRow",
    "InvitationRow",
    "LoginEventRow",
    "RecoveryCodeRow",
    "RefreshTokenRow",
    "SessionRow",
    "ThrottleRow",
    "UserRow",
    "WalletRow",
    "WalletWrapRow",
    "create_tables",
    "drop_tables",
    "make_engine",
    "Sessions",
]
