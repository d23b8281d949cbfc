"""``serums fabricate …``: rule-guided synthetic data (fabrication/).

    serums fabricate PROJECT [--rows N | --rows table=N …] [--out TARGET] [--format F] [--workers W] [--seed S]
    serums fabricate sample RULE [--project PROJECT] [-n 10]
    serums fabricate profile DATA [--out project.yaml] [--name NAME]
    serums fabricate verify REAL FABRICATED [--project P] [--holdout H] [--iterate] [--rounds 3] [--json]
    serums fabricate privacy DATA [--seed S] [--json]
    serums fabricate mask SOURCE --rules masking.yaml --out TARGET [--table T] [--key-file K] [--mix PROJECT]
    serums fabricate stream mqtt://HOST:PORT/TOPIC --out TARGET (--rules masking.yaml | --project P) [--count N] [--seconds S] [--idle S]
    serums fabricate inflate DATABASE_URL --table T --rows N [--seed S] [--schema S] [--no-children]
    serums fabricate validate PROJECT

PROJECT is a YAML file or a packaged project name (``edinburgh``). A first argument that is not one
of the actions is taken as PROJECT.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ACTIONS = ("sample", "profile", "verify", "validate", "privacy", "mask", "stream", "inflate", "run")


def register(sub) -> None:
    p = sub.add_parser("fabricate", help="fabricate synthetic data from a data project; profile and verify realism",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="PROJECT|ACTION", help="a data project (YAML or packaged name) or an action")
    p.add_argument("args", nargs="*", help="the action's arguments")
    p.add_argument("--rows", action="append", help="root-table rows: N, or TABLE=N (repeatable)")
    p.add_argument("--out", help="directory (CSV), .json, .xlsx, .sqlite, postgresql+psycopg://…, mqtt://host:port/topic")
    p.add_argument("--format", choices=["csv", "json", "xml", "xlsx", "sqlite", "postgresql", "mqtt"])
    p.add_argument("--table", help="(profile, verify, privacy, mask) the table to read from a database URL")
    p.add_argument("--rules", help="(mask, stream) YAML: column → substitute | shuffle | fpe | keep | drop")
    p.add_argument("--key-file", default="masking.key", help="(mask, stream) hex key file, created (0600) when missing")
    p.add_argument("--mix", help="(mask) also write this project's fabricated rows (mixed real + fabricated)")
    p.add_argument("--schema", help="PostgreSQL schema for the tables")
    p.add_argument("--no-children", action="store_true", help="(inflate) add rows to --table only, none to the "
                   "tables that refer to it")
    p.add_argument("--count", type=int, help="(stream) stop after this many messages")
    p.add_argument("--seconds", type=float, help="(stream) stop after this many seconds")
    p.add_argument("--idle", type=float, help="(stream) stop when the topic has been quiet this many seconds")
    p.add_argument("--if-exists", default="replace", choices=["replace", "append", "fail"])
    p.add_argument("--workers", type=int, default=1, help="worker processes (output is the same for any count)")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--report", help="also write the diagnostic report as JSON here")
    p.add_argument("--project", help="(sample, verify, stream) the data project the rule or tables belong to")
    p.add_argument("-n", type=int, default=10, help="(sample) how many values")
    p.add_argument("--name", help="(profile) project and table name")
    p.add_argument("--iterate", action="store_true", help="(verify) refine the implicated rules and repeat")
    p.add_argument("--rounds", type=int, default=3, help="(verify --iterate) at most this many refinements")
    p.add_argument("--holdout", help="(verify) real rows the project was NOT made from: adds the privacy report "
                   "(DCR against them, membership-inference AUC)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar or report tables")
    p.set_defaults(handler=_dispatch)


def _dispatch(args) -> int:
    if args.target in ACTIONS:
        action, rest = args.target, args.args
    else:
        action, rest = "run", [args.target, *args.args]
    handler = {"run": _run, "sample": _sample, "profile": _profile, "verify": _verify, "validate": _validate,
               "privacy": _privacy, "mask": _mask, "stream": _stream, "inflate": _inflate}[action]
    from fabrication import USER_ERRORS
    from serums.cli import CommandError

    try:
        return handler(args, rest)
    except USER_ERRORS as exc:
        raise CommandError(str(exc)) from None


def _need(rest: list[str], n: int, usage: str) -> list[str]:
    from serums.cli import CommandError

    if len(rest) != n:
        raise CommandError(f"usage: serums fabricate {usage}", code=2)
    return rest


def _rows(values: list[str] | None):
    from serums.cli import CommandError

    if not values:
        return None
    out: dict[str, int] = {}
    single = None
    for v in values:
        name, eq, num = v.partition("=")
        try:
            if eq:
                out[name] = int(num)
            else:
                single = int(name)
        except ValueError:
            raise CommandError(f"--rows takes N or TABLE=N, not {v!r}", code=2) from None
    if single is not None and out:
        raise CommandError("give --rows N or --rows TABLE=N, not both", code=2)
    return single if single is not None else out


def _run(args, rest) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fabrication import fabricate, load_project, open_target, writers_from_project

    (project_ref,) = _need(rest, 1, "PROJECT [--rows …] [--out …]")
    project = load_project(project_ref)
    console = Console(stderr=True)
    writers = [open_target(args.out, args.format, args.schema, args.if_exists)] if args.out else writers_from_project(
        project.outputs, project.base_dir)
    progress = None
    if not args.quiet:
        progress = Progress(TextColumn("fabricating {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("batches · {task.fields[rows]:,} rows"), TimeElapsedColumn(), console=console)
    task = None

    def tick(done, total, rows):
        nonlocal task
        if progress is None:
            return
        if task is None:
            task = progress.add_task(project.name, total=total, rows=0)
        progress.update(task, completed=done, rows=rows)

    if progress:
        progress.start()
    try:
        result = fabricate(project, rows=_rows(args.rows), workers=args.workers, seed=args.seed,
                           batch_size=args.batch_size, progress=tick)
    finally:
        if progress:
            progress.stop()
    frames = result.frames()
    written = [w.write(frames) for w in writers]
    if args.report:
        Path(args.report).write_text(result.report.to_json())
    if args.json:
        print(json.dumps({"rows": result.rows, "seconds": round(result.seconds, 3), "written": written,
                          "report": result.report.to_dict()}, default=str))
        return 0
    if not args.quiet:
        result.report.render(console)
    for w in written:
        print(w)
    if not writers:
        print(f"fabricated {result.total_rows} rows ({', '.join(f'{k} {v}' for k, v in result.rows.items())}); "
              "no output target (give --out)")
    return 0


def _sample(args, rest) -> int:
    from fabrication import sample_rule

    (rule,) = _need(rest, 1, "sample RULE [--project P] [-n N]")
    rows = sample_rule(args.project or "edinburgh", rule, n=args.n, seed=args.seed)
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    if not rows:
        print("no rows")
        return 0
    t = Table(title=f"{rule}: {len(rows)} fabricated value(s), each satisfying the rule")
    for c in rows[0]:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r.values()))
    Console().print(t)
    return 0


def _read_table(path: str, table: str | None = None):
    from fabrication.sources import read_table

    return read_table(path, table)


def _profile(args, rest) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fabrication import profile
    from fabrication.profiler import project_yaml

    (data,) = _need(rest, 1, "profile DATA [--out project.yaml] [--name NAME] [--seed S]")
    df = _read_table(data, args.table)
    name = args.name or Path(data).stem.replace(":", "_")
    progress = None if args.quiet else Progress(TextColumn("profiling {task.description:<28}"), BarColumn(),
                                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    task = None

    def tick(stage: str, done: int, total: int) -> None:
        nonlocal task
        if progress is None:
            return
        if task is None:
            task = progress.add_task(stage, total=total)
        progress.update(task, completed=done, description=stage[:28])

    if progress:
        progress.start()
    try:
        spec = profile(df, name=name, seed=args.seed or 0, progress=tick)
    finally:
        if progress:
            progress.stop()
    text = project_yaml(spec)
    if args.out:
        Path(args.out).write_text(text)
        print(f"data project for {len(df)} rows × {df.shape[1]} columns written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _verify(args, rest) -> int:
    from fabrication import iterate, load_project, verify
    from fabrication.profiler import project_yaml

    real_path, fake_path = _need(rest, 2, "verify REAL FABRICATED [--iterate] [--project P]")
    real = _read_table(real_path, args.table)
    project = load_project(args.project) if args.project else None
    if args.iterate:
        spec, report, _ = iterate(real, name=args.name or Path(real_path).stem.replace(":", "_"), rounds=args.rounds,
                                  seed=args.seed or 0, workers=args.workers)
        if fake_path not in ("-", ""):
            Path(fake_path).write_text(project_yaml(spec))
    else:
        fake = _read_table(fake_path)
        holdout = _read_table(args.holdout) if args.holdout else None
        report = verify(real, fake, seed=args.seed or 0, project=project, holdout=holdout)
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    else:
        report.render()
        if args.iterate:
            for h in report.iterations:
                print(f"round {h['round']}: margin {h['margin']:+.3f}"
                      + (" (no better: the previous round's changes are undone)" if h.get("reverted") else ""))
                for ch in h.get("changes") or []:
                    print(f"  refine {ch}")
            print(report.summary)
            if fake_path not in ("-", ""):
                print(f"refined data project written to {fake_path}")
    return 0


def _privacy(args, rest) -> int:
    from rich.console import Console

    from fabrication import privacy_evaluation

    (data,) = _need(rest, 1, "privacy DATA [--seed S] [--json]")
    report = privacy_evaluation(_read_table(data, args.table), seed=args.seed or 0, name=args.name or "privacy")
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        Console().print(f"profiled a random half ({report.rows_train} rows), fabricated {report.rows_fabricated}, "
                        f"attacked with the other half ({report.rows_holdout} rows) as non-members")
        report.render(Console())
    return 0


def _masking(args) -> tuple[dict, bytes]:
    """The masking rules (--rules YAML) and key (--key-file, created 0600 when missing)."""
    import os
    import secrets

    import yaml

    from serums.cli import CommandError

    try:
        rules = yaml.safe_load(Path(args.rules).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CommandError(f"cannot read the masking rules {args.rules}: {exc}") from None
    if not isinstance(rules, dict):
        raise CommandError(f"{args.rules}: give a mapping column → method")
    kp = Path(args.key_file)
    if not kp.exists():
        fd = os.open(kp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return rules, bytes.fromhex(kp.read_text().strip())


def _mask(args, rest) -> int:
    from fabrication import fabricate, load_project
    from fabrication.modes import move
    from serums.cli import CommandError

    (source,) = _need(rest, 1, "mask SOURCE --rules masking.yaml --out TARGET [--table T] [--mix PROJECT]")
    if not args.rules or not args.out:
        raise CommandError("mask needs --rules masking.yaml and --out TARGET", code=2)
    rules, key = _masking(args)
    mixed = None
    if args.mix:
        project = load_project(args.mix)
        res = fabricate(project, rows=_rows(args.rows), seed=args.seed)
        mixed = res.frame(next(t.name for t in project.roots))
    print(move(source, args.out, rules, key, table=args.table, fabricated=mixed))
    return 0


def _stream(args, rest) -> int:
    from fabrication import load_project
    from fabrication.streaming import stream
    from serums.cli import CommandError

    usage = "stream mqtt://host:port/topic --out TARGET (--rules masking.yaml | --project P) [--count N] [--seconds S] [--idle S]"
    (source,) = _need(rest, 1, usage)
    if not args.out or bool(args.rules) == bool(args.project):
        raise CommandError(f"usage: serums fabricate {usage}", code=2)
    rules, key = _masking(args) if args.rules else (None, None)
    project = load_project(args.project) if args.project else None
    print(f"streaming {source} → {args.out} (Ctrl-C stops)", file=sys.stderr, flush=True)
    report = stream(source, args.out, rules=rules, key=key, project=project, seed=args.seed or 0, count=args.count,
                    seconds=args.seconds, idle=args.idle)
    print(report.summary())
    return 0


def _inflate(args, rest) -> int:
    from fabrication.modes import inflate
    from serums.cli import CommandError

    (url,) = _need(rest, 1, "inflate DATABASE_URL --table T --rows N")
    n = _rows(args.rows)
    if not args.table or not isinstance(n, int):
        raise CommandError("inflate needs --table T and --rows N", code=2)
    if "://" not in url and Path(url).suffix.lower() in (".sqlite", ".db", ".sqlite3"):
        url = f"sqlite:///{Path(url).resolve()}"
    print(inflate(url, args.table, n, seed=args.seed or 0, schema=args.schema, children=not args.no_children))
    return 0


def _validate(args, rest) -> int:
    from fabrication import load_project

    (project_ref,) = _need(rest, 1, "validate PROJECT")
    project = load_project(project_ref)
    n_rules = len(project.all_rules())
    print(f"{project.name}: valid — {len(project.tables)} tables, {n_rules} rules")
    return 0
