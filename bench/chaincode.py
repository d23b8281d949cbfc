"""SERUMS chaincode benchmark: RequestAccess throughput and latency on the embedded node, side by
side with the ledger benchmark's plain read-write transaction (AssetContract ``Put``), in the same
run, on the same node.

Set-up: three hospitals with realistic rules (treating clinicians see the clinical sections,
nurses their own hospital's patients, research only with consent, insurers never, …), 1,000
patients spread over the hospitals with realistic preferences (no preference at all for about a
third; denials for insurers, research consent, a hospital or a section denied, a named GP allowed
— drawn at random with a fixed seed), and 32 clinicians, each treating about 31 patients of any
hospital. Every set-up step goes through the Gateway API like any client.

Measured like bench/ledger.py (whose helpers this imports): MAJORITY (2-of-3) endorsement, the
node in its own process (``serums node``), closed-loop clients in other processes over gRPC.
Each RequestAccess client is one clinician asking for 2-4 sections of one of their patients for
treatment (some sections are denied by the patient's preferences or the rules: partial grants).
Plain and RequestAccess at 32 clients are measured alternately, twice each, and averaged, so that
background load drifting during the run weighs on both alike; then RequestAccess at 8 clients.

    .venv/bin/python bench/chaincode.py [--quick] [--seconds S] [--patients N]

Prints one JSON object: ``request_access_tx_per_s_c32``, ``plain_tx_per_s_c32``,
``ratio_to_plain`` (goal ≥ 0.7), ``p99_ms_c8`` (RequestAccess, 8 clients), ``quick``, and a few
figures for context.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# this file is called chaincode.py: keep bench/ off the path so that "chaincode" is the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.ledger import free_port, measure, start_node  # noqa: E402
from network import ChaincodeDefinition, NetworkConfig, init_network, save_credentials  # noqa: E402
from network.client import CommitError, GatewayError, connect  # noqa: E402

HOSPITALS = ["lothian", "zmc", "fcrb"]
CLINICIANS = 32
CLINICAL = ["admissions", "conditions", "procedures", "oncology.diagnosis", "oncology.treatment",
            "oncology.toxicity", "comorbidities"]
RULES = [
    {"rule_id": "clin-treat", "roles": ["gp", "specialist"], "purposes": ["treatment"], "sections": CLINICAL,
     "treating_required": True, "max_grant_seconds": 8 * 3600},
    {"rule_id": "clin-imaging", "roles": ["specialist"], "purposes": ["treatment"], "sections": ["imaging", "documents"],
     "treating_required": True, "max_grant_seconds": 4 * 3600},
    {"rule_id": "nurse-local", "roles": ["nurse"], "purposes": ["treatment"],
     "sections": ["demographics", "contact", "admissions"], "same_hospital": True, "max_grant_seconds": 4 * 3600},
    {"rule_id": "emergency", "roles": ["gp", "specialist", "nurse"], "purposes": ["emergency"], "sections": ["*"],
     "treating_required": True, "max_grant_seconds": 2 * 3600},
    {"rule_id": "research-consent", "roles": ["researcher", "analytics"], "purposes": ["research"],
     "sections": ["conditions", "oncology.diagnosis", "oncology.treatment", "comorbidities"],
     "consent_required": True, "max_grant_seconds": 30 * 24 * 3600},
    {"rule_id": "research-never", "effect": "deny", "roles": ["researcher", "analytics"], "purposes": ["*"],
     "sections": ["demographics", "contact", "documents"]},
    {"rule_id": "insurer-never", "effect": "deny", "roles": ["insurer"], "purposes": ["*"], "sections": ["*"]},
    {"rule_id": "audit-read", "roles": ["auditor"], "purposes": ["audit"], "sections": ["*"], "max_grant_seconds": 3600},
]


def _preferences(rng: random.Random, hospital: str, gp: str) -> list[dict]:
    """A patient's preferences: what real patients tend to say (independent draws)."""
    prefs = []
    if rng.random() < 0.30:
        prefs.append({"effect": "deny", "grantee": {"kind": "role", "id": "insurer"}, "sections": ["*"],
                      "purposes": ["*"]})
    if rng.random() < 0.25:
        prefs.append({"effect": "allow", "grantee": {"kind": "role", "id": "researcher"},
                      "sections": ["conditions", "oncology.diagnosis", "comorbidities"], "purposes": ["research"]})
    if rng.random() < 0.10:
        other = rng.choice([h for h in HOSPITALS if h != hospital])
        prefs.append({"effect": "deny", "grantee": {"kind": "hospital", "id": _msp(other)},
                      "sections": ["demographics", "contact"], "purposes": ["*"]})
    if rng.random() < 0.10:
        prefs.append({"effect": "deny", "grantee": {"kind": "anyone"},
                      "sections": [rng.choice(["oncology.toxicity", "imaging", "procedures"])],
                      "purposes": ["treatment"]})
    if rng.random() < 0.15:
        prefs.append({"effect": "allow", "grantee": {"kind": "user", "id": gp}, "sections": ["*"],
                      "purposes": ["treatment", "emergency"]})
    return prefs


def _msp(org: str) -> str:
    return org.capitalize() + "MSP"


def _run_all(jobs, workers: int = 32) -> None:
    """Run set-up transactions concurrently (their keys are disjoint); retry conflicts once."""
    errors: list[str] = []

    def run(job):
        for attempt in range(3):
            try:
                job()
                return
            except CommitError as exc:
                if attempt == 2:
                    errors.append(str(exc))
            except GatewayError as exc:
                errors.append(str(exc))
                return

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, jobs))
    if errors:
        raise SystemExit(f"set-up failed: {errors[:3]}")


def setup(data: Path, cfg: NetworkConfig, address: str, n_patients: int, seed: int = 7) -> dict:
    """Hospitals, rules, clinicians, patients, treating relationships and preferences."""
    rng = random.Random(seed)
    admins = {org: connect(*cfg.load_user(org), address).network(cfg.channel) for org in HOSPITALS}

    def c(org: str, name: str):
        return admins[org].contract("serums", name)

    for org in HOSPITALS:
        c(org, "UserContract").submit("RegisterHospital", org.upper())
    # one hospital's rules are one versioned record: its rules one after the other, hospitals in parallel
    _run_all([lambda org=org: [c(org, "PolicyContract").submit_json("PutRule", r) for r in RULES]
              for org in HOSPITALS], workers=3)
    cas = {org: cfg.load_ca(org) for org in HOSPITALS}
    # clinicians: credentials on disk for the client processes
    clinicians = []
    for i in range(CLINICIANS):
        org = HOSPITALS[i % 3]
        role = "gp" if i % 4 == 0 else "specialist"
        name = f"doc{i:02d}"
        ident, signer = cas[org].issue(name, "client", attributes={"role": role, "uid": name})
        save_credentials(cfg.user_dir(org, name), ident, signer)
        clinicians.append((org, name, role, ident.fingerprint))
    patients = []
    for j in range(n_patients):
        org = HOSPITALS[j % 3]
        pid = f"pat{j:05d}"
        ident, signer = cas[org].issue(pid, "client", attributes={"role": "patient", "uid": pid})
        patients.append((org, pid, ident, signer))
    _run_all([lambda o=o, n=n, r=r, f=f: c(o, "UserContract").submit("RegisterUser", n, r, f)
              for o, n, r, f in clinicians]
             + [lambda o=o, p=p, i=i: c(o, "UserContract").submit("RegisterUser", p, "patient", i.fingerprint)
                for o, p, i, _ in patients])
    # each clinician treats the patients j with j % 32 == i; the GP of patient j is the GP among them
    assignment: dict[str, list[str]] = {name: [] for _, name, _, _ in clinicians}
    jobs = []
    gps = [name for _, name, role, _ in clinicians if role == "gp"]
    n_prefs = 0
    for j, (org, pid, ident, signer) in enumerate(patients):
        doc = clinicians[j % CLINICIANS][1]
        assignment[doc].append(pid)
        jobs.append(lambda o=org, p=pid, d=doc: c(o, "UserContract").submit("AddTreatment", p, d, "", ""))
        prefs = _preferences(rng, org, gps[j % len(gps)])
        n_prefs += len(prefs)
        if prefs:
            def add(prefs=prefs, ident=ident, signer=signer, pid=pid):
                pc = connect(ident, signer, address).network(cfg.channel).contract("serums", "PreferenceContract")
                for pref in prefs:
                    pc.submit_json("AddPreference", pid, pref)
                pc.network.gateway.close()
            jobs.append(add)
    _run_all(jobs)
    for net in admins.values():
        net.gateway.close()
    (data / "bench-assignment.json").write_text(json.dumps(
        {"clinicians": [[org, name] for org, name, _, _ in clinicians], "patients": assignment}))
    return {"patients": n_patients, "preferences": n_prefs, "clinicians": CLINICIANS}


def _ra_client_proc(data_dir: str, address: str, first: int, threads: int, seconds: float, out) -> None:
    """Closed-loop RequestAccess clients: thread t is clinician ``first + t``."""
    cfg = NetworkConfig.load(Path(data_dir) / "network")
    plan = json.loads((Path(data_dir) / "bench-assignment.json").read_text())
    lat: list[float] = []
    errors = [0]
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def run(t: int) -> None:
        org, name = plan["clinicians"][first + t]
        mine_patients = plan["patients"][name]
        rng = random.Random(first + t)
        contract = connect(*cfg.load_user(org, name), address).network(cfg.channel).contract(
            "serums", "TransportContract")
        mine, seen = [], {}
        barrier.wait()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pid = rng.choice(mine_patients)
            sections = rng.sample(CLINICAL, rng.randint(2, 4))
            if rng.random() < 0.2:
                sections.append(rng.choice(["demographics", "imaging"]))
            t0 = time.perf_counter()
            try:
                res = json.loads(contract.submit("RequestAccess", pid, json.dumps(sections), "treatment",
                                                 "direct-care"))
            except (GatewayError, CommitError):
                with lock:
                    errors[0] += 1
                continue
            mine.append(time.perf_counter() - t0)
            seen[res["outcome"]] = seen.get(res["outcome"], 0) + 1
        with lock:
            lat.extend(mine)
            for k, v in seen.items():
                outcomes[k] = outcomes.get(k, 0) + v

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put({"lat": lat, "errors": errors[0], "outcomes": outcomes})


def measure_request_access(data: Path, address: str, clients: int, seconds: float) -> dict:
    """Same process split and statistics as bench/ledger.py's ``measure``."""
    procs_n = min(clients, max(1, (os.cpu_count() or 2) // 2 + 1), 4) if clients > 1 else 1
    per = [clients // procs_n + (1 if i < clients % procs_n else 0) for i in range(procs_n)]
    firsts = [sum(per[:i]) for i in range(procs_n)]
    q: mp.Queue = mp.Queue()
    ps = [mp.Process(target=_ra_client_proc, args=(str(data), address, f, n, seconds, q))
          for f, n in zip(firsts, per, strict=True)]
    for p in ps:
        p.start()
    results = [q.get(timeout=seconds + 120) for _ in ps]
    for p in ps:
        p.join()
    lat = sorted(x for r in results for x in r["lat"])
    qs = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [0.0] * 99
    outcomes: dict[str, int] = {}
    for r in results:
        for k, v in r["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + v
    return {"per_s": len(lat) / seconds, "p50_ms": qs[49] * 1000, "p99_ms": qs[98] * 1000,
            "errors": sum(r["errors"] for r in results), "outcomes": outcomes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs (under a minute in all)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs (CI); figures meaningless")
    ap.add_argument("--seconds", type=float, help="seconds per measurement")
    ap.add_argument("--patients", type=int, default=1000, help="patients (default 1000)")
    args = ap.parse_args()
    args.quick = args.quick or args.smoke
    seconds = args.seconds or (0.5 if args.smoke else 3.0 if args.quick else 12.0)
    if args.smoke:
        args.patients = min(args.patients, 120)

    with tempfile.TemporaryDirectory(prefix="serums-bench-cc-") as tmp:
        data = Path(tmp)
        cfg = init_network(data / "network", HOSPITALS)
        cfg.chaincodes = [
            ChaincodeDefinition("assets", "chaincode.samples:assets_chaincode", "1.0", "MAJORITY"),
            ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode", "1.0", "MAJORITY"),
        ]
        cfg.save()
        address = f"127.0.0.1:{free_port()}"
        node = start_node(data, address)
        try:
            t0 = time.monotonic()
            info = setup(data, cfg, address, args.patients)
            setup_s = time.monotonic() - t0
            # plain and RequestAccess alternate (ABAB) so that drifting background load hits both alike
            plain_runs, ra_runs = [], []
            for k in range(2):
                plain_runs.append(measure(data, address, 32, seconds, "submit", f"plain{k}"))
                ra_runs.append(measure_request_access(data, address, 32, seconds))
            ra8 = measure_request_access(data, address, 8, seconds)
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)
        ra_per_s = statistics.fmean(r["per_s"] for r in ra_runs)
        plain_per_s = statistics.fmean(r["per_s"] for r in plain_runs)
        outcomes: dict[str, int] = {}
        for r in ra_runs:
            for k, v in r["outcomes"].items():
                outcomes[k] = outcomes.get(k, 0) + v
        out = {
            "request_access_tx_per_s_c32": round(ra_per_s, 1),
            "plain_tx_per_s_c32": round(plain_per_s, 1),
            "ratio_to_plain": round(ra_per_s / plain_per_s, 3) if plain_per_s else None,
            "p99_ms_c8": round(ra8["p99_ms"], 2),
            "request_access_p50_ms_c8": round(ra8["p50_ms"], 2),
            "request_access_p99_ms_c32": round(max(r["p99_ms"] for r in ra_runs), 2),
            "plain_p99_ms_c32": round(max(r["p99_ms"] for r in plain_runs), 2),
            "errors": sum(r["errors"] for r in [*ra_runs, *plain_runs, ra8]),
            "partial_share_c32": round(outcomes.get("partial", 0) / max(1, sum(outcomes.values())), 3),
            **info,
            "setup_s": round(setup_s, 1),
            "quick": bool(args.quick),
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
