"""Staying up: ``serums up`` under HTTP load, its node killed with SIGKILL mid-load.

The supervisor restarts the node while the gateway keeps serving: requests that need the ledger
answer 503 ``ledger-unavailable`` with Retry-After meanwhile (never another 5xx), service resumes
by itself, every 201 answer's transaction is on every peer's ledger, and the ledger verifies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from network import NetworkConfig
from network.node.store import PeerStore
from serums.supervisor import free_port

ROOT = Path(__file__).resolve().parents[2]
THREADS = 4


def _login(base: str, user: dict) -> str:
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/auth/login", json={"username": user["username"], "method": "text", "text_key": user["text_key"]})
        assert r.status_code == 200, r.text
        r = c.post("/auth/login/complete", json={"challenge": r.json()["challenge"],
                                                 "totp_code": pyotp.TOTP(user["totp_secret"]).now()})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


def _serums_up(env: dict, *args: str) -> tuple[subprocess.Popen, list[str], threading.Event]:
    """``serums up`` with ``args`` in the background: the process, its output lines so far (a thread
    keeps reading them) and an event set once it says it is up."""
    up = subprocess.Popen([sys.executable, "-m", "serums", "up", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    out: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        for line in up.stdout:
            out.append(line)
            if "Ctrl-C stops everything" in line:
                ready.set()

    threading.Thread(target=drain, daemon=True).start()
    return up, out, ready


def _interrupt(up: subprocess.Popen, timeout: float) -> None:
    """Ctrl-C to ``serums up``; killed if it has not stopped within ``timeout`` seconds."""
    up.send_signal(signal.SIGINT)
    try:
        up.wait(timeout)
    except subprocess.TimeoutExpired:
        up.kill()
        up.wait(10)


@pytest.mark.slow
def test_the_node_is_restarted_under_load_and_nothing_acknowledged_is_lost(tmp_path):
    env = {**os.environ, "SERUMS_DATA_DIR": str(tmp_path)}
    for var in ("SERUMS_DATABASE_URL", "SERUMS_AUTH_DATABASE_URL", "SERUMS_NODE_ADDRESS", "SERUMS_KEY_PASSPHRASE"):
        env.pop(var, None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    up, out, ready = _serums_up(env, "--patients", "30", "--listen", f"127.0.0.1:{port}",
                                "--node-listen", f"127.0.0.1:{free_port()}")
    try:
        assert ready.wait(240), "".join(out)
        users = {u["username"]: u for u in json.loads((tmp_path / "demo-users.json").read_text())["users"]}
        token = _login(base, users["dr.hughes"])
        patient = users["patient.lothian1"]["user_id"]
        answers: list[tuple[float, int, str | None, str | None, str | None]] = []  # (t, status, type, tx, retry)
        stop = threading.Event()
        lock = threading.Lock()

        def load() -> None:
            with httpx.Client(base_url=base, timeout=90, headers={"Authorization": f"Bearer {token}"}) as c:
                while not stop.is_set():
                    r = c.post("/doctors/requests", json={"patient_id": patient, "sections": ["oncology.treatment"],
                                                          "purpose": "treatment"})
                    body = r.json() if r.headers.get("content-type", "").endswith("json") else {}
                    with lock:
                        answers.append((time.monotonic(), r.status_code, body.get("type"), body.get("transaction_id"),
                                        r.headers.get("Retry-After")))
                    if r.status_code == 503:
                        time.sleep(0.1)

        workers = [threading.Thread(target=load) for _ in range(THREADS)]
        for w in workers:
            w.start()
        time.sleep(3)
        node_pid = json.loads((tmp_path / "node.json").read_text())["pid"]
        os.kill(node_pid, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 120
        while time.monotonic() < deadline:  # until service has resumed for a while
            with lock:
                resumed = [a for a in answers if a[0] > killed and a[1] == 201]
            if len(resumed) >= 10:
                break
            time.sleep(0.5)
        stop.set()
        for w in workers:
            w.join(120)
        assert up.poll() is None, "".join(out)  # serums up (and its gateway) stayed up

        statuses = {a[1] for a in answers}
        assert all(s in (201, 503) or 400 <= s < 500 for s in statuses), statuses
        unavailable = [a for a in answers if a[1] == 503]
        assert unavailable and all(a[2] == "/problems/ledger-unavailable" and a[4] for a in unavailable)
        acked = [a[3] for a in answers if a[1] == 201]
        assert len([a for a in answers if a[1] == 201 and a[0] > killed]) >= 10, "service did not resume"
        assert all(acked)
        new_pid = json.loads((tmp_path / "node.json").read_text())["pid"]
        assert new_pid != node_pid
        text = "".join(out)
        assert "node was killed by SIGKILL" in text and "node: restart #1" in text, text
        assert "serving again after restart #1" in text
        assert "[supervisor] node: restart #1" in (tmp_path / "logs" / "node.log").read_text()
    finally:
        _interrupt(up, 90)
    cfg = NetworkConfig.load(tmp_path / "network")
    for h in cfg.hospitals:
        store = PeerStore(cfg.ledger_dir() / f"peer0.{h.name}.db")
        try:
            missing = [tx for tx in acked if (store.tx_status(tx) or (None, -1))[1] != 0]
        finally:
            store.close()
        assert missing == [], f"{h.name}: {len(missing)} acknowledged transactions not VALID on the ledger"
    verify = subprocess.run([sys.executable, "-m", "serums", "ledger", "verify"], env=env, capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert verify.returncode == 0 and "ledger verified: OK" in verify.stdout, verify.stdout + verify.stderr


@pytest.mark.slow
def test_after_kill_9_of_serums_up_its_children_stop_and_the_data_directory_is_free(tmp_path):
    from serums.datadir import running_owner
    from serums.supervisor import port_in_use

    env = {**os.environ, "SERUMS_DATA_DIR": str(tmp_path)}
    for var in ("SERUMS_DATABASE_URL", "SERUMS_AUTH_DATABASE_URL", "SERUMS_NODE_ADDRESS", "SERUMS_KEY_PASSPHRASE"):
        env.pop(var, None)
    port, node_port = free_port(), free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "serums", "up", "--patients", "20", "--listen", f"127.0.0.1:{port}",
         "--node-listen", f"127.0.0.1:{node_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if not line or "Ctrl-C stops everything" in line:
                break
        assert "SERUMS is up" in "".join(lines), "".join(lines)
        owner = running_owner(tmp_path)
        assert owner is not None and owner.pid == up.pid and owner.node_pid
        deadline = time.monotonic() + 20  # the last child may still be between fork and exec
        children = _children_of(up.pid)
        while time.monotonic() < deadline and not any("serums.notifications" in a for a in children.values()):
            time.sleep(0.2)
            children = _children_of(up.pid)
        assert any("serums.notifications" in argv for argv in children.values()), children
        up.kill()
        up.wait(10)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and (running_owner(tmp_path) is not None or port_in_use("127.0.0.1", port)):
            time.sleep(0.5)
        assert running_owner(tmp_path) is None, "the node outlived its serums up"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.5)
        survivors = {pid: argv for pid, argv in children.items() if _alive(pid)}
        assert not survivors, f"children outlived their serums up: {survivors}"
        assert not port_in_use("127.0.0.1", port) and not port_in_use("127.0.0.1", node_port)
        assert (tmp_path / "up.json").exists()  # left behind by kill -9: stale, and known to be
        demo = subprocess.run([sys.executable, "-m", "serums", "demo"], env=env, capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
        assert demo.returncode == 1 and "SERUMS is not running" in demo.stderr
    finally:
        _stop(up)  # a failure before the kill must not leave a running system behind


def _stop(proc: subprocess.Popen) -> None:
    """Stop a ``serums up`` still running (Ctrl-C, then kill): it owns a node, a gateway and ports."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _children_of(pid: int) -> dict[int, str]:
    """The direct children of ``pid`` and their command lines, read from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return out


def _alive(pid: int) -> bool:
    """True while ``pid`` runs and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
