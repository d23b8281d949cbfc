"""``serums analytics …``: the privacy wall's noise report, private training, encrypted statistics.

Analytics run at the hospitals and release results only through the chain; these commands are the
operator's and researcher's door to them.
"""

from __future__ import annotations

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
