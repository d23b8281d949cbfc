"""One owner per data directory, no silent port fallback, stale runtime files recognised, and a
private data directory — with real ``serums`` processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from network import ChaincodeDefinition, init_network
from serums.config import Settings
from serums.datadir import running_file, running_owner
from serums.supervisor import free_port, start_node_process

ROOT = Path(__file__).resolve().parents[2]


def _env(data: Path) -> dict[str, str]:
    env = {**os.environ, "SERUMS_DATA_DIR": str(data), "SERUMS_AUTH_ARGON2_MEMORY_KIB": "1024",
           "SERUMS_AUTH_ARGON2_ITERATIONS": "1"}
    for var in ("SERUMS_DATABASE_URL", "SERUMS_AUTH_DATABASE_URL", "SERUMS_KEY_PASSPHRASE", "SERUMS_NODE_ADDRESS"):
        env.pop(var, None)
    return env


def serums(data: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serums", *args], env=_env(data), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture
def data(tmp_path) -> Path:
    cfg = init_network(tmp_path / "network", ["lothian", "zmc"])
    cfg.chaincodes = [ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode")]
    cfg.save()
    return tmp_path


@pytest.fixture
def node(data):
    address = f"127.0.0.1:{free_port()}"
    proc = start_node_process(data, address, log=data / "node.log", timeout=60)
    yield proc, address
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def _one_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1, run.stderr
    return run.stderr


def test_a_second_node_on_the_same_data_directory_exits_at_once_naming_the_first(data, node):
    proc, address = node
    started = time.monotonic()
    err = _one_line(serums(data, "node", "--listen", f"127.0.0.1:{free_port()}"))
    assert time.monotonic() - started < 20
    assert f"in use by serums node (pid {proc.pid})" in err
    assert json.loads((data / "node.json").read_text())["address"] == address  # not overwritten
    assert proc.poll() is None


def test_serums_up_refuses_a_data_directory_in_use_before_touching_anything(data, node):
    proc, _ = node
    err = _one_line(serums(data, "up", "--patients", "10", "--listen", f"127.0.0.1:{free_port()}",
                           "--node-listen", f"127.0.0.1:{free_port()}"))
    assert f"in use by serums node (pid {proc.pid})" in err
    assert not (data / "vaults").exists() and not (data / "auth.db").exists()


def test_an_explicit_busy_port_is_an_error_never_a_fallback(data):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = _one_line(serums(data, "up", "--patients", "10", "--listen", f"127.0.0.1:{free_port()}",
                               "--node-listen", f"127.0.0.1:{port}"))
        assert f"--node-listen 127.0.0.1:{port}: that port is already in use" in err
        err = _one_line(serums(data, "node", "--listen", f"127.0.0.1:{port}"))
        assert f"cannot serve on 127.0.0.1:{port}: that port is already in use" in err
    assert not (data / "node.json").exists() and not (data / "vaults").exists()


def test_two_nodes_never_share_a_port(data, node, tmp_path_factory):
    """gRPC's SO_REUSEPORT would let a node of another data directory bind the same port and
    receive half of the connections; it is off."""
    _, address = node
    other = tmp_path_factory.mktemp("other")
    cfg = init_network(other / "network", ["lothian"])
    cfg.chaincodes = [ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode")]
    cfg.save()
    err = _one_line(serums(other, "node", "--listen", address))
    assert f"cannot serve on {address}: that port is already in use" in err


def test_files_left_by_a_killed_node_are_recognised_as_stale(data, node):
    proc, address = node
    settings = Settings.from_env({"SERUMS_DATA_DIR": str(data)})
    assert running_owner(data).pid == proc.pid and settings.running_node_address() == address
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert (data / "node.json").exists()  # kill -9 left it behind
    (data / "up.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "node": address}))
    assert running_owner(data) is None  # the kernel released the lock
    assert settings.running_node_address() is None and running_file(data, "up.json") is None
    demo = serums(data, "demo")
    assert demo.returncode == 1 and "SERUMS is not running" in demo.stderr
    new_address = f"127.0.0.1:{free_port()}"
    again = start_node_process(data, new_address, log=data / "node.log", timeout=60)  # takes over at once
    try:
        assert running_owner(data).pid == again.pid and settings.running_node_address() == new_address
        assert not (data / "up.json").exists()  # cleared by the new owner
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(30)


def _loose(root: Path) -> list[str]:
    bad = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if not path.is_symlink() and mode & ~want:
            bad.append(f"{path.relative_to(root.parent)} {mode:o}")
    return bad


def test_the_data_directory_is_private(tmp_path):
    data = tmp_path / "serums"
    for args in (["network", "init", "--hospitals", "lothian,zmc"],
                 ["chaincode", "deploy", "serums", "--module", "chaincode.serums:serums_chaincode"], ["auth", "init"],
                 ["vault", "init", "--hospital", "lothian"]):
        run = serums(data, *args)
        assert run.returncode == 0, run.stderr
    proc = start_node_process(data, f"127.0.0.1:{free_port()}", log=tmp_path / "node.log", timeout=60)
    try:
        assert (data / "node.json").exists() and (data / "serums.lock").exists()
        for name in ("auth.db", "vaults/lothian/vault.db", "vaults/lothian/kek.key", "network/network.json"):
            assert (data / name).exists(), name
        assert any((data / "network").rglob("*.db")), "the ledger's stores"
        assert _loose(data) == []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_an_existing_loose_data_directory_is_tightened_by_its_owner(data):
    data.chmod(0o755)
    proc = start_node_process(data, f"127.0.0.1:{free_port()}", log=data.parent / f"{data.name}-node.log", timeout=60)
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_main_in_process_creates_private_files_and_restores_the_callers_umask(tmp_path, capsys):
    from serums.cli import main

    old = os.umask(0o022)
    try:
        assert main(["--data-dir", str(tmp_path / "d"), "vault", "init", "--hospital", "lothian"]) == 0
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(old)
    assert _loose(tmp_path / "d") == []
