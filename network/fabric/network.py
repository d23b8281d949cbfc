"""A local Hyperledger Fabric network of native processes, from the SERUMS network configuration.

``FabricNetwork(cfg, bin_dir=…).up()`` does what Fabric's test network does, without Docker:

1. crypto material from the hospitals' own CAs (MSPs with NodeOUs) plus a TLS CA per organisation;
2. configtx.yaml (one organisation per hospital with its anchor peer, one Raft orderer, TLS) and the
   channel's genesis block (``configtxgen``);
3. the orderer started and joined to the channel (``osnadmin``, mutual TLS);
4. one peer per hospital started (its core.yaml with the ``ccaas`` external builder) and joined;
5. the chaincode packaged per hospital (type ``ccaas``: connection.json with the hospital's chaincode
   server address and TLS material), installed, approved by each hospital, committed with its
   endorsement policy, and each hospital's chaincode server (``serums chaincode serve``) started;
6. a wait until the gateway can satisfy the policy (gossip and discovery), then a connection profile.

Everything lives under ``<network dir>/fabric``; ``state.json`` there records the ports and the
processes started, which is what :meth:`down` stops (and nothing else) and :meth:`status` reports.
``up`` on a network that was stopped restarts the same processes on the same ledgers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from ..client import GatewayError, connect
from ..config import NetworkConfig
from .configs import (
    LOGGING_SPEC,
    LOOPBACK,
    bind_host,
    ccaas_package,
    configtx,
    core_yaml,
    orderer_yaml,
    signature_policy,
)
from .crypto import org_material

log = logging.getLogger(__name__)

TOOLS = ("peer", "orderer", "configtxgen", "osnadmin")
CHAINCODE_MODULE = "chaincode.serums:serums_chaincode"


class FabricError(Exception):
    """The Fabric network cannot be brought up, reached or stopped; the detail says why."""

    slug = "fabric-network"
    status = 503
    title = "Fabric network unavailable"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


# --------------------------------------------------------------------------- binaries


def find_fabric_bin(configured: str | os.PathLike | None = None, fallbacks: tuple[Path, ...] = ()) -> Path:
    """The folder holding Fabric's binaries: ``configured`` (FABRIC_BIN), else the one on PATH, else
    the first of ``fallbacks`` that has them all."""
    def complete(d: Path) -> bool:
        return all((d / t).is_file() and os.access(d / t, os.X_OK) for t in TOOLS)

    if configured:
        d = Path(configured).expanduser()
        if not complete(d):
            raise FabricError(f"FABRIC_BIN={d} lacks one of {', '.join(TOOLS)}")
        return d.resolve()
    found = shutil.which("peer")
    if found and complete(Path(found).parent):
        return Path(found).parent.resolve()
    for d in fallbacks:
        if complete(Path(d)):
            return Path(d).resolve()
    raise FabricError(f"Hyperledger Fabric binaries ({', '.join(TOOLS)}) are neither in FABRIC_BIN nor on PATH")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _listening(port: int, host: str = LOOPBACK) -> bool:
    """True when something on this machine accepts connections on ``port`` where a node with the
    address ``host`` listens (loopback for a DNS name: it listens on every interface)."""
    bind = bind_host(host)
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((LOOPBACK if bind == "0.0.0.0" else bind, port)) == 0  # noqa: S104


def _alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs and its command line or environment mentions ``marker`` (so a recycled
    pid is never taken for ours)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes() + b"\0" + Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return marker in cmdline and stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _stop_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child once the process that starts
    it is gone, even after ``kill -9`` (``PR_SET_PDEATHSIG``): Fabric's orderer and peers are Go
    binaries that cannot watch their parent as our own children do (``serums.datadir``). A child
    whose parent died while it was being started exits at once. Linux only (elsewhere a no-op)."""
    import ctypes

    parent = os.getpid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None
    pr_set_pdeathsig = 1

    def preexec() -> None:  # in the child, between fork and exec: no imports, no locks
        prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


# --------------------------------------------------------------------------- the network


class FabricNetwork:
    """A Fabric network for the hospitals of ``cfg``, its files under ``cfg.root / "fabric"``."""

    def __init__(
        self,
        cfg: NetworkConfig,
        *,
        bin_dir: Path | None = None,
        passphrase: str | None = None,
        chaincode: str = "serums",
        chaincode_module: str = CHAINCODE_MODULE,
        policy: str | None = None,
        batch_timeout_ms: float | None = None,
        chaincode_command: Callable[[dict], list[str]] | None = None,
        proposal_time_window_s: float = 900.0,
        hosts: dict[str, str] | None = None,
    ):
        self.cfg = cfg
        self.root = cfg.root / "fabric"
        self.passphrase = passphrase
        self.chaincode = chaincode
        self.chaincode_module = chaincode_module
        cc = next((c for c in cfg.chaincodes if c.name == chaincode), None)
        self.policy = policy or (cc.endorsement_policy if cc else "MAJORITY")
        self.batch_timeout_ms = batch_timeout_ms if batch_timeout_ms is not None else max(10.0, cfg.batch.timeout_ms)
        self.chaincode_command = chaincode_command or self._serve_command
        self.proposal_time_window_s = proposal_time_window_s
        self.hosts = dict(hosts or {})  # for a new network; then the ones state.json records
        #: the processes stop (SIGTERM from the kernel) when the process that started them is gone —
        #: set by a supervising caller (``serums up``, ``serums network up`` in the foreground); the
        #: thread that starts them must live as long (the kernel watches the starting thread)
        self.stop_with_parent = False
        self.state = self._load_state()
        self._procs: dict[str, subprocess.Popen] = {}  # the ones this object started (reaped by it)
        self.bin_dir = Path(bin_dir) if bin_dir else Path(self.state["bin"]) if self.state.get("bin") else None

    # ------------------------------------------------------------------ state

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def _load_state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise FabricError(f"{self.state_path} is not valid JSON: {exc}") from exc

    def _save_state(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        tmp.replace(self.state_path)

    def org_dir(self, org: str) -> Path:
        return self.root / "orgs" / org

    def node_dir(self, org: str) -> Path:
        return self.org_dir(org) / ("orderer0" if org == self.cfg.orderer.name else "peer0")

    def host(self, org: str) -> str:
        """Where organisation ``org``'s nodes are reached (an IP address or a DNS name; its TLS
        certificates name it): ``--host`` at ``network up``/``add-hospital``, else 127.0.0.1."""
        return self.state.get("hosts", {}).get(org, LOOPBACK)

    def peer_address(self, org: str) -> str:
        return f"{self.host(org)}:{self.state['ports'][org]['listen']}"

    def tls_ca(self, org: str) -> bytes:
        return (self.org_dir(org) / "tlsca" / "ca.pem").read_bytes()

    @property
    def orderer_address(self) -> str:
        return f"{self.host(self.cfg.orderer.name)}:{self.state['ports'][self.cfg.orderer.name]['listen']}"

    # ------------------------------------------------------------------ processes

    def _tool(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    def _run(self, argv: list[str], env: dict | None = None, what: str = "", timeout: float = 120,
             stderr: bool = True) -> str:
        """Run a Fabric tool; its output (stdout, and stderr unless ``stderr`` is false)."""
        try:
            res = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                                 timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise FabricError(f"{what or argv[1]} did not finish within {timeout:.0f} s") from exc
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            raise FabricError(f"{what or ' '.join(argv[:3])} failed: {' | '.join(tail)}")
        return res.stdout + (res.stderr if stderr else "")

    def reload_state(self) -> None:
        """Take in what another process recorded meanwhile (``network add-hospital`` beside a
        supervisor), so that a restart or :meth:`down` neither forgets nor overwrites it."""
        on_disk = self._load_state()
        if on_disk:
            self.state = on_disk

    def _spawn(self, name: str, argv: list[str], env: dict, marker: str) -> None:
        self.reload_state()
        log_path = self.log_path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=_stop_with_parent() if self.stop_with_parent else None)
        self._procs[name] = proc
        self.state.setdefault("processes", {})[name] = {"pid": proc.pid, "marker": marker, "log": str(log_path)}
        self._save_state()

    def _wait_port(self, name: str, port: int, timeout: float = 60, host: str = LOOPBACK) -> None:
        deadline = time.monotonic() + timeout
        info = self.state["processes"][name]
        while time.monotonic() < deadline:
            if _listening(port, host):
                return
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise FabricError(f"{name} exited during start-up; see {info['log']}")
            time.sleep(0.2)
        raise FabricError(f"{name} does not listen on {host}:{port} after {timeout:.0f} s; see {info['log']}")

    def running(self, name: str) -> bool:
        info = self.state.get("processes", {}).get(name)
        return bool(info) and _alive(info["pid"], info["marker"])

    def stop_process(self, name: str, *, kill: bool = False, grace: float = 10.0) -> bool:
        """Stop one process this network started (SIGTERM, SIGKILL after ``grace``; SIGKILL at once
        with ``kill``). False when it was not running."""
        info = self.state.get("processes", {}).get(name)
        proc = self._procs.pop(name, None)
        if not info or not _alive(info["pid"], info["marker"]):
            if proc is not None:
                proc.poll()
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(info["pid"], signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(info["pid"], info["marker"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(info["pid"], info["marker"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(info["pid"], signal.SIGKILL)
        if proc is not None:
            proc.wait(5)
        return True

    def command(self, name: str) -> tuple[list[str], dict[str, str], str]:
        """How process ``name`` (``orderer``, ``peer0.<org>``, ``chaincode.<org>``) is started: its
        argv, its environment beyond ours, and the marker that tells it from a recycled pid."""
        if name == "orderer":
            o = self.cfg.orderer.name
            return ([self._tool("orderer")], {"FABRIC_CFG_PATH": str(self.node_dir(o)), "FABRIC_LOGGING_SPEC": LOGGING_SPEC},
                    self._tool("orderer"))
        kind, _, org = name.partition(".")
        if kind == "peer0":
            return ([self._tool("peer"), "node", "start"],
                    {"FABRIC_CFG_PATH": str(self.node_dir(org)), "FABRIC_LOGGING_SPEC": LOGGING_SPEC},
                    str(self.node_dir(org)))
        if kind == "chaincode":
            tls = self.org_dir(org) / "chaincode" / "tls"
            spec = {"org": org, "package_id": self.state["package_ids"][org], "module": self.chaincode_module,
                    "address": f"{bind_host(self.host(org))}:{self.state['ports'][org]['ccserver']}",
                    "tls_cert": str(tls / "server.crt"), "tls_key": str(tls / "server.key"),
                    "client_ca": str(tls / "ca.crt")}
            return self.chaincode_command(spec), {}, spec["package_id"]
        raise FabricError(f"no Fabric process is called {name!r}")

    def port(self, name: str) -> int:
        """The port process ``name`` listens on once it serves."""
        if name == "orderer":
            return self.state["ports"][self.cfg.orderer.name]["listen"]
        kind, _, org = name.partition(".")
        return self.state["ports"][org]["ccserver" if kind == "chaincode" else "listen"]

    def process_host(self, name: str) -> str:
        """The host of process ``name``'s organisation."""
        return self.host(self.cfg.orderer.name if name == "orderer" else name.partition(".")[2])

    def serving(self, name: str) -> bool:
        """True when process ``name`` accepts connections on its port (its readiness probe)."""
        return _listening(self.port(name), self.process_host(name))

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def process(self, name: str) -> subprocess.Popen | None:
        """The process ``name`` as this object started it (None when another one did)."""
        return self._procs.get(name)

    def spawn(self, name: str) -> subprocess.Popen:
        """Start process ``name`` (again) without waiting for it: recorded in ``state.json`` (what
        :meth:`down` stops), its output appended to :meth:`log_path`. A supervisor restarts with it."""
        argv, env, marker = self.command(name)
        self._spawn(name, argv, env, marker)
        return self._procs[name]

    def start_orderer(self) -> None:
        self.spawn("orderer")
        self._wait_port("orderer", self.port("orderer"), host=self.process_host("orderer"))
        self._wait_port("orderer", self.state["ports"][self.cfg.orderer.name]["admin"])

    def start_peer(self, org: str) -> None:
        self.spawn(f"peer0.{org}")
        self._wait_port(f"peer0.{org}", self.port(f"peer0.{org}"), host=self.host(org))

    def start_chaincode_server(self, org: str) -> None:
        self.spawn(f"chaincode.{org}")
        self._wait_port(f"chaincode.{org}", self.port(f"chaincode.{org}"), host=self.host(org))

    @staticmethod
    def _serve_command(spec: dict) -> list[str]:
        return [sys.executable, "-m", "serums", "chaincode", "serve", "--chaincode-id", spec["package_id"],
                "--address", spec["address"], "--module", spec["module"], "--tls-cert", spec["tls_cert"],
                "--tls-key", spec["tls_key"], "--client-ca", spec["client_ca"]]

    # ------------------------------------------------------------------ peer CLI as a hospital admin

    def admin_env(self, org: str) -> dict[str, str]:
        o = self.cfg.org(org)
        return {
            "FABRIC_CFG_PATH": str(self.node_dir(org)),
            "CORE_PEER_LOCALMSPID": o.msp_id,
            "CORE_PEER_MSPCONFIGPATH": str(self.org_dir(org) / "admin" / "msp"),
            "CORE_PEER_ADDRESS": self.peer_address(org),
            "CORE_PEER_TLS_ENABLED": "true",
            "CORE_PEER_TLS_ROOTCERT_FILE": str(self.node_dir(org) / "tls" / "ca.crt"),
        }

    def _orderer_flags(self) -> list[str]:
        o = self.cfg.orderer.name
        return ["-o", self.orderer_address, "--tls", "--cafile", str(self.node_dir(o) / "tls" / "ca.crt")]

    # ------------------------------------------------------------------ up

    def up(self, *, timeout: float = 180.0, progress: Callable[[str], None] = log.info) -> dict:
        """Bring the network up (or back up after :meth:`down`); returns the connection profile."""
        if self.bin_dir is None:
            raise FabricError("no Fabric binaries given (FABRIC_BIN or PATH)")
        home = self.bin_dir.parent
        for need in (home / "config" / "core.yaml", home / "config" / "orderer.yaml", home / "builders" / "ccaas"):
            if not need.exists():
                raise FabricError(f"{need} is missing: Fabric's sample config and ccaas builder go next to bin/")
        running = [n for n in self.state.get("processes", {}) if self.running(n)]
        if running:
            raise FabricError(f"the Fabric network in {self.root} is already running ({', '.join(running)})")
        restart = bool(self.state.get("committed"))
        try:
            return self._restart(timeout, progress) if restart else self._create(home, timeout, progress)
        except BaseException:
            self.down()  # nothing half-started keeps running; the logs stay for the reason
            if not restart:  # a half-made channel: the next `up` starts the ledgers afresh
                for org in [*(h.name for h in self.cfg.hospitals), self.cfg.orderer.name]:
                    shutil.rmtree(self.node_dir(org) / "data", ignore_errors=True)
            raise

    def _create(self, home: Path, timeout: float, progress: Callable[[str], None]) -> dict:
        started = time.monotonic()
        cfg = self.cfg
        orgs = [h.name for h in cfg.hospitals]
        o = cfg.orderer.name
        ports = _free_ports(3 + 5 * len(orgs))
        unknown = set(self.hosts) - {*orgs, o}
        if unknown:
            raise FabricError(f"--host for {', '.join(sorted(unknown))}: not an organisation of this network "
                              f"({', '.join([*orgs, o])})")
        self.state = {"bin": str(self.bin_dir), "channel": cfg.channel, "hospitals": orgs, "chaincode": self.chaincode,
                      "policy": self.policy, "batch_timeout_ms": self.batch_timeout_ms, "processes": {},
                      "hosts": {org: h for org, h in self.hosts.items() if h != LOOPBACK},
                      "ports": {o: {"listen": ports[0], "admin": ports[1], "operations": ports[2]}}}
        for i, org in enumerate(orgs):
            p = ports[3 + 5 * i: 8 + 5 * i]
            self.state["ports"][org] = {"listen": p[0], "chaincode": p[1], "operations": p[2], "ccserver": p[3]}
        self._save_state()
        progress("crypto material from the hospitals' CAs, TLS CAs")
        for org in [*orgs, o]:
            org_material(cfg, self.root, org, self.passphrase, self.host(org))
        chan = self.root / "channel"
        chan.mkdir(parents=True, exist_ok=True)
        (chan / "configtx.yaml").write_text(
            yaml.safe_dump(configtx(cfg, self.root, self.state["ports"], self.batch_timeout_ms, self.state["hosts"]),
                           sort_keys=False))
        block = chan / "genesis.block"
        self._run([self._tool("configtxgen"), "-profile", "SerumsChannel", "-outputBlock", str(block),
                   "-channelID", cfg.channel, "-configPath", str(chan)], what="configtxgen")
        progress(f"orderer on {self.orderer_address}, channel {cfg.channel!r}")
        (self.node_dir(o) / "orderer.yaml").write_text(yaml.safe_dump(orderer_yaml(
            home / "config" / "orderer.yaml", cfg.orderer.msp_id, self.node_dir(o), self.state["ports"][o],
            self.org_dir(o) / "tlsca" / "ca.pem", self.host(o))))
        self.start_orderer()
        atls = self.org_dir(o) / "admin" / "tls"
        self._run([self._tool("osnadmin"), "channel", "join", "--channelID", cfg.channel, "--config-block", str(block),
                   "-o", f"127.0.0.1:{self.state['ports'][o]['admin']}", "--ca-file", str(atls / "ca.crt"),
                   "--client-cert", str(atls / "server.crt"), "--client-key", str(atls / "server.key")],
                  what="osnadmin channel join")
        for h in cfg.hospitals:
            progress(f"peer0.{h.name} on {self.peer_address(h.name)}")
            (self.node_dir(h.name) / "core.yaml").write_text(yaml.safe_dump(core_yaml(
                home / "config" / "core.yaml", h.name, h.msp_id, self.node_dir(h.name), self.state["ports"][h.name],
                home / "builders" / "ccaas", self.proposal_time_window_s, self.host(h.name))))
            self.start_peer(h.name)
        for h in cfg.hospitals:
            self._run([self._tool("peer"), "channel", "join", "-b", str(block)], self.admin_env(h.name),
                      what=f"peer0.{h.name} joining {cfg.channel}")
        self.state["joined"] = True
        self._save_state()
        self._deploy_chaincode(progress)
        self.wait_for_discovery(timeout - (time.monotonic() - started), progress)
        self.write_connection_profile()
        progress(f"Fabric network up in {time.monotonic() - started:.0f} s")
        return self.connection_profile()

    def _deploy_chaincode(self, progress: Callable[[str], None], *, sequence: int = 1, policy: str | None = None,
                          new: list[str] | None = None) -> None:
        """Package, install and serve the chaincode for the hospitals in ``new`` (all of them at
        first), approve the definition at ``sequence`` for every hospital, and commit it."""
        cfg, name = self.cfg, self.chaincode
        policy = policy or signature_policy(self.policy, [h.msp_id for h in cfg.hospitals])
        fresh = new if new is not None else [h.name for h in cfg.hospitals]
        self.state.setdefault("package_ids", {})
        for org in fresh:
            tls = self.org_dir(org) / "chaincode" / "tls"
            peer_tls = self.node_dir(org) / "tls"
            connection = {
                "address": f"{self.host(org)}:{self.state['ports'][org]['ccserver']}", "dial_timeout": "10s",
                "tls_required": True, "client_auth_required": True,
                "client_key": (peer_tls / "server.key").read_text(), "client_cert": (peer_tls / "server.crt").read_text(),
                "root_cert": (tls / "ca.crt").read_text(),
            }
            pkg, package_id = ccaas_package(f"{name}_{org}", connection)
            path = self.org_dir(org) / "chaincode" / f"{name}.tar.gz"
            path.write_bytes(pkg)
            self.state["package_ids"][org] = package_id
            progress(f"chaincode {name} for {org}: install, serve")
            self._run([self._tool("peer"), "lifecycle", "chaincode", "install", str(path)], self.admin_env(org),
                      what=f"install on peer0.{org}")
            self._save_state()
            self.start_chaincode_server(org)
        definition = ["-C", cfg.channel, "-n", name, "-v", "1.0", "--sequence", str(sequence),
                      "--signature-policy", policy]
        for h in cfg.hospitals:
            progress(f"chaincode {name} sequence {sequence} approved by {h.name}")
            self._run([self._tool("peer"), "lifecycle", "chaincode", "approveformyorg", *self._orderer_flags(),
                       *definition, "--package-id", self.state["package_ids"][h.name]], self.admin_env(h.name),
                      what=f"approval by {h.name}")
        peers: list[str] = []
        for h in cfg.hospitals:
            peers += ["--peerAddresses", self.peer_address(h.name), "--tlsRootCertFiles",
                      str(self.node_dir(h.name) / "tls" / "ca.crt")]
        progress(f"chaincode {name} committed with policy {policy}")
        self._run([self._tool("peer"), "lifecycle", "chaincode", "commit", *self._orderer_flags(), *definition, *peers],
                  self.admin_env(cfg.hospitals[0].name), what="chaincode commit")
        self.state.update(committed=True, endorsement_policy=policy, sequence=sequence)
        self._save_state()

    def _restart(self, timeout: float, progress: Callable[[str], None]) -> dict:
        started = time.monotonic()
        progress(f"restarting the Fabric network in {self.root}")
        self.start_orderer()
        for h in self.cfg.hospitals:
            self.start_peer(h.name)
        for h in self.cfg.hospitals:
            self.start_chaincode_server(h.name)
        self.wait_for_discovery(timeout - (time.monotonic() - started), progress)
        self.write_connection_profile()
        return self.connection_profile()

    def wait_for_discovery(self, timeout: float, progress: Callable[[str], None]) -> None:
        """Until every hospital's gateway can endorse on every hospital's peer (and so with the
        policy): Fabric needs gossip to reach the other organisations' anchor peers first (~30 s),
        and again after a peer restarts; one gateway may see enough peers for the policy (2 of 3)
        seconds before it sees the third, and a request aimed at that one would find no peer."""
        progress("waiting for gossip and discovery to reach every hospital's peer")
        deadline = time.monotonic() + max(timeout, 5)
        orgs = [h.msp_id for h in self.cfg.hospitals]
        for h in self.cfg.hospitals:
            ident, signer = self.cfg.load_user(h.name, "admin", self.passphrase)
            last = ""
            with connect(ident, signer, self.peer_address(h.name), tls_root_certs=self.tls_ca(h.name),
                         endorse_timeout=10) as gw:
                contract = gw.network(self.cfg.channel).contract(self.chaincode)
                while True:
                    try:
                        contract.new_proposal("org.hyperledger.fabric:GetMetadata",
                                              endorsing_organizations=orgs).endorse()
                        break
                    except GatewayError as exc:
                        last = str(exc)
                    if time.monotonic() >= deadline:
                        raise FabricError(f"the endorsement policy cannot be satisfied through {h.name}'s peer "
                                          f"after {timeout:.0f} s: {last}")
                    time.sleep(1.0)

    # ------------------------------------------------------------------ profile, status, down

    def connection_profile(self) -> dict:
        """Fabric's common connection profile: organisations, peers (TLS CA), orderer, channel."""
        cfg = self.cfg
        peers = {f"peer0.{h.name}": {"url": f"grpcs://{self.peer_address(h.name)}",
                                     "tlsCACerts": {"pem": self.tls_ca(h.name).decode()},
                                     "grpcOptions": {"ssl-target-name-override": (
                                         "localhost" if self.host(h.name) == LOOPBACK else self.host(h.name))}}
                 for h in cfg.hospitals}
        return {
            "name": f"serums-{cfg.channel}", "version": "1.0.0",
            "client": {"organization": cfg.hospitals[0].msp_id},
            "organizations": {h.msp_id: {"mspid": h.msp_id, "peers": [f"peer0.{h.name}"]} for h in cfg.hospitals},
            "peers": peers,
            "orderers": {f"orderer0.{cfg.orderer.name}": {
                "url": f"grpcs://{self.orderer_address}",
                "tlsCACerts": {"pem": self.tls_ca(cfg.orderer.name).decode()}}},
            "channels": {cfg.channel: {"peers": {p: {} for p in peers}, "chaincodes": [self.chaincode]}},
        }

    def write_connection_profile(self) -> Path:
        path = self.root / "connection.json"
        path.write_text(json.dumps(self.connection_profile(), indent=2) + "\n")
        return path

    def status(self) -> list[dict]:
        """Each process this network started: name, pid, whether it runs, its address."""
        out = []
        for name, info in self.state.get("processes", {}).items():
            port = self.port(name)
            out.append({"name": name, "pid": info["pid"], "running": _alive(info["pid"], info["marker"]),
                        "address": f"{self.process_host(name)}:{port}", "log": info["log"]})
        return out

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop what :meth:`up` started (chaincode servers, peers, orderer); ``purge`` also deletes the
        Fabric ledgers and material. Returns the names of the processes stopped."""
        self.reload_state()
        names = list(self.state.get("processes", {}))
        order = sorted(names, key=lambda n: (not n.startswith("chaincode."), n == "orderer"))
        stopped = [n for n in order if self.stop_process(n)]
        if purge and self.root.exists():
            shutil.rmtree(self.root)
            self.state = {}
        return stopped
