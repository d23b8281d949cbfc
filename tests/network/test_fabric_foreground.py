"""``serums network up --engine fabric`` as an operator runs it: in the foreground, supervising.

A chaincode server and a peer killed with SIGKILL are started again by it (back-off, logged), the
hospital's peer endorses and commits afterwards, ``network status`` names the supervisor,
a hospital added beside it (``network add-hospital``) is supervised too; ``serums network down``
from another shell stops it and everything it ran; started again on the
same ledgers and then killed with SIGKILL itself, it leaves no Fabric process behind (the kernel's
parent-death signal), and ``status`` then says nothing supervises. ``--detach`` returns at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from network import NetworkConfig
from network.client import GatewayError, connect
from network.fabric.network import _alive
from tests.conftest import fabric_bin

pytestmark = [pytest.mark.fabric, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "SERUMS_DATA_DIR": str(data_dir), "FABRIC_BIN": str(fabric_bin())}
    for var in ("SERUMS_NODE_ADDRESS", "SERUMS_KEY_PASSPHRASE", "SERUMS_ENGINE"):
        env.pop(var, None)
    return env


def _serums(env: dict, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serums", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _foreground(env: dict, *argv: str) -> tuple[subprocess.Popen, list[str]]:
    """``serums network up`` in the foreground; its output lines so far (a thread keeps reading)."""
    proc = subprocess.Popen([sys.executable, "-m", "serums", "network", "up", "--engine", "fabric", *argv],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True).start()
    return proc, out


def _wait_for(out: list[str], text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in "".join(out):
        assert proc.poll() is None or text in "".join(out), "".join(out)
        assert time.monotonic() < deadline, f"no {text!r} within {timeout:.0f}s:\n{''.join(out)}"
        time.sleep(0.2)


def _processes(data_dir: Path) -> dict:
    return json.loads((data_dir / "network" / "fabric" / "state.json").read_text())["processes"]


def _submit(data_dir: Path, org: str, timeout: float = 60, write: bool = True) -> str:
    """A write (unless ``write`` is false) endorsed and committed through ``org``'s own peer (policy
    ANY: its own chaincode server runs it), and a read; retried while that peer is still coming back."""
    cfg = NetworkConfig.load(data_dir / "network")
    fab = data_dir / "network" / "fabric"
    port = json.loads((fab / "state.json").read_text())["ports"][org]["listen"]
    ident, signer = cfg.load_user(org, "admin")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with connect(ident, signer, f"127.0.0.1:{port}",
                         tls_root_certs=(fab / "orgs" / org / "tlsca" / "ca.pem").read_bytes()) as gw:
                contract = gw.network(cfg.channel).contract("serums", "UserContract")
                if write:
                    contract.submit_json("RegisterHospital", org.upper())
                return contract.evaluate_json("GetHospital", cfg.org(org).msp_id)["name"]
        except GatewayError as exc:
            if exc.chaincode_status is not None or time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_network_up_supervises_in_the_foreground_and_its_processes_stop_with_it(tmp_path):
    env = _env(tmp_path)
    up, out = _foreground(env, "--hospitals", "lothian,zmc", "--policy", "ANY")
    try:
        _wait_for(out, "supervising the Fabric network", up, 240)
        status = json.loads(_serums(env, "network", "status", "--json").stdout)
        assert status["supervised_by"] == {"pid": up.pid, "command": "serums network up"}
        assert status["processes"] and all(p["running"] for p in status["processes"])
        # a chaincode server and a peer die: both restarted by the supervisor, recorded for `down`
        procs = _processes(tmp_path)
        for name in ("chaincode.zmc", "peer0.zmc"):
            os.kill(procs[name]["pid"], signal.SIGKILL)
        for name in ("chaincode.zmc", "peer0.zmc"):
            _wait_for(out, f"{name}: serving again after restart #1", up, 120)
            assert f"{name} was killed by SIGKILL" in "".join(out)
            info = _processes(tmp_path)[name]
            assert info["pid"] != procs[name]["pid"] and _alive(info["pid"], info["marker"])
            assert f"[supervisor] {name}: restart #1" in Path(info["log"]).read_text()
        assert _submit(tmp_path, "zmc") == "ZMC"
        # a hospital added beside the supervisor: its processes are supervised from then on
        add = _serums(env, "network", "add-hospital", "fcrb", "--engine", "fabric", timeout=300)
        assert add.returncode == 0, add.stdout + add.stderr
        _wait_for(out, "chaincode.fcrb: supervised from now on", up, 30)
        added = _processes(tmp_path)["chaincode.fcrb"]
        os.kill(added["pid"], signal.SIGKILL)
        _wait_for(out, "chaincode.fcrb: serving again after restart #1", up, 120)
        assert "chaincode.fcrb is gone" in "".join(out)
        assert _submit(tmp_path, "fcrb", write=False) == "Fcrb"  # (add-hospital registered it)
        procs = _processes(tmp_path)
        # a second supervisor is refused in one line, naming this one
        again = _serums(env, "network", "up", "--engine", "fabric")
        assert again.returncode == 1 and f"pid {up.pid}" in again.stderr and again.stderr.count("\n") == 1
        # `network down` from another shell: the supervisor stops, and with it the whole network
        down = _serums(env, "network", "down")
        assert down.returncode == 0, down.stderr
        assert up.wait(60) == 0 and "Fabric network stopped" in "".join(out)
        assert not [n for n, p in _processes(tmp_path).items() if _alive(p["pid"], p["marker"])]
        assert set(down.stdout.removeprefix("stopped ").strip().split(", ")) == set(procs)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        _serums(env, "network", "down")  # (after a failure: what add-hospital started, too)

    # up again on the same ledgers, then the supervisor is killed with SIGKILL: nothing outlives it
    up, out = _foreground(env)
    try:
        _wait_for(out, "supervising the Fabric network", up, 240)
        procs = _processes(tmp_path)
        assert all(_alive(p["pid"], p["marker"]) for p in procs.values())
        up.kill()
        up.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p["pid"], p["marker"]) for p in procs.values()):
            time.sleep(0.5)
        survivors = [n for n, p in procs.items() if _alive(p["pid"], p["marker"])]
        assert not survivors, f"Fabric processes outlived their serums network up: {survivors}"
        status = _serums(env, "network", "status")
        assert status.returncode == 1 and "not supervised" in status.stdout and "stopped" in status.stdout
    finally:
        if up.poll() is None:
            up.kill()
        _serums(env, "network", "down")

    # --detach: started, unsupervised, and the command returns
    detached = _serums(env, "network", "up", "--engine", "fabric", "--detach", timeout=240)
    try:
        assert detached.returncode == 0 and "detached" in detached.stdout, detached.stderr
        status = _serums(env, "network", "status", "--json")
        doc = json.loads(status.stdout)
        assert doc["supervised_by"] is None and all(p["running"] for p in doc["processes"])
    finally:
        down = _serums(env, "network", "down")
    assert down.returncode == 0 and not [n for n, p in _processes(tmp_path).items() if _alive(p["pid"], p["marker"])]
