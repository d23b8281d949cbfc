"""Analytics' seam to the chain: budgets, research cohorts, and the release that spends.

``ChainAnalyticsLedger`` signs as a hospital's ``analytics`` service identity and calls:

- ``BudgetContract.GetBudget`` — what a dataset may still spend (read before any training);
- ``TransportContract.GetCohort`` / ``CohortMembers`` — whether the job's cohort is live, and which
  patients it holds (only active members: patients who withdrew consent are never read);
- ``BudgetContract.SpendRelease`` — spends (ε, δ) and logs the release's SHA-256 in one transaction,
  refused when the cohort was revoked or the budget would be exceeded.

Chain refusals become analytics errors with the chain's reason as data; anything else raises.
"""

from __future__ import annotations

from typing import Any, Protocol

from network import Contract, GatewayError

from .errors import AnalyticsError, BudgetExceeded, CohortRefused


class DatasetNotFound(AnalyticsError):
    type = "dataset-not-found"
    status = 404
    title = "dataset not found"


class AnalyticsLedger(Protocol):
    def budget(self, dataset: str) -> dict[str, Any]: ...

    def cohort(self, cohort_id: str) -> dict[str, Any]: ...

    def cohort_members(self, cohort_id: str) -> list[str]: ...

    def spend_release(self, dataset: str, epsilon: float, delta: float, release_id: str, cohort_id: str,
                      sha256: str) -> dict[str, Any]: ...


def _refusal(exc: GatewayError, what: str) -> Exception:
    status, message = exc.chaincode_status, exc.chaincode_message or str(exc)
    if status == 404:
        return (DatasetNotFound if what == "dataset" else CohortRefused)(message, chain_status=404)
    if status == 409 and "budget" in message:
        return BudgetExceeded(message, chain_status=409)
    if status in (403, 409):
        return CohortRefused(message, chain_status=status)
    return exc


class ChainAnalyticsLedger:
    """AnalyticsLedger over the serums chaincode, as an analytics service identity."""

    def __init__(self, budget: Contract, transport: Contract):
        self.budget_contract, self.transport = budget, transport

    @classmethod
    def of(cls, network: Any, chaincode: str = "serums") -> ChainAnalyticsLedger:
        """From a ``network.Network`` (``gateway.network(channel)``) of the analytics identity."""
        return cls(network.contract(chaincode, "BudgetContract"), network.contract(chaincode, "TransportContract"))

    def budget(self, dataset: str) -> dict[str, Any]:
        try:
            return self.budget_contract.evaluate_json("GetBudget", dataset)
        except GatewayError as exc:
            raise _refusal(exc, "dataset") from None

    def cohort(self, cohort_id: str) -> dict[str, Any]:
        try:
            return self.transport.evaluate_json("GetCohort", cohort_id)
        except GatewayError as exc:
            raise _refusal(exc, "cohort") from None

    def cohort_members(self, cohort_id: str) -> list[str]:
        members, bookmark = [], ""
        while True:
            try:
                page = self.transport.evaluate_json("CohortMembers", cohort_id, 200, bookmark)
            except GatewayError as exc:
                raise _refusal(exc, "cohort") from None
            members += [r["patient"] for r in page["records"] if r.get("status") == "active"]
            bookmark = page.get("bookmark") or ""
            if not bookmark:
                return members

    def spend_release(self, dataset: str, epsilon: float, delta: float, release_id: str, cohort_id: str,
                      sha256: str) -> dict[str, Any]:
        try:
            return self.budget_contract.submit_json("SpendRelease", dataset, epsilon, delta, release_id, cohort_id,
                                                    sha256)
        except GatewayError as exc:
            raise _refusal(exc, "dataset") from None
