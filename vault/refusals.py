"""Refusals on the ledger, bounded per presenter: every refused token presentation stays
auditable, but one presenter cannot grow the ledger without bound.

Each refusal the vault makes is written to the chain (``LogRefusal``, one transaction). A user
posting garbage tokens would otherwise add a transaction per request. :class:`RefusalLog` lets
the first ``per_window`` refusals of each presenter in each window (default 10 a minute) through
one by one, with their reason, token hash and claimed grant; the further ones of that window are
counted and written as **one** summary entry (``LogRefusalSummary``) when the window ends: how
many, by reason, the distinct grants the tokens claimed (up to 20) and the number and digest of
the distinct token hashes. So a presenter costs the ledger at most ``per_window + 1`` entries a
window, whatever they send.

Windows are aligned to the clock (``[k·window, (k+1)·window)``). A window's summary is written by
the first refusal (of anyone) after the window ended, by a timer a moment after it ends, or when
the vault closes; if the process is killed first, only that last summary is lost (the
individual entries are on the ledger already). The counts are per vault process: with two
gunicorn workers a presenter can reach ``2 × per_window`` individual entries a window.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .ledger import Refusal

log = logging.getLogger("serums.vault")

MAX_SUMMARY_GRANTS = 20


@dataclass(frozen=True)
class RefusalSummary:
    """The refusals of one presenter in one window beyond those logged one by one."""

    presenter_id: str
    window_start: _dt.datetime
    window_end: _dt.datetime
    count: int
    reasons: dict[str, int]
    grant_ids: tuple[str, ...]  # distinct claimed grant ids, at most MAX_SUMMARY_GRANTS
    tokens: int  # distinct token hashes
    token_hashes_digest: str  # SHA-256 of the sorted distinct token hashes, newline-separated

    def as_chain_arg(self) -> dict:
        return {"presenter_id": self.presenter_id, "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(), "count": self.count, "reasons": dict(self.reasons),
                "grant_ids": list(self.grant_ids), "tokens": self.tokens,
                "token_hashes_digest": self.token_hashes_digest}


@dataclass
class _Window:
    start: _dt.datetime
    logged: int = 0  # written one by one
    reasons: dict[str, int] = field(default_factory=dict)
    grants: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)

    def summary(self, presenter: str, width: _dt.timedelta) -> RefusalSummary:
        digest = hashlib.sha256("\n".join(sorted(self.hashes)).encode()).hexdigest()
        return RefusalSummary(presenter, self.start, self.start + width, sum(self.reasons.values()),
                              dict(sorted(self.reasons.items())), tuple(sorted(self.grants)), len(self.hashes),
                              digest)


class RefusalLog:
    """Writes refusals through ``write_one`` (the ledger's ``log_refusal``) up to ``per_window`` per
    presenter and window, and the rest as one :class:`RefusalSummary` per presenter and window
    through ``write_summary`` (the ledger's ``log_refusal_summary``). Thread-safe."""

    def __init__(self, write_one: Callable[[Refusal], None], write_summary: Callable[[RefusalSummary], None], *,
                 clock: Callable[[], _dt.datetime], per_window: int = 10,
                 window: _dt.timedelta = _dt.timedelta(minutes=1), timer: bool = True):
        if per_window < 0 or window <= _dt.timedelta(0):
            raise ValueError("per_window must be >= 0 and window > 0")
        self._write_one = write_one
        self._write_summary = write_summary
        self._clock = clock
        self.per_window = per_window
        self.window = window
        self._timer = timer
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._timers: list[threading.Timer] = []

    def _window_start(self, at: _dt.datetime) -> _dt.datetime:
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
        n = (at - epoch) // self.window
        return epoch + n * self.window

    def record(self, refusal: Refusal) -> bool:
        """Write ``refusal`` now (True) or count it into its window's summary (False). Raises what
        ``write_one`` raises (the caller logs it; the refusal itself stands)."""
        self.flush()
        start = self._window_start(refusal.at)
        presenter = refusal.presenter_id or ""
        older = None
        with self._lock:
            w = self._windows.get(presenter)
            if w is None or w.start != start:
                older = w if w is not None and w.reasons else None  # this presenter's previous window
                w = self._windows[presenter] = _Window(start)
            if w.logged < self.per_window:
                w.logged += 1
                individual = True
            else:
                individual = False
                first = not w.reasons
                w.reasons[refusal.reason] = w.reasons.get(refusal.reason, 0) + 1
                if refusal.grant_id and len(w.grants) < MAX_SUMMARY_GRANTS:
                    w.grants.add(refusal.grant_id)
                w.hashes.add(refusal.token_hash)
                if first and self._timer:
                    self._schedule(start + self.window)
        if older is not None:
            self._write_pending(presenter, older)
        if individual:
            self._write_one(refusal)
        return individual

    def flush(self, *, everything: bool = False) -> list[RefusalSummary]:
        """Write the summaries of the windows that have ended (all of them with ``everything``)."""
        now = self._clock()
        with self._lock:
            done = [(p, w) for p, w in self._windows.items() if everything or w.start + self.window <= now]
            for p, _ in done:
                del self._windows[p]
        out = []
        for presenter, w in done:
            if w.reasons:
                out.append(self._write_pending(presenter, w))
        return [s for s in out if s is not None]

    def close(self) -> None:
        for t in self._timers:
            t.cancel()
        self.flush(everything=True)

    def _write_pending(self, presenter: str, w: _Window) -> RefusalSummary | None:
        summary = w.summary(presenter, self.window)
        try:
            self._write_summary(summary)
        except Exception:  # noqa: BLE001 - the refusals stand even if their summary cannot be written
            log.exception("could not write the summary of %d refusals of %s on the ledger", summary.count, presenter)
            return None
        return summary

    def _schedule(self, at: _dt.datetime) -> None:
        delay = max(0.0, (at - self._clock()).total_seconds()) + 0.5
        t = threading.Timer(delay, self.flush)
        t.daemon = True
        t.start()
        self._timers = [x for x in self._timers if x.is_alive()] + [t]


__all__ = ["MAX_SUMMARY_GRANTS", "RefusalLog", "RefusalSummary"]
