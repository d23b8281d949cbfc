"""Chaincode definitions on the ledger (``_lifecycle``): an endorsement policy upgrade is recorded
with the next sequence, validation applies the policy in force at each block, and ``serums ledger
verify`` passes on an honest ledger that lived through the upgrade."""

from __future__ import annotations

import grpc
import pytest
from fabric_protos.peer.lifecycle import lifecycle_pb2

from network import NetworkConfig
from network import protocol as P
from network.audit import verify_ledger
from network.client import GatewayError, connect
from network.node import EmbeddedNode
from network.node.lifecycle import LIFECYCLE, ledger_definitions
from network.policy import parse_policy

from .conftest import HOSPITALS, make_network

ANY_ONE = "OutOf(1, 'LothianMSP.peer', 'ZmcMSP.peer', 'FcrbMSP.peer')"
MSPS = ["LothianMSP", "ZmcMSP", "FcrbMSP"]


def _run(cfg: NetworkConfig, fn):
    node = EmbeddedNode(cfg)
    address = node.start("127.0.0.1:0")
    try:
        ident, signer = cfg.load_user("lothian")
        gw = connect(ident, signer, address)
        return fn(node, gw.network(cfg.channel).contract("assets", "AssetContract"))
    finally:
        for p in node.peers.values():
            p.wait_for_height(node.orderer.height, 5)
        node.stop()


def _definitions(node: EmbeddedNode):
    return {msp: ledger_definitions(p.store.reader()) for msp, p in node.peers.items()}


def test_definitions_are_recorded_once_and_upgrades_get_the_next_sequence(tmp_path):
    cfg = make_network(tmp_path / "net", policy=ANY_ONE)

    def first(node, c):
        c.submit_json("Put", "o", "a", {"v": 1})
        return _definitions(node), node.orderer.height

    defs, height = _run(cfg, first)
    assert {d["assets"].sequence for d in defs.values()} == {1}
    assert defs["LothianMSP"]["assets"].policy == parse_policy(ANY_ONE, MSPS)
    # the definition block holds Fabric's CommitChaincodeDefinition, endorsed by every peer
    again = EmbeddedNode(cfg)
    block = P.parse_block(again.peers["ZmcMSP"].store.block(1))
    again.stop()
    tx = P.parse_transaction(block.data.data[0])
    assert tx.chaincode == LIFECYCLE and tx.args[0] == b"CommitChaincodeDefinition"
    args = lifecycle_pb2.CommitChaincodeDefinitionArgs()
    args.ParseFromString(tx.args[1])
    assert (args.name, args.sequence, args.version) == ("assets", 1, "1.0") and len(tx.endorsements) == 3
    # a restart with the same definition records nothing
    assert _run(cfg, lambda node, c: node.orderer.height) == height
    # an upgrade does, with sequence 2
    cfg.chaincodes[0].endorsement_policy = "ALL"
    cfg.chaincodes[0].version = "1.1"
    cfg.save()
    defs = _run(cfg, lambda node, c: _definitions(node))
    assert {(d["assets"].sequence, d["assets"].version) for d in defs.values()} == {(2, "1.1")}


def test_verify_validates_each_block_against_the_policy_of_its_time(tmp_path):
    cfg = make_network(tmp_path / "net", policy=ANY_ONE)

    def under_any_one(node, c):
        for i in range(3):
            c.submit_json("Put", "o", f"k{i}", {"i": i}, endorsing_organizations=["ZmcMSP"])

    _run(cfg, under_any_one)
    cfg.chaincodes[0].endorsement_policy = "ALL"
    cfg.save()

    def under_all(node, c):
        c.submit_json("Put", "o", "k9", {"i": 9})
        # one endorsement no longer satisfies the policy in force: the peers mark it invalid
        prop = c.new_proposal("Put", ["o", "k10", "{}"], endorsing_organizations=["ZmcMSP"])
        status = prop.endorse().submit().status()
        return P.validation_code_name(status.code)

    assert _run(cfg, under_all) == "ENDORSEMENT_POLICY_FAILURE"
    report = verify_ledger(cfg)
    assert report.ok, [str(p) for p in report.problems]
    assert {s.valid for s in report.peers.values()} == {2 + 3 + 1}  # 2 definitions, 3 + 1 transactions
    assert len(HOSPITALS) == len(report.peers)


def test_clients_cannot_invoke_lifecycle(tmp_path):
    cfg = make_network(tmp_path / "net")

    def call(node, c):
        with pytest.raises(GatewayError) as e:
            c.network.contract(LIFECYCLE).submit("CommitChaincodeDefinition", "x")
        return e.value.code

    assert _run(cfg, call) == grpc.StatusCode.FAILED_PRECONDITION
