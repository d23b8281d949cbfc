"""``serums network …``: crypto material and channel configuration; a real Fabric network
(``network up --engine fabric``, ``down``, ``status``); ``serums chaincode serve``."""

from __future__ import annotations

import argparse
import json
import os

from network import (
    BatchConfig,
    ChaincodeDefinition,
    NetworkConfig,
    client_tls_options,
    init_network,
    parse_hospitals,
)

from ..cli import CommandError, host_port


def register(sub) -> None:
    p = sub.add_parser("network", help="create and inspect the network's organisations")
    nsub = p.add_subparsers(dest="network_command", metavar="ACTION", required=True)
    init = nsub.add_parser("init", help="create each hospital's CA, peer and admin identities")
    init.add_argument("--hospitals", default="lothian,zmc,fcrb", help="comma-separated hospital names")
    init.add_argument("--channel", default="serums")
    init.add_argument("--endpoint", default="127.0.0.1:7051", type=host_port, help="where the node serves the Gateway API")
    init.add_argument("--force", action="store_true", help="replace an existing network (new keys)")
    init.add_argument("--batch-timeout-ms", type=float, default=1.0,
                      help="cut a block this long after its first transaction, once the committers are free (default 1)")
    init.add_argument("--max-message-count", type=int, default=500, help="transactions per block at most")
    init.add_argument("--preferred-max-bytes", type=int, default=2 * 1024 * 1024, help="bytes per block at most")
    init.set_defaults(handler=_init)

    up = nsub.add_parser("up", help="start a real Hyperledger Fabric network for the hospitals")
    up.add_argument("--engine", choices=["embedded", "fabric"], default=None,
                    help="fabric: orderer and one peer per hospital as processes (default: SERUMS_ENGINE)")
    up.add_argument("--hospitals", help="comma-separated hospital names (a new network; default lothian,zmc,fcrb)")
    up.add_argument("--channel", default="serums")
    up.add_argument("--policy", help="the chaincode's endorsement policy: MAJORITY (default), ANY, ALL or an expression")
    up.add_argument("--batch-timeout-ms", type=float, help="the orderer's batch timeout (default 10)")
    up.add_argument("--timeout", type=float, default=240.0, help="give up after this many seconds")
    up.add_argument("--host", action="append", default=[], type=org_host, metavar="ORG=HOST",
                    help="where an organisation's nodes are reached (IP address or DNS name, put in its TLS "
                         "certificates, anchor peer, orderer endpoint, connection profile and bundle); repeat "
                         "per organisation (the orderer's is `orderer`); default 127.0.0.1; a new network only")
    up.add_argument("--detach", action="store_true",
                    help="start the processes and return, unsupervised (`network status` tells what died); by "
                         "default `network up` stays in the foreground restarting what dies until Ctrl-C or "
                         "`serums network down`")
    up.set_defaults(handler=_up)
    down = nsub.add_parser("down", help="stop the Fabric network's processes (exactly those `up` started)")
    down.add_argument("--purge", action="store_true", help="also delete the Fabric ledgers and material")
    down.set_defaults(handler=_down)
    add = nsub.add_parser("add-hospital", help="a new hospital joins the running network (embedded node or Fabric)")
    add.add_argument("hospital")
    add.add_argument("--engine", choices=["embedded", "fabric"], default=None,
                     help="the running network's engine (default: SERUMS_ENGINE, else the running embedded "
                          "node, else the data directory's Fabric network)")
    add.add_argument("--display-name", help="the name it registers on chain (default: the hospital's, capitalised)")
    add.add_argument("--timeout", type=float, default=240.0)
    add.add_argument("--host", type=host_name, help="Fabric: where the new hospital's peer is reached (IP address or "
                                                    "DNS name; default 127.0.0.1)")
    add.set_defaults(handler=_add_hospital)
    bundle = nsub.add_parser("bundle", help="one hospital's keys, config and scripts to run its own peer")
    bundle.add_argument("hospital")
    bundle.add_argument("--out", help="the .tar.gz to write (default <data dir>/bundles/<hospital>-bundle.tar.gz)")
    bundle.set_defaults(handler=_bundle)
    st = nsub.add_parser("status", help="what of the Fabric network runs")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=_status)


def host_name(text: str) -> str:
    """An IP address or a DNS name (``--host``)."""
    import ipaddress
    import re

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if re.fullmatch(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                    r"[A-Za-z0-9])?", text):
        return text.lower()
    raise argparse.ArgumentTypeError(f"{text!r} is neither an IP address nor a DNS name")


def org_host(text: str) -> tuple[str, str]:
    """``ORG=HOST`` (``--host``)."""
    org, sep, host = text.partition("=")
    if not sep or not org:
        raise argparse.ArgumentTypeError(f"{text!r}: give ORG=HOST, e.g. zmc=10.0.0.6")
    return org.strip().lower(), host_name(host.strip())


def _init(args) -> int:
    s = args.settings
    cfg = init_network(
        s.network_dir,
        parse_hospitals(args.hospitals),
        channel=args.channel,
        endpoint=args.endpoint,
        passphrase=s.key_passphrase,
        force=args.force,
        batch=BatchConfig(args.max_message_count, args.preferred_max_bytes, args.batch_timeout_ms),
    )
    print(f"network initialised in {cfg.root}")
    for h in cfg.hospitals:
        print(f"  {h.name:<12} {h.msp_id}")
    print(f"  channel {cfg.channel}, endpoint {cfg.endpoint}")
    return 0


# --------------------------------------------------------------------------- real Fabric


def _one_line(handler):
    """Fabric's failures are user-facing one-liners like the CLI's own."""
    import functools

    @functools.wraps(handler)
    def run(args) -> int:
        from network.fabric import FabricError

        try:
            return handler(args)
        except FabricError as exc:
            raise CommandError(exc.detail) from None

    return run


def _fabric(args, cfg=None):
    from network.fabric import FabricNetwork, find_fabric_bin

    cfg = cfg or NetworkConfig.load(args.settings.network_dir)
    need_bin = getattr(args, "network_command", "") == "up"
    bin_dir = find_fabric_bin(os.environ.get("FABRIC_BIN")) if need_bin else None
    return FabricNetwork(cfg, bin_dir=bin_dir, passphrase=args.settings.key_passphrase,
                         policy=getattr(args, "policy", None), batch_timeout_ms=getattr(args, "batch_timeout_ms", None),
                         proposal_time_window_s=getattr(args.settings, "max_proposal_skew_s", 900.0))


@_one_line
def _up(args) -> int:
    from network.fabric import CHAINCODE_MODULE

    args.engine = args.engine or getattr(args.settings, "engine", "embedded")
    if args.engine != "fabric":
        raise CommandError("the embedded engine runs inside `serums node` (or `serums up`); "
                           "`network up` starts real Fabric: --engine fabric")
    s = args.settings
    from network.fabric import find_fabric_bin

    from ..datadir import DataDirLock

    find_fabric_bin(os.environ.get("FABRIC_BIN"))  # before anything is written
    # in the foreground it owns the data directory as `serums up` does (one supervisor at a time)
    lock = None if args.detach else DataDirLock.acquire(s.data_dir, "serums network up")
    wanted = parse_hospitals(args.hospitals) if args.hospitals else None
    if (s.network_dir / "network.json").exists():
        cfg = NetworkConfig.load(s.network_dir)
        if wanted and wanted != [h.name for h in cfg.hospitals]:
            raise CommandError(f"the network in {cfg.root} has hospitals {','.join(h.name for h in cfg.hospitals)}; "
                               "`serums network init --force` replaces it")
    else:
        cfg = init_network(s.network_dir, wanted or ["lothian", "zmc", "fcrb"], channel=args.channel,
                           passphrase=s.key_passphrase)
    if not any(c.name == "serums" for c in cfg.chaincodes):
        cfg.chaincodes.append(ChaincodeDefinition("serums", CHAINCODE_MODULE, "1.0", args.policy or "MAJORITY"))
        cfg.save()
    net = _fabric(args, cfg)
    hosts = dict(args.host)
    if hosts and net.state.get("committed"):
        differ = {o: h for o, h in hosts.items() if net.host(o) != h}
        if differ:
            raise CommandError(f"--host: the network in {net.root} exists with its hosts in its certificates and "
                               f"channel ({', '.join(f'{o}={net.host(o)}' for o in differ)}); `serums network down "
                               "--purge` and up again to change them")
    net.hosts = hosts
    net.stop_with_parent = not args.detach  # supervised: they stop with this process, even after kill -9
    profile = net.up(timeout=args.timeout, progress=lambda m: print(f"  {m}", flush=True))
    print(f"Fabric network up: channel {cfg.channel}, {len(cfg.hospitals)} hospitals, chaincode serums")
    for name, peer in profile["peers"].items():
        print(f"  {name:<20} {peer['url']}")
    print(f"  connection profile {net.root / 'connection.json'}")
    if args.detach:
        print("detached: nothing restarts a process that dies (`serums network status` tells); "
              "`serums network down` stops them", flush=True)
        return 0
    return _supervise_network(net, lock)


def _supervise_network(net, lock) -> int:
    """``network up`` in the foreground: the orderer, peers and chaincode servers supervised as
    ``serums up`` supervises them (restart with back-off, give up after repeated fast failures),
    until Ctrl-C or SIGTERM (``serums network down`` sends it); then the network stops."""
    from ..supervisor import Supervisor

    sup = Supervisor(net.root / "logs")
    supervise_fabric(sup, net)
    print(f"supervising the Fabric network (pid {os.getpid()}): a process that dies is restarted; "
          "Ctrl-C or `serums network down` stops it", flush=True)
    try:
        return sup.wait()
    finally:
        sup.stop_all()
        net.down()
        lock.release()
        print("Fabric network stopped", flush=True)


@_one_line
def _down(args) -> int:
    from ..datadir import running_owner

    net = _fabric(args)
    owner = running_owner(args.settings.data_dir)
    running = [r["name"] for r in net.status() if r["running"]]
    if owner is not None and owner.command == "serums up" and running:
        raise CommandError(f"{owner} supervises this Fabric network and would restart what `network down` stops: "
                           f"stop it instead (Ctrl-C, or kill -TERM {owner.pid}); it stops the network itself")
    stopped = []
    if owner is not None and owner.command == "serums network up":
        _stop_supervisor(args.settings.data_dir, owner)  # it stops the network itself
        net = _fabric(args)
        stopped = [n for n in running if not net.running(n)]
    stopped += net.down(purge=args.purge)
    print(f"stopped {', '.join(stopped)}" if stopped else "nothing of the Fabric network was running")
    if args.purge:
        print(f"removed {net.root}")
    return 0


@_one_line
def _status(args) -> int:
    from ..datadir import running_owner

    net = _fabric(args)
    rows = net.status()
    owner = running_owner(args.settings.data_dir)
    supervisor = ({"pid": owner.pid, "command": owner.command}
                  if owner is not None and owner.command in ("serums up", "serums network up") else None)
    if args.json:
        print(json.dumps({"engine": "fabric", "root": str(net.root), "supervised_by": supervisor, "processes": rows},
                         indent=2))
        return 0
    if not rows:
        print(f"no Fabric network in {net.root}")
        return 1
    if supervisor:
        print(f"supervised by {supervisor['command']} (pid {supervisor['pid']}): a process that dies is restarted")
    else:
        print("not supervised (`network up --detach`, or its supervisor is gone): nothing restarts a process that dies")
    for r in rows:
        state = "running" if r["running"] else "stopped"
        print(f"{r['name']:<22} {state:<8} pid {r['pid']:<8} {r['address']}"
              + ("" if r["running"] else f"   (log {r['log']})"))
    return 0 if all(r["running"] for r in rows) else 1


def _stop_supervisor(data_dir, owner, timeout: float = 90.0) -> None:
    """SIGTERM to the ``serums network up`` supervising the network; back once it has stopped it."""
    import signal
    import time

    from ..datadir import running_owner

    try:
        os.kill(owner.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while running_owner(data_dir) is not None:
        if time.monotonic() > deadline:
            raise CommandError(f"{owner} did not stop within {timeout:.0f}s after SIGTERM")
        time.sleep(0.2)


@_one_line
def _add_hospital(args) -> int:
    from network.fabric.grow import add_hospital

    if not _adds_to_fabric(args):
        return _add_hospital_embedded(args)
    net = _fabric(args)
    msp = add_hospital(net, args.hospital, display_name=args.display_name, timeout=args.timeout,
                       progress=lambda m: print(f"  {m}", flush=True), host=args.host)
    print(f"{msp} joined channel {net.cfg.channel}: peer0.{args.hospital} on {net.peer_address(args.hospital)}")
    return 0


def _adds_to_fabric(args) -> bool:
    """--engine, else SERUMS_ENGINE=fabric, else a running embedded node, else a Fabric network
    that `network up --engine fabric` set up in the data directory."""
    engine = args.engine or getattr(args.settings, "engine", "embedded")
    if args.engine or engine == "fabric" or args.settings.running_node_address():
        return engine == "fabric"
    try:
        return bool(_fabric(args).state.get("committed"))
    except Exception:  # noqa: BLE001 - no (readable) network: the embedded path says what is missing
        return False


def _add_hospital_embedded(args) -> int:
    """The hospital joins the channel of the running embedded node (see network/node/grow.py)."""
    import grpc

    from network import ConfigError, GatewayError
    from network.node.configtx import ConfigUpdateError
    from network.node.grow import add_hospital

    settings = args.settings
    if args.host:
        raise CommandError("--host is for Fabric: the embedded node runs every hospital's peer in one process")
    address = settings.running_node_address()
    if not address:
        raise CommandError("the embedded node is not running: start it (`serums node` or `serums up`), "
                           "then add the hospital to its channel")
    cfg = NetworkConfig.load(settings.network_dir)
    try:
        msp = add_hospital(cfg, args.hospital, address, passphrase=settings.key_passphrase,
                           display_name=args.display_name, timeout=args.timeout,
                           progress=lambda m: print(f"  {m}", flush=True),
                           tls=client_tls_options(cfg, settings.node_tls, settings.node_tls_ca))
    except ConfigUpdateError as exc:
        raise CommandError(f"channel update refused: {exc.detail}") from None
    except (ConfigError, GatewayError) as exc:
        raise CommandError(str(exc)) from None
    except grpc.RpcError as exc:
        raise CommandError(f"cannot reach the embedded node on {address}: {exc.code().name}") from None
    print(f"{msp} joined channel {cfg.channel}: peer0.{args.hospital} runs in the embedded node on {address}")
    return 0


@_one_line
def _bundle(args) -> int:
    from pathlib import Path

    from network.fabric.bundle import write_bundle

    net = _fabric(args)
    out = Path(args.out) if args.out else args.settings.data_dir / "bundles" / f"{args.hospital}-bundle.tar.gz"
    write_bundle(net, args.hospital, out)
    print(f"bundle of {args.hospital} written to {out} (it holds the hospital's private keys: 0600)")
    return 0


def start_fabric(settings, cfg: NetworkConfig):
    """``serums up --engine fabric``: the network up (or back up); returns it, the first hospital's
    peer's address (the gateway everything reaches the ledger through) and its TLS CA file."""

    from network.fabric import FabricError, FabricNetwork, find_fabric_bin

    try:
        net = FabricNetwork(cfg, bin_dir=find_fabric_bin(os.environ.get("FABRIC_BIN")),
                            passphrase=settings.key_passphrase, proposal_time_window_s=settings.max_proposal_skew_s)
        net.stop_with_parent = True  # like the node: none outlives serums up, even after kill -9
        net.up(timeout=300, progress=lambda m: print(f"        {m}", flush=True))
    except FabricError as exc:
        raise CommandError(exc.detail) from None
    first = cfg.hospitals[0].name
    return net, net.peer_address(first), str(net.org_dir(first) / "tlsca" / "ca.pem")


def supervise_fabric(sup, net, restart=None) -> list:
    """Hand the processes ``net`` started (orderer, peers, chaincode servers) to the supervisor of
    ``serums up``: each one that dies is started again by the network (so ``state.json``, hence
    ``serums network down``, names the new process) with the back-off, give-up and restart log of
    the embedded node; it counts as serving again once it listens on its port."""
    from network.fabric import FabricError

    from ..supervisor import Foreign, RestartPolicy

    def launcher(name: str):
        def launch():
            try:
                return net.spawn(name)
            except (FabricError, OSError) as exc:
                raise CommandError(f"{name} cannot be restarted: {getattr(exc, 'detail', exc)}") from None
        return launch

    def adopt(name: str, proc) -> None:
        children.append(sup.adopt(name, proc, log=net.log_path(name), launch=launcher(name),
                                  ready=lambda: net.serving(name), restart=restart or RestartPolicy(),
                                  argv=net.command(name)[0]))

    children: list = []
    for name in net.state.get("processes", {}):
        proc = net.process(name)
        if proc is None:  # started by another `serums network up`: not ours to restart
            continue
        adopt(name, proc)

    def newcomers() -> None:
        """Processes that `network add-hospital` started beside this supervisor: supervised too."""
        ours = {c.name for c in children}
        try:
            net.reload_state()
        except FabricError:
            return
        for name, info in net.state.get("processes", {}).items():
            if name not in ours and net.running(name):
                adopt(name, Foreign(info["pid"], lambda name=name: net.running(name)))
                print(f"[up] {name}: supervised from now on (pid {info['pid']})", flush=True)

    sup.watches.append(newcomers)
    return children


@_one_line
def verify_fabric_ledger(args):
    """``serums ledger verify --engine fabric``: every peer's chain read through Deliver."""
    from network.fabric import verify_fabric

    return verify_fabric(_fabric(args), args.settings.key_passphrase)


def register_chaincode_serve(csub) -> None:
    """``serums chaincode serve``: the chaincode-as-a-service server a Fabric peer connects to."""
    from network.fabric import CHAINCODE_MODULE

    srv = csub.add_parser("serve", help="serve a chaincode to Fabric peers (chaincode as a service)")
    srv.add_argument("--chaincode-id", required=True, help="the package id the peer installed (label:sha256)")
    srv.add_argument("--address", type=host_port, default="127.0.0.1:9999", help="host:port to listen on")
    srv.add_argument("--module", default=CHAINCODE_MODULE, help="package.module:factory returning the chaincode")
    srv.add_argument("--tls-cert", help="PEM certificate of the server (TLS)")
    srv.add_argument("--tls-key", help="PEM key of the server (TLS)")
    srv.add_argument("--client-ca", help="PEM CA the peer's client certificate must come from (mutual TLS)")
    srv.set_defaults(handler=_serve)


def _serve(args) -> int:
    import signal
    import threading
    from pathlib import Path

    from chaincode.shim import ChaincodeServer, TLSConfig
    from network.node import load_chaincode

    try:
        code = load_chaincode(args.module)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CommandError(f"--module {args.module}: {exc}") from exc
    tls = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise CommandError("TLS needs both --tls-cert and --tls-key")
        try:
            tls = TLSConfig(Path(args.tls_cert).read_bytes(), Path(args.tls_key).read_bytes(),
                            Path(args.client_ca).read_bytes() if args.client_ca else None)
        except OSError as exc:
            raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    elif args.client_ca:
        raise CommandError("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
    server = ChaincodeServer(code, chaincode_id=args.chaincode_id, address=args.address, tls=tls)
    try:
        address = server.start()
    except Exception as exc:  # noqa: BLE001 - grpc raises RuntimeError for a busy port
        raise CommandError(f"cannot serve on {args.address}: {exc}") from exc
    print(f"chaincode {args.chaincode_id} serving on {address}{' (TLS)' if tls else ''}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop(2.0)
    return 0
