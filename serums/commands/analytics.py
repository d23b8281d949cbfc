"""``serums analytics …``: the privacy wall's noise report, private training, encrypted statistics.

Analytics run at the hospitals and release results only through the chain; these commands are the
operator's and researcher's door to them.
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


def _run(fn):
    from analytics import AnalyticsError

    try:
        return fn()
    except AnalyticsError as exc:
        raise CommandError(exc.detail) from exc


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
