"""Child processes of ``serums up``: the embedded node (or the Fabric orderer, peers and chaincode
servers), the gunicorn gateway and the notification service.

Each child runs in its own process group with its output in ``<data dir>/logs/<name>.log``; the
supervisor waits until it answers and keeps it up. A child with a :class:`RestartPolicy` (the
node) is restarted with exponential back-off when it dies — each event is written to stdout and
to the child's log — while the others keep serving (the gateway answers 503
``ledger-unavailable`` with ``Retry-After`` meanwhile); after repeated fast failures the
supervisor gives up with a message saying so. Ctrl-C, a child without a policy dying, or giving
up stops everything cleanly (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from network import GatewayError, NetworkConfig, connect

from .cli import CommandError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def node_ready(cfg: NetworkConfig, address: str, passphrase: str | None = None,
               tls: dict[str, bytes] | None = None) -> Callable[[], bool]:
    """A probe that is true once the node at ``address`` answers an evaluation (GetMetadata, which
    every chaincode answers) from the first hospital's admin (over ``tls``: :func:`network.client_tls_options`)."""
    ident, signer = cfg.load_user(cfg.hospitals[0].name, "admin", passphrase)
    chaincode = cfg.chaincodes[0].name if cfg.chaincodes else "serums"

    def probe() -> bool:
        try:
            with connect(ident, signer, address, evaluate_timeout=2, **(tls or {})) as gw:
                gw.network(cfg.channel).contract(chaincode).evaluate("org.hyperledger.fabric:GetMetadata")
            return True
        except GatewayError:
            return False

    return probe


def start_node_process(data_dir: Path, address: str, *, log: Path | None = None, timeout: float = 60.0,
                       passphrase: str | None = None) -> subprocess.Popen:
    """``serums node`` for ``data_dir`` in its own process, returned once it answers (tests and
    benchmarks; ``serums up`` supervises its node with :class:`Supervisor`)."""
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "serums", "--data-dir", str(data_dir), "node", "--listen", address],
                            stdout=out, stderr=subprocess.STDOUT)
    if log is not None:
        out.close()
    ready = node_ready(NetworkConfig.load(Path(data_dir) / "network"), address, passphrase)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
            raise RuntimeError(f"the node exited during start-up (code {proc.returncode}) {tail}")
        if ready():
            return proc
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the node did not answer on {address} within {timeout:.0f}s")


@dataclass(frozen=True)
class RestartPolicy:
    """How a child that dies is brought back: after ``initial`` seconds, doubling per consecutive
    fast failure up to ``maximum``; a run shorter than ``fast`` seconds (or a start that never
    becomes ready within ``ready_timeout``) is a fast failure, and after ``give_up_after`` of them
    in a row the supervisor gives up (``serums up`` then stops with a message saying so)."""

    initial: float = 0.5
    maximum: float = 30.0
    fast: float = 30.0
    give_up_after: int = 5
    ready_timeout: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.maximum, self.initial * 2 ** max(0, failures - 1))


class Foreign:
    """A process that another one started (``network add-hospital`` beside a supervisor): no exit
    status to collect, alive while ``alive()`` says so; the supervisor restarts it as its own child."""

    returncode = None

    def __init__(self, pid: int, alive: Callable[[], bool]):
        self.pid = pid
        self._alive = alive
        self.gone = False

    def poll(self) -> int | None:
        self.gone = self.gone or not self._alive()
        return 0 if self.gone else None

    def wait(self, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.1)
        return 0


class GaveUp(Exception):
    """A supervised child failed fast too often in a row."""


@dataclass
class Child:
    """One supervised process: its command line, log, environment, inherited descriptors, the
    probe that says it serves, and whether (and how) it is restarted when it dies."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()
    ready: Callable[[], bool] = lambda: True
    restart: RestartPolicy | None = None
    #: starts the process instead of ``argv`` (a Fabric node: the network records each start)
    launch: Callable[[], subprocess.Popen] | None = None
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    fast_failures: int = 0
    #: "running" (answering), "starting" (started, not ready yet), "waiting" (restart scheduled)
    state: str = "starting"
    restart_at: float = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.state = "starting"
        if self.launch is not None:
            self.proc = self.launch()
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child, closed when it exits
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            start_new_session=True, pass_fds=self.pass_fds,
        )
        out.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_description(self) -> str:
        if isinstance(self.proc, Foreign):
            return "is gone" if self.proc.gone else "did not become ready"
        code = self.proc.returncode if self.proc is not None else None
        if code is None:
            return "did not become ready"
        return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"

    def note(self, message: str) -> None:
        """A supervision event: on stdout and in the child's own log."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"[up] {message}", flush=True)
        with contextlib.suppress(OSError), open(self.log, "a") as fh:
            fh.write(f"{stamp} [supervisor] {message}\n")

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    # ------------------------------------------------------------------ supervision

    def check(self, now: float) -> None:
        """One supervision step: notice readiness, a death, a start that hangs; restart when due.
        Raises :class:`GaveUp` (restartable child) or :class:`CommandError` (one that is not)."""
        if self.state == "waiting":
            if now >= self.restart_at:
                self.restarts += 1
                self.start()
                self.note(f"{self.name}: restart #{self.restarts} (pid {self.proc.pid})")
            return
        if self.alive():
            if self.state == "starting":
                if self.ready():
                    self.state = "running"
                    if self.restarts:
                        self.note(f"{self.name}: serving again after restart #{self.restarts}")
                elif self.restart is not None and now - self.started_at > self.restart.ready_timeout:
                    self.note(f"{self.name}: not ready within {self.restart.ready_timeout:.0f}s; stopping it")
                    self.stop()
                    self._failed(now)
            return
        if self.restart is None:
            raise CommandError(f"{self.name} stopped unexpectedly; last lines of {self.log}:\n{self.tail()}")
        self._failed(now)

    def _failed(self, now: float) -> None:
        assert self.restart is not None
        ran = now - self.started_at
        self.fast_failures = self.fast_failures + 1 if ran < self.restart.fast else 1
        if self.fast_failures >= self.restart.give_up_after:
            self.note(f"{self.name} {self.exit_description()}; giving up after {self.fast_failures} failures in a "
                      f"row, each within {self.restart.fast:.0f}s of its start")
            raise GaveUp(f"{self.name} keeps failing ({self.fast_failures} times in a row, each within "
                         f"{self.restart.fast:.0f}s of starting); last lines of {self.log}:\n{self.tail()}")
        delay = self.restart.delay(self.fast_failures)
        self.note(f"{self.name} {self.exit_description()} after {ran:.1f}s; restarting in {delay:.1f}s")
        self.state = "waiting"
        self.restart_at = now + delay


class Supervisor:
    """Starts children, waits until each serves, and keeps them up: a child with a
    :class:`RestartPolicy` (the node, the Fabric orderer, peers and chaincode servers) is restarted with
    back-off when it dies, while the others keep serving; one without (the gateway) ends the run."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: list[Child] = []
        #: called at every supervision step (e.g. to adopt processes another command started)
        self.watches: list[Callable[[], None]] = []

    def spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              ready: Callable[[], bool], timeout: float = 60.0, pass_fds: tuple[int, ...] = (),
              restart: RestartPolicy | None = None) -> Child:
        """Start a child and wait until ``ready()``; a failure to start is a :class:`CommandError`."""
        child = Child(name, argv, self.log_dir / f"{name}.log", env or {}, tuple(pass_fds), ready, restart)
        child.start()
        self.children.append(child)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise CommandError(f"{name} exited during start-up; last lines of {child.log}:\n{child.tail()}")
            if ready():
                child.state = "running"
                return child
            time.sleep(0.2)
        child.stop()
        raise CommandError(f"{name} did not become ready within {timeout:.0f}s; see {child.log}")

    def adopt(self, name: str, proc: subprocess.Popen, *, log: Path, launch: Callable[[], subprocess.Popen],
              ready: Callable[[], bool], restart: RestartPolicy, argv: list[str] | None = None) -> Child:
        """Supervise a process already started and serving (a Fabric node :meth:`FabricNetwork.up`
        started): when it dies, ``launch()`` starts it again, with the same back-off and give-up."""
        child = Child(name, argv or [], log, ready=ready, restart=restart, launch=launch, proc=proc,
                      started_at=time.monotonic(), state="running")
        self.children.append(child)
        return child

    def wait(self, stop_event=None, poll: float = 0.3) -> int:
        """Supervise until Ctrl-C/SIGTERM (0) or until a child that is not restarted dies or a
        restarted one keeps failing (1, with the reason on stderr)."""
        stopping = {"flag": False}

        def _stop(*_):
            stopping["flag"] = True

        main = threading.current_thread() is threading.main_thread()
        old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            while not stopping["flag"] and not (stop_event is not None and stop_event.is_set()):
                for watch in self.watches:
                    watch()
                for c in list(self.children):
                    try:
                        c.check(time.monotonic())
                    except (GaveUp, CommandError) as exc:
                        print(f"[up] {exc}", file=sys.stderr, flush=True)
                        return 1
                time.sleep(poll)
            return 0
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def stop_all(self) -> None:
        for c in reversed(self.children):
            c.stop()
