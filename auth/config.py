"""Configuration of the auth package: Argon2id cost, throttling, lifetimes, server secrets, clock.

Every tunable lives in :class:`AuthConfig`, parsed by :meth:`AuthConfig.from_env` from the
``SERUMS_AUTH_*`` values that ``serums.config.Settings`` read (auth never reads the environment).
Two server secrets are needed:

- the **pepper** keys every hash input (HMAC before Argon2id), the TOTP-secret encryption and the
  decoy grids shown for unknown usernames: a stolen database alone does not allow offline
  guessing. Losing it locks every user out, so it is kept in a 0600 file under the data directory
  (or given as ``SERUMS_AUTH_PEPPER``, hex) and must be backed up with the database;
- the **JWT secret** signs access and refresh tokens (HS256).

All gunicorn workers must share both: the key files are created once, atomically and exclusively,
so concurrent first starts agree on one value.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import InvalidInput

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``). Injected everywhere time matters, so tests never sleep."""


class FakeClock:
    """A settable clock for tests and simulations: ``clock()`` returns the current fake time."""

    def __init__(self, start: float | None = None):
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += float(seconds)
            return self._now

    def set(self, now: float) -> None:
        with self._lock:
            self._now = float(now)


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost. Defaults follow OWASP's Password Storage Cheat Sheet: m=19 MiB, t=2, p=1."""

    memory_kib: int = 19456
    iterations: int = 2
    parallelism: int = 1
    hash_len: int = 32
    salt_len: int = 16

    # OWASP's equivalent settings (m KiB, t): each trades memory for passes at equal defence.
    OWASP_OPTIONS = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))

    def meets_owasp(self) -> bool:
        """True when at least as costly as one of OWASP's recommended Argon2id configurations."""
        return self.parallelism >= 1 and any(
            self.memory_kib >= m and self.iterations >= t for m, t in self.OWASP_OPTIONS
        )

    def describe(self) -> str:
        return f"Argon2id m={self.memory_kib} KiB, t={self.iterations}, p={self.parallelism}"

    def to_json(self) -> dict[str, int]:
        return {"m": self.memory_kib, "t": self.iterations, "p": self.parallelism, "len": self.hash_len}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Argon2Params:
        return cls(
            memory_kib=int(data["m"]), iterations=int(data["t"]), parallelism=int(data["p"]),
            hash_len=int(data.get("len", 32)),
        )


@dataclass(frozen=True)
class ThrottlePolicy:
    """Exponential backoff: after ``free_failures`` failures each further one doubles the wait,
    from ``base_delay`` up to ``max_delay`` seconds; counters are forgotten after ``forget_after``
    seconds without a failure."""

    free_failures: int = 3
    base_delay: float = 1.0
    max_delay: float = 900.0
    forget_after: float = 24 * 3600.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure."""
        over = failures - self.free_failures
        if over <= 0:
            return 0.0
        # 2**over overflows float for absurd counts; cap the exponent first.
        return float(min(self.max_delay, self.base_delay * (2 ** min(over - 1, 60))))


@dataclass(frozen=True)
class AuthConfig:
    """Everything the auth service needs to know; immutable once the service runs."""

    pepper: bytes
    jwt_secret: bytes
    argon2: Argon2Params = field(default_factory=Argon2Params)
    wallet_kdf: Argon2Params = field(default_factory=Argon2Params)
    account_throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    # Hospitals sit behind NAT: one address carries many users, so it gets more free failures.
    address_throttle: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(free_failures=20, base_delay=1.0, max_delay=900.0)
    )
    access_ttl: float = 600.0  # 10 min access tokens
    refresh_ttl: float = 3600.0  # idle timeout: a session not refreshed for 1 h ends
    session_max_age: float = 12 * 3600.0  # absolute: a clinical shift
    challenge_ttl: float = 300.0  # between the key and the second factor
    challenge_max_attempts: int = 5  # second-factor tries per challenge
    approval_ttl: float = 120.0  # push approvals
    suspension_cache_ttl: float = 30.0  # how long an is_suspended() answer is trusted
    suspension_stale_grace: float = 300.0  # use a stale answer this long if the chain is unreachable
    min_key_length: int = 12
    max_key_length: int = 256
    min_guesses_log10: float = 10.0  # zxcvbn's strongest band (score 4)
    graphical_min_images: int = 5
    graphical_max_images: int = 8
    grid_size: int = 36
    graphical_wallet: bool = True  # False: graphical logins cannot unlock the wallet (see wallet.py)
    totp_issuer: str = "SERUMS"
    totp_interval: int = 30
    totp_digits: int = 6
    totp_valid_window: int = 1
    recovery_codes: int = 10
    evaluation_mode: bool = False
    jwt_issuer: str = "serums"
    jwt_audience: str = "serums-gateway"

    def __post_init__(self) -> None:
        problems = []
        if len(self.pepper) < 32:
            problems.append("pepper must be at least 32 bytes")
        if len(self.jwt_secret) < 32:
            problems.append("jwt_secret must be at least 32 bytes")
        for name in ("access_ttl", "refresh_ttl", "session_max_age", "challenge_ttl", "approval_ttl"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.suspension_cache_ttl >= self.access_ttl:
            problems.append("suspension_cache_ttl must be shorter than access_ttl")
        if not 1 <= self.graphical_min_images <= self.graphical_max_images:
            problems.append("graphical_min_images must be between 1 and graphical_max_images")
        if self.grid_size < 2 * self.graphical_max_images:
            problems.append("grid_size must be at least twice graphical_max_images")
        if self.min_key_length < 8:
            problems.append("min_key_length below 8 is not allowed (NIST SP 800-63B)")
        if problems:
            raise InvalidInput("invalid auth configuration: " + "; ".join(problems))

    def with_(self, **changes: Any) -> AuthConfig:
        return replace(self, **changes)

    @classmethod
    def ephemeral(cls, **overrides: Any) -> AuthConfig:
        """A configuration with fresh random secrets: for tests, benchmarks and throw-away demos.
        Never for a deployment (secrets vanish with the process, and every worker differs)."""
        return cls(pepper=secrets.token_bytes(32), jwt_secret=secrets.token_bytes(32), **overrides)

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike, env: Mapping[str, str]) -> AuthConfig:
        """Parse the ``SERUMS_AUTH_*`` values read by ``serums.config.Settings`` (auth never reads
        the process environment itself); secrets come from those values (hex) or from key files
        under ``<data_dir>/auth/`` created on first use."""
        root = Path(data_dir)
        secret_dir = root / "auth"

        def secret(var: str, filename: str) -> bytes:
            if env.get(var):
                try:
                    value = bytes.fromhex(env[var])
                except ValueError as exc:
                    raise InvalidInput(f"{var} must be hex") from exc
                return value
            return load_or_create_secret(secret_dir / filename)

        def num(var: str, default: float) -> float:
            raw = env.get(var)
            if raw is None or raw == "":
                return default
            try:
                return float(raw)
            except ValueError as exc:
                raise InvalidInput(f"{var} must be a number, not {raw!r}") from exc

        argon = Argon2Params(
            memory_kib=int(num("SERUMS_AUTH_ARGON2_MEMORY_KIB", 19456)),
            iterations=int(num("SERUMS_AUTH_ARGON2_ITERATIONS", 2)),
            parallelism=int(num("SERUMS_AUTH_ARGON2_PARALLELISM", 1)),
        )
        return cls(
            pepper=secret("SERUMS_AUTH_PEPPER", "pepper.key"),
            jwt_secret=secret("SERUMS_AUTH_JWT_SECRET", "jwt.key"),
            argon2=argon,
            wallet_kdf=argon,
            access_ttl=num("SERUMS_AUTH_ACCESS_TTL", 600),
            refresh_ttl=num("SERUMS_AUTH_REFRESH_TTL", 3600),
            session_max_age=num("SERUMS_AUTH_SESSION_MAX_AGE", 12 * 3600),
            suspension_cache_ttl=num("SERUMS_AUTH_SUSPENSION_CACHE_TTL", 30),
            totp_issuer=env.get("SERUMS_AUTH_TOTP_ISSUER") or "SERUMS",
            evaluation_mode=env.get("SERUMS_AUTH_EVALUATION", "").lower() in ("1", "true", "yes", "on"),
        )


def database_url_from_env(data_dir: str | os.PathLike, env: Mapping[str, str]) -> str:
    """The user directory's database from ``SERUMS_*`` values: ``SERUMS_AUTH_DATABASE_URL``, else
    ``SERUMS_DATABASE_URL`` (tables are prefixed ``auth_`` so they coexist with others), else
    ``<data dir>/auth.db`` (SQLite)."""
    if env.get("SERUMS_AUTH_DATABASE_URL"):
        return env["SERUMS_AUTH_DATABASE_URL"]
    if env.get("SERUMS_DATABASE_URL"):
        return env["SERUMS_DATABASE_URL"]
    return f"sqlite:///{Path(data_dir) / 'auth.db'}"


def load_or_create_secret(path: Path, nbytes: int = 32) -> bytes:
    """Read a secret key file, or create it (0600) with ``nbytes`` random bytes.

    Creation is exclusive (write a temporary file, then ``link`` it into place, which fails if the
    file exists): when several workers start at once, all end up with the first one's secret."""
    path = Path(path)
    if path.exists():
        return _read_secret(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(nbytes).hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    try:
        value = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise InvalidInput(f"{path} does not hold a hex secret") from exc
    if len(value) < 32:
        raise InvalidInput(f"{path} holds a secret shorter than 32 bytes")
    return value


__all__ = [
    "Argon2Params",
    "AuthConfig",
    "Clock",
    "FakeClock",
    "ThrottlePolicy",
    "database_url_from_env",
    "load_or_create_secret",
]
