from __future__ import annotations

from dataclasses import dataclass

import pytest

from network import ChaincodeDefinition, NetworkConfig, init_network
from network.client import Gateway, connect
from network.node import EmbeddedNode

HOSPITALS = ["lothian", "zmc", "fcrb"]


@dataclass
class RunningNode:
    cfg: NetworkConfig
    node: EmbeddedNode
    address: str

    def gateway(self, org: str = "lothian", user: str = "admin") -> Gateway:
        ident, signer = self.cfg.load_user(org, user)
        return connect(ident, signer, self.address)

    def contract(self, org: str = "lothian"):
        return self.gateway(org).network(self.cfg.channel).contract("assets", "AssetContract")


def make_network(root, policy: str = "MAJORITY", batch_timeout_ms: float = 5.0) -> NetworkConfig:
    cfg = init_network(root, HOSPITALS)
    cfg.chaincodes = [ChaincodeDefinition("assets", "chaincode.samples:assets_chaincode", "1.0", policy)]
    cfg.batch.timeout_ms = batch_timeout_ms
    cfg.save()
    return cfg


@pytest.fixture
def running(tmp_path):
    cfg = make_network(tmp_path / "net")
    node = EmbeddedNode(cfg)
    address = node.start("127.0.0.1:0")
    yield RunningNode(cfg, node, address)
    node.stop()
