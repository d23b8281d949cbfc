"""Errors of analytics, each with a stable ``type`` slug, an HTTP-like status, a title and a detail.

Refusals (budget exceeded, cohort revoked, job not found) are ``AnalyticsError`` subclasses so a
caller tells "you may not" from "something broke"; the reason travels as data in ``extra``.
"""

from __future__ import annotations

from typing import Any


class AnalyticsError(Exception):
    """Base of every error analytics raises on purpose."""

    type: str = "analytics-error"
    status: int = 500
    title: str = "analytics error"

    def __init__(self, detail: str, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def slug(self) -> str:
        return self.type

    def to_problem(self) -> dict[str, Any]:
        """RFC 9457 problem details (the gateway prefixes ``type`` with its URI base)."""
        return {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail,
                **self.extra}


class InvalidParameters(AnalyticsError):
    """Bad (ε, δ), bounds, shapes or job fields."""

    type = "analytics-invalid"
    status = 400
    title = "invalid analytics parameters"


class BudgetExceeded(AnalyticsError):
    """The job would spend more ε than the dataset has left; nothing was trained or released."""

    type = "privacy-budget-exceeded"
    status = 409
    title = "privacy budget exceeded"


class CohortRefused(AnalyticsError):
    """The chain refused or revoked the cohort the job reads."""

    type = "cohort-refused"
    status = 403
    title = "cohort refused"


class JobNotFound(AnalyticsError):
    type = "analytics-job-not-found"
    status = 404
    title = "analytics job not found"


class EngineUnavailable(AnalyticsError):
    """A federated engine (Flower) could not be started or did not finish."""

    type = "analytics-engine-unavailable"
    status = 503
    title = "federated engine unavailable"
