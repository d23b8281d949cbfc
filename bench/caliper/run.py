"""Hyperledger Caliper against either SERUMS engine, so users can benchmark with the tool they know.

Sets up three hospitals with the ``assets`` chaincode (the workload of ``bench/ledger.py``) on the
embedded node or on a real Fabric network (``network.fabric``: TLS, our CCaaS shim), writes Caliper's
network configuration (the Lothian admin's identity, a connection profile) and benchmark
configuration (a ``put`` round of read-write transactions, then a ``get`` round of evaluations,
each with a fixed load of outstanding transactions), runs ``caliper launch manager`` from
``bench/caliper/node_modules`` (``npm ci`` there: Caliper 0.6 bound to ``@hyperledger/fabric-gateway``)
and prints Caliper's summary as one JSON object.

    (cd bench/caliper && npm ci) && .venv/bin/python bench/caliper/run.py --engine fabric [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from network import ChaincodeDefinition, init_network  # noqa: E402

ROW = re.compile(r"^\|\s*(\w+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|"
                 r"\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|")


def caliper_configs(work: Path, cfg, profile: dict, seconds: float, workers: int, load: int) -> tuple[Path, Path]:
    """Caliper's network configuration (v2.0.0) and benchmark configuration."""
    (work / "connection.json").write_text(json.dumps(profile, indent=2))
    admin = cfg.user_dir("lothian", "admin")
    network = {
        "name": "serums", "version": "2.0.0", "caliper": {"blockchain": "fabric"},
        "channels": [{"channelName": cfg.channel, "contracts": [{"id": "assets"}]}],
        "organizations": [{
            "mspid": "LothianMSP",
            "identities": {"certificates": [{"name": "admin", "clientPrivateKey": {"path": str(admin / "key.pem")},
                                             "clientSignedCert": {"path": str(admin / "cert.pem")}}]},
            "connectionProfile": {"path": str(work / "connection.json"), "discover": False},
        }],
    }
    rounds = [
        {"label": label, "txDuration": seconds, "rateControl": {"type": "fixed-load",
                                                                 "opts": {"transactionLoad": load}},
         "workload": {"module": f"workload/{label}.js", "arguments": {"assets": 50, "chaincode": "assets"}}}
        for label in ("put", "get")
    ]
    bench = {"test": {"name": "serums-assets", "workers": {"number": workers}, "rounds": rounds}}
    (work / "network.yaml").write_text(yaml.safe_dump(network, sort_keys=False))
    (work / "bench.yaml").write_text(yaml.safe_dump(bench, sort_keys=False))
    return work / "network.yaml", work / "bench.yaml"


def _seed(cfg, profile: dict, workers: int) -> None:
    """Every asset the ``get`` round reads exists, however short the ``put`` round."""
    from network import connect

    peer = profile["peers"]["peer0.lothian"]
    tls = peer.get("tlsCACerts", {}).get("pem")
    ident, signer = cfg.load_user("lothian")
    address = peer["url"].split("://", 1)[1]
    with connect(ident, signer, address, tls_root_certs=tls.encode() if tls else None) as gw:
        contract = gw.network(cfg.channel).contract("assets", "AssetContract")
        commits = [contract.submit_async("Put", f"w{w}", f"a{i}", '{"dose_mg":120}')[1]
                   for w in range(workers) for i in range(50)]
        if not all(c.status().successful for c in commits):
            raise SystemExit("seeding the assets failed")


def run_caliper(work: Path, network: Path, bench: Path) -> dict:
    caliper = HERE / "node_modules" / ".bin" / "caliper"
    if not caliper.exists():
        raise SystemExit("Caliper is not installed: (cd bench/caliper && npm ci)")
    out = subprocess.run([str(caliper), "launch", "manager", "--caliper-workspace", str(HERE),
                          "--caliper-networkconfig", str(network), "--caliper-benchconfig", str(bench),
                          "--caliper-flow-only-test", "--caliper-report-path", str(work / "report.html")],
                         cwd=HERE, capture_output=True, text=True, timeout=1800)
    (work / "caliper.log").write_text(out.stdout + out.stderr)
    figures: dict = {}
    for line in out.stdout.splitlines():
        m = ROW.match(line.strip())
        if m and m.group(1) in ("put", "get"):
            name = m.group(1)
            figures.update({f"{name}_succ": int(m.group(2)), f"{name}_fail": int(m.group(3)),
                            f"{name}_send_tps": float(m.group(4)), f"{name}_max_latency_s": float(m.group(5)),
                            f"{name}_avg_latency_s": float(m.group(7)), f"{name}_tps": float(m.group(8))})
    if not figures:
        tail = (out.stdout + out.stderr).strip().splitlines()[-15:]
        raise SystemExit("Caliper printed no summary:\n" + "\n".join(tail))
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--engine", choices=["embedded", "fabric"], default="embedded")
    ap.add_argument("--quick", action="store_true", help="short rounds")
    ap.add_argument("--smoke", action="store_true", help="tiny rounds: proves the benchmark runs")
    ap.add_argument("--seconds", type=float, help="seconds per round")
    ap.add_argument("--workers", type=int, default=2, help="Caliper worker processes")
    ap.add_argument("--load", type=int, default=16, help="outstanding transactions (fixed-load)")
    args = ap.parse_args()
    seconds = args.seconds or (3 if args.smoke else 10 if args.quick else 30)
    with tempfile.TemporaryDirectory(prefix="serums-caliper-") as tmp:
        work = Path(tmp)
        cfg = init_network(work / "network", ["lothian", "zmc", "fcrb"])
        cfg.chaincodes = [ChaincodeDefinition("assets", "chaincode.samples:assets_chaincode", "1.0", "MAJORITY")]
        cfg.save()
        node = net = None
        try:
            if args.engine == "fabric":
                from network.fabric import FabricNetwork, find_fabric_bin

                net = FabricNetwork(cfg, bin_dir=find_fabric_bin(os.environ.get("FABRIC_BIN"),
                                                                 (ROOT.parent / "shared" / "fabric" / "bin",)),
                                    chaincode="assets", chaincode_module="chaincode.samples:assets_chaincode",
                                    batch_timeout_ms=10)
                net.up(timeout=300)
                profile = net.connection_profile()
            else:
                from serums.supervisor import free_port, start_node_process

                address = f"127.0.0.1:{free_port()}"
                node = start_node_process(work, address)
                profile = {"name": "serums", "version": "1.0.0", "client": {"organization": "LothianMSP"},
                           "organizations": {"LothianMSP": {"mspid": "LothianMSP", "peers": ["peer0.lothian"]}},
                           "peers": {"peer0.lothian": {"url": f"grpc://{address}"}}}
            _seed(cfg, profile, args.workers)
            network, bench = caliper_configs(work, cfg, profile, seconds, args.workers, args.load)
            figures = run_caliper(work, network, bench)
        finally:
            if node is not None:
                node.send_signal(signal.SIGTERM)
                node.wait(60)
            if net is not None:
                net.down()
    out = {f"{args.engine}_caliper_{k}": v for k, v in figures.items()}
    out.update(caliper_workers=args.workers, caliper_load=args.load, quick=bool(args.quick or args.smoke))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
