"""The embedded node's genesis block is a complete Fabric channel configuration: Fabric's own tools
decode it, and it has every group, value and policy that ``configtxgen`` writes for the same
organisations."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from fabric_protos.common import common_pb2

from network.node import EmbeddedNode
from network.node.genesis import config_from_block, signature_policy_envelope
from network.policy import parse_policy
from tests.conftest import fabric_bin

from .conftest import make_network


@pytest.fixture(scope="module")
def genesis(tmp_path_factory):
    root = tmp_path_factory.mktemp("genesis")
    cfg = make_network(root / "net", batch_timeout_ms=5.0)
    node = EmbeddedNode(cfg)
    data = node.orderer_store.block(0)
    node.stop()
    path = root / "genesis.pb"
    path.write_bytes(data)
    return cfg, path


def _paths(group: dict, prefix: str = "") -> set[str]:
    """Every group, value and policy (with its type) of a decoded ConfigGroup, as paths."""
    out = set()
    for name, g in group.get("groups", {}).items():
        out.add(f"{prefix}{name}/")
        out |= _paths(g, f"{prefix}{name}/")
    out |= {f"{prefix}values/{k}" for k in group.get("values", {})}
    out |= {f"{prefix}policies/{k}:{v['policy']['type']}" for k, v in group.get("policies", {}).items()}
    return out


def _channel_group(decoded: dict) -> dict:
    return decoded["data"]["data"][0]["payload"]["data"]["config"]["channel_group"]


def test_genesis_has_policies_capabilities_node_ous_and_orderer_values(genesis):
    cfg, path = genesis
    block = common_pb2.Block()
    block.ParseFromString(path.read_bytes())
    root = config_from_block(block).channel_group
    assert set(root.groups) == {"Application", "Orderer"}
    assert set(root.policies) == {"Readers", "Writers", "Admins"}
    assert {"HashingAlgorithm", "BlockDataHashingStructure", "Capabilities"} <= set(root.values)
    app, ordg = root.groups["Application"], root.groups["Orderer"]
    assert set(app.groups) == {h.msp_id for h in cfg.hospitals} and set(ordg.groups) == {"OrdererMSP"}
    assert {"Endorsement", "LifecycleEndorsement"} <= set(app.policies)
    assert {"BatchSize", "BatchTimeout", "ConsensusType", "ChannelRestrictions", "Capabilities"} <= set(ordg.values)
    assert "BlockValidation" in ordg.policies
    for org in app.groups.values():
        assert {"MSP", "AnchorPeers"} <= set(org.values)
        assert {"Readers", "Writers", "Admins", "Endorsement"} <= set(org.policies)


def test_signature_policies_name_each_principal_once():
    env = signature_policy_envelope(parse_policy("OutOf(2, 'A.peer', 'B.peer', 'A.peer')"))
    assert len(env.identities) == 2
    assert env.rule.n_out_of.n == 2 and [r.signed_by for r in env.rule.n_out_of.rules] == [0, 1, 0]


@pytest.mark.fabric
def test_configtxlator_decodes_the_genesis_block_and_it_round_trips(genesis, tmp_path):
    cfg, path = genesis
    bin_dir = fabric_bin()
    assert bin_dir is not None, "Fabric binaries not found"
    out = tmp_path / "genesis.json"
    subprocess.run([bin_dir / "configtxlator", "proto_decode", "--input", path, "--type", "common.Block",
                    "--output", out], check=True, capture_output=True, timeout=60)
    decoded = json.loads(out.read_text())
    group = _channel_group(decoded)
    msp = group["groups"]["Application"]["groups"]["LothianMSP"]["values"]["MSP"]["value"]["config"]
    assert msp["fabric_node_ous"]["enable"] is True and msp["tls_root_certs"]
    ordv = group["groups"]["Orderer"]["values"]
    assert ordv["BatchTimeout"]["value"]["timeout"] == "5ms"
    assert ordv["BatchSize"]["value"]["max_message_count"] == cfg.batch.max_message_count
    assert ordv["ConsensusType"]["value"]["type"] == "etcdraft"
    assert ordv["ConsensusType"]["value"]["metadata"]["consenters"][0]["port"]
    # every field is one Fabric knows: encoding the JSON again gives the same block
    again = tmp_path / "again.pb"
    subprocess.run([bin_dir / "configtxlator", "proto_encode", "--input", out, "--type", "common.Block",
                    "--output", again], check=True, capture_output=True, timeout=60)
    a, b = common_pb2.Block(), common_pb2.Block()
    a.ParseFromString(path.read_bytes())
    b.ParseFromString(again.read_bytes())
    assert config_from_block(a) == config_from_block(b)
    inspected = subprocess.run([bin_dir / "configtxgen", "-inspectBlock", path], capture_output=True, text=True,
                               timeout=60)
    assert inspected.returncode == 0, inspected.stderr[-1000:]


@pytest.mark.fabric
def test_genesis_has_everything_configtxgen_writes_for_the_same_organisations(genesis, tmp_path):
    """configtxgen makes a reference block from the same MSPs (network.fabric's configtx.yaml for a
    real network of these hospitals); ours must hold every group, value and policy type it has."""
    from network.fabric.configs import configtx
    from network.fabric.crypto import org_material

    cfg, path = genesis
    bin_dir = fabric_bin()
    assert bin_dir is not None
    fab = tmp_path / "fabric"
    for org in [*cfg.hospitals, cfg.orderer]:
        org_material(cfg, fab, org.name)
    ports = {"orderer": {"listen": 7050}, **{h.name: {"listen": 7051 + i} for i, h in enumerate(cfg.hospitals)}}
    chan = tmp_path / "chan"
    chan.mkdir()
    (chan / "configtx.yaml").write_text(yaml.safe_dump(configtx(cfg, fab, ports, 5.0), sort_keys=False))
    ref = tmp_path / "ref.pb"
    made = subprocess.run([bin_dir / "configtxgen", "-profile", "SerumsChannel", "-outputBlock", ref,
                           "-channelID", cfg.channel, "-configPath", chan], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr[-2000:]

    def decode(p):
        out = tmp_path / (p.stem + ".json")
        subprocess.run([bin_dir / "configtxlator", "proto_decode", "--input", p, "--type", "common.Block",
                        "--output", out], check=True, capture_output=True, timeout=60)
        return _channel_group(json.loads(out.read_text()))

    reference, ours = _paths(decode(ref)), _paths(decode(path))
    assert reference - ours == set()
