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

from .cli import CommandError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


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
