"""Evaluation mode: record every login and report FlexPass usability figures.

The FlexPass study compared the textual and the graphical key by how long a login takes and which
key people choose when they may use either. With ``AuthConfig.evaluation_mode`` on, the service
records one event per attempt: the method, the second factor, when the login page was shown
(``start_attempt`` / ``login_grid``), when the key was submitted, when the login completed, and
the outcome. :func:`usability_figures` turns events into the paper's figures; it is a pure
function, so recorded events can also be analysed offline.

Login time is measured from the moment the page was shown (or, without an attempt id, from the
key's submission) to the completed second factor: what the user experiences, not server time.
Events hold the pseudonymous user id only; no key material, no username.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from .config import Clock
from .crypto import new_id
from .models import LoginEventRow, Sessions


@dataclass(frozen=True)
class LoginEvent:
    attempt_id: str
    user_id: str | None
    method: str | None
    second_factor: str | None
    started_at: float
    key_at: float | None
    completed_at: float | None
    success: bool | None
    outcome: str

    @property
    def login_seconds(self) -> float | None:
        if self.completed_at is None:
            return None
        return self.completed_at - self.started_at


@dataclass(frozen=True)
class MethodFigures:
    method: str
    attempts: int
    successes: int
    success_rate: float
    mean_login_s: float | None
    median_login_s: float | None
    p90_login_s: float | None


@dataclass(frozen=True)
class UsabilityReport:
    """Figures as in the FlexPass paper: time per method, and which method people prefer."""

    attempts: int
    successful_logins: int
    methods: dict[str, MethodFigures]
    method_share: dict[str, float]  # share of successful logins made with each method
    user_preference: dict[str, float]  # share of users whose most used method it is
    second_factor_share: dict[str, float]
    users: int

    def to_json(self) -> dict:
        data = asdict(self)
        data["methods"] = {k: asdict(v) for k, v in self.methods.items()}
        return data


def _share(counter: Counter, keys: Iterable[str]) -> dict[str, float]:
    total = sum(counter.values())
    return {k: (counter[k] / total if total else 0.0) for k in keys}


def usability_figures(events: Iterable[LoginEvent], methods: tuple[str, ...] = ("text", "graphical")) -> UsabilityReport:
    """Aggregate login events (only attempts whose key was submitted count)."""
    evs = [e for e in events if e.method is not None]
    per_method: dict[str, MethodFigures] = {}
    for m in methods:
        mine = [e for e in evs if e.method == m]
        ok = [e for e in mine if e.success]
        times = sorted(t for t in (e.login_seconds for e in ok) if t is not None)
        per_method[m] = MethodFigures(
            method=m,
            attempts=len(mine),
            successes=len(ok),
            success_rate=(len(ok) / len(mine)) if mine else 0.0,
            mean_login_s=statistics.fmean(times) if times else None,
            median_login_s=statistics.median(times) if times else None,
            p90_login_s=times[min(len(times) - 1, int(0.9 * len(times)))] if times else None,
        )
    successes = [e for e in evs if e.success]
    by_user: dict[str, Counter] = defaultdict(Counter)
    for e in successes:
        if e.user_id:
            by_user[e.user_id][e.method] += 1
    favourites: Counter = Counter()
    for counts in by_user.values():
        top = max(counts.values())
        winners = [m for m in methods if counts[m] == top]
        for m in winners:  # a tie counts half for each
            favourites[m] += 1 / len(winners)
    return UsabilityReport(
        attempts=len(evs),
        successful_logins=len(successes),
        methods=per_method,
        method_share=_share(Counter(e.method for e in successes), methods),
        user_preference=_share(favourites, methods),
        second_factor_share=_share(Counter(e.second_factor for e in successes), ("totp", "push", "recovery")),
        users=len(by_user),
    )


class EvaluationRecorder:
    """Writes login events when evaluation mode is on; otherwise every call is a no-op."""

    def __init__(self, db: Sessions, clock: Clock, enabled: bool):
        self._db = db
        self._clock = clock
        self.enabled = enabled

    def start(self, attempt_id: str | None = None) -> str:
        """Open an attempt when the login page is shown; returns its id (always, even when off)."""
        attempt_id = attempt_id if self._known(attempt_id) else new_id(12)
        if self.enabled:
            with self._db.begin() as s:
                if s.get(LoginEventRow, attempt_id) is None:
                    s.add(LoginEventRow(id=attempt_id, started_at=self._clock()))
        return attempt_id

    def _known(self, attempt_id: str | None) -> bool:
        if not (self.enabled and attempt_id and isinstance(attempt_id, str) and len(attempt_id) <= 32):
            return False
        with self._db() as s:
            row = s.get(LoginEventRow, attempt_id)
            return row is not None and row.key_at is None

    def key_submitted(self, attempt_id: str | None, *, user_id: str | None, method: str, ok: bool, outcome: str) -> str | None:
        """Record the key step; a failed key ends the attempt. Returns the attempt id to carry on."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._db.begin() as s:
            row = s.get(LoginEventRow, attempt_id) if attempt_id else None
            if row is None or row.key_at is not None:
                row = LoginEventRow(id=new_id(12), started_at=now)
                s.add(row)
            row.user_id = user_id
            row.method = method
            row.key_at = now
            if not ok:
                row.completed_at = now
                row.success = False
                row.outcome = outcome
            else:
                row.outcome = "key-accepted"
            return row.id

    def completed(
        self, attempt_id: str | None, *, second_factor: str, success: bool, outcome: str, final: bool = True
    ) -> None:
        """Record the second-factor step. A failure that leaves the challenge usable (``final``
        False) only notes the outcome: the user may still succeed within the same attempt."""
        if not (self.enabled and attempt_id):
            return
        with self._db.begin() as s:
            row = s.get(LoginEventRow, attempt_id)
            if row is None or row.success is not None:
                return
            row.second_factor = second_factor
            row.outcome = outcome
            if success or final:
                row.success = success
                row.completed_at = self._clock()

    def events(self, since: float | None = None) -> list[LoginEvent]:
        with self._db() as s:
            q = sa.select(LoginEventRow).order_by(LoginEventRow.started_at)
            if since is not None:
                q = q.where(LoginEventRow.started_at >= since)
            return [
                LoginEvent(r.id, r.user_id, r.method, r.second_factor, r.started_at, r.key_at, r.completed_at,
                           r.success, r.outcome)
                for r in s.scalars(q)
            ]


__all__ = ["EvaluationRecorder", "LoginEvent", "MethodFigures", "UsabilityReport", "usability_figures"]
