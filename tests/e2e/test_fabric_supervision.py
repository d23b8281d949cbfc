"""Staying up on real Fabric: ``serums up --engine fabric`` with the first hospital's chaincode
server killed with SIGKILL while the system runs. The supervisor starts it again by itself (logged),
the gateway never answers a 5xx other than 503 ``ledger-unavailable`` meanwhile, a request that
writes to the ledger succeeds afterwards, and Ctrl-C stops every Fabric process it ran."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from network.fabric.network import _alive
from serums.supervisor import free_port

from .test_supervision import _interrupt, _login, _serums_up

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.fabric, pytest.mark.slow]


def test_a_killed_chaincode_server_is_restarted_under_serums_up_and_writes_succeed_afterwards(tmp_path):
    from tests.conftest import fabric_bin

    env = {**os.environ, "SERUMS_DATA_DIR": str(tmp_path), "FABRIC_BIN": str(fabric_bin())}
    for var in ("SERUMS_DATABASE_URL", "SERUMS_AUTH_DATABASE_URL", "SERUMS_NODE_ADDRESS", "SERUMS_KEY_PASSPHRASE",
                "SERUMS_ENGINE"):
        env.pop(var, None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    up, out, ready = _serums_up(env, "--engine", "fabric", "--patients", "20", "--listen", f"127.0.0.1:{port}")
    state_path = tmp_path / "network" / "fabric" / "state.json"
    try:
        assert ready.wait(420), "".join(out)
        users = {u["username"]: u for u in json.loads((tmp_path / "demo-users.json").read_text())["users"]}
        token = _login(base, users["dr.hughes"])
        patient = users["patient.lothian1"]["user_id"]
        with httpx.Client(base_url=base, timeout=90, headers={"Authorization": f"Bearer {token}"}) as c:
            def request() -> httpx.Response:
                return c.post("/doctors/requests", json={"patient_id": patient, "sections": ["oncology.treatment"],
                                                         "purpose": "treatment"})

            assert request().status_code == 201
            old = json.loads(state_path.read_text())["processes"]["chaincode.lothian"]["pid"]
            os.kill(old, signal.SIGKILL)
            statuses = []
            deadline = time.monotonic() + 120
            while "chaincode.lothian: serving again after restart #1" not in "".join(out):
                assert time.monotonic() < deadline, "".join(out)
                r = request()  # meanwhile: 201, or 503 while it is down
                body = r.json() if r.status_code != 201 else {}
                statuses.append((r.status_code, body.get("type"), r.headers.get("Retry-After")))
            after = request()
            assert after.status_code == 201, after.text
        # never a 5xx other than 503 ledger-unavailable with Retry-After (the peer cannot reach its
        # chaincode server: "could not launch chaincode")
        assert all(s == 201 or (s == 503 and t == "/problems/ledger-unavailable" and ra) for s, t, ra in statuses), \
            statuses
        assert up.poll() is None, "".join(out)  # serums up and its gateway stayed up
        text = "".join(out)
        assert "[up] chaincode.lothian was killed by SIGKILL" in text and "[up] chaincode.lothian: restart #1" in text
        info = json.loads(state_path.read_text())["processes"]["chaincode.lothian"]
        assert info["pid"] != old and _alive(info["pid"], info["marker"])  # recorded for `network down`
        assert "[supervisor] chaincode.lothian: restart #1" in Path(info["log"]).read_text()
    finally:
        _interrupt(up, 120)
    processes = json.loads(state_path.read_text())["processes"]
    assert not [n for n, p in processes.items() if _alive(p["pid"], p["marker"])], "Fabric processes outlived serums up"
