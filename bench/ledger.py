"""Ledger benchmark: read-write transactions through the Gateway API of the embedded node, of real
Hyperledger Fabric, or of both side by side in one run (same workload).

Three hospitals, MAJORITY (2-of-3) endorsement, the node in its own process (``serums node``)
and the clients in others, all over gRPC on loopback, as gunicorn workers would reach it. Each
client runs closed-loop: propose → endorse → sign → submit → wait for commit, on its own keys
(every transaction reads and writes one key). Prints one JSON object.

With ``--engine fabric`` the same clients drive a native Fabric network (``network.fabric``: a Raft
orderer, a peer per hospital, the chaincode on our CCaaS shim, TLS everywhere; each client talks
to its own hospital's peer), figures prefixed ``fabric_``, with the CPU each process spent per
transaction (and their sum, with the throughput it allows on this machine's cores,
``fabric_cpu_ceiling_tx_per_s``; the busiest chaincode server's, ``fabric_chaincode_cpu_ms_per_tx_c32_max``)
and the share of committed transactions whose chaincode event was delivered.
``--engine both`` prefixes the embedded node's figures ``embedded_`` and adds
``embedded_over_fabric_tx`` (the ratio of 32-client throughputs).

    .venv/bin/python bench/ledger.py [--quick] [--seconds S] [--engine embedded|fabric|both]
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
from network.client import CommitError, GatewayError, connect  # noqa: E402
from serums.supervisor import free_port, start_node_process  # noqa: E402


def start_node(data_dir: Path, address: str) -> subprocess.Popen:
    return start_node_process(data_dir, address)


def _client_proc(data_dir: str, address: str | dict, threads: int, seconds: float, tag: str, mode: str, out,
                 chaincode: str = "assets") -> None:
    """One client process running ``threads`` closed-loop clients; reports latencies, counts and the
    CPU it spent while they ran (after its start-up). ``address`` is one endpoint, or per hospital
    ``(address, TLS CA PEM)`` (each client its own hospital's). Like a gunicorn worker, the process
    reaches each endpoint through one gRPC channel that its threads share."""
    import threading

    import grpc

    cfg = NetworkConfig.load(Path(data_dir) / "network")
    orgs = [h.name for h in cfg.hospitals]
    lat: list[float] = []
    errors, retries = [0], [0]
    lock = threading.Lock()
    cpu = [0.0]
    barrier = threading.Barrier(threads, action=lambda: cpu.__setitem__(0, time.process_time()))
    channels: dict[str, grpc.Channel] = {}
    for where, tls in (address.values() if isinstance(address, dict) else [(address, None)]):
        channels[where] = (grpc.secure_channel(where, grpc.ssl_channel_credentials(tls)) if tls
                           else grpc.insecure_channel(where))

    def run(i: int) -> None:
        org = orgs[i % len(orgs)]
        ident, signer = cfg.load_user(org)
        where = address[org][0] if isinstance(address, dict) else address
        contract = connect(ident, signer, channels[where]).network(cfg.channel).contract(chaincode, "AssetContract")
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
            except GatewayError as exc:
                with lock:
                    if "do not match" in str(exc):  # endorsers a block apart (real Fabric): endorse again
                        retries[0] += 1
                    else:
                        errors[0] += 1
                continue
            except CommitError:
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
    busy = time.process_time() - cpu[0]
    for ch in channels.values():
        ch.close()
    out.put({"lat": lat, "errors": errors[0], "retries": retries[0], "cpu_s": busy})


def measure(data_dir: Path, address: str | dict, clients: int, seconds: float, mode: str, tag: str,
            node_pid: int | None = None, pids: dict[str, int] | None = None, chaincode: str = "assets") -> dict:
    """Closed-loop clients for ``seconds``; with ``pids`` (name → pid) also the CPU milliseconds each of
    those processes spent per operation (``cpu_ms``)."""
    procs_n = min(clients, max(1, (os.cpu_count() or 2) // 2 + 1), 4) if clients > 1 else 1
    per = [clients // procs_n + (1 if i < clients % procs_n else 0) for i in range(procs_n)]
    q: mp.Queue = mp.Queue()
    ps = [mp.Process(target=_client_proc, args=(str(data_dir), address, n, seconds, f"{tag}{k}", mode, q, chaincode))
          for k, n in enumerate(per)]
    node0 = proctime.cpu_s(node_pid) if node_pid else 0.0
    procs0 = {name: proctime.cpu_s(pid) for name, pid in (pids or {}).items()}
    for p in ps:
        p.start()
    results = [q.get(timeout=seconds + 120) for _ in ps]
    for p in ps:
        p.join()
    node_cpu = proctime.cpu_s(node_pid) - node0 if node_pid else 0.0
    procs_cpu = {name: proctime.cpu_s(pid) - procs0[name] for name, pid in (pids or {}).items()}
    # the client processes' CPU while their clients ran (their start-up — keys, channels, TLS
    # handshakes — is not a transaction's)
    client_cpu = sum(r["cpu_s"] for r in results)
    lat = sorted(x for r in results for x in r["lat"])
    done = len(lat)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [0.0] * 99
    return {
        "per_s": done / seconds,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "n": done,
        "errors": sum(r["errors"] for r in results),
        "retries": sum(r["retries"] for r in results),
        # where the CPU went: the node process and the client processes, per operation
        "node_cpu_ms": node_cpu / max(done, 1) * 1000,
        "client_cpu_ms": client_cpu / max(done, 1) * 1000,
        "cpu_ms": {name: cpu / max(done, 1) * 1000 for name, cpu in procs_cpu.items()},
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


def _asset_network(data: Path, batch_timeout_ms: float | None) -> NetworkConfig:
    cfg = init_network(data / "network", ["lothian", "zmc", "fcrb"])
    cfg.chaincodes = [ChaincodeDefinition("assets", "chaincode.samples:assets_chaincode", "1.0", "MAJORITY")]
    if batch_timeout_ms is not None:
        cfg.batch.timeout_ms = batch_timeout_ms
    cfg.save()
    return cfg


def _workload(data: Path, address: str | dict, seconds: float, pids: dict[str, int], node_pid: int | None = None,
              chaincode: str = "assets") -> tuple[dict, int]:
    """The same runs on either engine: 1, 8 and 32 submitting clients, then 8 evaluating ones.
    Returns the figures and how many transactions committed."""
    out: dict = {}
    committed = 0
    for n in (1, 8, 32):
        m = measure(data, address, n, seconds, "submit", f"c{n}", node_pid, pids, chaincode)
        committed += m["n"]
        out[f"committed_tx_per_s_c{n}"] = round(m["per_s"], 1)
        out[f"p50_ms_c{n}"] = round(m["p50_ms"], 2)
        out[f"p99_ms_c{n}"] = round(m["p99_ms"], 2)
        out[f"errors_c{n}"] = m["errors"]
        out[f"endorse_retries_c{n}"] = m["retries"]
    out["client_cpu_ms_per_tx_c32"] = round(m["client_cpu_ms"], 3)
    for name, ms in m["cpu_ms"].items():
        out[f"cpu_ms_per_tx_c32_{name}"] = round(ms, 3)
    if node_pid:
        out["node_cpu_ms_per_tx_c32"] = round(m["node_cpu_ms"], 3)
    ev = measure(data, address, 8, seconds, "evaluate", "ev", node_pid, pids, chaincode)
    out["evaluate_q_per_s"] = round(ev["per_s"], 1)
    out["evaluate_p99_ms"] = round(ev["p99_ms"], 2)
    out["client_cpu_ms_per_evaluate"] = round(ev["client_cpu_ms"], 3)
    if node_pid:
        out["node_cpu_ms_per_evaluate"] = round(ev["node_cpu_ms"], 3)
    return out, committed


def run_fabric(args, seconds: float) -> dict:
    """The workload on a native Fabric network (3 hospitals, MAJORITY, our CCaaS shim, TLS)."""
    from network.fabric import FabricNetwork, find_fabric_bin

    bin_dir = find_fabric_bin(os.environ.get("FABRIC_BIN"), (ROOT.parent / "shared" / "fabric" / "bin",))
    with tempfile.TemporaryDirectory(prefix="serums-bench-fabric-") as tmp:
        data = Path(tmp)
        cfg = _asset_network(data, None)
        net = FabricNetwork(cfg, bin_dir=bin_dir, chaincode="assets", chaincode_module="chaincode.samples:assets_chaincode",
                            batch_timeout_ms=args.batch_timeout_ms or 10.0)
        t0 = time.monotonic()
        try:
            net.up(timeout=300)
            up_s = time.monotonic() - t0
            endpoints = {h.name: (net.peer_address(h.name), net.tls_ca(h.name)) for h in cfg.hospitals}
            ident, signer = cfg.load_user("lothian")
            gw = connect(ident, signer, endpoints["lothian"][0], tls_root_certs=endpoints["lothian"][1])
            c = gw.network(cfg.channel).contract("assets", "AssetContract")
            for i in range(50):
                c.submit("Put", "seed", f"a{i}", '{"dose_mg":120}')
            first = c.submit_async("Put", "seed", "a0", '{"dose_mg":120}')[1].status().block_number
            pids = {name: info["pid"] for name, info in net.state["processes"].items()}
            out, committed = _workload(data, endpoints, seconds, pids)
            per_tx = sum(v for k, v in out.items() if k.startswith("cpu_ms_per_tx_c32_")) + out["client_cpu_ms_per_tx_c32"]
            out["cpu_ms_per_tx_c32_total"] = round(per_tx, 3)
            # the goal is per chaincode server: the busiest one's figure
            out["chaincode_cpu_ms_per_tx_c32_max"] = max(
                v for k, v in out.items() if k.startswith("cpu_ms_per_tx_c32_chaincode."))
            out["cpu_ceiling_tx_per_s"] = proctime.cpu_ceiling(per_tx)
            out["events_delivered_ratio"] = round(_events_delivered(gw, cfg.channel, first) / max(committed, 1), 4)
            out["network_up_s"] = round(up_s, 1)
            gw.close()
        finally:
            net.down()
        out["batch_timeout_ms"] = net.batch_timeout_ms
        return out


def _events_delivered(gw, channel: str, start_block: int) -> int:
    """How many of the benchmark clients' AssetPut events the peer delivers, read from ``start_block``
    up to a sentinel transaction committed after the runs."""
    sentinel = gw.network(channel).contract("assets", "AssetContract").submit_async(
        "Put", "sentinel", "end", "{}")[1].status()
    n = 0
    with gw.network(channel).chaincode_events("assets", start_block=start_block) as events:
        for ev in events:
            if ev.transaction_id == sentinel.transaction_id:
                break
            if ev.event_name == "AssetPut" and ev.json()["owner"] not in ("seed", "sentinel"):
                n += 1
    return n


def run_embedded(args, seconds: float) -> dict:
    """The workload on the embedded node, and what gRPC and the CPU allow here."""
    with tempfile.TemporaryDirectory(prefix="serums-bench-") as tmp:
        data = Path(tmp)
        cfg = _asset_network(data, args.batch_timeout_ms)
        address = f"127.0.0.1:{free_port()}"
        node = start_node(data, address)
        try:
            ident, signer = cfg.load_user("lothian")
            c = connect(ident, signer, address).network(cfg.channel).contract("assets", "AssetContract")
            for i in range(50):
                c.submit("Put", "seed", f"a{i}", '{"dose_mg":120}')
            out, _ = _workload(data, address, seconds, {}, node.pid)
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
        out["cpu_ceiling_tx_per_s"] = proctime.cpu_ceiling(out["node_cpu_ms_per_tx_c32"] + out["client_cpu_ms_per_tx_c32"])
        out["cpu_ceiling_evaluate_q_per_s"] = proctime.cpu_ceiling(out["node_cpu_ms_per_evaluate"]
                                                          + out["client_cpu_ms_per_evaluate"])
        out["batch_timeout_ms"] = cfg.batch.timeout_ms
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs (under a minute in all)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs (CI); figures meaningless")
    ap.add_argument("--seconds", type=float, help="seconds per measurement")
    ap.add_argument("--batch-timeout-ms", type=float, default=None,
                    help="orderer batch timeout (default: the config's for the embedded node, 10 for Fabric)")
    ap.add_argument("--engine", choices=["embedded", "fabric", "both"], default="embedded",
                    help="which ledger to measure (both: side by side, figures prefixed embedded_ and fabric_)")
    args = ap.parse_args()
    args.quick = args.quick or args.smoke
    seconds = args.seconds or (0.5 if args.smoke else 4.0 if args.quick else 15.0)
    out: dict = {}
    if args.engine in ("embedded", "both"):
        emb = run_embedded(args, seconds)
        out.update(emb if args.engine == "embedded" else {f"embedded_{k}": v for k, v in emb.items()})
    if args.engine in ("fabric", "both"):
        out.update({f"fabric_{k}": v for k, v in run_fabric(args, seconds).items()})
    if args.engine == "both":
        fab = out["fabric_committed_tx_per_s_c32"]
        out["embedded_over_fabric_tx"] = round(out["embedded_committed_tx_per_s_c32"] / fab, 2) if fab else 0.0
    out["quick"] = bool(args.quick)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
