"""Exponential backoff per account and per client address, safe under concurrent attempts.

Every login attempt is charged to its account *before* its key is checked, and the charge is
refunded when the key turns out right. Charging first matters: if failures were only counted after
the slow Argon2 check, an attacker firing a hundred parallel guesses at an account would have them
all checked before the first failure was recorded. The client address is charged for failures
once known (a burst of right logins through a hospital's NAT must not lock it out). Counters are updated with compare-and-swap on a version column, which is
atomic on SQLite and PostgreSQL alike, so no attempt can slip past a lock.

- Account counters are keyed by a keyed hash of the *username as typed* (existing or not), so
  unknown usernames throttle exactly like real ones and the table never stores what people type
  into the username field (sometimes their password). A wrong second factor charges the account
  too; a completed login clears it.
- Address counters are never cleared by a successful login (else an attacker could reset their
  address by logging into their own account between guesses): a right key only refunds its own
  charge, and failures are forgotten after a quiet period.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .config import Clock, ThrottlePolicy
from .crypto import keyed
from .errors import LoginThrottled
from .models import Sessions, ThrottleRow

_MAX_CAS_RETRIES = 50


def account_key(pepper: bytes, username: str) -> str:
    return "acct:" + keyed(pepper, "throttle-account", username).hex()[:40]


def address_key(client_addr: str | None) -> str | None:
    """``addr:<ip>``; IPv6 addresses are grouped by /64 (one host usually owns a whole /64)."""
    if not client_addr:
        return None
    try:
        ip = ipaddress.ip_address(client_addr.strip())
    except ValueError:
        return "addr:" + client_addr.strip()[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return "addr:" + str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return f"addr:{ip}"


@dataclass(frozen=True)
class Charge:
    """One reserved failure: enough to undo it exactly if nothing else happened since."""

    key: str
    version: int  # the row's version right after this charge
    previous: tuple[int, float, float] | None  # (failures, last_failure_at, locked_until); None: row created
    wait: float


@dataclass(frozen=True)
class ThrottleState:
    key: str
    failures: int
    locked_until: float

    def retry_after(self, now: float) -> float:
        return max(0.0, self.locked_until - now)


class Throttle:
    """Failure counters in the database, shared by every worker process."""

    def __init__(self, db: Sessions, clock: Clock):
        self._db = db
        self._clock = clock

    # ------------------------------------------------------------------ queries

    def state(self, key: str) -> ThrottleState:
        with self._db() as s:
            row = s.get(ThrottleRow, key)
            if row is None:
                return ThrottleState(key, 0, 0.0)
            return ThrottleState(key, row.failures, row.locked_until)

    def retry_after(self, *keys: str | None) -> float:
        now = self._clock()
        return max([self.state(k).retry_after(now) for k in keys if k] or [0.0])

    # ------------------------------------------------------------------ updates

    def reserve(self, charges: list[tuple[str | None, ThrottlePolicy]]) -> list[Charge]:
        """Admit one attempt: raise :class:`LoginThrottled` if any key is locked, else charge each
        key one failure. Returns the charges, to :meth:`refund` when the attempt was right."""
        todo = [(k, p) for k, p in charges if k]
        wait = self.retry_after(*(k for k, _ in todo))
        if wait > 0:
            raise LoginThrottled(wait)
        return [self._charge(key, policy, gate=True) for key, policy in todo]

    def charge(self, key: str | None, policy: ThrottlePolicy) -> float:
        """Record one failure without gating (e.g. a wrong second factor); return the new wait."""
        if not key:
            return 0.0
        return self._charge(key, policy, gate=False).wait

    def refund(self, charge: Charge) -> None:
        """Undo a reserved charge: the attempt was not a guess. If nothing else touched the counter
        since, its previous state comes back exactly; otherwise only the count is decremented (the
        locks others' failures set stay)."""
        for _ in range(_MAX_CAS_RETRIES):
            with self._db.begin() as s:
                row = s.get(ThrottleRow, charge.key)
                if row is None:
                    return
                q = sa.update(ThrottleRow).where(ThrottleRow.key == charge.key, ThrottleRow.version == row.version)
                if row.version == charge.version and charge.previous is None:
                    s.execute(sa.delete(ThrottleRow).where(ThrottleRow.key == charge.key,
                                                           ThrottleRow.version == row.version))
                    return
                if row.version == charge.version and charge.previous is not None:
                    failures, last, locked = charge.previous
                else:
                    failures, last, locked = max(0, row.failures - 1), row.last_failure_at, row.locked_until
                done = s.execute(
                    q.values(failures=failures, last_failure_at=last, locked_until=locked, version=row.version + 1)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if done == 1:
                    return
        raise RuntimeError(f"throttle counter {charge.key} is too contended")  # pragma: no cover

    def clear(self, key: str | None) -> None:
        """Forget every failure of ``key`` (a completed login, or an administrator's unlock)."""
        if not key:
            return
        with self._db.begin() as s:
            s.execute(sa.delete(ThrottleRow).where(ThrottleRow.key == key))

    def _charge(self, key: str, policy: ThrottlePolicy, *, gate: bool) -> Charge:
        for _ in range(_MAX_CAS_RETRIES):
            now = self._clock()
            try:
                with self._db.begin() as s:
                    row = s.get(ThrottleRow, key)
                    if row is None:
                        s.add(ThrottleRow(key=key, failures=1, last_failure_at=now,
                                          locked_until=now + policy.delay(1), version=0))
                        s.flush()
                        return Charge(key, 0, None, policy.delay(1))
                    if gate and row.locked_until > now:
                        raise LoginThrottled(row.locked_until - now)
                    failures = 0 if now - row.last_failure_at >= policy.forget_after else row.failures
                    failures += 1
                    locked = max(row.locked_until, now + policy.delay(failures))
                    done = s.execute(
                        sa.update(ThrottleRow)
                        .where(ThrottleRow.key == key, ThrottleRow.version == row.version)
                        .values(failures=failures, last_failure_at=now, locked_until=locked, version=row.version + 1)
                        .execution_options(synchronize_session=False)
                    ).rowcount
                    if done == 1:
                        previous = (row.failures, row.last_failure_at, row.locked_until)
                        return Charge(key, row.version + 1, previous, max(0.0, locked - now))
            except IntegrityError:
                continue  # another attempt inserted the row first: retry against it
        raise RuntimeError(f"throttle counter {key} is too contended")  # pragma: no cover


__all__ = ["Charge", "Throttle", "ThrottleState", "account_key", "address_key"]
