"""Analytics jobs: released only against the chain, paid from an on-chain ε budget.

A job names a study, purpose ``research``, the record sections it needs, the research cohort the
chain granted (``TransportContract.RequestCohort``, submitted by the researcher), the dataset whose
budget pays and the (ε, δ) it will spend. ``run_job``:

1. refuses unless the cohort is live, for ``research``, and covers the sections the task reads;
2. refuses *before any training* when ε or δ exceeds what ``GetBudget`` says remains;
3. reads each hospital's rows only through its vault's cohort token (``vault.mint_cohort_token`` /
   ``vault.redeem_cohort``): minted for the cohort and the site's ``analytics`` service identity,
   checked like a record token (signature, expiry, presenter, cohort live on chain); the vault
   releases only the cohort's active members (withdrawn patients are never read) and only the
   cohort's sections (never demographics: hospitals' rules deny them to research), and the chain
   logs each release (``ReleaseCohort``);
4. trains (DP-SGD with its accountant, or the privacy wall) with FedAvg across the hospitals,
   checking after every round that the cohort is still live (a revoked cohort stops the job);
5. releases: the model document's SHA-256 is logged on chain by ``SpendRelease`` in the same
   transaction that spends the budget. The document is returned only after that commit.

A :class:`CohortSite` is one hospital as a job sees it: its vault and the analytics identity that
presents cohort tokens there. ``JobStore`` keeps jobs as JSON files (one per job) so any gateway worker can report progress.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .chain import AnalyticsLedger
from .errors import (
    AnalyticsError,
    BudgetExceeded,
    CohortRefused,
    EngineUnavailable,
    InvalidParameters,
    JobNotFound,
)
from .features import (
    REGIMENS,
    RESEARCH_BOUNDS,
    RESEARCH_FEATURES,
    TOXICITY_SECTIONS,
    Dataset,
    site_rows,
    toxicity_dataset,
)
from .learning import RoundLog, TrainConfig, train_federated
from .wall import check_privacy

JOB_KINDS = ("train", "stats")
JOB_ENGINES = ("inprocess", "flower")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass(frozen=True)
class JobSpec:
    study: str
    cohort_id: str
    dataset: str
    epsilon: float
    delta: float
    sections: tuple[str, ...] = TOXICITY_SECTIONS
    purpose: str = "research"
    method: str = "dpsgd"
    rounds: int = 3
    local_epochs: int = 2
    kind: str = "train"  # train: the toxicity predictor; stats: encrypted statistics (``run_statistics_job``)
    engine: str = "inprocess"  # inprocess: FedAvg in this process; flower: Flower's deployment engine

    def __post_init__(self) -> None:
        for name in ("study", "cohort_id", "dataset"):
            if not isinstance(getattr(self, name), str) or not _ID.match(getattr(self, name)):
                raise InvalidParameters(f"{name}: letters, digits and . _ : - (at most 128), not "
                                        f"{getattr(self, name)!r}")
        if self.purpose != "research":
            raise InvalidParameters(f"purpose: analytics jobs are for 'research' only, not {self.purpose!r}")
        missing = sorted(set(TOXICITY_SECTIONS) - set(self.sections))
        if missing:
            raise InvalidParameters(f"sections: the toxicity task also reads {', '.join(missing)}")
        if self.method not in ("dpsgd", "wall"):
            raise InvalidParameters(f"method: a released job is private: 'dpsgd' or 'wall', not {self.method!r}")
        if self.kind not in JOB_KINDS:
            raise InvalidParameters(f"kind: {' or '.join(map(repr, JOB_KINDS))}, not {self.kind!r}")
        if self.engine not in JOB_ENGINES:
            raise InvalidParameters(f"engine: {' or '.join(map(repr, JOB_ENGINES))}, not {self.engine!r}")
        if self.kind == "stats" and self.method != "wall":
            raise InvalidParameters("method: encrypted statistics are noised by the privacy wall: 'wall'")
        check_privacy(self.epsilon, self.delta, allow_zero_delta=self.method == "wall")
        self.train_config()  # rounds, epochs

    def train_config(self) -> TrainConfig:
        return TrainConfig(method=self.method, epsilon=float(self.epsilon), delta=float(self.delta),
                           rounds=int(self.rounds), local_epochs=int(self.local_epochs))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> JobSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise InvalidParameters(f"unknown job fields: {', '.join(unknown)}")
        kw = dict(doc)
        if "sections" in kw:
            if not isinstance(kw["sections"], list | tuple) or not all(isinstance(s, str) for s in kw["sections"]):
                raise InvalidParameters("sections: a list of section names")
            kw["sections"] = tuple(kw["sections"])
        try:
            return cls(**kw)
        except TypeError as exc:
            raise InvalidParameters(f"job: {exc}") from None


@dataclass
class Release:
    release_id: str
    sha256: str
    document: dict[str, Any]
    spend: dict[str, Any]


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _check_cohort(ledger: AnalyticsLedger, spec: JobSpec) -> dict[str, Any]:
    cohort = ledger.cohort(spec.cohort_id)
    if not cohort.get("live"):
        raise CohortRefused(f"cohort {spec.cohort_id} is {cohort.get('status', 'not live')}: the job stops",
                            reason=cohort.get("status") or "not-live")
    if cohort.get("purpose") != "research":
        raise CohortRefused(f"cohort {spec.cohort_id} was granted for {cohort.get('purpose')!r}, not research",
                            reason="purpose")
    missing = sorted(set(spec.sections) - set(cohort.get("sections") or ()))
    if missing:
        raise CohortRefused(f"cohort {spec.cohort_id} does not cover {', '.join(missing)}", reason="sections")
    return cohort


def check_budget(ledger: AnalyticsLedger, spec: JobSpec) -> dict[str, Any]:
    """Refuse (``BudgetExceeded``) when the job's (ε, δ) exceeds what the dataset has left."""
    budget = ledger.budget(spec.dataset)
    eps_left, delta_left = float(budget["epsilon_remaining"]), float(budget["delta_remaining"])
    if spec.epsilon > eps_left + 1e-12 or spec.delta > delta_left + 1e-15:
        raise BudgetExceeded(
            f"job needs ε={spec.epsilon:g}, δ={spec.delta:g}; dataset {spec.dataset} has ε={eps_left:g}, "
            f"δ={delta_left:g} left", epsilon_remaining=eps_left, delta_remaining=delta_left)
    return budget


@dataclass(frozen=True)
class CohortSite:
    """A hospital as a job sees it: its vault and the site's ``analytics`` service identity (the
    only presenter its cohort tokens accept). ``node_config`` is how a Flower SuperNode beside this
    vault reaches it (``{"loader": "module:function", …}``; the job adds ``cohort-id`` and
    ``analytics-id``): needed only for jobs on the ``flower`` engine."""

    hospital: str
    vault: Any
    analytics_id: str
    node_config: Mapping[str, Any] | None = None

    def release(self, cohort_id: str) -> Any:
        """The cohort's rows held here (a ``vault.CohortRelease``), against a fresh cohort token."""
        import vault as _vault

        try:
            minted = _vault.mint_cohort_token(self.vault, cohort_id, self.analytics_id)
            return _vault.redeem_cohort(self.vault, minted.token, self.analytics_id)
        except _vault.TokenError as exc:  # the vault refused: the job may not read here
            raise CohortRefused(f"the vault of {self.hospital} refused cohort {cohort_id}: {exc.message}",
                                reason=exc.type) from None

    def dataset(self, cohort_id: str) -> Dataset:
        """The research matrix of the cohort's rows held here (no demographics)."""
        rel = self.release(cohort_id)
        return toxicity_dataset(rel, rel.patients(), source=self.hospital, demographics=False)


def _shards(spec: JobSpec, sites: Mapping[str, CohortSite]) -> list[Dataset]:
    return [d for _, site in sorted(sites.items()) if len(d := site.dataset(spec.cohort_id)) >= 2]


def _train_inprocess(spec: JobSpec, sites: Mapping[str, CohortSite], each_round: Callable[[RoundLog], None],
                     recheck: Callable[[], Any], work_dir: Path | None) -> tuple[dict[str, np.ndarray], float, int]:
    shards = _shards(spec, sites)
    if not shards:
        raise CohortRefused(f"cohort {spec.cohort_id} has no rows to learn from at these hospitals", reason="empty")
    result = train_federated(shards, RESEARCH_BOUNDS, spec.train_config(), on_round=each_round)
    return result.parameters, result.epsilon_spent, len(shards)


def _train_flower(spec: JobSpec, sites: Mapping[str, CohortSite], each_round: Callable[[RoundLog], None],
                  recheck: Callable[[], Any], work_dir: Path | None) -> tuple[dict[str, np.ndarray], float, int]:
    """The same job on Flower's deployment engine: a SuperLink and one SuperNode per hospital on
    loopback; each SuperNode's loader reads its vault through a cohort token every round (so the
    vault itself refuses a revoked cohort), and the cohort is re-checked on chain after every round.
    When the engine fails, ``recheck`` says whether a revoked cohort was the cause."""
    import tempfile

    from .flower import Federation, Site

    missing = sorted(h for h, s in sites.items() if not s.node_config)
    if missing:
        raise InvalidParameters(f"engine 'flower': no SuperNode loader configured for {', '.join(missing)}")
    fsites = [Site(h, {**dict(s.node_config or {}), "cohort-id": spec.cohort_id, "analytics-id": s.analytics_id})
              for h, s in sorted(sites.items())]

    def progress(entry: Mapping[str, Any]) -> None:
        each_round(RoundLog(int(entry["round"]), float(entry["seconds"]), float(entry["epsilon_spent"])))

    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="serums-flower-"))
    try:
        with Federation(work, fsites) as fed:
            run = fed.run(spec.train_config(), features=len(RESEARCH_FEATURES), on_round=progress)
    except EngineUnavailable:
        recheck()  # the SuperNodes' vaults refuse a revoked cohort: report that, not the engine's failure
        raise
    return run.parameters, run.epsilon_spent, len(fsites)


_ENGINES = {"inprocess": _train_inprocess, "flower": _train_flower}


def research_site_dataset(node_config: Mapping[str, Any], site: CohortSite) -> tuple[Dataset, list]:
    """A SuperNode loader's answer for ``site``: the cohort named by the node config, read through a
    cohort token, with the research bounds (what ``_train_flower``'s nodes load)."""
    return site.dataset(str(node_config["cohort-id"])), list(RESEARCH_BOUNDS)


def run_job(spec: JobSpec, ledger: AnalyticsLedger, sites: Mapping[str, CohortSite], *,
            on_round: Callable[[RoundLog], None] | None = None, release_id: str | None = None,
            work_dir: Path | None = None) -> Release:
    """Run ``spec`` over the hospitals (``sites``: {hospital: CohortSite}) on ``spec.engine`` and
    release the model. ``work_dir``: where the Flower engine keeps its processes' files."""
    _check_cohort(ledger, spec)
    check_budget(ledger, spec)

    def each_round(entry: RoundLog) -> None:
        _check_cohort(ledger, spec)  # a revoked cohort stops the job between rounds
        if on_round:
            on_round(entry)

    parameters, epsilon_spent, hospitals = _ENGINES[spec.engine](spec, sites, each_round,
                                                                  lambda: _check_cohort(ledger, spec), work_dir)
    spent = min(float(spec.epsilon), epsilon_spent) if spec.method == "dpsgd" else float(spec.epsilon)
    release_id = release_id or f"rel-{uuid.uuid4().hex[:16]}"
    document = {
        "release_id": release_id, "study": spec.study, "cohort_id": spec.cohort_id, "dataset": spec.dataset,
        "method": spec.method, "epsilon": float(spec.epsilon), "epsilon_accountant": spent, "delta": float(spec.delta),
        "rounds": spec.rounds, "hospitals": hospitals, "engine": spec.engine,
        "model": {"kind": "logistic-regression", "features": list(RESEARCH_FEATURES),
                  "bounds": [[b.low, b.high] for b in RESEARCH_BOUNDS],
                  "weight": [float(w) for w in parameters["weight"].reshape(-1)],
                  "bias": float(parameters["bias"].reshape(-1)[0])},
    }
    digest = hashlib.sha256(canonical(document)).hexdigest()
    # the budget pays the job's declared ε (the accountant's ε never exceeds it)
    spend = ledger.spend_release(spec.dataset, float(spec.epsilon), float(spec.delta), release_id, spec.cohort_id,
                                 digest)
    return Release(release_id, digest, document, spend)


# --------------------------------------------------------------------------- encrypted statistics


#: How a research statistics job splits its grade histograms, so that a clinician can read the stratum
#: of patients like theirs: (feature, band edges, band labels). Age is demographics, which research
#: never reads; the Charlson index and the performance status are the research features that say
#: how frail a patient is.
RESEARCH_STRATA: tuple[tuple[str, tuple[float, ...], tuple[str, ...]], ...] = (
    ("charlson_index", (1, 3), ("0", "1–2", "≥3")),
    ("performance_status", (2,), ("0–1", "≥2")),
)


def research_layout() -> Any:
    """The aggregate layout of a research statistics job: research features, grades 0..5 per regimen
    and per stratum (:data:`RESEARCH_STRATA`)."""
    from .fhe import StatsLayout, Stratum

    return StatsLayout(RESEARCH_BOUNDS, REGIMENS, strata=tuple(Stratum(*s) for s in RESEARCH_STRATA))


def encrypted_site_statistics(site: CohortSite, cohort_id: str, layout: Any, public: Any) -> bytes:
    """A hospital's side: the aggregates of its cohort members' rows (read through a cohort token),
    encrypted under the study's public context (research sections only: no demographics)."""
    from .fhe import encrypt

    rel = site.release(cohort_id)
    rows = site_rows(rel, rel.patients(), demographics=False)
    x = np.asarray([r.x for r in rows], dtype=float).reshape(-1, len(layout.bounds))
    return encrypt(public, layout.vector(x, [r.regimen for r in rows], [r.worst_grade for r in rows]))


def release_statistics(ledger: AnalyticsLedger, keys: Any, ciphertext: bytes, layout: Any, *, study: str,
                       cohort_id: str, dataset: str, epsilon: float, delta: float, rng: np.random.Generator,
                       release_id: str | None = None) -> dict[str, Any]:
    """The key holder's side: refused unless the cohort is live and the budget holds; the chain
    records the release (SHA-256 of the summed ciphertext, the spend) *before* anything is decrypted;
    the decrypted aggregates get the privacy wall's noise before they are returned."""
    from .fhe import decrypt

    spec = JobSpec(study=study, cohort_id=cohort_id, dataset=dataset, epsilon=epsilon, delta=delta, method="wall",
                   rounds=1, local_epochs=1)
    _check_cohort(ledger, spec)
    check_budget(ledger, spec)
    release_id = release_id or f"stats-{uuid.uuid4().hex[:16]}"
    digest = hashlib.sha256(ciphertext).hexdigest()
    spend = ledger.spend_release(dataset, float(epsilon), float(delta), release_id, cohort_id, digest)
    noisy = layout.noisy(decrypt(keys, ciphertext), epsilon=epsilon, delta=delta, rng=rng)
    return {"release_id": release_id, "sha256": digest, "tx_id": spend.get("tx_id"), "epsilon": float(epsilon),
            "delta": float(delta), "statistics": layout.read(noisy)}


def run_statistics_job(spec: JobSpec, ledger: AnalyticsLedger, sites: Mapping[str, CohortSite], *,
                       on_round: Callable[[RoundLog], None] | None = None, release_id: str | None = None) -> Release:
    """A ``stats`` job: each hospital encrypts its cohort members' aggregates under a fresh study
    context, the aggregator adds the ciphertexts with the public context only, and the key holder
    decrypts after the chain recorded the release (``release_statistics``; SHA-256 of the summed
    ciphertext). The document holds the noised statistics; one "round"."""
    from .fhe import StudyKeys, add_encrypted

    _check_cohort(ledger, spec)
    check_budget(ledger, spec)
    keys, layout, started = StudyKeys.create(), research_layout(), _dt.datetime.now(_dt.UTC)
    public = StudyKeys.load(keys.public_bytes())
    ciphertexts = [encrypted_site_statistics(site, spec.cohort_id, layout, public)
                   for _, site in sorted(sites.items())]
    out = release_statistics(ledger, keys, add_encrypted(public, ciphertexts), layout, study=spec.study,
                             cohort_id=spec.cohort_id, dataset=spec.dataset, epsilon=spec.epsilon, delta=spec.delta,
                             rng=np.random.default_rng(), release_id=release_id)
    if on_round:
        on_round(RoundLog(1, (_dt.datetime.now(_dt.UTC) - started).total_seconds(), float(spec.epsilon)))
    document = {"release_id": out["release_id"], "study": spec.study, "cohort_id": spec.cohort_id,
                "dataset": spec.dataset, "method": "fhe-statistics", "epsilon": out["epsilon"], "delta": out["delta"],
                "hospitals": len(ciphertexts), "statistics": out["statistics"]}
    remaining = ledger.budget(spec.dataset)
    return Release(out["release_id"], out["sha256"], document,
                   {"tx_id": out["tx_id"], "epsilon_remaining": remaining["epsilon_remaining"]})


# --------------------------------------------------------------------------- job store


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Job:
    job_id: str
    owner: str
    spec: dict[str, Any]
    status: str = "queued"  # queued, running, released, refused, failed
    round: int = 0
    epsilon_spent: float = 0.0
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    problem: dict[str, Any] | None = None
    release: dict[str, Any] | None = None

    def view(self, *, with_release: bool = False) -> dict[str, Any]:
        doc = asdict(self)
        if not with_release:
            doc["release"] = {k: v for k, v in (self.release or {}).items() if k != "document"} or None
        return doc


class JobStore:
    """Jobs as JSON files under ``directory`` (written atomically); jobs run in background threads."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _path(self, job_id: str) -> Path:
        if not re.fullmatch(r"job-[0-9a-f]{16}", job_id or ""):
            raise JobNotFound(f"no job {job_id!r}")
        return self.dir / f"{job_id}.json"

    def save(self, job: Job) -> None:
        job.updated_at = _now()
        path = self._path(job.job_id)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(asdict(job)))
        os.replace(tmp, path)

    def get(self, job_id: str) -> Job:
        try:
            return Job(**json.loads(self._path(job_id).read_text()))
        except FileNotFoundError:
            raise JobNotFound(f"no job {job_id!r}") from None

    def list(self, owner: str | None = None) -> list[Job]:
        jobs = [Job(**json.loads(p.read_text())) for p in sorted(self.dir.glob("job-*.json"))]
        return [j for j in jobs if owner is None or j.owner == owner]

    def submit(self, owner: str, spec: JobSpec, ledger: AnalyticsLedger, sites: Mapping[str, CohortSite], *,
               wait: bool = False) -> Job:
        """Record the job, check the budget now (refused jobs are recorded too), run it in a thread."""
        job = Job(f"job-{uuid.uuid4().hex[:16]}", owner, {k: v for k, v in asdict(spec).items()})
        job.spec["sections"] = list(spec.sections)
        try:
            _check_cohort(ledger, spec)
            check_budget(ledger, spec)
        except AnalyticsError as exc:
            job.status, job.problem = "refused", exc.to_problem()
            self.save(job)
            raise
        self.save(job)
        thread = threading.Thread(target=self._run, args=(job, spec, ledger, sites), daemon=True,
                                  name=f"analytics-{job.job_id}")
        thread.start()
        if wait:
            thread.join()
            return self.get(job.job_id)
        return job

    def _run(self, job: Job, spec: JobSpec, ledger: AnalyticsLedger, sites: Mapping[str, CohortSite]) -> None:
        job.status = "running"
        self.save(job)

        def progress(entry: RoundLog) -> None:
            job.round, job.epsilon_spent = entry.round, entry.epsilon_spent
            self.save(job)

        try:
            if spec.kind == "stats":
                rel = run_statistics_job(spec, ledger, sites, on_round=progress)
            else:
                rel = run_job(spec, ledger, sites, on_round=progress, work_dir=self.dir / "flower" / job.job_id)
            job.status = "released"
            job.epsilon_spent = float(spec.epsilon) if math.isfinite(spec.epsilon) else job.epsilon_spent
            job.release = {"release_id": rel.release_id, "sha256": rel.sha256, "tx_id": rel.spend.get("tx_id"),
                           "epsilon_remaining": rel.spend.get("epsilon_remaining"), "document": rel.document}
        except AnalyticsError as exc:
            job.status, job.problem = "refused", exc.to_problem()
        except Exception as exc:  # noqa: BLE001 - a job's failure is recorded, never lost in a thread
            job.status = "failed"
            job.problem = {"type": "analytics-job-failed", "title": "analytics job failed", "status": 500,
                           "detail": f"{type(exc).__name__}: {exc}"}
        self.save(job)
