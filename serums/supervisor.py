"""Child processes of ``serums up``: the embedded node and the gunicorn gateway.

Each child runs in its own process group with its output in ``<data dir>/logs/<name>.log``; the
supervisor waits until it answers, notices when it dies, and stops everything cleanly (SIGTERM,
then SIGKILL after a grace period) on Ctrl-C or when one child fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
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


def node_ready(cfg: NetworkConfig, address: str, passphrase: str | None = None) -> Callable[[], bool]:
    """A probe that is true once the node at ``address`` answers an evaluation (GetMetadata, which
    every chaincode answers) from the first hospital's admin."""
    ident, signer = cfg.load_user(cfg.hospitals[0].name, "admin", passphrase)
    chaincode = cfg.chaincodes[0].name if cfg.chaincodes else "serums"

    def probe() -> bool:
        try:
            with connect(ident, signer, address, evaluate_timeout=2) as gw:
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


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child, closed when it exits
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            start_new_session=True,
        )
        out.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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


class Supervisor:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: list[Child] = []

    def spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              ready: Callable[[], bool], timeout: float = 60.0) -> Child:
        child = Child(name, argv, self.log_dir / f"{name}.log", env or {})
        child.start()
        self.children.append(child)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise CommandError(f"{name} exited during start-up; last lines of {child.log}:\n{child.tail()}")
            if ready():
                return child
            time.sleep(0.2)
        child.stop()
        raise CommandError(f"{name} did not become ready within {timeout:.0f}s; see {child.log}")

    def wait(self, stop_event=None) -> int:
        """Block until Ctrl-C/SIGTERM or until a child dies; returns the exit code for ``serums up``."""
        stopping = {"flag": False}

        def _stop(*_):
            stopping["flag"] = True

        old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stopping["flag"] and not (stop_event is not None and stop_event.is_set()):
                for c in self.children:
                    if not c.alive():
                        print(f"[up] {c.name} stopped unexpectedly; last lines of {c.log}:\n{c.tail()}",
                              file=sys.stderr, flush=True)
                        return 1
                time.sleep(0.3)
            return 0
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def stop_all(self) -> None:
        for c in reversed(self.children):
            c.stop()
