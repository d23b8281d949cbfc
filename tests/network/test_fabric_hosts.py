"""A Fabric network whose hospitals are reached at hosts of their own (``--host ORG=HOST``), so that
it can span machines: here zmc at a second loopback address, 127.0.0.2, and the ordering service at
127.0.0.3. Their TLS certificates name
those addresses, the channel's anchor peer, the connection profile and the bundle say them; zmc's peer
and chaincode server, run from its bundle (listening on every interface, reached at 127.0.0.2),
join the channel, catch up, and endorse and commit with lothian under a policy that needs both."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from network import NetworkConfig
from network.client import GatewayError, connect
from network.fabric import FabricNetwork
from tests.conftest import fabric_bin

pytestmark = [pytest.mark.fabric, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ZMC_HOST = "127.0.0.2"
ORDERER_HOST = "127.0.0.3"


def _serums(data_dir: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "FABRIC_BIN": str(fabric_bin())}
    env.pop("SERUMS_ENGINE", None)
    return subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(data_dir), *argv], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _sans(pem: bytes) -> set[str]:
    ext = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*ext.get_values_for_type(x509.DNSName), *map(str, ext.get_values_for_type(x509.IPAddress))}


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _height(cfg: NetworkConfig, net: FabricNetwork, org: str) -> int:
    from fabric_protos.common import ledger_pb2

    ident, signer = cfg.load_user(org)
    with connect(ident, signer, net.peer_address(org), tls_root_certs=net.tls_ca(org)) as gw:
        raw = gw.network(cfg.channel).contract("qscc").evaluate("GetChainInfo", cfg.channel)
    return ledger_pb2.BlockchainInfo.FromString(raw).height


def test_a_hospital_at_its_own_address_runs_its_peer_from_its_bundle(tmp_path):
    r = _serums(tmp_path, "network", "up", "--engine", "fabric", "--hospitals", "lothian,zmc", "--policy", "ALL",
                "--host", f"zmc={ZMC_HOST}", "--host", f"orderer={ORDERER_HOST}", "--detach")
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = NetworkConfig.load(tmp_path / "network")
    net = FabricNetwork(cfg)
    moved: list[subprocess.Popen] = []
    try:
        assert net.host("zmc") == ZMC_HOST and net.host("lothian") == "127.0.0.1"
        port = int(net.peer_address("zmc").rsplit(":", 1)[1])
        assert net.peer_address("zmc") == f"{ZMC_HOST}:{port}"
        fab = tmp_path / "network" / "fabric"
        for cert in ("peer0/tls/server.crt", "chaincode/tls/server.crt"):
            assert ZMC_HOST in _sans((fab / "orgs" / "zmc" / cert).read_bytes()), cert
        assert ZMC_HOST not in _sans((fab / "orgs" / "lothian" / "peer0" / "tls" / "server.crt").read_bytes())
        assert ORDERER_HOST in _sans((fab / "orgs" / "orderer" / "orderer0" / "tls" / "server.crt").read_bytes())
        assert net.orderer_address.startswith(f"{ORDERER_HOST}:")
        anchors = {o["ID"]: o.get("AnchorPeers") for o in
                   yaml.safe_load((fab / "channel" / "configtx.yaml").read_text())["Organizations"]}
        assert anchors["ZmcMSP"] == [{"Host": ZMC_HOST, "Port": port}]
        profile = json.loads((fab / "connection.json").read_text())
        assert profile["peers"]["peer0.zmc"]["url"] == f"grpcs://{ZMC_HOST}:{port}"
        status = json.loads(_serums(tmp_path, "network", "status", "--json").stdout)
        assert {p["name"]: p["address"] for p in status["processes"]}["peer0.zmc"] == f"{ZMC_HOST}:{port}"
        assert _listening(ZMC_HOST, port)

        out = tmp_path / "zmc.tar.gz"
        r = _serums(tmp_path, "network", "bundle", "zmc", "--out", str(out))
        assert r.returncode == 0, r.stderr
        with tarfile.open(out) as tar:
            tar.extractall(tmp_path / "machine-b", filter="tar")
        home = tmp_path / "machine-b" / "zmc-bundle"
        info = json.loads((home / "bundle.json").read_text())
        assert info["host"] == ZMC_HOST and info["peer"] == f"{ZMC_HOST}:{port}"
        assert info["anchor_peers"]["ZmcMSP"] == f"{ZMC_HOST}:{port}"
        assert info["orderer_endpoints"] == [net.orderer_address]  # the channel's, at its own host
        core = yaml.safe_load((home / "peer0" / "core.yaml.in").read_text())
        assert core["peer"]["address"] == f"{ZMC_HOST}:{port}" and core["peer"]["listenAddress"] == f"0.0.0.0:{port}"

        # zmc moves to "its own machine": the network's zmc processes stop, the bundle's start
        target = _height(cfg, net, "lothian")
        assert net.stop_process("chaincode.zmc") and net.stop_process("peer0.zmc")
        env = {**os.environ, "FABRIC_BIN": str(net.bin_dir), "SERUMS": str(Path(sys.executable).parent / "serums")}
        for script in ("start-peer.sh", "start-chaincode.sh"):
            with (tmp_path / f"{script}.log").open("wb") as log:
                moved.append(subprocess.Popen([str(home / script)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True, cwd=home))
        deadline = time.monotonic() + 60
        while not (_listening(ZMC_HOST, port) and _listening(ZMC_HOST, int(info["chaincode_server"].rsplit(":")[1]))):
            assert all(p.poll() is None for p in moved), [(tmp_path / f"{s}.log").read_text()[-2000:]
                                                          for s in ("start-peer.sh", "start-chaincode.sh")]
            assert time.monotonic() < deadline
            time.sleep(0.3)
        joined = subprocess.run([str(home / "join.sh")], env=env, capture_output=True, text=True, timeout=120)
        assert joined.returncode == 0, joined.stderr[-2000:]
        deadline = time.monotonic() + 90
        while True:  # caught up from the orderer, through TLS to 127.0.0.2
            try:
                if _height(cfg, net, "zmc") >= target:
                    break
            except GatewayError:
                pass
            assert time.monotonic() < deadline, "the bundle's peer did not catch up"
            time.sleep(0.5)
        assert (home / "peer0" / "data" / "ledgersData").is_dir()  # its ledger lives in the bundle

        # a write that needs both hospitals: lothian's gateway reaches zmc's moved peer at 127.0.0.2,
        # whose chaincode server (the bundle's) runs the contract
        net.wait_for_discovery(180, lambda _: None)
        ident, signer = cfg.load_user("lothian")
        with connect(ident, signer, net.peer_address("lothian"), tls_root_certs=net.tls_ca("lothian")) as gw:
            contract = gw.network(cfg.channel).contract("serums", "UserContract")
            contract.submit_json("RegisterHospital", "NHS Lothian")
            assert contract.evaluate_json("GetHospital", "LothianMSP")["name"] == "NHS Lothian"
        height = _height(cfg, net, "lothian")
        deadline = time.monotonic() + 30
        while _height(cfg, net, "zmc") < height:
            assert time.monotonic() < deadline, "zmc's moved peer did not commit the block"
            time.sleep(0.3)
        log = (tmp_path / "start-chaincode.sh.log").read_text()
        assert "serving on 0.0.0.0:" in log
    finally:
        for p in moved:
            if p.poll() is None:
                os.killpg(p.pid, 15)
            p.wait(30)
        net.down()
