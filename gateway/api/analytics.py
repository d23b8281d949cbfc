"""``/analytics``: research jobs released only against the chain, paid from on-chain ε budgets.

Researchers ask the chain for a research cohort (the chain keeps only the patients whose
hospital rules and own preferences allow it), submit a job naming the cohort, the dataset whose
budget pays and the (ε, δ) it spends, follow its progress (round, ε so far) and fetch the released
model. Hospital admins create dataset budgets; auditors see every job, budget and spend. The
training runs beside the vaults under the hospital's ``analytics`` service identity; the release
spends and logs its SHA-256 in one transaction (``BudgetContract.SpendRelease``).
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from analytics.features import TOXICITY_SECTIONS

from .. import research as R
from .. import schemas as S
from ..security import actor, roles_required, services

bp = Blueprint("analytics", __name__, url_prefix="/analytics",
               description="Research jobs (DP learning across hospitals) gated by cohorts and ε budgets")

researchers = roles_required("researcher")
readers = roles_required("researcher", "hospital_admin", "auditor")


class CohortIn(S.Schema):
    patients = fields.List(S.Id(), validate=validate.Length(min=1, max=R.MAX_CANDIDATES), required=True,
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
    kind = S.Choice(["train", "stats"], load_default="train",
                    metadata={"description": "train: the toxicity predictor; stats: encrypted statistics "
                                             "(TenSEAL), noised by the privacy wall (method 'wall')"})
    engine = S.Choice(list(R.ENGINES), load_default="inprocess",
                      metadata={"description": "inprocess: FedAvg in the gateway's process; flower: Flower's "
                                               "deployment engine (a SuperNode beside each hospital's vault)"})
    rounds = fields.Integer(load_default=3, validate=validate.Range(min=1, max=50))
    local_epochs = fields.Integer(load_default=2, validate=validate.Range(min=1, max=20))


class PageIn(S.Schema):
    page_size = S.Page()["page_size"]
    bookmark = S.Page()["bookmark"]


@bp.route("/cohorts", methods=["POST"])
@researchers
@bp.arguments(CohortIn)
@bp.response(201)
def request_cohort(body):
    """Ask the chain for a research cohort over the toxicity task's sections: it keeps only the
    patients whose hospital rules and own preferences allow research (the others are only counted)."""
    return R.request_cohort(services(), actor(), body["patients"], TOXICITY_SECTIONS, body["justification"])


@bp.route("/datasets", methods=["POST"])
@roles_required("hospital_admin")
@bp.arguments(DatasetIn)
@bp.response(201)
def create_dataset(body):
    """A hospital admin creates a dataset's privacy budget (total ε and δ) on chain."""
    return R.create_dataset(services(), actor(), body["dataset"], body["epsilon"], body["delta"])


@bp.route("/datasets", methods=["GET"])
@readers
@bp.response(200)
def list_datasets():
    """Every dataset's budget (totals, spent, remaining), by dataset id."""
    found = R.datasets(services(), actor())
    return {"datasets": found, "count": len(found)}


@bp.route("/datasets/<string:dataset>", methods=["GET"])
@readers
@bp.response(200)
def get_budget(dataset: str):
    """A dataset's budget: totals, spent, remaining, number of spends."""
    return R.budget(services(), actor(), dataset)


@bp.route("/datasets/<string:dataset>/spends", methods=["GET"])
@roles_required("hospital_admin", "auditor")
@bp.arguments(PageIn, location="query")
@bp.response(200)
def spends(query, dataset: str):
    """The dataset's spends, oldest first: each release's id, (ε, δ), cohort and SHA-256."""
    return R.spends(services(), actor(), dataset, query["page_size"], query["bookmark"])


@bp.route("/jobs", methods=["POST"])
@researchers
@bp.arguments(JobIn)
@bp.response(202)
def submit_job(body):
    """Submit a job: refused (409 ``privacy-budget-exceeded``) before any training when its ε or δ
    exceeds what the dataset has left; 403 ``cohort-refused`` when the cohort is not live. Runs in
    the background; follow it at ``/analytics/jobs/<id>``."""
    return R.submit_job(services(), actor(), body)


@bp.route("/jobs", methods=["GET"])
@roles_required("researcher", "auditor")
@bp.response(200)
def list_jobs():
    """My jobs (researchers), every job (auditors): status, round, ε spent so far, release digest."""
    found = R.jobs(services(), actor())
    return {"jobs": found, "count": len(found)}


@bp.route("/jobs/<string:job_id>", methods=["GET"])
@roles_required("researcher", "auditor")
@bp.response(200)
def get_job(job_id: str):
    """A job's progress: status (queued, running, released, refused, failed), round, ε spent so far."""
    return R.job(services(), actor(), job_id)


@bp.route("/jobs/<string:job_id>/release", methods=["GET"])
@researchers
@bp.response(200)
def get_release(job_id: str):
    """The released model (or statistics) with its SHA-256 and the transaction that spent the
    budget and logged it."""
    return R.release(services(), actor(), job_id)
