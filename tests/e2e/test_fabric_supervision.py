"""The whole system on real Fabric: one ``serums up --engine fabric`` (a Raft orderer, a peer per
hospital, our chaincode servers, the gateway, the notification service: real processes), driven
as users drive it, then hurt.

In order, on the same running system:
1. the 10-step flow through the gateway: a demo specialist logs in (FlexPass + TOTP), requests a
   demo patient's record, gets the chain's decision and a token, presents it and receives only the
   granted sections; the access is logged on chain, the patient sees it, the auditor finds the
   decision and verifies every peer's chain read through Deliver;
2. the first hospital's chaincode server killed with SIGKILL: the supervisor starts it again by
   itself (logged), the gateway never answers a 5xx other than 503 ``ledger-unavailable``
   meanwhile, and a request that writes to the ledger succeeds afterwards;
3. ``serums up`` itself killed with SIGKILL (no clean-up runs in it): its gateway, notification
   service, orderer, peers and chaincode servers all stop by themselves, and the data directory is
   free again.
"""

from __future__ import annotations

import json
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

from network.fabric.network import _alive
from serums.supervisor import free_port

from .test_supervision import _alive as _pid_alive
from .test_supervision import _children_of, _interrupt, _login, _serums_up

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.fabric, pytest.mark.slow]


@dataclass
class System:
    data_dir: Path
    up: subprocess.Popen
    out: list[str]
    base: str
    users: dict[str, dict]
    tokens: dict[str, str]

    @property
    def state_path(self) -> Path:
        return self.data_dir / "network" / "fabric" / "state.json"

    def processes(self) -> dict:
        return json.loads(self.state_path.read_text())["processes"]

    def client(self, username: str) -> httpx.Client:
        """A client with ``username``'s session (one login each: a TOTP code is accepted once)."""
        if username not in self.tokens:
            self.tokens[username] = _login(self.base, self.users[username])
        token = self.tokens[username]
        return httpx.Client(base_url=self.base, timeout=120, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> Iterator[System]:
    from tests.conftest import fabric_bin

    data_dir = tmp_path_factory.mktemp("up-fabric")
    env = {**os.environ, "SERUMS_DATA_DIR": str(data_dir), "FABRIC_BIN": str(fabric_bin())}
    for var in ("SERUMS_DATABASE_URL", "SERUMS_AUTH_DATABASE_URL", "SERUMS_NODE_ADDRESS", "SERUMS_KEY_PASSPHRASE",
                "SERUMS_ENGINE", "SERUMS_NODE_TLS_CA"):
        env.pop(var, None)
    port = free_port()
    up, out, ready = _serums_up(env, "--engine", "fabric", "--patients", "20", "--listen", f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 420
        while not ready.wait(1) and up.poll() is None and time.monotonic() < deadline:
            pass
        assert ready.is_set(), "".join(out)
        users = {u["username"]: u for u in json.loads((data_dir / "demo-users.json").read_text())["users"]}
        yield System(data_dir, up, out, f"http://127.0.0.1:{port}", users, {})
    finally:
        if up.poll() is None:
            _interrupt(up, 120)
    processes = json.loads((data_dir / "network" / "fabric" / "state.json").read_text())["processes"]
    deadline = time.monotonic() + 30  # after a kill -9 they stop by themselves
    while time.monotonic() < deadline and any(_alive(p["pid"], p["marker"]) for p in processes.values()):
        time.sleep(0.5)
    assert not [n for n, p in processes.items() if _alive(p["pid"], p["marker"])], "Fabric processes outlived serums up"


def test_the_flow_through_the_gateway_on_fabric(system: System):
    patient = system.users["patient.lothian1"]
    with system.client("dr.hughes") as doctor:
        # steps 5-8: the specialist treating the patient asks; the chain decides; the vault mints a token
        r = doctor.post("/doctors/requests", json={"patient_id": patient["user_id"], "sections": ["*"],
                                                   "purpose": "treatment", "justification": "direct-care"})
        assert r.status_code == 201, r.text
        decision = r.json()
        assert decision["outcome"] == "partial" and "oncology.treatment" in decision["granted"]
        assert decision["reasons"]["oncology.treatment"] == "hospital-rule"
        denied = {x["section"] for x in decision["denied"]}
        assert "contact" in denied and not denied & set(decision["granted"])
        assert decision["transaction_id"] and decision["token"]["hospital"] == "lothian"
        # steps 9-10: the token presented; only the granted sections come back, the access is logged
        r = doctor.post("/doctors/records", json={"token": decision["token"]["token"]})
        assert r.status_code == 200, r.text
        release = r.json()
        assert release["patient_id"] == patient["user_id"] and set(release["sections"]) == set(decision["granted"])
        assert release["record"]["sections"]["contact"] == {"status": "withheld", "reason": "not-granted"}
        assert "oncology.treatment" in release["record"]["sections"]
        r = doctor.get("/doctors/grants", params={"kind": "access"})
        logged = [a["record"] for a in r.json()["records"] if a["record"]["grant_id"] == decision["grant_id"]]
        assert logged and logged[0]["digest"] == release["digest"]
    # a token is bound to its grant and its doctor: someone else's presentation is refused
    with system.client("dr.jansen") as other:
        r = other.post("/doctors/records", json={"token": decision["token"]["token"]})
        assert r.status_code == 403 and r.json()["type"] == "/problems/token-presenter-mismatch", r.text
    # the patient sees who read what; the auditor finds the decision and verifies the ledger
    with system.client("patient.lothian1") as me:
        r = me.get("/patients/me/access-log", params={"kind": "access", "page_size": 200})
        assert r.status_code == 200, r.text
        mine = [a["record"] for a in r.json()["records"] if a["record"].get("grant_id") == decision["grant_id"]]
        assert mine and mine[0]["requester_id"] == system.users["dr.hughes"]["user_id"], r.json()
    with system.client("auditor.martin") as auditor:
        r = auditor.get("/audit/trail", params={"patient": patient["user_id"], "kind": "decision", "page_size": 200})
        assert r.status_code == 200, r.text
        assert any(x["id"] == decision["request_id"] for x in r.json()["records"])
        r = auditor.get("/audit/ledger/verify")
        assert r.status_code == 200 and r.json()["ok"], r.json()
        assert set(r.json()["peers"]) == {"peer0.lothian", "peer0.zmc", "peer0.fcrb"}


def test_a_killed_chaincode_server_is_restarted_and_writes_succeed_afterwards(system: System):
    patient = system.users["patient.lothian1"]
    out = system.out
    with system.client("dr.hughes") as c:
        def request() -> httpx.Response:
            return c.post("/doctors/requests", json={"patient_id": patient["user_id"],
                                                     "sections": ["oncology.treatment"], "purpose": "treatment"})

        assert request().status_code == 201
        old = system.processes()["chaincode.lothian"]["pid"]
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
    assert system.up.poll() is None, "".join(out)  # serums up and its gateway stayed up
    text = "".join(out)
    assert "[up] chaincode.lothian was killed by SIGKILL" in text and "[up] chaincode.lothian: restart #1" in text
    info = system.processes()["chaincode.lothian"]
    assert info["pid"] != old and _alive(info["pid"], info["marker"])  # recorded for `network down`
    assert "[supervisor] chaincode.lothian: restart #1" in Path(info["log"]).read_text()


def test_after_kill_9_of_serums_up_every_fabric_process_stops(system: System):
    from serums.datadir import running_owner

    processes = system.processes()
    assert processes and all(_alive(p["pid"], p["marker"]) for p in processes.values())
    assert {"orderer", "peer0.lothian", "peer0.zmc", "peer0.fcrb", "chaincode.lothian"} <= set(processes)
    children = _children_of(system.up.pid)  # the Fabric processes, the gateway, the notification service
    assert any("gunicorn" in a for a in children.values()) and any("notifications" in a for a in children.values())
    system.up.kill()
    system.up.wait(10)
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and (any(_alive(p["pid"], p["marker"]) for p in processes.values())
                                           or any(_pid_alive(pid) for pid in children)):
        time.sleep(0.5)
    assert not [n for n, p in processes.items() if _alive(p["pid"], p["marker"])], "Fabric processes outlived serums up"
    assert not {pid: a for pid, a in children.items() if _pid_alive(pid)}, "children outlived serums up"
    assert running_owner(system.data_dir) is None
    status = subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(system.data_dir), "network",
                             "status"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert status.returncode == 1 and "not supervised" in status.stdout and "running" not in status.stdout

