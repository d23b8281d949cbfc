"""``serums node``, ``serums ledger …`` and ``serums chaincode …``: the embedded ledger."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading

from network import ChaincodeDefinition, NetworkConfig, PolicyError, parse_policy

from ..cli import CommandError, host_port


def register(sub) -> None:
    p = sub.add_parser("node", help="run the embedded node (one peer per hospital, orderer, committers)")
    p.add_argument("--listen", type=host_port, help="host:port to serve the Gateway API on (default: the network's endpoint)")
    p.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)  # serums up's data-directory lock, inherited
    p.add_argument("--tls", action="store_true",
                   help="serve TLS with a certificate from the network's TLS CA (orgs/<orderer>/node/tls; "
                        "default: SERUMS_NODE_TLS)")
    p.add_argument("--mutual-tls", action="store_true",
                   help="TLS that also requires a client certificate from a channel organisation's TLS CA "
                        "(default: SERUMS_NODE_TLS=mutual)")
    p.set_defaults(handler=_node)

    led = sub.add_parser("ledger", help="inspect and verify the ledger")
    lsub = led.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    v = lsub.add_parser("verify", help="re-check every peer's whole chain and state from its blocks")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument("--engine", choices=["embedded", "fabric"], help="which ledger (default: SERUMS_ENGINE)")
    v.set_defaults(handler=_verify)

    cc = sub.add_parser("chaincode", help="chaincodes deployed on the channel")
    csub = cc.add_subparsers(dest="chaincode_command", metavar="ACTION", required=True)
    d = csub.add_parser("deploy", help="deploy (or upgrade) a chaincode; the node loads it when it starts")
    d.add_argument("name")
    d.add_argument("--module", required=True, help="package.module:factory returning the chaincode")
    d.add_argument("--policy", default="MAJORITY", help="endorsement policy (MAJORITY, ANY, ALL, AND/OR/OutOf(...))")
    d.add_argument("--version", default="1.0")
    d.set_defaults(handler=_deploy)
    ls = csub.add_parser("list", help="list deployed chaincodes")
    ls.set_defaults(handler=_list)
    from .network import register_chaincode_serve

    register_chaincode_serve(csub)


def load_network(settings) -> NetworkConfig:
    return NetworkConfig.load(settings.network_dir)


def run_node(settings, listen: str | None = None, *, ready=None, stop_event: threading.Event | None = None,
             lock_fd: int | None = None, tls: bool = False, mutual_tls: bool = False) -> int:
    """Run the node until SIGINT/SIGTERM (or ``stop_event``), owning the data directory (its lock,
    or ``lock_fd``: the lock of the ``serums up`` that started it). Writes ``node.json`` (pid,
    address) in the data directory so that other processes find the endpoint."""
    from network.node import EmbeddedNode

    from ..datadir import DataDirLock, stop_with_parent
    from ..supervisor import port_in_use

    cfg = load_network(settings)
    if lock_fd is not None:
        lock = DataDirLock.inherited(settings.data_dir, lock_fd)
        lock.note_node(os.getpid())
    else:
        lock = DataDirLock.acquire(settings.data_dir, "serums node")
    host, _, port = (listen or cfg.endpoint).rpartition(":")
    if int(port) and port_in_use(host, int(port)):
        raise CommandError(f"cannot serve on {listen or cfg.endpoint}: that port is already in use")
    node = EmbeddedNode(cfg, passphrase=settings.key_passphrase, max_proposal_skew_s=settings.max_proposal_skew_s)
    try:
        address = node.start(listen, tls=tls, mutual_tls=mutual_tls)
    except OSError as exc:
        node.stop()
        raise CommandError(f"cannot serve on {listen or cfg.endpoint}: {exc}") from None
    info = settings.data_dir / "node.json"
    info.write_text(json.dumps({"pid": os.getpid(), "address": address, "channel": cfg.channel,
                                "tls": "mutual" if mutual_tls else bool(tls)}))
    stop = stop_event or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    over = " over mutual TLS" if mutual_tls else " over TLS" if tls else ""
    print(f"embedded node: channel {cfg.channel}, {len(node.peers)} peers, serving on {address}{over}", flush=True)
    if ready is not None:
        ready(address)
    if lock_fd is not None:  # started by serums up: stop when it is gone (kill -9)
        def gone(parent: int) -> None:
            print(f"serums up (pid {parent}) is gone; the node stops", flush=True)
            stop.set()

        stop_with_parent(gone, settings.data_dir, interval=0.5)
    try:
        while not stop.wait(0.5):  # wakes for signal handlers too
            pass
    finally:
        node.stop()
        info.unlink(missing_ok=True)
        print("embedded node stopped", flush=True)
        if lock_fd is None:
            lock.release()
    return 0


def _node(args) -> int:
    mode = args.settings.node_tls
    return run_node(args.settings, args.listen, lock_fd=args.lock_fd, tls=args.tls or mode == "on",
                    mutual_tls=args.mutual_tls or mode == "mutual")


def _verify(args) -> int:
    from network import verify_ledger

    if (args.engine or getattr(args.settings, "engine", "embedded")) == "fabric":
        from .network import verify_fabric_ledger

        report = verify_fabric_ledger(args)
    else:
        report = verify_ledger(load_network(args.settings))
    if args.json:
        print(json.dumps({
            "ok": report.ok,
            "orderer_height": report.orderer_height,
            "peers": {k: vars(v) for k, v in report.peers.items()},
            "problems": [str(p) for p in report.problems],
        }, indent=2))
    else:
        print(f"orderer: {report.orderer_height} blocks")
        for name, s in report.peers.items():
            print(f"{name}: {s.height} blocks, {s.transactions} transactions ({s.valid} valid), "
                  f"{s.state_keys} state keys, last block {s.last_hash[:16]}…")
        for p in report.problems:
            print(f"INCONSISTENT {p}")
        print("ledger verified: OK" if report.ok else f"ledger verification FAILED ({len(report.problems)} problem(s))")
    return 0 if report.ok else 1


def _deploy(args) -> int:
    cfg = load_network(args.settings)
    try:
        parse_policy(args.policy, [h.msp_id for h in cfg.hospitals])
    except PolicyError as exc:
        raise CommandError(f"--policy: {exc}") from exc
    from network.node import load_chaincode

    try:
        load_chaincode(args.module)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CommandError(f"--module {args.module}: {exc}") from exc
    cfg.chaincodes = [c for c in cfg.chaincodes if c.name != args.name]
    cfg.chaincodes.append(ChaincodeDefinition(args.name, args.module, args.version, args.policy))
    cfg.save()
    print(f"chaincode {args.name} {args.version} deployed on {cfg.channel} (policy {args.policy}); "
          "restart the node to load it")
    return 0


def _list(args) -> int:
    for c in load_network(args.settings).chaincodes:
        print(f"{c.name:<12} {c.version:<6} {c.endorsement_policy:<20} {c.module}")
    return 0
