"""``serums analytics …``: the privacy wall's noise report, private training, and the chain-gated
research jobs of the gateway's ``/analytics`` endpoints (datasets and their ε budgets, cohorts, jobs
and their releases).

Analytics run at the hospitals and release results only through the chain; these commands are the
operator's door to them. The job commands work on a data directory ``serums up`` filled, with its
node running: a dataset is created by the hospital's admin identity, a cohort is asked of the chain
by the hospital's ``analytics`` service identity (the chain lets researchers and analytics services
ask), and jobs run here, read each hospital's rows through its vault's cohort tokens, and are kept
in the same job store as the gateway's (``<data dir>/analytics/jobs``), so auditors see them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from serums.cli import CommandError


def register(sub) -> None:
    p = sub.add_parser("analytics", help="privacy wall, DP learning across hospitals, encrypted statistics")
    asub = p.add_subparsers(dest="analytics_command", metavar="ACTION", required=True)

    nr = asub.add_parser("noise-report", help="R(δ) measured against analytic: print the table, draw a PNG")
    nr.add_argument("--samples", type=int, default=1_000_000, help="noise samples per δ (default 1,000,000)")
    nr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    nr.add_argument("--delta", type=float, action="append",
                    help="a δ to measure (repeatable; default 1e-6 … 0.9)")
    nr.add_argument("--out", default=None, help="PNG path (default <data dir>/analytics/r_delta.png)")
    nr.set_defaults(handler=_noise_report)

    tr = asub.add_parser("train", help="train the toxicity predictor across the hospitals' vaults (Flower, DP)")
    tr.add_argument("--method", choices=["dpsgd", "wall", "none"], default="dpsgd",
                    help="dpsgd: Opacus DP-SGD; wall: the privacy wall (input perturbation); none: not private")
    tr.add_argument("--epsilon", type=float, default=1.0, help="ε each hospital spends (default 1)")
    tr.add_argument("--delta", type=float, default=1e-5, help="δ (default 1e-5)")
    tr.add_argument("--rounds", type=int, default=3, help="federated rounds (default 3)")
    tr.add_argument("--local-epochs", type=int, default=2, help="epochs per round at each hospital (default 2)")
    tr.add_argument("--hospital", action="append", help="a hospital to include (repeatable; default: every vault)")
    tr.add_argument("--engine", choices=["flower", "inprocess"], default="flower",
                    help="flower: SuperLink + a SuperNode per hospital on loopback (default); inprocess: FedAvg here")
    tr.add_argument("--secure", action="store_true",
                    help="aggregate with Flower's SecAgg+ (the aggregator sees only the sum; 3+ hospitals)")
    tr.add_argument("--out", help="model JSON path (default <data dir>/analytics/toxicity-model.json)")
    tr.set_defaults(handler=_train)

    _register_research(asub)


def _register_research(asub) -> None:
    ds = asub.add_parser("datasets", help="privacy budgets of datasets on chain (BudgetContract)")
    dsub = ds.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    c = dsub.add_parser("create", help="create a dataset's budget, as the hospital's admin")
    c.add_argument("dataset", help="dataset id")
    c.add_argument("--hospital", required=True, help="the hospital whose analytics service spends it")
    c.add_argument("--epsilon", type=float, required=True, help="total ε")
    c.add_argument("--delta", type=float, required=True, help="total δ")
    c.set_defaults(handler=_datasets_create)
    sh = dsub.add_parser("show", help="a dataset's budget: totals, spent, remaining")
    sh.add_argument("dataset")
    sh.set_defaults(handler=_datasets_show)
    ls = dsub.add_parser("list", help="every dataset's budget")
    ls.add_argument("--hospital", help="only this hospital's datasets")
    ls.set_defaults(handler=_datasets_list)
    sp = dsub.add_parser("spends", help="a dataset's spends: each release's ε, δ, cohort and SHA-256")
    sp.add_argument("dataset")
    sp.set_defaults(handler=_datasets_spends)

    co = asub.add_parser("cohort", help="research cohorts granted by the chain (TransportContract)")
    csub = co.add_subparsers(dest="cohort_command", metavar="ACTION", required=True)
    rq = csub.add_parser("request", help="ask the chain for a research cohort over the toxicity task's sections, "
                                        "as a researcher (patients consent to researchers)")
    rq.add_argument("--user", required=True, help="the researcher's username")
    rq.add_argument("--key-file", help="a file holding the researcher's textual key (default: prompt for it)")
    rq.add_argument("--patient", action="append",
                    help="a candidate patient id (repeatable; default: every enrolled patient of every vault)")
    rq.set_defaults(handler=_cohort_request)
    cs = csub.add_parser("show", help="a cohort as the chain holds it now (size, status, expiry)")
    cs.add_argument("cohort_id")
    cs.add_argument("--hospital", required=True, help="whose analytics service reads it")
    cs.set_defaults(handler=_cohort_show)

    jb = asub.add_parser("jobs", help="research jobs released only against the chain")
    jsub = jb.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    sm = jsub.add_parser("submit", help="run a job here: refused before it starts when the budget is short")
    sm.add_argument("--cohort", required=True, help="the research cohort the chain granted")
    sm.add_argument("--dataset", required=True, help="the dataset whose budget pays")
    sm.add_argument("--epsilon", type=float, required=True, help="ε the job spends")
    sm.add_argument("--delta", type=float, default=1e-5, help="δ the job spends (default 1e-5)")
    sm.add_argument("--study", default="toxicity", help="study name (default toxicity)")
    sm.add_argument("--kind", choices=["train", "stats"], default="train",
                    help="train: the toxicity predictor; stats: encrypted statistics (method wall)")
    sm.add_argument("--method", choices=["dpsgd", "wall"], default="dpsgd", help="dpsgd (default) or wall")
    sm.add_argument("--rounds", type=int, default=3, help="federated rounds (default 3)")
    sm.add_argument("--local-epochs", type=int, default=2, help="epochs per round (default 2)")
    sm.add_argument("--engine", choices=["inprocess", "flower"], default="inprocess",
                    help="inprocess: FedAvg here (default); flower: SuperLink + a SuperNode per hospital")
    sm.set_defaults(handler=_jobs_submit)
    jl = jsub.add_parser("list", help="every job of this data directory")
    jl.set_defaults(handler=_jobs_list)
    js = jsub.add_parser("show", help="a job's status, round, ε spent, release digest")
    js.add_argument("job_id")
    js.set_defaults(handler=_jobs_show)
    jr = jsub.add_parser("release", help="a released job's document (model or statistics) and its SHA-256")
    jr.add_argument("job_id")
    jr.add_argument("--out", help="write the release as JSON here instead of printing it")
    jr.set_defaults(handler=_jobs_release)


def _run(fn):
    from analytics import AnalyticsError

    try:
        return fn()
    except AnalyticsError as exc:
        raise CommandError(exc.detail) from exc
    except Exception as exc:
        one_line = _refusal(exc)
        if one_line is None:
            raise
        raise CommandError(one_line) from exc


def _refusal(exc: Exception) -> str | None:
    """A refusal of the chain, the gateway's application layer or a vault as one line (else None)."""
    from network import GatewayError
    from vault import VaultError

    if isinstance(exc, GatewayError):
        return exc.chaincode_message or str(exc).splitlines()[0]
    if isinstance(exc, VaultError):
        return str(exc)
    from auth import AuthError

    if isinstance(exc, AuthError):
        return str(exc)
    try:
        from gateway.problems import Problem
    except ImportError:  # pragma: no cover - the gateway is part of the project
        return None
    if isinstance(exc, Problem):
        return f"{exc.type.title}: {exc.detail}" if exc.detail else exc.type.title
    return None


def _noise_report(args) -> int:
    from analytics import DEFAULT_DELTAS, plot_r_delta, r_delta_table

    if args.samples < 1000:
        raise CommandError("--samples must be at least 1000")
    deltas = args.delta or list(DEFAULT_DELTAS)
    rows = _run(lambda: r_delta_table(deltas, samples=args.samples, seed=args.seed))
    out = Path(args.out) if args.out else Path(args.settings.data_dir) / "analytics" / "r_delta.png"
    plot_r_delta(rows, out, samples=args.samples)
    print(f"{'delta':>10}  {'R analytic':>10}  {'R measured':>10}  {'rel error':>9}")
    for r in rows:
        print(f"{r.delta:>10.3g}  {r.analytic:>10.4f}  {r.measured:>10.4f}  {r.relative_error:>9.2%}")
    print(f"max relative error {max(r.relative_error for r in rows):.2%} over {len(rows)} values of delta; "
          f"figure: {out}")
    return 0


# --------------------------------------------------------------------------- training


def _hospitals(settings, wanted: list[str] | None) -> list[str]:
    root = Path(settings.data_dir) / "vaults"
    have = sorted(p.name for p in root.iterdir() if (p / "vault.db").exists() or settings.database_url) \
        if root.is_dir() else []
    if wanted:
        missing = sorted(set(wanted) - set(have))
        if missing:
            raise CommandError(f"no vault for {', '.join(missing)} in {root}")
        return wanted
    if not have:
        raise CommandError(f"no hospital vaults in {root} (run `serums up` first)")
    return have


def site_dataset(node_config):
    """A SuperNode's loader: the toxicity matrix of its hospital's vault (runs beside that vault)."""
    import vault
    from analytics import TOXICITY_BOUNDS, toxicity_dataset
    from serums.config import Settings

    settings = Settings.from_env(data_dir=str(node_config["data-dir"]))
    hospital = str(node_config["hospital"])
    with vault.open_vault(settings, hospital) as v:
        return toxicity_dataset(v, source=hospital), list(TOXICITY_BOUNDS)


def cohort_dataset(node_config):
    """A research job's SuperNode loader (``engine='flower'``): the cohort's rows of its hospital's
    vault, read through a cohort token presented by the site's analytics service (node config:
    ``hospital``, ``data-dir``, ``cohort-id``, ``analytics-id``). Runs beside that vault."""
    from analytics.jobs import CohortSite, research_site_dataset
    from gateway.services import Services
    from serums.config import Settings

    settings = Settings.from_env(data_dir=str(node_config["data-dir"]))
    services = Services.open(settings.gateway_settings(), auth_config=settings.auth_config())
    try:
        hospital = str(node_config["hospital"])
        site = CohortSite(hospital, services.vault(hospital), str(node_config["analytics-id"]))
        return research_site_dataset(node_config, site)
    finally:
        services.close()


def flower_node_config(settings) -> dict:
    """The node config of a research job's SuperNodes on this data directory (``CohortSite.node_config``)."""
    return {"loader": "serums.commands.analytics:cohort_dataset", "data-dir": str(settings.data_dir)}


def _train(args) -> int:
    import json
    import time

    from analytics import FEATURES, TrainConfig

    config = _run(lambda: TrainConfig(method=args.method, epsilon=args.epsilon, delta=args.delta,
                                      rounds=args.rounds, local_epochs=args.local_epochs))
    hospitals = _hospitals(args.settings, args.hospital)
    out = Path(args.out) if args.out else Path(args.settings.data_dir) / "analytics" / "toxicity-model.json"

    from rich.progress import Progress

    bar = Progress(disable=not sys.stdout.isatty(), transient=True)
    task = bar.add_task("federated rounds", total=args.rounds)

    def show(entry) -> None:
        bar.update(task, advance=1)
        bar.console.print(f"  round {entry['round']}: {entry['hospitals']} hospitals, "
                          f"ε spent {entry['epsilon_spent']:.3f}, {entry['seconds']:.1f}s")

    started = time.perf_counter()
    print(f"training the toxicity predictor at {', '.join(hospitals)} ({args.method}, ε={args.epsilon:g}, "
          f"δ={args.delta:g}, {args.rounds} rounds, engine {args.engine})", flush=True)
    with bar:
        params, spent = _train_with(args, config, hospitals, show)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"features": list(FEATURES), "method": args.method, "epsilon_spent": spent,
                               "delta": args.delta, "weight": [float(w) for w in params["weight"].reshape(-1)],
                               "bias": float(params["bias"].reshape(-1)[0])}, indent=2))
    print(f"done in {time.perf_counter() - started:.1f}s: ε spent {spent:.3f} (δ={args.delta:g}); model: {out}")
    return 0


def _train_with(args, config, hospitals, show):
    from analytics import FEATURES, TOXICITY_BOUNDS, train_federated

    if args.engine == "inprocess":
        shards = [site_dataset({"data-dir": str(args.settings.data_dir), "hospital": h})[0] for h in hospitals]
        result = _run(lambda: train_federated(shards, TOXICITY_BOUNDS, config, on_round=lambda r: show(
            {"round": r.round, "hospitals": len(shards), "epsilon_spent": r.epsilon_spent, "seconds": r.seconds})))
        return result.parameters, result.epsilon_spent
    from analytics.flower import Federation, Site

    sites = [Site(h, {"loader": "serums.commands.analytics:site_dataset",
                      "data-dir": str(args.settings.data_dir)}) for h in hospitals]

    def federated():
        with Federation(Path(args.settings.data_dir) / "analytics" / "flower", sites) as fed:
            return fed.run(config, features=len(FEATURES), on_round=show, secure=args.secure)

    run = _run(federated)
    return run.parameters, run.epsilon_spent


# --------------------------------------------------------------------------- research: datasets, cohorts, jobs


class _Service:
    """An identity that acts on chain: the duck type of ``gateway.flow.Actor`` the research layer needs."""

    def __init__(self, user_id: str, role: str, contract):
        self.user_id, self.role, self._contract = user_id, role, contract

    def contract(self, services, name: str):
        return self._contract(name)

    reader = contract


def _services(args):
    from gateway.services import Services

    settings = args.settings
    if not settings.running_node_address():
        raise CommandError(f"no node running for {settings.data_dir} (start it with `serums up`)")
    return _run(lambda: Services.open(settings.gateway_settings(), auth_config=settings.auth_config()))


def _admin(services, hospital: str) -> _Service:
    name = _run(lambda: services.hospital_of(hospital))
    return _Service(f"admin@{name}", "hospital_admin", lambda c: services.admin_contract(name, c))


def _analytics(services, hospital: str) -> _Service:
    from gateway import research as R

    name = _run(lambda: services.hospital_of(hospital))
    creds = _run(lambda: R.analytics_identity(services, name))
    gw = services.gateway(*creds)
    return _Service(R.service_user_id(name), R.SERVICE_ROLE,
                    lambda c: gw.network(services.network.channel).contract("serums", c))


def _with_services(args, fn) -> int:
    services = _services(args)
    try:
        out = _run(lambda: fn(services))
    finally:
        services.close()
    if out is not None:
        _print_json(out)
    return 0


def _print_json(doc) -> None:
    import json

    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _any_hospital(services) -> str:
    return services.hospitals[0]


def _datasets_create(args) -> int:
    from gateway import research as R

    return _with_services(args, lambda s: R.create_dataset(s, _admin(s, args.hospital), args.dataset, args.epsilon,
                                                           args.delta))


def _datasets_show(args) -> int:
    from gateway import research as R

    return _with_services(args, lambda s: R.budget(s, _admin(s, _any_hospital(s)), args.dataset))


def _datasets_list(args) -> int:
    from gateway import research as R

    def show(s):
        for d in R.datasets(s, _admin(s, _any_hospital(s)), args.hospital):
            print(f"{d['dataset']}  {d['hospital_name']}  ε {d['epsilon_remaining']} of {d['epsilon_total']} left, "
                  f"δ {d['delta_remaining']} of {d['delta_total']} left, {d['spends']} spends")

    return _with_services(args, show)


def _datasets_spends(args) -> int:
    from gateway import research as R

    return _with_services(args, lambda s: R.all_spends(s, _admin(s, _any_hospital(s)), args.dataset))


def _cohort_request(args) -> int:
    from gateway import research as R

    def request(s):
        with_vaults = [h for h in s.hospitals if (s.vault_dir(h) / "vault.db").exists() or s.settings.postgres_url]
        patients = args.patient or R.candidates(s, with_vaults)
        if not patients:
            raise CommandError("no enrolled patients in the vaults to ask about (run `serums up` first)")
        return R.request_cohort(s, _run(lambda: _researcher(s, args)), patients)

    return _with_services(args, request)


def _researcher(services, args) -> _Service:
    """The researcher ``--user``, signing with their own wallet opened by their textual key."""
    import getpass

    if args.key_file:
        key = Path(args.key_file).read_text().strip()
    elif sys.stdin.isatty():
        key = getpass.getpass(f"textual key of {args.user}: ")
    else:
        raise CommandError("give the researcher's textual key with --key-file (or run in a terminal to be asked)")
    user = services.auth.find_user(args.user)
    if user is None or user.role != "researcher":
        raise CommandError(f"{args.user} is not a researcher of this system")
    signer = services.auth.open_wallet_with_key(args.user, key)
    return _Service(user.user_id, user.role, lambda c: services.user_contract(user.user_id, signer, c))


def _cohort_show(args) -> int:
    from gateway import research as R

    return _with_services(args, lambda s: R.cohort(s, _analytics(s, args.hospital), args.cohort_id))


def _store(args):
    from analytics.jobs import JobStore

    return JobStore(Path(args.settings.data_dir) / "analytics" / "jobs")


def _jobs_submit(args) -> int:
    import dataclasses

    from rich.progress import BarColumn, Progress, TextColumn

    from analytics.jobs import JobSpec
    from gateway import research as R

    spec = _run(lambda: JobSpec(study=args.study, cohort_id=args.cohort, dataset=args.dataset, epsilon=args.epsilon,
                                delta=args.delta, kind=args.kind, method="wall" if args.kind == "stats" else args.method,
                                rounds=args.rounds, local_epochs=args.local_epochs, engine=args.engine))
    services = _services(args)
    try:
        def submit():
            hospital = R.budget(services, _admin(services, _any_hospital(services)), spec.dataset)["hospital"]
            ledger = R.analytics_ledger(services, hospital)
            owner = R.service_user_id(services.hospital_of(hospital))
            sites = {h: dataclasses.replace(site, node_config=flower_node_config(args.settings))
                     for h, site in R.sites(services).items()}
            return _store(args).submit(owner, spec, ledger, sites)

        job = _run(submit)
        print(f"{job.job_id}: {spec.kind} on cohort {spec.cohort_id}, ε={spec.epsilon:g} δ={spec.delta:g} from "
              f"{spec.dataset}", flush=True)
        bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("round {task.completed:.0f}/"
                       "{task.total:.0f}"), disable=not sys.stdout.isatty(), transient=True)
        job = _follow(args, job.job_id, bar, 1 if spec.kind == "stats" else spec.rounds)
    finally:
        services.close()
    if job.status != "released":
        raise CommandError(f"{job.job_id} {job.status}: {(job.problem or {}).get('detail', 'no detail')}")
    print(f"{job.job_id} released: {job.release['release_id']} sha256 {job.release['sha256']} "
          f"(ε left {job.release.get('epsilon_remaining')})")
    return 0


def _follow(args, job_id: str, bar, rounds: int):
    import time

    store = _store(args)
    with bar:
        task = bar.add_task("training", total=rounds)
        while True:
            job = store.get(job_id)
            bar.update(task, completed=job.round)
            if job.status not in ("queued", "running"):
                return job
            time.sleep(0.2)


def _jobs_list(args) -> int:
    for j in sorted(_store(args).list(), key=lambda j: j.created_at):
        digest = (j.release or {}).get("sha256", "")
        print(f"{j.job_id}  {j.status:<8}  {j.spec.get('kind', 'train'):<5}  round {j.round}  "
              f"ε spent {j.epsilon_spent:g}  {j.owner}  {digest}")
    return 0


def _jobs_show(args) -> int:
    _print_json(_run(lambda: _store(args).get(args.job_id)).view())
    return 0


def _jobs_release(args) -> int:
    import json

    job = _run(lambda: _store(args).get(args.job_id))
    if job.status != "released" or not job.release:
        raise CommandError(f"job {args.job_id} is {job.status}: nothing was released")
    if args.out:
        Path(args.out).write_text(json.dumps(job.release, indent=2, ensure_ascii=False))
        print(f"release {job.release['release_id']} (sha256 {job.release['sha256']}) written to {args.out}")
    else:
        _print_json(job.release)
    return 0
