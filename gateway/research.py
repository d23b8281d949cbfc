"""The application layer of research: cohorts, studies, jobs, budgets and releases as data.

The JSON API (``/analytics``) and the web pages (the researcher's, the admins' budgets, the
auditors' releases) both call these, as they call :mod:`gateway.flow` for the 10-step flow. Each
function takes the :class:`~gateway.services.Services` and the acting
:class:`~gateway.flow.Actor` and returns plain data; refusals are
:class:`~gateway.problems.Problem` values (analytics' own errors are turned into them here) or the
ledger's errors, which :func:`gateway.errors.problem_of` renders once.

- A **cohort** is asked of the chain by the researcher (``TransportContract:RequestCohort``): the
  chain keeps the patients whose hospital rules and own preferences allow research; the
  researcher learns its size and only the *number* excluded — never who.
- A **study** (kept beside the jobs, one JSON file each) is what a researcher defines on the pages:
  sections, purpose ``research``, the dataset whose budget pays, (ε, δ), the method, the hospitals
  whose patients are candidates, and the cohort the chain granted for it.
- A **job** (``analytics.jobs``) trains the toxicity predictor (DP-SGD or the privacy wall, across
  the hospitals) or computes encrypted statistics (TenSEAL); it is refused before it starts when
  its (ε, δ) exceeds what ``GetBudget`` says the dataset has left, and its release spends and logs
  its SHA-256 on chain in one transaction, signed by the dataset hospital's ``analytics`` service.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from analytics import AnalyticsError, BudgetExceeded, CohortRefused, InvalidParameters, JobNotFound
from analytics.chain import ChainAnalyticsLedger, DatasetNotFound
from analytics.features import TOXICITY_SECTIONS
from analytics.jobs import CohortSite, Job, JobSpec, JobStore, canonical
from network import GatewayError, IdentityError, load_credentials, save_credentials

from . import ledger as L
from . import problems as P
from .flow import Actor

T = TypeVar("T")

#: the role of each hospital's analytics service identity (it spends budgets and logs releases)
SERVICE_ROLE = "analytics"
#: the chain considers at most this many candidate patients per cohort request
MAX_CANDIDATES = 500
#: the methods a study may name: what each runs (job kind, training method) and what a person reads
METHODS = {
    "dpsgd": ("train", "dpsgd", "DP-SGD (Opacus) at each hospital, federated averaging"),
    "wall": ("train", "wall", "privacy wall (optimal (ε, δ) noise on the inputs), federated averaging"),
    "stats": ("stats", "wall", "encrypted statistics (TenSEAL CKKS) across hospitals, privacy wall on the result"),
}
#: how federated training runs: in the gateway's process, or on Flower's deployment engine
ENGINES = {"inprocess": "federated averaging in the gateway's process",
           "flower": "Flower's deployment engine (a SuperLink, a SuperNode beside each hospital's vault)"}
#: the SuperNode loader of a research job (it reads its vault through a cohort token; ``serums``
#: wires it, the gateway only names it in the node config)
FLOWER_LOADER = "serums.commands.analytics:cohort_dataset"
for _cls in (BudgetExceeded, CohortRefused, InvalidParameters, JobNotFound, DatasetNotFound):
    P.problem_type(_cls.type, _cls.status, _cls.title.capitalize(), " ".join((_cls.__doc__ or _cls.title).split()))

_lock = threading.Lock()
_identities: dict[tuple[str, str], tuple] = {}


def as_problem(exc: AnalyticsError) -> P.Problem:
    """An analytics error as the gateway's one problem value (its reason stays as data)."""
    pt = P.TYPES.get(exc.type) or P.problem_type(exc.type, exc.status, exc.title.capitalize(), exc.title)
    return P.Problem(pt, exc.detail, extra={k: v for k, v in exc.extra.items() if k != "chain_status"})


def _analytics(fn: Callable[..., T]) -> Callable[..., T]:
    """Analytics' refusals raised by ``fn`` become problems."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except AnalyticsError as exc:
            raise as_problem(exc) from None

    return wrapper


# ----------------------------------------------------------------------------- the analytics service


def service_user_id(hospital: str) -> str:
    """The pseudonymous id of a hospital's analytics service."""
    return f"{SERVICE_ROLE}-{hospital}"


def analytics_identity(services, hospital: str) -> tuple:
    """The hospital's analytics service identity (created and registered on chain once)."""
    name = services.hospital_of(hospital)
    key = (str(services.settings.data_dir), name)
    with _lock:
        if key in _identities:
            return _identities[key]
        directory, uid = services.network.user_dir(name, SERVICE_ROLE), service_user_id(name)
        try:
            creds = load_credentials(directory, services.settings.key_passphrase)
        except IdentityError:
            ident, signer = services.network.load_ca(name, services.settings.key_passphrase).issue(
                uid, "client", attributes={"role": SERVICE_ROLE, "uid": uid, "hf.EnrollmentID": uid})
            save_credentials(directory, ident, signer, services.settings.key_passphrase)
            try:
                L.submit(services.admin_contract(name, "UserContract"), "RegisterUser", uid, SERVICE_ROLE,
                         ident.fingerprint)
            except GatewayError as exc:
                if exc.chaincode_status != 409:
                    raise
            creds = (ident, signer)
        _identities[key] = creds
        return creds


def analytics_ledger(services, hospital: str) -> ChainAnalyticsLedger:
    """Analytics' seam to the chain, signing as ``hospital``'s analytics service."""
    return ChainAnalyticsLedger.of(services.gateway(*analytics_identity(services, hospital))
                                   .network(services.network.channel))


def sites(services, engine: str = "inprocess") -> dict[str, CohortSite]:
    """Every hospital whose vault is set up, as a job sees it: its vault and its analytics service
    (the only presenter its cohort tokens accept); for the ``flower`` engine, how its SuperNode
    reaches that vault (the node config)."""
    node = {"loader": FLOWER_LOADER, "data-dir": str(services.settings.data_dir)} if engine == "flower" else None
    out = {}
    for h in services.hospitals:
        if (services.vault_dir(h) / "vault.db").exists() or services.settings.postgres_url:
            analytics_identity(services, h)
            out[h] = CohortSite(h, services.vault(h), service_user_id(h), node)
    return out


def job_store(services) -> JobStore:
    return JobStore(Path(services.settings.data_dir) / "analytics" / "jobs")


# ----------------------------------------------------------------------------- cohorts


def _cohort_view(doc: dict[str, Any]) -> dict[str, Any]:
    """What a researcher may know of a cohort: its size and the number excluded, never who."""
    return {k: doc[k] for k in ("cohort_id", "size", "excluded", "expires_at", "sections", "purpose", "status",
                                "live", "created_at") if k in doc}


def request_cohort(services, actor: Actor, patients: list[str], sections: list[str] | tuple[str, ...] = TOXICITY_SECTIONS,
                   justification: str = "research-protocol") -> dict[str, Any]:
    """Ask the chain for a research cohort over ``sections``: it keeps only the candidates whose
    hospital rules and own preferences allow research (the others are only counted)."""
    tx = L.submit(actor.contract(services, "TransportContract"), "RequestCohort", list(patients), list(sections),
                  "research", justification)
    return {**_cohort_view(tx.result), "transaction_id": tx.transaction_id}


def cohort(services, actor: Actor, cohort_id: str) -> dict[str, Any]:
    """A cohort as the chain holds it now (live or not), without its members."""
    return _cohort_view(L.evaluate(actor.contract(services, "TransportContract"), "GetCohort", cohort_id))


def candidates(services, hospitals: list[str]) -> list[str]:
    """Candidate patients for a cohort: the patients of these hospitals' vaults who are enrolled
    on chain, at most :data:`MAX_CANDIDATES`. Only the gateway sees these ids; the chain decides."""
    from concurrent.futures import ThreadPoolExecutor

    def enrolled(pid: str) -> bool:
        doc = services.chain_user(pid)
        return doc is not None and doc.get("role") == "patient"

    out: list[str] = []
    with ThreadPoolExecutor(8) as pool:  # one evaluation per patient: I/O, not CPU
        for h in hospitals:
            pids = services.vault(h).patients()
            out += [pid for pid, ok in zip(pids, pool.map(enrolled, pids), strict=True) if ok]
            if len(out) >= MAX_CANDIDATES:
                return out[:MAX_CANDIDATES]
    return out


# ----------------------------------------------------------------------------- budgets and spends


def create_dataset(services, actor: Actor, dataset: str, epsilon: float, delta: float) -> dict[str, Any]:
    """A hospital admin creates a dataset's privacy budget (total ε and δ) on chain."""
    tx = L.submit(actor.contract(services, "BudgetContract"), "CreateDataset", dataset, epsilon, delta)
    return {**tx.result, "transaction_id": tx.transaction_id}


def budget(services, actor: Actor, dataset: str) -> dict[str, Any]:
    """A dataset's budget: totals, spent, remaining, number of spends (``hospital``: the MSP id,
    ``hospital_name`` its name)."""
    doc = L.evaluate(actor.contract(services, "BudgetContract"), "GetBudget", dataset)
    return {**doc, "hospital_name": services.hospital_of(doc["hospital"])}


def _pages(contract, fn: str, *args: Any, limit: int) -> Iterator[dict[str, Any]]:
    bookmark, seen = "", 0
    while seen < limit:
        page = L.evaluate(contract, fn, *args, min(200, limit - seen), bookmark)
        yield from page["records"]
        seen += len(page["records"])
        bookmark = page.get("bookmark") or ""
        if not bookmark:
            return


def datasets(services, actor: Actor, hospital: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Every dataset's budget (of one hospital's, when ``hospital`` names it), by dataset id."""
    msp = services.msp_of(hospital) if hospital else None
    docs = _pages(actor.contract(services, "BudgetContract"), "ListDatasets", limit=limit)
    return [{**d, "hospital_name": services.hospital_of(d["hospital"])} for d in docs
            if msp is None or d["hospital"] == msp]


def spends(services, actor: Actor, dataset: str, page_size: int, bookmark: str) -> dict[str, Any]:
    """One page of a dataset's spends, oldest first: each release's id, (ε, δ), cohort and SHA-256."""
    return L.page(L.evaluate(actor.contract(services, "BudgetContract"), "SpendHistory", dataset, page_size,
                             bookmark))


def all_spends(services, actor: Actor, dataset: str, limit: int = 1000) -> list[dict[str, Any]]:
    return list(_pages(actor.contract(services, "BudgetContract"), "SpendHistory", dataset, limit=limit))


def release_record(services, actor: Actor, dataset: str, release_id: str) -> dict[str, Any] | None:
    """The chain's record of one release (the spend that logged it), or None."""
    return next((s for s in all_spends(services, actor, dataset) if s.get("release_id") == release_id), None)


def ledger_overview(services, actor: Actor) -> list[dict[str, Any]]:
    """Every dataset with every spend (release) of it: what an auditor reads."""
    return [{**d, "spends": all_spends(services, actor, d["dataset"])} for d in datasets(services, actor)]


# ----------------------------------------------------------------------------- jobs


@_analytics
def submit_job(services, actor: Actor, spec: dict[str, Any]) -> dict[str, Any]:
    """Submit a job (fields of :class:`analytics.jobs.JobSpec`): refused (409
    ``privacy-budget-exceeded``) before anything runs when its ε or δ exceeds what the dataset has
    left; 403 ``cohort-refused`` when the cohort is not live. Runs in the background."""
    job_spec = JobSpec.from_dict(spec)
    doc = L.evaluate(actor.contract(services, "BudgetContract"), "GetBudget", job_spec.dataset)
    ledger = analytics_ledger(services, doc["hospital"])
    return job_store(services).submit(actor.user_id, job_spec, ledger, sites(services, job_spec.engine)).view()


def _may_read(actor: Actor, job: Job) -> bool:
    return actor.role == "auditor" or job.owner == actor.user_id


@_analytics
def jobs(services, actor: Actor) -> list[dict[str, Any]]:
    """My jobs (researchers), every job (auditors), newest first."""
    found = job_store(services).list(None if actor.role == "auditor" else actor.user_id)
    return [j.view() for j in sorted(found, key=lambda j: j.created_at, reverse=True)]


@_analytics
def job(services, actor: Actor, job_id: str) -> dict[str, Any]:
    """A job's progress: status (queued, running, released, refused, failed), round, ε spent so far."""
    found = job_store(services).get(job_id)
    if not _may_read(actor, found):
        raise P.Problem(P.NOT_FOUND, f"no job {job_id!r}")
    return found.view()


@_analytics
def release(services, actor: Actor, job_id: str) -> dict[str, Any]:
    """The released document with its SHA-256 and the transaction that spent the budget and logged
    it (the job's owner only)."""
    found = job_store(services).get(job_id)
    if found.owner != actor.user_id:
        raise P.Problem(P.NOT_FOUND, f"no job {job_id!r}")
    if found.status != "released" or not found.release:
        raise P.Problem(P.CONFLICT, f"job {job_id} is {found.status}: nothing was released")
    return found.release


def document_digest(rel: dict[str, Any]) -> str | None:
    """The SHA-256 of a trained model's document as the chain should hold it (None for encrypted
    statistics, whose digest is of the summed ciphertext, gone once decrypted)."""
    doc = rel.get("document") or {}
    return None if doc.get("method") == "fhe-statistics" else hashlib.sha256(canonical(doc)).hexdigest()


# ----------------------------------------------------------------------------- plots (PNG, cached)

_plot_lock = threading.Lock()  # pyplot is not thread-safe: one figure drawn at a time
_drawing: dict[str, threading.Event] = {}  # plots being computed, by file: computed once, by one thread
_drawing_lock = threading.Lock()
UTILITY_EPSILONS = (0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class Plot:
    """A figure of a job: its file name, what it computes (slow: outside the drawing lock) and how
    it draws that into a PNG."""

    name: str
    compute: Callable[[], Any]
    draw: Callable[[Any, Path], Any]


def _plot_path(services, plot: Plot) -> Path:
    return Path(services.settings.data_dir) / "analytics" / "plots" / f"{plot.name}.png"


def _render(services, plot: Plot) -> Path:
    """The plot's PNG, computed and drawn once (another request asking meanwhile waits for it)."""
    path = _plot_path(services, plot)
    if path.exists():
        return path
    with _drawing_lock:
        busy = _drawing.get(str(path))
        if busy is None:
            busy = _drawing[str(path)] = threading.Event()
            mine = True
        else:
            mine = False
    if not mine:
        busy.wait()
    else:
        try:
            data = plot.compute()
            with _plot_lock:
                tmp = path.with_name(f"tmp-{uuid.uuid4().hex[:8]}.png")
                plot.draw(data, tmp)
                os.replace(tmp, path)
        finally:
            with _drawing_lock:
                _drawing.pop(str(path), None)
            busy.set()
    if not path.exists():
        raise RuntimeError(f"the plot {plot.name} could not be drawn")
    return path


def _utility_points(spec: dict[str, Any], epsilons: list[float]) -> list[tuple[float, float]]:
    """Accuracy on a held-out quarter of scikit-learn's public breast-cancer table when trained
    with the job's method and rounds at each ε (ε = ∞: not private)."""
    from analytics import TrainConfig, breast_cancer_dataset, evaluate, scale, train_centralised

    data, bounds = breast_cancer_dataset()
    train, test = data.split(0.25, seed=0)
    points = []
    for eps in epsilons:
        config = TrainConfig(method=spec["method"] if math.isfinite(eps) else "none", epsilon=eps,
                             delta=spec["delta"] or 1e-5, rounds=spec["rounds"], local_epochs=spec["local_epochs"])
        result = train_centralised(train, bounds, config)
        points.append((eps, evaluate(result.parameters, scale(test.x, bounds), test.y).accuracy))
    return points


def _noise_points(spec: dict[str, Any], epsilons: list[float], gaussian: bool) -> list[tuple[float, float]]:
    """Expected |noise| the privacy wall (or the Gaussian mechanism) adds to the cohort count."""
    from analytics import gaussian_magnitude, optimal_magnitude
    from analytics.jobs import research_layout

    d = float(research_layout().sensitivity()[0])
    magnitude = gaussian_magnitude if gaussian else optimal_magnitude
    return [(e, magnitude(epsilon=e, delta=spec["delta"], sensitivity=d) if math.isfinite(e) else 0.0)
            for e in epsilons]


def _utility(spec: dict[str, Any]) -> Plot:
    """Utility against ε for a job's method, this job's ε among the points: for training, accuracy
    on the public breast-cancer table; for encrypted statistics, the noise on the cohort count."""
    from analytics import plot_utility

    eps = float(spec["epsilon"])
    epsilons = sorted({*UTILITY_EPSILONS, eps}) + [math.inf]
    if spec.get("kind") == "stats":
        def noise() -> dict:
            curves = {"optimal (ε, δ) noise (privacy wall)": _noise_points(spec, epsilons, False)}
            if spec["delta"] > 0:
                curves["Gaussian mechanism, same (ε, δ)"] = _noise_points(spec, epsilons, True)
            return curves

        return Plot(f"noise-{eps:g}-{spec['delta']:g}", noise, lambda curves, path: plot_utility(
            curves, path, title=f"Noise on the cohort count against ε (this job: ε={eps:g})",
            ylabel="expected |noise| (rows)"))
    label = {"dpsgd": "DP-SGD", "wall": "privacy wall"}[spec["method"]]

    def accuracy() -> dict:
        points = _utility_points(spec, epsilons)
        return {label: points, f"this job's ε = {eps:g}": [(e, v) for e, v in points if e == eps]}

    return Plot(f"utility-{spec['method']}-{eps:g}-{spec['delta']:g}-{spec['rounds']}-{spec['local_epochs']}",
                accuracy, lambda curves, path: plot_utility(
                    curves, path, title=f"{label} on the public breast-cancer table (this job: ε={eps:g})"))


def _r_delta(delta: float) -> Plot:
    """R(δ) measured (200,000 samples per δ) and analytic, this δ among the points when > 0."""
    from analytics import DEFAULT_DELTAS, plot_r_delta, r_delta_table

    deltas = sorted({*DEFAULT_DELTAS, *([float(delta)] if 0 < delta < 1 else [])})
    return Plot(f"r-delta-{delta:g}-marked", lambda: r_delta_table(deltas, samples=200_000, seed=0),
                lambda rows, path: plot_r_delta(rows, path, samples=200_000,
                                                highlight=float(delta) if 0 < delta < 1 else None))


def job_plots(job_view: dict[str, Any]) -> dict[str, Plot]:
    """A job's figures: ``utility`` (against ε) and ``r-delta``."""
    spec = job_view["spec"]
    return {"utility": _utility(spec), "r-delta": _r_delta(float(spec["delta"]))}


def plot_file(services, job_view: dict[str, Any], which: str) -> Path:
    """The PNG of one of a job's figures (drawn now if it was not yet)."""
    plot = job_plots(job_view).get(which)
    if plot is None:
        raise P.Problem(P.NOT_FOUND, f"no plot {which!r}")
    return _render(services, plot)


def plots_ready(services, job_view: dict[str, Any]) -> bool:
    """Whether a job's figures are drawn; if not, they are drawn in the background (the utility
    curve trains on the public table: seconds to a minute) and this says False meanwhile."""
    missing = [p for p in job_plots(job_view).values() if not _plot_path(services, p).exists()]
    with _drawing_lock:
        idle = [p for p in missing if str(_plot_path(services, p)) not in _drawing]
    if idle:
        threading.Thread(target=lambda: [_render(services, p) for p in idle], daemon=True,
                         name="research-plots").start()
    return not missing


# ----------------------------------------------------------------------------- studies


@dataclass
class Study:
    study_id: str
    owner: str
    name: str
    sections: list[str]
    dataset: str
    epsilon: float
    delta: float
    method: str
    hospitals: list[str]
    rounds: int = 3
    engine: str = "inprocess"
    purpose: str = "research"
    cohort: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    @property
    def cohort_ids(self) -> set[str]:
        """The study's cohort and those it had before (a cohort asked for again)."""
        return {self.cohort.get("cohort_id", ""), *self.cohort.get("earlier", [])}

    def job_spec(self) -> dict[str, Any]:
        """The job this study runs (fields of :class:`analytics.jobs.JobSpec`)."""
        kind, method, _ = METHODS[self.method]
        return {"study": self.name, "cohort_id": self.cohort.get("cohort_id") or "none", "dataset": self.dataset,
                "epsilon": self.epsilon, "delta": self.delta, "purpose": self.purpose, "sections": list(self.sections),
                "method": method, "kind": kind, "rounds": self.rounds if kind == "train" else 1,
                "local_epochs": 2 if kind == "train" else 1, "engine": self.engine if kind == "train" else "inprocess"}


class StudyStore:
    """Studies as JSON files (one per study, written atomically) beside the jobs."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, study_id: str) -> Path:
        if not re.fullmatch(r"study-[0-9a-f]{16}", study_id or ""):
            raise P.Problem(P.NOT_FOUND, f"no study {study_id!r}")
        return self.dir / f"{study_id}.json"

    def save(self, study: Study) -> None:
        path = self._path(study.study_id)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(asdict(study)))
        os.replace(tmp, path)

    def get(self, study_id: str, owner: str) -> Study:
        try:
            study = Study(**json.loads(self._path(study_id).read_text()))
        except FileNotFoundError:
            raise P.Problem(P.NOT_FOUND, f"no study {study_id!r}") from None
        if study.owner != owner:
            raise P.Problem(P.NOT_FOUND, f"no study {study_id!r}")
        return study

    def list(self, owner: str) -> list[Study]:
        found = [Study(**json.loads(p.read_text())) for p in self.dir.glob("study-*.json")]
        return sorted((s for s in found if s.owner == owner), key=lambda s: s.created_at, reverse=True)


def study_store(services) -> StudyStore:
    return StudyStore(Path(services.settings.data_dir) / "analytics" / "studies")


def number(value: Any, name: str) -> float:
    """A form's number, or a 422 problem naming the field."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise P.Problem(P.VALIDATION, f"{name}: a number, not {value!r}") from None
    if not math.isfinite(x):
        raise P.Problem(P.VALIDATION, f"{name}: a finite number")
    return x


@_analytics
def define_study(services, actor: Actor, *, name: str, sections: list[str], dataset: str, epsilon: Any, delta: Any,
                 method: str, hospitals: list[str], rounds: Any = 3, engine: str = "inprocess") -> Study:
    """Define a study and ask the chain for its cohort at once: the candidates are the enrolled
    patients of ``hospitals``; the chain keeps those who allow research of every section."""
    if method not in METHODS:
        raise P.Problem(P.VALIDATION, f"method: one of {', '.join(METHODS)}, not {method!r}")
    if engine not in ENGINES:
        raise P.Problem(P.VALIDATION, f"engine: one of {', '.join(ENGINES)}, not {engine!r}")
    if not hospitals:
        raise P.Problem(P.VALIDATION, "hospitals: choose at least one hospital whose patients are candidates")
    hospitals = [services.hospital_of(h) for h in hospitals]
    try:
        n_rounds = int(rounds)
    except (TypeError, ValueError):
        raise P.Problem(P.VALIDATION, f"rounds: a whole number, not {rounds!r}") from None
    study = Study(f"study-{uuid.uuid4().hex[:16]}", actor.user_id, name.strip(), list(dict.fromkeys(sections)),
                  dataset.strip(), number(epsilon, "epsilon"), number(delta, "delta"), method, hospitals, n_rounds,
                  engine, created_at=_now())
    JobSpec.from_dict(study.job_spec())  # every field checked before anything reaches the chain
    budget(services, actor, study.dataset)  # the dataset exists (404 dataset-not-found otherwise)
    study.cohort = _ask_for_cohort(services, actor, study)
    study_store(services).save(study)
    return study


def _ask_for_cohort(services, actor: Actor, study: Study) -> dict[str, Any]:
    patients = candidates(services, study.hospitals)
    if not patients:
        raise P.Problem(P.CONFLICT, f"no enrolled patients at {', '.join(study.hospitals)} to ask the chain about")
    return request_cohort(services, actor, patients, study.sections, "research-protocol")


def renew_cohort(services, actor: Actor, study_id: str) -> Study:
    """Ask the chain again for the study's cohort (after it expired, or consents changed)."""
    store = study_store(services)
    study = store.get(study_id, actor.user_id)
    earlier = [*study.cohort.get("earlier", []), study.cohort["cohort_id"]]
    study.cohort = {**_ask_for_cohort(services, actor, study), "earlier": earlier}
    store.save(study)
    return study


def study(services, actor: Actor, study_id: str) -> Study:
    return study_store(services).get(study_id, actor.user_id)


def studies(services, actor: Actor) -> list[Study]:
    return study_store(services).list(actor.user_id)


def run_study(services, actor: Actor, study_id: str) -> dict[str, Any]:
    """Run a study's job on its cohort (refused before it starts when the budget would be overspent)."""
    return submit_job(services, actor, study(services, actor, study_id).job_spec())


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["ENGINES", "FLOWER_LOADER", "MAX_CANDIDATES", "METHODS", "SERVICE_ROLE", "Study", "StudyStore",
           "all_spends", "analytics_identity", "analytics_ledger", "as_problem", "budget", "candidates", "cohort",
           "create_dataset", "datasets", "define_study", "document_digest", "job", "job_store", "jobs",
           "ledger_overview", "number", "Plot", "job_plots", "plot_file", "plots_ready", "release", "release_record", "renew_cohort", "request_cohort", "run_study", "service_user_id", "sites",
           "spends", "studies", "study", "study_store", "submit_job"]
