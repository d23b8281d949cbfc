"""``serums auth …``: the hospital operator's tools for the user directory.

Enrol users (or invite them to enrol themselves), check a key's strength, look at the picture
library, unlock throttled accounts, suspend and reinstate users, and report FlexPass usability
figures. Keys are read with a hidden prompt (or, for scripts, from an environment variable named
on the command line), never from arguments that would land in the shell history.
"""

from __future__ import annotations

import functools
import getpass
import json
import sys
from pathlib import Path

from serums.cli import CommandError


def register(sub) -> None:
    p = sub.add_parser("auth", help="FlexPass users: enrol, invite, unlock, suspend, usability report")
    asub = p.add_subparsers(dest="auth_command", metavar="ACTION", required=True)

    init = asub.add_parser("init", help="create the user directory's tables and the server secrets")
    init.set_defaults(handler=_init)

    reg = asub.add_parser("register", help="enrol a user (their secret as a textual key and pictures)")
    reg.add_argument("--username", required=True)
    reg.add_argument("--role", required=True, help="patient, doctor, hospital_admin, auditor or analyst")
    reg.add_argument("--hospital", required=True, help="the hospital (organisation) whose CA issues the identity")
    reg.add_argument("--images", required=True, help="comma-separated picture ids (see `serums auth images`)")
    reg.add_argument("--key-env", metavar="VAR", help="read the textual key from this environment variable")
    reg.add_argument("--custody", choices=("wallet", "exported"), default="wallet",
                     help="wallet: the server keeps the Fabric key encrypted under the user's keys; "
                          "exported: the user gets it once (written to --key-out)")
    reg.add_argument("--key-out", type=Path, help="where to write an exported private key (0600)")
    reg.add_argument("--qr", type=Path, help="write the TOTP QR code PNG here")
    reg.set_defaults(handler=_register)

    inv = asub.add_parser("invite", help="issue a single-use enrolment code")
    inv.add_argument("--username", required=True)
    inv.add_argument("--role", required=True)
    inv.add_argument("--hospital", required=True)
    inv.add_argument("--hours", type=float, default=72.0, help="validity (default 72 h)")
    inv.set_defaults(handler=_invite)

    chk = asub.add_parser("check-key", help="how predictable a textual key is (nothing is stored)")
    chk.add_argument("--username", default="")
    chk.add_argument("--key-env", metavar="VAR", help="read the key from this environment variable")
    chk.set_defaults(handler=_check_key)

    img = asub.add_parser("images", help="list the picture library, or export it as PNG files")
    img.add_argument("--export", type=Path, metavar="DIR", help="write every picture as DIR/<id>.png")
    img.add_argument("--sheet", type=Path, metavar="FILE", help="write all pictures as one PNG contact sheet")
    img.set_defaults(handler=_images)

    users = asub.add_parser("users", help="list users (pseudonymous id, username, role, status)")
    users.add_argument("--hospital")
    users.set_defaults(handler=_users)

    unlock = asub.add_parser("unlock", help="clear the failed-login backoff of a username or address")
    unlock.add_argument("username", nargs="?")
    unlock.add_argument("--address", help="a client address instead")
    unlock.set_defaults(handler=_unlock)

    sus = asub.add_parser("suspend", help="suspend a user locally and end their sessions")
    sus.add_argument("user_id")
    sus.set_defaults(handler=_suspend)

    rein = asub.add_parser("reinstate", help="lift a local suspension")
    rein.add_argument("user_id")
    rein.set_defaults(handler=_reinstate)

    rep = asub.add_parser("report", help="FlexPass usability figures from evaluation mode, as JSON")
    rep.add_argument("--since", type=float, help="only attempts after this Unix time")
    rep.set_defaults(handler=_report)


def _user_errors(fn):
    """Auth errors are expected failures: one line on stderr, not a traceback."""

    @functools.wraps(fn)
    def wrapper(args) -> int:
        from auth import AuthError, WeakKey

        try:
            return fn(args)
        except WeakKey as exc:
            raise CommandError(f"{exc.detail} {' '.join(exc.suggestions)}".strip()) from exc
        except AuthError as exc:
            raise CommandError(exc.detail) from exc

    return wrapper


def _service(args):
    from auth import AuthService
    from network import ConfigError, NetworkConfig

    settings = args.settings
    network: dict = {}

    def ca_provider(hospital: str):
        if "provider" not in network:
            from auth import ca_provider_from_network

            try:
                network["provider"] = ca_provider_from_network(NetworkConfig.load(settings.network_dir),
                                                               settings.key_passphrase)
            except ConfigError as exc:
                raise CommandError(str(exc)) from exc
        return network["provider"](hospital)

    service = AuthService.from_url(settings.auth_url, settings.auth_config(), ca_provider=ca_provider)
    service.create_tables()
    return service


def _read_key(env_var: str | None, *, confirm: bool) -> str:
    if env_var:
        from ..config import named_variable

        value = named_variable(env_var)
        if not value:
            raise CommandError(f"environment variable {env_var} is empty or not set")
        return value
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for the key: use --key-env VAR")
    key = getpass.getpass("Textual key: ")
    if confirm and getpass.getpass("Again: ") != key:
        raise CommandError("the two entries differ")
    return key


@_user_errors
def _init(args) -> int:
    _service(args)
    print(f"user directory ready in {args.settings.auth_url}")
    print(f"server secrets in {args.settings.data_dir / 'auth'} (back them up with the database)")
    return 0


@_user_errors
def _register(args) -> int:
    from auth import RegistrationRequest
    from network import write_private_file

    if args.custody == "exported" and not args.key_out:
        raise CommandError("--custody exported needs --key-out FILE")
    service = _service(args)
    images = [i.strip() for i in args.images.split(",") if i.strip()]
    key = _read_key(args.key_env, confirm=True)
    reg = service.register(RegistrationRequest(args.username, args.role, args.hospital, key, images,
                                               custody=args.custody))
    print(f"enrolled {reg.user.username} as {reg.user.user_id} ({reg.user.role}, {reg.user.hospital})")
    print(f"certificate fingerprint {reg.user.certificate_fingerprint}")
    print(f"TOTP: {reg.totp.uri}")
    if args.qr:
        args.qr.write_bytes(reg.totp.qr_png)
        print(f"TOTP QR code written to {args.qr}")
    if reg.exported_key_pem:
        write_private_file(args.key_out, reg.exported_key_pem)
        print(f"private key written to {args.key_out} (encrypted with the textual key; the server keeps none)")
    print("recovery codes (each works once; store them offline):")
    for code in reg.recovery_codes:
        print(f"  {code}")
    return 0


@_user_errors
def _invite(args) -> int:
    inv = _service(args).invite(args.username, args.role, args.hospital, ttl=args.hours * 3600)
    print(f"invitation for {inv.username} ({inv.role}, {inv.hospital}): {inv.code}")
    return 0


@_user_errors
def _check_key(args) -> int:
    from auth import assess_key

    report = assess_key(_read_key(args.key_env, confirm=False), user_inputs=[args.username] if args.username else [])
    print(json.dumps({"accepted": report.accepted, "guesses_log10": report.guesses_log10, "score": report.score,
                      "reasons": report.reasons, "warning": report.warning, "suggestions": report.suggestions},
                     indent=2))
    return 0 if report.accepted else 1


def _images(args) -> int:
    from auth.images import LIBRARY, export_library, render_sheet

    if args.export:
        paths = export_library(args.export)
        print(f"{len(paths)} pictures written to {args.export}")
    if args.sheet:
        args.sheet.write_bytes(render_sheet([s.id for s in LIBRARY], columns=16, size=96))
        print(f"contact sheet written to {args.sheet}")
    if not (args.export or args.sheet):
        for spec in LIBRARY:
            print(f"{spec.id:<24} {spec.label}")
    return 0


@_user_errors
def _users(args) -> int:
    for u in _service(args).list_users(args.hospital):
        print(f"{u.user_id}  {u.username:<24} {u.role:<15} {u.hospital:<10} {u.status:<10} {u.key_custody}")
    return 0


@_user_errors
def _unlock(args) -> int:
    service = _service(args)
    if args.address:
        service.unlock_address(args.address)
        print(f"address {args.address} unlocked")
    elif args.username:
        service.unlock(args.username)
        print(f"{args.username} unlocked")
    else:
        raise CommandError("give a username or --address")
    return 0


@_user_errors
def _suspend(args) -> int:
    n = _service(args).suspend(args.user_id)
    print(f"{args.user_id} suspended; {n} session(s) ended")
    return 0


@_user_errors
def _reinstate(args) -> int:
    _service(args).reinstate(args.user_id)
    print(f"{args.user_id} reinstated")
    return 0


@_user_errors
def _report(args) -> int:
    print(json.dumps(_service(args).usability_report(args.since).to_json(), indent=2))
    return 0
