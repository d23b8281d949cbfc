"""``serums up`` with ``SERUMS_NODE_TLS=mutual``: its embedded node serves mutual TLS, and everything
reaches it that way — the set-up steps, the gateway's workers (a doctor's request, token and
release), the notification service — while a client without a certificate is refused. A hospital
then joins the running node (``serums network add-hospital``) and registers over its own TLS client
certificate without the node being restarted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from network import NetworkConfig, client_tls_options, connect
from network.client import GatewayError
from serums.supervisor import free_port

from .test_supervision import _interrupt, _login, _serums_up

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_serums_up_runs_its_node_over_mutual_tls_and_a_hospital_joins_without_a_restart(tmp_path):
    env = {**os.environ, "SERUMS_DATA_DIR": str(tmp_path), "SERUMS_NODE_TLS": "mutual"}
    for var in ("SERUMS_DATABASE_URL", "SERUMS_AUTH_DATABASE_URL", "SERUMS_NODE_ADDRESS", "SERUMS_KEY_PASSPHRASE",
                "SERUMS_ENGINE", "SERUMS_NODE_TLS_CA"):
        env.pop(var, None)
    port, node_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    up, out, ready = _serums_up(env, "--patients", "20", "--listen", f"127.0.0.1:{port}",
                                "--node-listen", f"127.0.0.1:{node_port}")
    try:
        deadline = time.monotonic() + 300
        while not ready.wait(1) and up.poll() is None and time.monotonic() < deadline:
            pass
        assert ready.is_set(), "".join(out)
        assert "over mutual TLS" in "".join(out)
        node = json.loads((tmp_path / "node.json").read_text())
        assert node["tls"] == "mutual"
        cfg = NetworkConfig.load(tmp_path / "network")
        address = f"127.0.0.1:{node_port}"
        ident, signer = cfg.load_user("lothian")
        with pytest.raises(GatewayError) as refused, connect(ident, signer, address, evaluate_timeout=5) as gw:
            gw.network(cfg.channel).contract("serums", "UserContract").evaluate("ListHospitals")
        assert refused.value.kind == GatewayError.UNREACHABLE  # plaintext: no handshake
        # the gateway's workers reach the node over mutual TLS: the flow's steps 5-10
        users = {u["username"]: u for u in json.loads((tmp_path / "demo-users.json").read_text())["users"]}
        token = _login(base, users["dr.hughes"])
        with httpx.Client(base_url=base, timeout=90, headers={"Authorization": f"Bearer {token}"}) as c:
            r = c.post("/doctors/requests", json={"patient_id": users["patient.lothian1"]["user_id"],
                                                  "sections": ["oncology.treatment"], "purpose": "treatment"})
            assert r.status_code == 201, r.text
            r = c.post("/doctors/records", json={"token": r.json()["token"]["token"]})
            assert r.status_code == 200 and r.json()["sections"] == ["oncology.treatment"], r.text
        # a hospital joins the running node; its admin registers it over its own TLS client certificate
        add = subprocess.run([sys.executable, "-m", "serums", "network", "add-hospital", "stjohns"], env=env,
                             capture_output=True, text=True, timeout=180, cwd=ROOT)
        assert add.returncode == 0, add.stdout + add.stderr
        assert "StjohnsMSP registered on chain" in add.stdout
        assert json.loads((tmp_path / "node.json").read_text())["pid"] == node["pid"]  # no restart
        cfg = NetworkConfig.load(tmp_path / "network")
        ident, signer = cfg.load_user("stjohns")
        with connect(ident, signer, address, **client_tls_options(cfg, "mutual", org="stjohns")) as gw:
            hospital = gw.network(cfg.channel).contract("serums", "UserContract").evaluate_json(
                "GetHospital", "StjohnsMSP")
        assert hospital["msp"] == "StjohnsMSP"
        assert up.poll() is None, "".join(out)
    finally:
        _interrupt(up, 90)
