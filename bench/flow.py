"""Flow benchmark: steps 4–10 per simulated doctor over HTTP against ``serums up``'s stack.

Starts ``serums up`` (gunicorn gateway + node process, fabricated patients) in a temporary data
directory, enrols N doctors each treating their own patients, and runs each doctor closed-loop:
log in once (step 4: FlexPass key + TOTP, as a doctor starting a shift), then repeat request
access (steps 5–8: the chain's decision and the vault's token) → fetch the record with the token
(steps 9–10: masked release, access logged on chain). A flow is one request + one fetch. Prints
one JSON object: flows/s and latency with 1, 16 and 64 concurrent doctors.

    .venv/bin/python bench/flow.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import proctime  # noqa: E402  (bench/, beside this script)

from serums.supervisor import free_port  # noqa: E402


def start_stack(data: Path, patients: int, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "SERUMS_DATA_DIR": str(data)}
    env.pop("SERUMS_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "serums", "up", "--patients", str(patients), "--listen", f"127.0.0.1:{port}",
         "--node-listen", f"127.0.0.1:{free_port()}", "--workers", str(workers), "--threads", str(threads)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )
    deadline = time.monotonic() + 300
    out = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if "Ctrl-C stops everything" in line:
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()  # keep the pipe drained
            return proc, f"http://127.0.0.1:{port}"
    proc.kill()
    raise SystemExit("serums up did not come up:\n" + "".join(out[-30:]))


def enrol_doctors(data: Path, n: int) -> list[dict]:
    """N specialists of Lothian, each treating three patients of their own."""
    from gateway.services import Services
    from serums.config import Settings

    settings = Settings.from_env({**os.environ, "SERUMS_DATA_DIR": str(data)})  # node address: node.json
    services = Services.open(settings.gateway_settings(), auth_config=settings.auth_config())
    try:
        refs = services.vault("lothian").patients()
        admin_identity, admin_signer = services.hospital_admin("lothian")
        images = [img.id for img in services.auth.image_library()][:5]
        words = ("quartz", "meridian", "lantern", "saffron", "tundra", "orchid", "cobble", "nimbus", "harbour")
        doctors = []
        for i in range(n):
            treated = refs[(3 * i) % len(refs):(3 * i) % len(refs) + 3]
            key = f"{words[i % 9]} {words[(i // 9) % 9]} {words[(i + 4) % 9]} lantern {7000 + 13 * i}"
            reg = services.enrol(admin_identity, admin_signer, "lothian", f"bench.dr{i}", "specialist", key, images,
                                 treating=treated)
            doctors.append({"username": f"bench.dr{i}", "key": key, "totp": reg.totp.secret, "patients": treated})
        return doctors
    finally:
        services.close()


def _doctor_proc(url: str, doctors: list[dict], seconds: float, start_at: float, offset: int, out) -> None:
    import httpx
    import pyotp

    results: list[tuple[float, float, float]] = []  # (flow, request, fetch) seconds
    errors = [0]
    lock = threading.Lock()

    def run(doc: dict, slot: int) -> None:
        client = httpx.Client(base_url=url, timeout=60)
        # doctors arrive one by one: the auth throttle charges every in-flight login to the client
        # address (all bench doctors share 127.0.0.1, as a hospital behind NAT does)
        time.sleep(0.25 * slot)
        r = client.post("/auth/login", json={"username": doc["username"], "method": "text", "text_key": doc["key"]})
        r.raise_for_status()
        # a TOTP code is accepted once: a doctor's second login (another concurrency level) takes the next
        # step's code, inside the ±1 step window
        code = pyotp.TOTP(doc["totp"]).at(time.time() + 30 * doc["logins"])
        r = client.post("/auth/login/complete", json={"challenge": r.json()["challenge"], "totp_code": code})
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        while time.time() < start_at:
            time.sleep(0.01)
        end = start_at + seconds
        mine, n = [], 0
        while time.time() < end:
            patient = doc["patients"][n % len(doc["patients"])]
            n += 1
            t0 = time.perf_counter()
            r = client.post("/doctors/requests", headers=headers,
                            json={"patient_id": patient, "sections": ["*"], "purpose": "treatment"})
            t1 = time.perf_counter()
            if r.status_code != 201 or not r.json().get("token"):
                with lock:
                    errors[0] += 1
                    if errors[0] <= 3:
                        why = r.json().get("token_error") if r.status_code == 201 else r.text[:300]
                        print(f"request failed: {r.status_code} {why}", file=sys.stderr)
                continue
            r2 = client.post("/doctors/records", headers=headers, json={"token": r.json()["token"]["token"]})
            t2 = time.perf_counter()
            if r2.status_code != 200:
                with lock:
                    errors[0] += 1
                    if errors[0] <= 3:
                        print(f"fetch failed: {r2.status_code} {r2.text[:300]}", file=sys.stderr)
                continue
            mine.append((t2 - t0, t1 - t0, t2 - t1))
        with lock:
            results.extend(mine)

    ts = [threading.Thread(target=run, args=(d, i * 2 + offset)) for i, d in enumerate(doctors)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put({"results": results, "errors": errors[0]})


def _role(cmdline: str) -> str:
    if "gunicorn" in cmdline:
        return "gateway"
    if " node " in f"{cmdline} ":
        return "node"
    return "other"


def measure(url: str, doctors: list[dict], seconds: float, stack_pid: int | None = None) -> dict:
    for d in doctors:
        d["logins"] = d.get("logins", -1) + 1
        if d["logins"] > 1:
            raise SystemExit(f"{d['username']} would log in a third time within a TOTP window")
    procs_n = 2 if len(doctors) > 1 else 1
    groups = [doctors[i::procs_n] for i in range(procs_n)]
    q: mp.Queue = mp.Queue()
    start_at = time.time() + 3.0 + 0.26 * len(doctors)  # logins first (Argon2), then everyone at once
    ps = [mp.Process(target=_doctor_proc, args=(url, g, seconds, start_at, k, q)) for k, g in enumerate(groups)]
    clients0 = proctime.children_cpu_s()
    for p in ps:
        p.start()
    # the stack's CPU from the moment every doctor has logged in (Argon2 is the logins' cost)
    time.sleep(max(0.0, start_at - time.time()))
    stack0 = proctime.tree(stack_pid) if stack_pid else {}
    got = [q.get(timeout=seconds + 300) for _ in ps]
    stack1 = proctime.tree(stack_pid) if stack_pid else {}
    for p in ps:
        p.join()
    cpu = {"node": 0.0, "gateway": 0.0, "other": 0.0}
    for pid, used in proctime.used(stack0, stack1).items():
        cpu[_role(stack1[pid].cmdline)] += used
    cpu["clients"] = proctime.children_cpu_s() - clients0  # with their logins
    flows = sorted(x[0] for g in got for x in g["results"])
    qs = statistics.quantiles(flows, n=100) if len(flows) >= 2 else [0.0] * 99
    half = [statistics.median(x[i] for g in got for x in g["results"]) if flows else 0.0 for i in (1, 2)]
    return {"per_s": len(flows) / seconds, "p50_ms": qs[49] * 1000, "p99_ms": qs[98] * 1000,
            "request_p50_ms": half[0] * 1000, "fetch_p50_ms": half[1] * 1000,
            "errors": sum(g["errors"] for g in got), "n": len(flows),
            "cpu_ms": {k: v / max(len(flows), 1) * 1000 for k, v in cpu.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (about a minute in all)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs (CI); figures meaningless")
    ap.add_argument("--seconds", type=float, help="seconds per measurement")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    args.quick = args.quick or args.smoke
    seconds = args.seconds or (1.0 if args.smoke else 5.0 if args.quick else 20.0)
    levels = (1, 16) if args.quick else (1, 16, 64)
    with tempfile.TemporaryDirectory(prefix="serums-bench-flow-") as tmp:
        data = Path(tmp)
        proc, url = start_stack(data, 200, args.workers, args.threads)
        try:
            doctors = enrol_doctors(data, max(levels))
            out: dict = {}
            for n in levels:
                m = measure(url, doctors[:n] if n > 1 else doctors[-1:], seconds, proc.pid)
                out[f"flows_per_s_c{n}"] = round(m["per_s"], 1)
                out[f"p50_ms_c{n}"] = round(m["p50_ms"], 1)
                out[f"p99_ms_c{n}"] = round(m["p99_ms"], 1)
                out[f"request_p50_ms_c{n}"] = round(m["request_p50_ms"], 1)  # steps 5-8
                out[f"fetch_p50_ms_c{n}"] = round(m["fetch_p50_ms"], 1)  # steps 9-10
                out[f"errors_c{n}"] = m["errors"]
                if n == 16:  # where a flow's CPU goes, by process
                    for who in ("node", "gateway", "clients"):
                        out[f"{who}_cpu_ms_per_flow_c16"] = round(m["cpu_ms"][who], 2)
                    per_flow = sum(m["cpu_ms"].values())
                    out["cpu_ceiling_flows_per_s"] = proctime.cpu_ceiling(per_flow)
            print(f"gunicorn {args.workers} workers x {args.threads} threads; one login per doctor, "
                  f"then request + fetch flows", file=sys.stderr)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    out["quick"] = bool(args.quick)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
