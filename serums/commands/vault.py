"""``serums vault …``: the operator's tools for the hospital's data vault.

Ingest source extracts through a record format, read a record (by section, as of a time, as
FHIR), list a patient's history, erase a patient, rotate the key-encryption key, mask files
for test copies. These run with the hospital's keys, on the hospital's machine: they are the
operator's door, not the users' — users get data only through tokens (the gateway).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path

from serums.cli import CommandError


def register(sub) -> None:
    p = sub.add_parser("vault", help="the encrypted record vault: ingest, read, erase, rotate keys, mask",
                       description="Each hospital has its own vault (<data dir>/vaults/<hospital>/, or the schema "
                                   "vault_<hospital> with SERUMS_DATABASE_URL): the one `serums up` and the "
                                   "gateway use. --hospital chooses it; it may be left out when the network has "
                                   "one hospital.")
    vsub = p.add_subparsers(dest="vault_command", metavar="ACTION", required=True)
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--hospital", help="whose vault (required when the network has more than one hospital)")

    init = vsub.add_parser("init", help="create the vault (tables, key-encryption key, token-signing key)", parents=[which])
    init.add_argument("--format", default="edinburgh", help="record format of a new vault (name or YAML path)")
    init.set_defaults(handler=_init)

    st = vsub.add_parser("status", help="counts, key ids and format of the vault", parents=[which])
    st.set_defaults(handler=_status)

    fm = vsub.add_parser("formats", help="list the shipped record formats, or check a format file")
    fm.add_argument("--check", metavar="FILE", help="validate a Smart Patient Record Format file")
    fm.set_defaults(handler=_formats)

    ing = vsub.add_parser("ingest", help="load a CSV, XLSX or JSON extract (all rows or nothing)", parents=[which])
    ing.add_argument("--format", required=True, help="record format: a shipped name (edinburgh) or a YAML path")
    ing.add_argument("--table", help="source table (default: the file name, the sheet names or the JSON keys)")
    ing.add_argument("--chunk", type=int, default=2000, help="rows converted and written at a time")
    ing.add_argument("files", nargs="+", metavar="FILE")
    ing.set_defaults(handler=_ingest)

    pts = vsub.add_parser("patients", help="list patient references (pseudonymous)", parents=[which])
    pts.set_defaults(handler=_patients)

    find = vsub.add_parser("find", help="the patient reference for a national identifier (CHI)", parents=[which])
    find.add_argument("national_id")
    find.set_defaults(handler=_find)

    rd = vsub.add_parser("read", help="print a patient's record as JSON (operator read, no token)", parents=[which])
    _patient_args(rd)
    rd.add_argument("--section", action="append", help="limit to a section (repeatable); others are withheld")
    rd.add_argument("--as-of", help="the record as it was at this ISO 8601 time (UTC when no offset)")
    rd.add_argument("--fhir", action="store_true", help="print a FHIR R5 Bundle instead")
    rd.set_defaults(handler=_read)

    hist = vsub.add_parser("history", help="the ingests that changed a patient's record", parents=[which])
    _patient_args(hist)
    hist.set_defaults(handler=_history)

    er = vsub.add_parser("erase", help="erase a patient cryptographically and print the proof", parents=[which])
    _patient_args(er)
    er.add_argument("--reason", required=True, help="why (e.g. the erasure request's reference)")
    er.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    er.set_defaults(handler=_erase)

    rot = vsub.add_parser("rotate-kek", help="re-wrap every data key under a new key-encryption key", parents=[which])
    rot.add_argument("--passphrase-env", metavar="VAR",
                     help="derive the new KEK from the passphrase in this environment variable "
                          "(default: a new random key file)")
    rot.set_defaults(handler=_rotate)

    mk = vsub.add_parser("mask", help="mask a source file for a test copy (format-preserving, deterministic)")
    mk.add_argument("--format", required=True, help="record format (name or YAML path)")
    mk.add_argument("--table", help="source table (default: from the file)")
    mk.add_argument("--key-file", help="masking key (default <data dir>/vault/mask.key, created if missing)")
    mk.add_argument("source")
    mk.add_argument("target", help="output CSV (a directory when the source holds several tables)")
    mk.set_defaults(handler=_mask)


def _patient_args(p) -> None:
    p.add_argument("patient", help="patient reference (32 hex) or, with --chi, a national identifier")
    p.add_argument("--chi", action="store_true", help="PATIENT is a national identifier (CHI)")


# --------------------------------------------------------------------------- helpers


def _hospital(args) -> str:
    """The hospital whose vault to open: ``--hospital``, or the network's only hospital."""
    from network import NetworkConfig

    network_dir = args.settings.network_dir
    # a vault outside a network (no `serums up` / `network init` here): --hospital names it
    names = [h.name for h in NetworkConfig.load(network_dir).hospitals] if (network_dir / "network.json").exists() else []
    if args.hospital:
        if names and args.hospital not in names:
            raise CommandError(f"--hospital {args.hospital}: no such hospital on this network ({', '.join(names)})")
        return args.hospital
    if len(names) == 1:
        return names[0]
    if not names:
        raise CommandError(f"no network in {args.settings.data_dir}: say whose vault this is with --hospital NAME")
    raise CommandError(f"this network has {len(names)} hospitals ({', '.join(names)}): choose the vault with --hospital")


def _open(args, **overrides):
    import vault

    hospital = _hospital(args)
    try:
        return vault.open_vault(args.settings, hospital, **overrides)
    except vault.VaultError as exc:
        raise CommandError(str(exc)) from exc


def _run(fn):
    """Run ``fn`` turning vault errors into one-line command errors."""
    import vault

    try:
        return fn()
    except vault.IngestRejected as exc:
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise CommandError(f"ingest rejected: {len(exc.problems)} bad row(s) of {exc.rows_read}; "
                           "nothing was written") from exc
    except vault.VaultError as exc:
        raise CommandError(str(exc)) from exc


def _patient(v, args) -> str:
    return v.find_patient(args.patient) if args.chi else args.patient


def _as_of(text: str | None) -> _dt.datetime | None:
    if not text:
        return None
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as exc:
        raise CommandError(f"--as-of: {text!r} is not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.UTC)


def _print_json(doc) -> None:
    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


# --------------------------------------------------------------------------- handlers


def _init(args) -> int:
    with _open(args, format=args.format) as v:
        s = v.stats()
        print(f"vault ready: format {s.format}, payloads {s.protection}, KEK {s.kek_id} ({s.kek_kind})")
        print(f"  database  {v.config.database_url}")
        print(f"  keys      {v.config.key_dir}")
        print(f"  token key {v.issuer.key_id}")
    return 0


def _status(args) -> int:
    with _open(args) as v:
        s = v.stats()
        _print_json({
            "format": s.format, "protection": s.protection, "kek_id": s.kek_id, "kek_kind": s.kek_kind,
            "token_key_id": v.issuer.key_id, "patients": s.patients, "erased": s.erased, "satellites": s.satellites,
            "links": s.links, "hubs": s.hubs, "blobs": s.blobs, "batches": s.batches,
            "blob_store": v.blob_store.name, "sections": v.sections,
        })
    return 0


def _formats(args) -> int:
    import vault

    if args.check:
        fmt = _run(lambda: vault.load_format(args.check))
        print(f"{args.check}: valid — format {fmt.name} v{fmt.version}, {len(fmt.tables)} tables, "
              f"{len(fmt.sections)} sections")
        return 0
    for name in vault.shipped_formats():
        fmt = vault.load_format(name)
        print(f"{name:<12} v{fmt.version}  {fmt.title}")
        print(f"{'':<12} tables:   {', '.join(fmt.tables)}")
        print(f"{'':<12} sections: {', '.join(fmt.sections)}")
    return 0


def _ingest(args) -> int:
    import vault

    fmt = _run(lambda: vault.load_format(args.format))
    for f in args.files:
        if not Path(f).is_file():
            raise CommandError(f"{f}: no such file")
    with _open(args, format=args.format) as v:
        for f in args.files:
            report = _run(lambda f=f: _ingest_one(v, f, args, fmt))
            tables = ", ".join(f"{t} {n}" for t, n in report.tables.items())
            print(f"{f}: {report.rows} rows ({tables}) -> {report.satellites_written} satellites "
                  f"({report.satellites_unchanged} unchanged), {report.links_written} links, "
                  f"{report.patients_new} new patients in {report.seconds:.2f}s [batch {report.batch_id}]")
    return 0


def _ingest_one(v, path: str, args, fmt):
    if not sys.stderr.isatty():
        return v.ingest_file(path, table=args.table, record_format=fmt, chunk_size=args.chunk)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} rows"),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(f"ingesting {Path(path).name}", total=None)
        return v.ingest_file(path, table=args.table, record_format=fmt, chunk_size=args.chunk,
                             progress=lambda n: bar.update(task, completed=n))


def _patients(args) -> int:
    with _open(args) as v:
        for ref in v.patients():
            print(ref)
    return 0


def _find(args) -> int:
    with _open(args) as v:
        print(_run(lambda: v.find_patient(args.national_id)))
    return 0


def _read(args) -> int:
    as_of = _as_of(args.as_of)
    with _open(args) as v:
        def go():
            patient = _patient(v, args)
            if args.fhir:
                return v.export_fhir(patient, sections=args.section, as_of=as_of)
            return v.read_record(patient, sections=args.section, as_of=as_of).to_dict()

        _print_json(_run(go))
    return 0


def _history(args) -> int:
    with _open(args) as v:
        versions = _run(lambda: v.history(_patient(v, args)))
        for ver in versions:
            print(f"{ver.load_ts.isoformat()}  batch {ver.batch_id}  {ver.satellites:>4} satellites  "
                  f"{', '.join(ver.sections)}")
    return 0


def _erase(args) -> int:
    if not args.yes:
        raise CommandError("erasure destroys the patient's data key and cannot be undone: add --yes")
    with _open(args) as v:
        report = _run(lambda: v.erase_patient(_patient(v, args), reason=args.reason))
        _print_json({**report.to_dict(), "report_digest": report.digest()})
        if not report.verified:
            raise CommandError("erasure could not be verified: see the report")
    return 0


def _rotate(args) -> int:
    from ..config import named_variable

    new_passphrase = None
    if args.passphrase_env:
        new_passphrase = named_variable(args.passphrase_env)
        if not new_passphrase:
            raise CommandError(f"environment variable {args.passphrase_env} is empty or unset")
    with _open(args) as v:
        r = _run(lambda: v.rotate_kek(new_passphrase=new_passphrase))
        print(f"KEK rotated {r.old_kek_id} -> {r.new_kek_id} ({r.kind}): {r.data_keys_rewrapped} data keys and "
              f"{r.system_keys_rewrapped} system keys re-wrapped, {r.payloads_untouched} payloads untouched "
              f"in {r.seconds:.2f}s")
        if r.kind == "passphrase":
            print(f"from now on set SERUMS_KEY_PASSPHRASE to the value of {args.passphrase_env} to open the vault")
    return 0


def _mask(args) -> int:
    import vault

    key_file = Path(args.key_file) if args.key_file else args.settings.data_dir / "vault" / "mask.key"

    def go():
        fmt = vault.load_format(args.format)
        key = vault.load_mask_key(key_file)
        return vault.mask_file(args.source, args.target, fmt, key, table=args.table)

    counts = _run(go)
    for table, n in counts.items():
        print(f"{table}: {n} rows masked -> {args.target}")
    return 0
