"""A hospital joins a running embedded network: a channel configuration update signed by a MAJORITY
of the hospitals' admins is ordered, every peer accepts the new MSP, the node starts the new
hospital's peer (caught up from the block store), the chaincode policies are redefined over four
hospitals, and the hospital registers on chain. A minority-signed update is refused with no
change; ``serums ledger verify`` passes afterwards and after a restart."""

from __future__ import annotations

import pytest
from fabric_protos.common import configtx_pb2

from network import ChaincodeDefinition, NetworkConfig
from network.audit import verify_ledger
from network.client import connect
from network.node import EmbeddedNode
from network.node.configtx import (
    ConfigUpdateError,
    add_org_update,
    config_update_envelope,
    sign_config_update,
)
from network.node.grow import add_hospital, fetch_config
from network.node.lifecycle import ledger_definitions
from network.policy import parse_policy

from .conftest import make_network

OLD = ["LothianMSP", "ZmcMSP", "FcrbMSP"]
NEW = "StjohnsMSP"


@pytest.fixture
def node(tmp_path):
    cfg = make_network(tmp_path / "net")
    cfg.chaincodes.append(ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode", "1.0", "MAJORITY"))
    cfg.save()
    node = EmbeddedNode(cfg)
    address = node.start("127.0.0.1:0")
    yield cfg, node, address
    node.stop()


def _contract(cfg: NetworkConfig, address: str, org: str, chaincode="assets", contract="AssetContract"):
    ident, signer = cfg.load_user(org)
    return connect(ident, signer, address).network(cfg.channel).contract(chaincode, contract)


def test_a_minority_signed_update_is_refused_and_changes_nothing(node):
    cfg, n, address = node
    height = n.orderer.height
    with pytest.raises(ConfigUpdateError) as err:
        add_hospital(cfg, "stjohns", address, signers=["lothian"])
    assert err.value.status == 403 and "MAJORITY (2)" in err.value.detail
    assert n.orderer.height == height and NEW not in n.peers and NEW not in n.membership.msps
    again = NetworkConfig.load(cfg.root)
    assert [h.name for h in again.hospitals] == ["lothian", "zmc", "fcrb"]
    assert not cfg.org_dir("stjohns").exists()
    # a peer's signature does not stand in for its hospital's admin
    config = n.config
    peer_ident, peer_signer = cfg.load_peer("zmc")
    update = configtx_pb2.ConfigUpdateEnvelope(config_update=add_org_update(
        config, cfg.channel, _fresh_msp(cfg), [], ("127.0.0.1", 1)))
    sign_config_update(update, *cfg.load_user("lothian"))
    sign_config_update(update, peer_ident, peer_signer)
    with pytest.raises(ConfigUpdateError) as err:
        n.update_config(config_update_envelope(cfg.channel, update, *cfg.load_user("lothian")))
    assert err.value.slug == "config-policy-not-satisfied"
    assert verify_ledger(cfg).ok


def _fresh_msp(cfg: NetworkConfig):
    from network.identity import MSP, CertificateAuthority

    return MSP("OtherMSP", [CertificateAuthority.create("OtherMSP", "other").certificate])


def test_a_hospital_joins_a_running_node_and_its_peer_endorses(node):
    cfg, n, address = node
    before = _contract(cfg, address, "lothian")
    before.submit_json("Put", "o", "before", {"v": 1})
    steps: list[str] = []
    assert add_hospital(cfg, "stjohns", address, display_name="St John's", progress=steps.append) == NEW
    assert any("signed by the admins of 2 of 3" in s for s in steps)
    # the new peer is live, caught up to the orderer, and holds the blocks before it joined
    n.wait_redefined()
    new_peer = n.peers[NEW]
    assert new_peer.wait_for_height(n.orderer.height, 10)
    assert new_peer.store.block(1) == n.peers["LothianMSP"].store.block(1)
    # the chaincode policies are now a MAJORITY of the four hospitals, on every peer's ledger
    four = parse_policy("MAJORITY", [*OLD, NEW])
    for p in n.peers.values():
        defs = ledger_definitions(p.store.reader())
        assert defs["assets"].policy == four and defs["serums"].policy == four
    # the new config is fetched as any member fetches it, with the hospital's MSP in it
    ident, signer = cfg.load_user("stjohns")
    with connect(ident, signer, address) as gw:
        assert NEW in fetch_config(gw.network(cfg.channel)).channel_group.groups["Application"].groups
    # registered on chain, and a transaction endorsed by its peer (with two others) commits
    users = _contract(cfg, address, "stjohns", "serums", "UserContract")
    assert users.evaluate_json("GetHospital", NEW)["name"] == "St John's"
    mine = _contract(cfg, address, "stjohns")
    mine.submit_json("Put", "o", "after", {"v": 2}, endorsing_organizations=[NEW, "ZmcMSP", "FcrbMSP"])
    assert before.evaluate_json("Get", "o", "after")["value"] == {"v": 2}
    # two old endorsements no longer make a majority of four
    with pytest.raises(Exception, match="ENDORSEMENT_POLICY_FAILURE|policy"):
        before.submit_json("Put", "o", "minority", {"v": 3}, endorsing_organizations=["LothianMSP", "ZmcMSP"])
    for p in n.peers.values():
        assert p.wait_for_height(n.orderer.height, 10)
    report = verify_ledger(NetworkConfig.load(cfg.root))
    assert report.ok, [str(p) for p in report.problems]
    assert set(report.peers) == {"peer0.lothian", "peer0.zmc", "peer0.fcrb", "peer0.stjohns"}


def test_after_a_restart_the_node_runs_the_grown_channel(node, tmp_path):
    cfg, n, address = node
    add_hospital(cfg, "stjohns", address)
    n.wait_redefined()
    for p in n.peers.values():
        assert p.wait_for_height(n.orderer.height, 10)
    n.stop()
    again = EmbeddedNode(NetworkConfig.load(cfg.root))
    address = again.start("127.0.0.1:0")
    try:
        assert set(again.peers) == {*OLD, NEW}
        assert again.config.sequence == 1
        _contract(cfg, address, "stjohns").submit_json("Put", "o", "x", {"v": 1})
    finally:
        for p in again.peers.values():
            p.wait_for_height(again.orderer.height, 5)
        again.stop()
    assert verify_ledger(NetworkConfig.load(cfg.root)).ok


def test_the_cli_adds_a_hospital_to_the_running_node(tmp_path, monkeypatch, capsys):
    from serums.cli import main

    data = tmp_path / "data"
    cfg = make_network(data / "network")
    cfg.chaincodes.append(ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode", "1.0", "MAJORITY"))
    cfg.save()
    monkeypatch.delenv("SERUMS_ENGINE", raising=False)
    monkeypatch.delenv("SERUMS_NODE_ADDRESS", raising=False)
    base = ["--data-dir", str(data), "network", "add-hospital"]
    assert main([*base, "stjohns"]) == 1  # no node runs
    assert "not running" in capsys.readouterr().err
    n = EmbeddedNode(cfg)
    address = n.start("127.0.0.1:0")
    monkeypatch.setenv("SERUMS_NODE_ADDRESS", address)
    try:
        assert main([*base, "St Johns"]) == 1  # not a hospital name: one line, nothing changes
        assert "hospital name" in capsys.readouterr().err
        assert main([*base, "stjohns", "--display-name", "St John's"]) == 0
        assert f"{NEW} joined channel serums" in capsys.readouterr().out
        assert main([*base, "stjohns"]) == 1
        assert "already in the network" in capsys.readouterr().err
        users = _contract(cfg, address, "stjohns", "serums", "UserContract")
        assert users.evaluate_json("GetHospital", NEW)["name"] == "St John's"
        n.wait_redefined()
        for p in n.peers.values():
            assert p.wait_for_height(n.orderer.height, 10)
    finally:
        n.stop()
    assert main(["--data-dir", str(data), "ledger", "verify"]) == 0
