"""BudgetContract: the privacy budget (ε, δ) each dataset may still spend on releases.

A hospital admin creates a dataset's budget; the analytics service identity of the same hospital
spends from it, one release at a time, and a spend that would exceed either total is refused.
Amounts are kept as decimal strings so that many small spends add up exactly (0.1 ten times is
1.0, not 0.9999999999999999). Every spend of a dataset reads and writes the dataset's record:
concurrent spends on one dataset are serialised by MVCC (one commits, the other must retry),
which is what stops a budget from being spent twice.
"""

from __future__ import annotations

import json
from decimal import Decimal

from chaincode import Conflict, InvalidArgument, NotFound, evaluate, transaction

from . import keys
from .common import ACTIVE, SerumsContext, SerumsContract, load_hospital
from .vocab import check_id, check_number, check_page

MAX_EPSILON = 1000.0


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _view(doc: dict) -> dict:
    e_tot, e_sp = Decimal(doc["epsilon_total"]), Decimal(doc["epsilon_spent"])
    d_tot, d_sp = Decimal(doc["delta_total"]), Decimal(doc["delta_spent"])
    return {
        **doc,
        "epsilon_remaining": str(e_tot - e_sp),
        "delta_remaining": str(d_tot - d_sp),
        "exhausted": e_sp >= e_tot,
    }


class BudgetContract(SerumsContract):
    name = "BudgetContract"
    info = {"title": "SERUMS privacy budget per dataset", "version": "1.0"}

    def _dataset(self, ctx: SerumsContext, dataset: str) -> dict:
        ds = check_id(dataset, "dataset")
        doc = ctx.get(keys.dataset(ds))
        if doc is None:
            raise NotFound(f"dataset: no dataset {ds!r}")
        return doc

    @transaction
    def CreateDataset(self, ctx: SerumsContext, dataset: str, epsilon: float, delta: float) -> dict:
        """A hospital admin sets a dataset's total budget (ε > 0, 0 <= δ < 1)."""
        c = ctx.caller
        c.require_admin_of(c.msp)
        load_hospital(ctx, c.msp)
        ds = check_id(dataset, "dataset")
        eps = check_number(epsilon, "epsilon", positive=True, maximum=MAX_EPSILON)
        dlt = check_number(delta, "delta", positive=False, maximum=0.999999)
        if ctx.get(keys.dataset(ds)) is not None:
            raise Conflict(f"dataset: {ds} already exists")
        doc = {
            "dataset": ds, "hospital": c.msp, "epsilon_total": str(_dec(eps)), "delta_total": str(_dec(dlt)),
            "epsilon_spent": "0", "delta_spent": "0", "spends": 0, "created_at": ctx.now_s, "created_by": c.label,
            "updated_at": ctx.now_s,
        }
        ctx.put(keys.dataset(ds), doc)
        ctx.event("DatasetCreated", {"dataset": ds, "hospital": c.msp, "epsilon": doc["epsilon_total"],
                                     "delta": doc["delta_total"], "at": ctx.now_s})
        return _view(doc)

    @transaction
    def Spend(self, ctx: SerumsContext, dataset: str, epsilon: float, delta: float, release_id: str) -> dict:
        """The analytics service of the dataset's hospital spends (ε, δ) on one release; refused
        (409) when either total would be exceeded or the release id was already used."""
        return self._spend(ctx, dataset, epsilon, delta, release_id, {})

    @transaction
    def SpendRelease(self, ctx: SerumsContext, dataset: str, epsilon: float, delta: float, release_id: str,
                     cohort_id: str, sha256: str) -> dict:
        """Spend (ε, δ) on a release of a research cohort's data and log the release's SHA-256 in the
        same transaction: refused (409) when the cohort is not active (revoked, expired, empty)."""
        ctx.caller.require_user("analytics")
        digest = sha256.lower() if isinstance(sha256, str) else ""
        if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
            raise InvalidArgument("sha256: expected 64 hexadecimal characters")
        cid = check_id(cohort_id, "cohort_id")
        cohort = ctx.get(keys.cohort(cid))
        if cohort is None:
            raise NotFound(f"cohort_id: no cohort {cid!r}")
        if cohort["status"] != ACTIVE or not cohort["expires_at"] or ctx.now_s >= cohort["expires_at"]:
            status = cohort["status"] if cohort["status"] != ACTIVE else "expired"
            raise Conflict(f"cohort {cid} is {status}: nothing of it may be released")
        return self._spend(ctx, dataset, epsilon, delta, release_id, {"cohort_id": cid, "sha256": digest})

    def _spend(self, ctx: SerumsContext, dataset: str, epsilon: float, delta: float, release_id: str,
               extra: dict) -> dict:
        doc = self._dataset(ctx, dataset)
        u = ctx.caller.require_user("analytics")
        if u["hospital"] != doc["hospital"]:
            raise ctx.caller.forbid(f"only the analytics service of {doc['hospital']} spends this dataset's budget")
        eps = _dec(check_number(epsilon, "epsilon", positive=True, maximum=MAX_EPSILON))
        dlt = _dec(check_number(delta, "delta", positive=False, maximum=0.999999))
        rid = check_id(release_id, "release_id")
        if ctx.get_raw(keys.release(doc["dataset"], rid)) is not None:
            raise Conflict(f"release_id: release {rid} already spent from dataset {doc['dataset']}")
        e_new = Decimal(doc["epsilon_spent"]) + eps
        d_new = Decimal(doc["delta_spent"]) + dlt
        e_tot, d_tot = Decimal(doc["epsilon_total"]), Decimal(doc["delta_total"])
        if e_new > e_tot or d_new > d_tot:
            raise Conflict(
                f"privacy budget of dataset {doc['dataset']} exceeded: requested ε={eps}, δ={dlt}; "
                f"remaining ε={e_tot - Decimal(doc['epsilon_spent'])}, δ={d_tot - Decimal(doc['delta_spent'])}"
            )
        doc.update(epsilon_spent=str(e_new), delta_spent=str(d_new), spends=doc["spends"] + 1, updated_at=ctx.now_s)
        ctx.put(keys.dataset(doc["dataset"]), doc)
        ctx.put_raw(keys.release(doc["dataset"], rid), ctx.tx_id.encode())
        spend = {
            "dataset": doc["dataset"], "release_id": rid, "epsilon": str(eps), "delta": str(dlt),
            "epsilon_spent": doc["epsilon_spent"], "delta_spent": doc["delta_spent"], "analytics_id": u["id"],
            "at": ctx.now_s, "tx_id": ctx.tx_id, **extra,
        }
        ctx.put(keys.spend(doc["dataset"], ctx.now_s, ctx.tx_id), spend)
        view = _view(doc)
        ctx.event("BudgetSpent", {
            **spend, "hospital": doc["hospital"], "epsilon_remaining": view["epsilon_remaining"],
            "delta_remaining": view["delta_remaining"], "exhausted": view["exhausted"],
        })
        return {**spend, "epsilon_remaining": view["epsilon_remaining"], "delta_remaining": view["delta_remaining"],
                "exhausted": view["exhausted"]}

    def _reader(self, ctx: SerumsContext) -> None:
        c = ctx.caller
        if not (c.is_admin or c.active_user() is not None):
            raise ctx.caller.forbid("only registered users and hospital admins read privacy budgets")

    @evaluate
    def GetBudget(self, ctx: SerumsContext, dataset: str) -> dict:
        self._reader(ctx)
        return _view(self._dataset(ctx, dataset))

    @evaluate
    def ListDatasets(self, ctx: SerumsContext, page_size: int, bookmark: str) -> dict:
        """Every dataset's budget (totals, spent, remaining), by dataset id, paginated."""
        self._reader(ctx)
        size, bm = check_page(page_size, bookmark)
        page = ctx.stub.get_state_by_partial_composite_key_with_pagination("dataset", [], size, bm)
        records = [_view(json.loads(kv.value)) for kv in page.records]
        return {"records": records, "count": len(records), "bookmark": page.bookmark}

    @evaluate
    def SpendHistory(self, ctx: SerumsContext, dataset: str, page_size: int, bookmark: str) -> dict:
        """The dataset's spends, oldest first, paginated."""
        self._reader(ctx)
        doc = self._dataset(ctx, dataset)
        size, bm = check_page(page_size, bookmark)
        page = ctx.stub.get_state_by_partial_composite_key_with_pagination("spend", [doc["dataset"]], size, bm)
        records = [json.loads(kv.value) for kv in page.records]
        return {"records": records, "count": len(records), "bookmark": page.bookmark}
