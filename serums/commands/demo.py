"""``serums demo``: the demo users of ``serums up``, and a guided tour of the 10-step flow."""

from __future__ import annotations

import json

from ..cli import CommandError


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="demo users' second factor; the 10-step flow as a guided tour",
        description="Plain `serums demo` runs the 10-step flow as a guided tour through the HTTP API of the "
                    "running system: a demo patient shares a code, a demo doctor logs in, requests access, gets "
                    "the chain's decision and a token, fetches the record (ungranted sections withheld), a stolen "
                    "token is refused, and the patient's access log, an auditor's trail and a ledger verification "
                    "follow, each step with its evidence (transaction ids, hashes). It finds the running system "
                    "through <data dir>/up.json, which `serums up` writes: start `serums up` first (another "
                    "terminal) with the same data directory (--data-dir, or SERUMS_DATA_DIR; default "
                    "~/.local/share/serums).")
    dsub = p.add_subparsers(dest="demo_command", metavar="ACTION")
    t = dsub.add_parser("totp", help="the current TOTP code of a demo user (their authenticator app)")
    t.add_argument("username")
    t.set_defaults(handler=_totp)
    u = dsub.add_parser("users", help="list the demo users and their keys")
    u.set_defaults(handler=_users)
    p.set_defaults(handler=_tour)


def load_demo_users(settings) -> list[dict]:
    path = settings.data_dir / "demo-users.json"
    if not path.exists():
        raise CommandError(f"no demo users in {settings.data_dir}: run `serums up` first")
    return json.loads(path.read_text())["users"]


def demo_user(settings, username: str) -> dict:
    for u in load_demo_users(settings):
        if u["username"] == username:
            return u
    raise CommandError(f"{username!r} is not a demo user (see `serums demo users`)")


def _totp(args) -> int:
    import pyotp

    print(pyotp.TOTP(demo_user(args.settings, args.username)["totp_secret"]).now())
    return 0


def _users(args) -> int:
    for u in load_demo_users(args.settings):
        print(f"{u['username']:<20} {u['role']:<15} {u['hospital']:<8} {u['text_key']}")
    return 0


def _tour(args) -> int:
    from ..tour import run_tour

    return run_tour(args.settings)
