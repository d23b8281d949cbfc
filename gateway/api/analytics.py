"""``/analytics``: research jobs released only against the chain, paid from on-chain ε budgets.

Researchers ask the chain for a research cohort (the chain keeps only the patients whose
hospital rules and own preferences allow it), submit a job naming the cohort, the dataset whose
budget pays and the (ε, δ) it spends, follow its progress (round, ε so far) and fetch the released
model. Hospital admins create dataset budgets; auditors see every job, budget and spend. The
training runs beside the vaults under the hospital's ``analytics`` service identity; the release
spends and logs its SHA-256 in one transaction (``BudgetContract.SpendRelease``).
"""

from __future__ import annotations

import threading
from pathlib import Path

from flask_smorest import Blueprint
from marshmallow import fields, validate

from analytics import AnalyticsError, BudgetExceeded, CohortRefused, InvalidParameters, JobNotFound
from analytics.chain import ChainAnalyticsLedger, DatasetNotFound
from analytics.features import TOXICITY_SECTIONS
from analytics.jobs import JobSpec, JobStore
from network import GatewayError, IdentityError, load_credentials, save_credentials

from .. import ledger as L
from .. import problems as P
from .. import schemas as S
from ..security import my_contract, principal, roles_required, services

bp = Blueprint("analytics", __name__, url_prefix="/analytics",
               description="Research jobs (DP learning across hospitals) gated by cohorts and ε budgets")

researchers = roles_required("researcher")
readers = roles_required("researcher", "hospital_admin", "auditor")
ROLE = "analytics"
for _cls in (BudgetExceeded, CohortRefused, InvalidParameters, JobNotFound, DatasetNotFound):
    P.problem_type(_cls.type, _cls.status, _cls.title, " ".join((_cls.__doc__ or _cls.title).split()))
_lock = threading.Lock()
_identities: dict[str, tuple] = {}


class CohortIn(S.Schema):
    patients = fields.List(S.Id(), validate=validate.Length(min=1, max=500), required=True,
                           metadata={"description": "candidate patients (pseudonymous ids)"})
    justification = S.Text(load_default="research-protocol", validate=validate.Length(min=1, max=64))


class DatasetIn(S.Schema):
    dataset = S.Id(required=True)
    epsilon = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False, max=1000))
    delta = fields.Float(required=True, validate=validate.Range(min=0, max=0.999999))


class JobIn(S.Schema):
    study = S.Id(required=True)
    cohort_id = S.Id(required=True)
    dataset = S.Id(required=True)
    epsilon = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False, max=1000))
    delta = fields.Float(required=True, validate=validate.Range(min=0, max=0.999999))
    purpose = S.Text(load_default="research", validate=validate.Length(min=1, max=32))
    sections = fields.List(S.Text(validate=validate.Length(min=1, max=64)), load_default=list(TOXICITY_SECTIONS),
                           validate=validate.Length(max=20))
    method = S.Choice(["dpsgd", "wall"], load_default="dpsgd")
    rounds = fields.Integer(load_default=3, validate=validate.Range(min=1, max=50))
    local_epochs = fields.Integer(load_default=2, validate=validate.Range(min=1, max=20))


class PageIn(S.Schema):
    page_size = S.Page()["page_size"]
    bookmark = S.Page()["bookmark"]


def _problem(exc: AnalyticsError) -> P.Problem:
    pt = P.TYPES.get(exc.type) or P.problem_type(exc.type, exc.status, exc.title, exc.title)
    return P.Problem(pt, exc.detail, extra={k: v for k, v in exc.extra.items() if k != "chain_status"})


def _store() -> JobStore:
    return JobStore(Path(services().settings.data_dir) / "analytics" / "jobs")


def analytics_identity(hospital: str) -> tuple:
    """The hospital's analytics service identity (created and registered on chain once)."""
    svc = services()
    name = svc.hospital_of(hospital)
    with _lock:
        if name in _identities:
            return _identities[name]
        directory, uid = svc.network.user_dir(name, ROLE), f"{ROLE}-{name}"
        try:
            creds = load_credentials(directory, svc.settings.key_passphrase)
        except IdentityError:
            ident, signer = svc.network.load_ca(name, svc.settings.key_passphrase).issue(
                uid, "client", attributes={"role": ROLE, "uid": uid, "hf.EnrollmentID": uid})
            save_credentials(directory, ident, signer, svc.settings.key_passphrase)
            try:
                L.submit(svc.admin_contract(name, "UserContract"), "RegisterUser", uid, ROLE, ident.fingerprint)
            except GatewayError as exc:
                if exc.chaincode_status != 409:
                    raise
            creds = (ident, signer)
        _identities[name] = creds
        return creds


def _ledger(hospital: str) -> ChainAnalyticsLedger:
    svc = services()
    return ChainAnalyticsLedger.of(svc.gateway(*analytics_identity(hospital)).network(svc.network.channel))


def _vaults() -> dict:
    svc = services()
    return {h: svc.vault(h) for h in svc.hospitals if (svc.vault_dir(h) / "vault.db").exists()
            or svc.settings.postgres_url}


def _job(job_id: str):
    try:
        job = _store().get(job_id)
    except AnalyticsError as exc:
        raise _problem(exc) from None
    p = principal()
    if p.role != "auditor" and job.owner != p.user_id:
        raise P.Problem(P.NOT_FOUND, f"no job {job_id!r}")
    return job


@bp.route("/cohorts", methods=["POST"])
@researchers
@bp.arguments(CohortIn)
@bp.response(201)
def request_cohort(body):
    """Ask the chain for a research cohort over the toxicity task's sections: it keeps only the
    patients whose hospital rules and own preferences allow research (the others are only counted)."""
    tx = L.submit(my_contract("TransportContract"), "RequestCohort", body["patients"], list(TOXICITY_SECTIONS),
                  "research", body["justification"])
    c = tx.result
    return {k: c[k] for k in ("cohort_id", "size", "excluded", "expires_at", "sections", "status")} | {
        "transaction_id": tx.transaction_id}


@bp.route("/datasets", methods=["POST"])
@roles_required("hospital_admin")
@bp.arguments(DatasetIn)
@bp.response(201)
def create_dataset(body):
    """A hospital admin creates a dataset's privacy budget (total ε and δ) on chain."""
    return L.submit(my_contract("BudgetContract"), "CreateDataset", body["dataset"], body["epsilon"],
                    body["delta"]).result


@bp.route("/datasets/<string:dataset>", methods=["GET"])
@readers
@bp.response(200)
def get_budget(dataset: str):
    """A dataset's budget: totals, spent, remaining, number of spends."""
    return L.evaluate(my_contract("BudgetContract"), "GetBudget", dataset)


@bp.route("/datasets/<string:dataset>/spends", methods=["GET"])
@roles_required("hospital_admin", "auditor")
@bp.arguments(PageIn, location="query")
@bp.response(200)
def spends(query, dataset: str):
    """The dataset's spends, oldest first: each release's id, (ε, δ), cohort and SHA-256."""
    page = L.evaluate(my_contract("BudgetContract"), "SpendHistory", dataset, query["page_size"], query["bookmark"])
    return {**page, "bookmark": L.encode_bookmark(page.get("bookmark") or "")}


@bp.route("/jobs", methods=["POST"])
@researchers
@bp.arguments(JobIn)
@bp.response(202)
def submit_job(body):
    """Submit a job: refused (409 ``privacy-budget-exceeded``) before any training when its ε or δ
    exceeds what the dataset has left; 403 ``cohort-refused`` when the cohort is not live. Runs in
    the background; follow it at ``/analytics/jobs/<id>``."""
    try:
        spec = JobSpec.from_dict(body)
        budget = _ledger_for_dataset(spec.dataset)
        job = _store().submit(principal().user_id, spec, budget, _vaults())
    except AnalyticsError as exc:
        raise _problem(exc) from None
    return job.view()


def _ledger_for_dataset(dataset: str) -> ChainAnalyticsLedger:
    """The analytics ledger of the hospital that owns ``dataset`` (its service spends the budget)."""
    doc = L.evaluate(my_contract("BudgetContract"), "GetBudget", dataset)
    return _ledger(services().hospital_of(doc["hospital"]))


@bp.route("/jobs", methods=["GET"])
@roles_required("researcher", "auditor")
@bp.response(200)
def list_jobs():
    """My jobs (researchers), every job (auditors): status, round, ε spent so far, release digest."""
    p = principal()
    jobs = _store().list(None if p.role == "auditor" else p.user_id)
    return {"jobs": [j.view() for j in jobs], "count": len(jobs)}


@bp.route("/jobs/<string:job_id>", methods=["GET"])
@roles_required("researcher", "auditor")
@bp.response(200)
def get_job(job_id: str):
    """A job's progress: status (queued, running, released, refused, failed), round, ε spent so far."""
    return _job(job_id).view()


@bp.route("/jobs/<string:job_id>/release", methods=["GET"])
@researchers
@bp.response(200)
def get_release(job_id: str):
    """The released model with its SHA-256 and the transaction that spent the budget and logged it."""
    job = _job(job_id)
    if job.status != "released" or not job.release:
        raise P.Problem(P.CONFLICT, f"job {job_id} is {job.status}: nothing was released")
    return job.release
