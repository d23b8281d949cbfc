"""A new hospital joins a running Fabric network (``serums network add-hospital NAME``).

1. the hospital's CA, peer and admin identities (``network.json``), its MSPs and TLS material;
2. a channel configuration update adding its organisation (with its anchor peer) to the
   Application group: the latest config block fetched, the new organisation printed by
   ``configtxgen -printOrg``, the update computed by ``configtxlator``, signed by a majority of the
   existing hospitals' admins (the channel's ``MAJORITY Admins``) and submitted;
3. its peer started and joined (from the genesis block: it catches up through the update);
4. the chaincode definition upgraded to the next sequence with the endorsement policy over every
   hospital, approved by each hospital (the new one with its own package, installed, and its
   chaincode server started), committed; a wait for discovery; the hospital registers on chain.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml
from fabric_protos.common import common_pb2, configtx_pb2

from ..client import connect
from ..config import add_hospital_config
from .configs import core_yaml, org_section, signature_policy
from .crypto import org_material
from .network import FabricError, FabricNetwork, _free_ports

log = logging.getLogger(__name__)


def _config_update_envelope(net: FabricNetwork, work: Path, org_json: dict) -> Path:
    """The unsigned CONFIG_UPDATE envelope that adds ``org_json`` to the Application group."""
    cfg, first = net.cfg, net.cfg.hospitals[0].name
    block = work / "config_block.pb"
    net._run([net._tool("peer"), "channel", "fetch", "config", str(block), *net._orderer_flags(), "-c", cfg.channel],
             net.admin_env(first), what="fetching the channel configuration")
    lator = net._tool("configtxlator")
    decoded = json.loads(net._run([lator, "proto_decode", "--input", str(block), "--type", "common.Block"],
                                  what="decoding the config block", stderr=False))
    original = decoded["data"]["data"][0]["payload"]["data"]["config"]
    updated = json.loads(json.dumps(original))
    msp = org_json["values"]["MSP"]["value"]["config"]["name"]
    updated["channel_group"]["groups"]["Application"]["groups"][msp] = org_json
    for name, doc in (("original", original), ("updated", updated)):
        (work / f"{name}.json").write_text(json.dumps(doc))
        net._run([lator, "proto_encode", "--input", str(work / f"{name}.json"), "--type", "common.Config",
                  "--output", str(work / f"{name}.pb")], what="encoding the channel configuration")
    net._run([lator, "compute_update", "--channel_id", cfg.channel, "--original", str(work / "original.pb"),
              "--updated", str(work / "updated.pb"), "--output", str(work / "update.pb")],
             what="computing the configuration update")
    chdr = common_pb2.ChannelHeader(type=common_pb2.CONFIG_UPDATE, channel_id=cfg.channel)
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=chdr.SerializeToString()),
        data=configtx_pb2.ConfigUpdateEnvelope(config_update=(work / "update.pb").read_bytes()).SerializeToString(),
    )
    env = work / "update_envelope.pb"
    env.write_bytes(common_pb2.Envelope(payload=payload.SerializeToString()).SerializeToString())
    return env


def add_hospital(net: FabricNetwork, name: str, *, display_name: str | None = None, timeout: float = 180.0,
                 progress: Callable[[str], None] = log.info, host: str | None = None) -> str:
    """Add hospital ``name`` to the running network, its nodes reached at ``host`` (default
    127.0.0.1); returns its MSP id (see the module)."""
    if not net.state.get("committed"):
        raise FabricError(f"no Fabric network in {net.root}: run `serums network up --engine fabric` first")
    down = [n for n in net.state["processes"] if not net.running(n)]
    if down:
        raise FabricError(f"the network must be running to add a hospital ({', '.join(down)} stopped)")
    existing = [h.name for h in net.cfg.hospitals]
    org = add_hospital_config(net.cfg, name, net.passphrase)
    progress(f"{org.name}: CA, peer and admin identities ({org.msp_id})")
    p = _free_ports(4)
    net.state["ports"][org.name] = {"listen": p[0], "chaincode": p[1], "operations": p[2], "ccserver": p[3]}
    net.state["hospitals"] = [*existing, org.name]
    if host:
        net.state.setdefault("hosts", {})[org.name] = host
    net._save_state()
    org_material(net.cfg, net.root, org.name, net.passphrase, net.host(org.name))
    with tempfile.TemporaryDirectory(prefix="serums-add-") as tmp:
        work = Path(tmp)
        section = org_section(org.msp_id, net.org_dir(org.name) / "msp", anchor=(net.host(org.name), p[0]))
        (work / "configtx.yaml").write_text(yaml.safe_dump({"Organizations": [section]}))
        org_json = json.loads(net._run([net._tool("configtxgen"), "-printOrg", org.msp_id, "-configPath", str(work)],
                                       what="configtxgen -printOrg", stderr=False))
        env = _config_update_envelope(net, work, org_json)
        need = len(existing) // 2 + 1  # MAJORITY Admins of the hospitals already in the channel
        for h in existing[: need - 1]:
            net._run([net._tool("peer"), "channel", "signconfigtx", "-f", str(env)], net.admin_env(h),
                     what=f"signature of {h}'s admin")
        progress(f"channel update adding {org.msp_id}, signed by {need} of {len(existing)} hospital admins")
        net._run([net._tool("peer"), "channel", "update", "-f", str(env), "-c", net.cfg.channel,
                  *net._orderer_flags()], net.admin_env(existing[need - 1]), what="channel update")
    home = Path(net.state["bin"]).parent
    (net.node_dir(org.name) / "core.yaml").write_text(yaml.safe_dump(core_yaml(
        home / "config" / "core.yaml", org.name, org.msp_id, net.node_dir(org.name), net.state["ports"][org.name],
        home / "builders" / "ccaas", net.proposal_time_window_s, net.host(org.name))))
    progress(f"peer0.{org.name} on {net.peer_address(org.name)}, joining {net.cfg.channel}")
    net.start_peer(org.name)
    net._run([net._tool("peer"), "channel", "join", "-b", str(net.root / "channel" / "genesis.block")],
             net.admin_env(org.name), what=f"peer0.{org.name} joining")
    sequence = int(net.state.get("sequence", 1)) + 1
    policy = signature_policy(net.policy, [h.msp_id for h in net.cfg.hospitals])
    net._deploy_chaincode(progress, sequence=sequence, policy=policy, new=[org.name])
    net.wait_for_discovery(timeout, progress)
    ident, signer = net.cfg.load_user(org.name, "admin", net.passphrase)
    with connect(ident, signer, net.peer_address(org.name), tls_root_certs=net.tls_ca(org.name)) as gw:
        gw.network(net.cfg.channel).contract(net.chaincode, "UserContract").submit(
            "RegisterHospital", display_name or org.name.capitalize())
    net.write_connection_profile()
    progress(f"{org.msp_id} registered on chain")
    return org.msp_id
