"""A new hospital joins a running real Fabric network (its own small network: the session's shared one
keeps its three hospitals): the channel update signed by a majority of the hospital admins, its
peer joined and caught up, the chaincode upgraded to a policy over every hospital, registered."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from network import init_network
from network.client import connect
from network.fabric import FabricNetwork, verify_fabric
from tests.conftest import fabric_bin

pytestmark = pytest.mark.fabric


@pytest.fixture
def small(tmp_path):
    cfg = init_network(tmp_path / "network", ["lothian", "zmc"])
    net = FabricNetwork(cfg, bin_dir=fabric_bin(), batch_timeout_ms=10)
    try:
        net.up(timeout=240)
        yield net
    finally:
        FabricNetwork(cfg).down()


def test_a_hospital_joins_the_running_network(small: FabricNetwork):
    data_dir = small.cfg.root.parent
    out = subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(data_dir), "network", "add-hospital",
                          "fcrb", "--display-name", "FCRB Barcelona"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "signed by 2 of 2 hospital admins" in out.stdout
    net = FabricNetwork(small.cfg.load(small.cfg.root))
    assert [h.msp_id for h in net.cfg.hospitals] == ["LothianMSP", "ZmcMSP", "FcrbMSP"]
    assert net.state["sequence"] == 2
    assert net.state["endorsement_policy"] == "OutOf(2, 'LothianMSP.peer', 'ZmcMSP.peer', 'FcrbMSP.peer')"
    assert net.running("peer0.fcrb") and net.running("chaincode.fcrb")
    ident, signer = net.cfg.load_user("fcrb")
    with connect(ident, signer, net.peer_address("fcrb"), tls_root_certs=net.tls_ca("fcrb")) as gw:
        users = gw.network(net.cfg.channel).contract("serums", "UserContract")
        assert [h["name"] for h in users.evaluate_json("ListHospitals")] == ["FCRB Barcelona"]
        # the new hospital's peer endorses, with either of the others
        for other in ("LothianMSP", "ZmcMSP"):
            fp = net.cfg.load_ca("fcrb").issue(f"gp-{other}", "client")[0].fingerprint
            status = users.new_proposal("RegisterUser", [f"gp-{other.lower()}", "gp", fp],
                                        endorsing_organizations=["FcrbMSP", other]).endorse().submit().status()
            assert status.code_name == "VALID"
    report = verify_fabric(net)
    assert report.ok and set(report.peers) == {"peer0.lothian", "peer0.zmc", "peer0.fcrb"}
    assert len({p.last_hash for p in report.peers.values()}) == 1
    profile = json.loads((net.root / "connection.json").read_text())
    assert "FcrbMSP" in profile["organizations"]
    again = subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(data_dir), "network", "add-hospital",
                            "fcrb"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already" in again.stderr
