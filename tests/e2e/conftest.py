"""The whole stack as users meet it: a real embedded node process (``python -m serums node``) — or,
for the modules parametrised over ``ENGINES``, a real Fabric network as well — a
real gunicorn with two workers serving ``serums.wsgi:app``, and httpx as the client.

The stack is set up once per test session: the network (three hospitals, the ``serums``
chaincode), hospitals, rules, vault identities and vaults with the fixture patients split between
Lothian and Zmc, all through :class:`gateway.services.Services` exactly as ``serums up`` does.
Users are enrolled through the same services (tests enrol their own, so they never depend on
each other). Nothing is mocked; Argon2 is made cheap through its environment variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from auth import AuthConfig
from gateway.services import GatewaySettings, Services
from serums.supervisor import free_port, start_node_process
from tests.gateway.stack import Http, World, init_data_dir, provision

ROOT = Path(__file__).resolve().parents[2]
FAST_ARGON = {"SERUMS_AUTH_ARGON2_MEMORY_KIB": "1024", "SERUMS_AUTH_ARGON2_ITERATIONS": "1",
              "SERUMS_AUTH_ARGON2_PARALLELISM": "1"}


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_node(data_dir: Path, address: str, log: Path) -> subprocess.Popen:
    """``serums node`` in its own process; ready when it answers an evaluation."""
    return start_node_process(data_dir, address, log=log)


def start_gunicorn(env: dict[str, str], port: int, log: Path, workers: int = 2, threads: int = 4) -> subprocess.Popen:
    """``gunicorn -w 2 --threads 4 serums.wsgi:app``: two processes, each serving four requests at once."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{port}",
         "--timeout", "120", "--graceful-timeout", "5", "serums.wsgi:app"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    _stop(proc)
    raise RuntimeError("gunicorn did not start")


@dataclass
class Stack:
    data_dir: Path
    world: World
    base_url: str
    http: Http
    gunicorn_log: Path

    @property
    def services(self) -> Services:
        return self.world.services


#: a module runs its tests on both ledgers with ``pytestmark = pytest.mark.parametrize("stack", ENGINES,
#: indirect=True)``; real Fabric: a Raft orderer, a peer per hospital, the chaincode on our shim, TLS
ENGINES = ["embedded", pytest.param("fabric", marks=pytest.mark.fabric)]


@pytest.fixture(scope="session")
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    engine = getattr(request, "param", "embedded")
    data_dir = tmp_path_factory.mktemp(f"e2e-{engine}")
    cfg = init_data_dir(data_dir)
    node = net = None
    tls_ca: str | None = None
    if engine == "fabric":
        from network.fabric import FabricNetwork
        from tests.conftest import fabric_bin

        net = FabricNetwork(cfg, bin_dir=fabric_bin(), batch_timeout_ms=10)
        net.up(timeout=300)  # (a failed up stops what it started)
        node_address = net.peer_address(cfg.hospitals[0].name)
        tls_ca = str(net.org_dir(cfg.hospitals[0].name) / "tlsca" / "ca.pem")
    else:
        node_address = f"127.0.0.1:{free_port()}"
        node = start_node(data_dir, node_address, data_dir / "node.log")
    services = gunicorn = client = None
    try:
        env = {**os.environ, **FAST_ARGON, "SERUMS_DATA_DIR": str(data_dir), "SERUMS_NODE_ADDRESS": node_address}
        for var in ("SERUMS_DATABASE_URL", "SERUMS_AUTH_DATABASE_URL", "SERUMS_KEY_PASSPHRASE", "SERUMS_IPFS_API",
                    "SERUMS_NODE_TLS_CA", "SERUMS_ENGINE"):
            env.pop(var, None)
        if tls_ca:
            env.update(SERUMS_NODE_TLS_CA=tls_ca, SERUMS_ENGINE=engine)
        services = Services.open(GatewaySettings(data_dir, node_address=node_address, node_tls_ca=tls_ca,
                                                 engine=engine),
                                 auth_config=AuthConfig.from_env(data_dir, env=env))
        world = provision(services)
        port = free_port()
        gunicorn = start_gunicorn(env, port, data_dir / "gunicorn.log")
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base, timeout=60)
        yield Stack(data_dir, world, base, Http(client), data_dir / "gunicorn.log")
    finally:
        if client is not None:
            client.close()
        if gunicorn is not None:
            _stop(gunicorn)
        if services is not None:
            services.close()
        if node is not None:
            _stop(node, signal.SIGINT)
        if net is not None:
            net.down()
