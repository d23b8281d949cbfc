"""``serums up``: bring SERUMS up on the embedded default.

Today: initialise the network (three hospitals) on first run, deploy the chaincodes, and run the
embedded node until Ctrl-C. Later steps (vault, fabricated data, gateway) join here.
"""

from __future__ import annotations

from network import ChaincodeDefinition, NetworkConfig, init_network

from .node import run_node

DEFAULT_HOSPITALS = ["lothian", "zmc", "fcrb"]
DEFAULT_CHAINCODES = [
    ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode", "1.0", "MAJORITY"),
    ChaincodeDefinition("assets", "chaincode.samples:assets_chaincode", "1.0", "MAJORITY"),
]


def register(sub) -> None:
    p = sub.add_parser("up", help="bring the whole system up (first run creates everything)")
    p.add_argument("--listen", help="host:port for the node's Gateway API (default: the network's endpoint)")
    p.set_defaults(handler=_up)


def ensure_network(settings) -> NetworkConfig:
    path = settings.network_dir / "network.json"
    if path.exists():
        cfg = NetworkConfig.load(settings.network_dir)
        print(f"[up] network: reusing {cfg.root} ({', '.join(h.name for h in cfg.hospitals)})", flush=True)
    else:
        print(f"[up] network: creating hospitals {', '.join(DEFAULT_HOSPITALS)} in {settings.network_dir}", flush=True)
        cfg = init_network(settings.network_dir, DEFAULT_HOSPITALS, passphrase=settings.key_passphrase)
    have = {c.name for c in cfg.chaincodes}
    missing = [c for c in DEFAULT_CHAINCODES if c.name not in have]
    if missing:
        cfg.chaincodes.extend(missing)
        cfg.save()
        print(f"[up] chaincode: deployed {', '.join(c.name for c in missing)}", flush=True)
    return cfg


def _up(args) -> int:
    settings = args.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_network(settings)
    print("[up] starting the embedded node (Ctrl-C stops it)", flush=True)
    return run_node(settings, args.listen)
