"""Ledger benchmark: read-write transactions through the Gateway API of the embedded node.

Three hospitals, MAJORITY (2-of-3) endorsement, the node in its own process (``serums node``)
and the clients in others, all over gRPC on loopback, as gunicorn workers would reach it. Each
client runs closed-loop: propose → endorse → sign → submit → wait for commit, on its own keys
(every transaction reads and writes one key). Prints one JSON object.

    .venv/bin/python bench/ledger.py [--quick] [--seconds S]
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import proctime  # noqa: E402  (also when imported as bench.ledger, by bench/chaincode.py)
from network import ChaincodeDefinition, NetworkConfig, init_network  # noqa: E402
from network.client import GatewayError, connect  # noqa: E402
from serums.supervisor import free_port, start_node_process  # noqa: E402


def start_node(data_dir: Path, address: str) -> subprocess.Popen:
    return start_node_process(data_dir, address)


def _client_proc(data_dir: str, address: str, threads: int, seconds: float, tag: str, mode: str, out) -> None:
    """One client process running ``threads`` closed-loop clients; reports latencies and counts."""
    import threading

    cfg = NetworkConfig.load(Path(data_dir) / "network")
    orgs = [h.name for h in cfg.hospitals]
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def run(i: int) -> None:
        ident, signer = cfg.load_user(orgs[i % len(orgs)])
        contract = connect(ident, signer, address).network(cfg.channel).contract("assets", "AssetContract")
        mine, n = [], 0
        barrier.wait()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                if mode == "submit":
                    contract.submit("Put", f"{tag}-{i}", f"a{n % 50}", '{"dose_mg":120,"unit":"mg/m2"}')
                else:
                    contract.evaluate("Get", "seed", f"a{n % 50}")
            except GatewayError:
                with lock:
                    errors[0] += 1
                continue
            mine.append(time.perf_counter() - t0)
            n += 1
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put({"lat": lat, "errors": errors[0]})


def measure(data_dir: Path, address: str, clients: int, seconds: float, mode: str, tag: str,
            node_pid: int | None = None) -> dict:
    procs_n = min(clients, max(1, (os.cpu_count() or 2) // 2 + 1), 4) if clients > 1 else 1
    per = [clients // procs_n + (1 if i < clients % procs_n else 0) for i in range(procs_n)]
    q: mp.Queue = mp.Queue()
    ps = [mp.Process(target=_client_proc, args=(str(data_dir), address, n, seconds, f"{tag}{k}", mode, q))
          for k, n in enumerate(per)]
    node0, clients0 = proctime.cpu_s(node_pid) if node_pid else 0.0, proctime.children_cpu_s()
    for p in ps:
        p.start()
    results = [q.get(timeout=seconds + 120) for _ in ps]
    for p in ps:
        p.join()
    node_cpu = proctime.cpu_s(node_pid) - node0 if node_pid else 0.0
    client_cpu = proctime.children_cpu_s() - clients0  # includes the client processes' start-up
    lat = sorted(x for r in results for x in r["lat"])
    done = len(lat)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [0.0] * 99
    return {
        "per_s": done / seconds,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "n": done,
        "errors": sum(r["errors"] for r in results),
        # where the CPU went: the node process and the client processes, per operation
        "node_cpu_ms": node_cpu / max(done, 1) * 1000,
        "client_cpu_ms": client_cpu / max(done, 1) * 1000,
    }


def _echo_server(port_q) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    server = grpc.server(ThreadPoolExecutor(max_workers=128))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}),))
    port_q.put(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    server.wait_for_termination()


def _echo_clients(port: int, threads: int, seconds: float, out) -> None:
    import threading

    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary("/bench.Echo/Echo")
    payload = b"x" * 3000  # about an endorsed transaction's size
    counts = [0] * threads
    end = time.monotonic() + seconds

    def run(i: int) -> None:
        while time.monotonic() < end:
            call(payload)
            counts[i] += 1

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put(sum(counts))


def transport_ceiling(clients: int, seconds: float) -> dict:
    """Unary gRPC calls/s of an echo server with the same process layout as the node benchmark,
    and the CPU one empty call costs the server and the client: the floor that Python gRPC alone
    puts under every figure here."""
    q: mp.Queue = mp.Queue()
    server = mp.Process(target=_echo_server, args=(q,), daemon=True)
    server.start()
    port = q.get(timeout=30)
    procs_n = 2
    per = [clients // procs_n + (1 if i < clients % procs_n else 0) for i in range(procs_n)]
    out: mp.Queue = mp.Queue()
    ps = [mp.Process(target=_echo_clients, args=(port, n, seconds, out)) for n in per]
    server0, clients0 = proctime.cpu_s(server.pid), proctime.children_cpu_s()
    for p in ps:
        p.start()
    total = sum(out.get(timeout=seconds + 60) for _ in ps)
    for p in ps:
        p.join()
    server_cpu, client_cpu = proctime.cpu_s(server.pid) - server0, proctime.children_cpu_s() - clients0
    server.terminate()
    return {"per_s": total / seconds, "server_cpu_us": server_cpu / max(total, 1) * 1e6,
            "client_cpu_us": client_cpu / max(total, 1) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs (under a minute in all)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs (CI); figures meaningless")
    ap.add_argument("--seconds", type=float, help="seconds per measurement")
    ap.add_argument("--batch-timeout-ms", type=float, default=None, help="orderer batch timeout (default: config)")
    args = ap.parse_args()
    args.quick = args.quick or args.smoke
    seconds = args.seconds or (0.5 if args.smoke else 4.0 if args.quick else 15.0)

    with tempfile.TemporaryDirectory(prefix="serums-bench-") as tmp:
        data = Path(tmp)
        cfg = init_network(data / "network", ["lothian", "zmc", "fcrb"])
        cfg.chaincodes = [ChaincodeDefinition("assets", "chaincode.samples:assets_chaincode", "1.0", "MAJORITY")]
        if args.batch_timeout_ms is not None:
            cfg.batch.timeout_ms = args.batch_timeout_ms
        cfg.save()
        address = f"127.0.0.1:{free_port()}"
        node = start_node(data, address)
        try:
            ident, signer = cfg.load_user("lothian")
            c = connect(ident, signer, address).network(cfg.channel).contract("assets", "AssetContract")
            for i in range(50):
                c.submit("Put", "seed", f"a{i}", '{"dose_mg":120}')
            out: dict = {}
            for n in (1, 8, 32):
                m = measure(data, address, n, seconds, "submit", f"c{n}", node.pid)
                out[f"committed_tx_per_s_c{n}"] = round(m["per_s"], 1)
                out[f"p50_ms_c{n}"] = round(m["p50_ms"], 2)
                out[f"p99_ms_c{n}"] = round(m["p99_ms"], 2)
                out[f"errors_c{n}"] = m["errors"]
            out["node_cpu_ms_per_tx_c32"] = round(m["node_cpu_ms"], 3)
            out["client_cpu_ms_per_tx_c32"] = round(m["client_cpu_ms"], 3)
            ev = measure(data, address, 8, seconds, "evaluate", "ev", node.pid)
            out["evaluate_q_per_s"] = round(ev["per_s"], 1)
            out["evaluate_p99_ms"] = round(ev["p99_ms"], 2)
            out["node_cpu_ms_per_evaluate"] = round(ev["node_cpu_ms"], 3)
            out["client_cpu_ms_per_evaluate"] = round(ev["client_cpu_ms"], 3)
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)
        verify = subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(data), "ledger", "verify"],
                                capture_output=True, text=True, cwd=ROOT)
        out["ledger_verified"] = verify.returncode == 0
        # side by side: what gRPC alone allows here (a transaction is three calls: Endorse, Submit,
        # CommitStatus; an evaluation one)
        echo = transport_ceiling(32, min(seconds, 5.0))
        out["grpc_echo_calls_per_s_c32"] = round(echo["per_s"], 1)
        out["grpc_ceiling_tx_per_s"] = round(echo["per_s"] / 3, 1)
        out["grpc_echo_server_cpu_us_per_call"] = round(echo["server_cpu_us"], 1)
        out["grpc_echo_client_cpu_us_per_call"] = round(echo["client_cpu_us"], 1)
        # what the measured CPU per transaction allows on this machine even with every core busy
        cores = os.cpu_count() or 1
        per_tx = out["node_cpu_ms_per_tx_c32"] + out["client_cpu_ms_per_tx_c32"]
        out["cpu_ceiling_tx_per_s"] = round(cores * 1000 / per_tx, 1) if per_tx else 0.0
        per_ev = out["node_cpu_ms_per_evaluate"] + out["client_cpu_ms_per_evaluate"]
        out["cpu_ceiling_evaluate_q_per_s"] = round(cores * 1000 / per_ev, 1) if per_ev else 0.0
        out["batch_timeout_ms"] = cfg.batch.timeout_ms
        out["quick"] = bool(args.quick)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
