"""Web pages benchmark: median and p95 server time of each main page, with realistic data.

Builds a world in this process as the gateway's tests do (embedded node, three hospitals with
their rules, vaults holding the fixture patients), enrols a patient, a GP treating them, an
auditor and a hospital admin, fills the patient's trail with real requests and accesses
(``--history`` of each), signs each person in through the pages (key, then TOTP) and then times
every main page ``--repeat`` times through the WSGI app (Flask's test client: server time, no
network). Pages that write to the ledger are timed too: the patient's own record (a request, a
token and a logged access per view) and a clinician's request. Prints one JSON object:
``<page>_p50_ms`` / ``<page>_p95_ms`` per page, ``<page>_cpu_ms`` (CPU per view, the whole process:
gateway and node threads), ``max_p95_ms`` and ``pages_over_50ms_p95``.

    .venv/bin/python bench/web.py [--quick | --smoke] [--profile]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auth import Argon2Params, AuthConfig  # noqa: E402
from gateway import flow  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.services import GatewaySettings, Services  # noqa: E402
from network.node import EmbeddedNode  # noqa: E402
from tests.gateway.stack import enrol, init_data_dir, provision  # noqa: E402

FAST = Argon2Params(memory_kib=1024, iterations=1, parallelism=1)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGES = {
    "patient": ["/patient/", "/patient/record", "/patient/preferences", "/patient/share", "/patient/access-log",
                "/patient/grants", "/notifications"],
    "gp": ["/clinician/", "/clinician/requests", "/clinician/request"],
    "auditor": ["/auditor/trail", "/auditor/break-glass", "/auditor/blocks"],
    "admin": ["/hospital-admin/users", "/hospital-admin/rules"],
}


def sign_in(client, account) -> None:
    token = CSRF.search(client.get("/sign-in").get_data(as_text=True)).group(1)
    r = client.post("/sign-in/key", data={"csrf_token": token, "username": account.username, "method": "text"})
    r = client.post("/sign-in/verify", data={"csrf_token": token, "username": account.username, "method": "text",
                                             "text_key": account.key})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    r = client.post("/sign-in/second-factor", data={"csrf_token": token, "code": account.totp(), "kind": "totp"})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]


def actor_of(services, account):
    """The application layer's actor for an account, with a wallet opened by its key (setup only)."""
    user = account.reg.user
    signer = services.auth.open_wallet_with_key(account.username, account.key)
    return flow.Actor(user.user_id, user.role, user.hospital, user.msp_id, "", lambda: signer)


def fill_history(services, patient, gp, n: int) -> None:
    """N requests by the GP, each followed by an access: the trail a busy patient has."""
    actor = actor_of(services, gp)
    for _ in range(n):
        d = flow.request_access(services, actor, patient.user_id, "lothian", sections=["conditions", "admissions"],
                                purpose="treatment", justification="direct-care")
        flow.fetch_record(services, actor, d["token"]["token"])


#: CPU milliseconds per view of each page timed (the whole process: the gateway and the embedded node's
#: endorsing, ordering and committing threads), a figure less swayed by other work on the machine
CPU_MS: dict[str, float] = {}


def time_page(client, path: str, repeat: int, method: str = "GET", data: dict | None = None) -> list[float]:
    out = []
    cpu0 = time.process_time()
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.open(path, method=method, data=data)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:300])
    CPU_MS[f"{method} {path}"] = (time.process_time() - cpu0) * 1000 / repeat
    return out


def profile(title: str, run, *args) -> None:
    """A pyinstrument call tree of ``run(*args)`` on stderr (where the time of a page goes)."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    with profiler:
        run(*args)
    print(f"=== {title}", file=sys.stderr)
    print(profiler.output_text(unicode=True, show_all=False), file=sys.stderr)


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and a shorter history (under a minute)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmark runs")
    ap.add_argument("--repeat", type=int, help="timings per page (default 50; --quick 15; --smoke 2)")
    ap.add_argument("--history", type=int, help="requests+accesses in the patient's trail (default 100)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the writing pages (pyinstrument, the bench extra): a call tree on stderr")
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.smoke else 15 if args.quick else 50)
    history = args.history if args.history is not None else (2 if args.smoke else 30 if args.quick else 100)
    logging.disable(logging.INFO)

    with tempfile.TemporaryDirectory(prefix="serums-bench-web-") as tmp:
        data_dir = Path(tmp)
        node = EmbeddedNode(init_data_dir(data_dir, batch_timeout_ms=1.0))  # `serums network init`'s default
        address = node.start("127.0.0.1:0")
        services = Services.open(GatewaySettings(data_dir, node_address=address),
                                 auth_config=AuthConfig.ephemeral(argon2=FAST, wallet_kdf=FAST))
        try:
            world = provision(services)
            _, ref = world.patient_ref("lothian")
            people = {"patient": enrol(services, "lothian", "patient", user_id=ref),
                      "gp": enrol(services, "lothian", "gp", treating=(ref,)),
                      "auditor": enrol(services, "lothian", "auditor"),
                      "admin": enrol(services, "lothian", "hospital_admin")}
            fill_history(services, people["patient"], people["gp"], history)
            app = create_app({"TESTING": True}, services=services)
            figures: dict[str, float | bool] = {}
            for who, paths in PAGES.items():
                client = app.test_client()
                sign_in(client, people[who])
                for path in paths:
                    times = time_page(client, path, repeat)
                    name = (path.strip("/").replace("/", "_").replace("-", "_") or "home")
                    figures[f"{name}_p50_ms"] = round(statistics.median(times), 2)
                    figures[f"{name}_p95_ms"] = round(p95(times), 2)
                    figures[f"{name}_cpu_ms"] = round(CPU_MS[f"GET {path}"], 2)
                if who == "gp":
                    token = CSRF.search(client.get("/clinician/").get_data(as_text=True)).group(1)
                    form = {"csrf_token": token, "patient_id": ref, "hospital": "lothian", "sections": ["conditions"],
                            "purpose": "treatment", "justification": "direct-care"}
                    times = time_page(client, "/clinician/request", repeat, "POST", form)
                    figures["clinician_request_post_p50_ms"] = round(statistics.median(times), 2)
                    figures["clinician_request_post_p95_ms"] = round(p95(times), 2)
                    figures["clinician_request_post_cpu_ms"] = round(CPU_MS["POST /clinician/request"], 2)
                    if args.profile:
                        profile(f"POST /clinician/request ×{repeat}", time_page, client, "/clinician/request", repeat,
                                "POST", form)
                if who == "patient" and args.profile:
                    profile(f"GET /patient/record ×{repeat}", time_page, client, "/patient/record", repeat)
                if who == "gp" and args.profile:  # the clinician's home: the live grants and the patients treated
                    profile(f"GET /clinician/ ×{repeat}", time_page, client, "/clinician/", repeat)
            p95s = {k: v for k, v in figures.items() if k.endswith("_p95_ms")}
            figures["max_p95_ms"] = max(p95s.values())
            figures["pages_over_50ms_p95"] = sum(1 for v in p95s.values() if v > 50)
            figures["history"] = history
            figures["repeat"] = repeat
            figures["quick"] = bool(args.quick or args.smoke)
            print(json.dumps(figures))
        finally:
            services.close()
            node.stop()


if __name__ == "__main__":
    main()
