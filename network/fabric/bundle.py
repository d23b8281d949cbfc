"""Per-hospital bundles: what one hospital needs to run its own peer and chaincode server itself.

``serums network bundle lothian`` writes ``lothian-bundle.tar.gz`` holding only that hospital's
private keys (peer, admin, chaincode server), its organisation's MSP, the channel's genesis block,
the orderer's endpoint and TLS CA, the chaincode package it installed, a connection profile, and
three scripts::

    FABRIC_BIN=/opt/fabric/bin ./start-peer.sh        # the peer (its ledger under peer0/data)
    FABRIC_BIN=/opt/fabric/bin ./join.sh              # join the channel, install the chaincode package
    ./start-chaincode.sh                              # the hospital's chaincode server (serums on PATH)

Paths in the bundle's core.yaml are relative to it (Fabric resolves them against the file's folder),
except the ledger folders and the ccaas builder, which ``start-peer.sh`` fills in (the bundle's own
place, and ``FABRIC_BIN``). The peer and the chaincode server listen on every interface of the
hospital's machine and are reached at the hospital's host (``--host`` at ``network up`` or
``add-hospital``, named in their TLS certificates; 127.0.0.1 by default); the orderer's endpoint
and the other hospitals' anchor peers are the channel's, at their own hosts.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import yaml

from .configs import LOGGING_SPEC, core_yaml
from .network import FabricError, FabricNetwork

BUILDERS = "@FABRIC_BUILDERS@"
HERE = "@BUNDLE@"

START_PEER = """#!/bin/sh
# Start peer0 of {org}: FABRIC_BIN is the folder of Fabric's binaries (builders/ccaas next to it).
set -e
here=$(cd "$(dirname "$0")" && pwd)
: "${{FABRIC_BIN:?set FABRIC_BIN to the folder holding peer}}"
builders=$(cd "$FABRIC_BIN/../builders" && pwd)
sed -e "s#{builders_mark}#$builders#" -e "s#{here_mark}#$here#" "$here/peer0/core.yaml.in" > "$here/peer0/core.yaml"
FABRIC_CFG_PATH="$here/peer0" FABRIC_LOGGING_SPEC="${{FABRIC_LOGGING_SPEC:-{logging_spec}}}" exec "$FABRIC_BIN/peer" node start
"""

JOIN = """#!/bin/sh
# Join {org}'s peer to channel {channel} and install the chaincode package (as the hospital's admin).
set -e
here=$(cd "$(dirname "$0")" && pwd)
: "${{FABRIC_BIN:?set FABRIC_BIN to the folder holding peer}}"
export FABRIC_CFG_PATH="$here/peer0" CORE_PEER_LOCALMSPID={msp} CORE_PEER_MSPCONFIGPATH="$here/admin/msp"
export CORE_PEER_ADDRESS={peer} CORE_PEER_TLS_ENABLED=true CORE_PEER_TLS_ROOTCERT_FILE="$here/peer0/tls/ca.crt"
"$FABRIC_BIN/peer" channel join -b "$here/channel/genesis.block"
"$FABRIC_BIN/peer" lifecycle chaincode install "$here/chaincode/{chaincode}.tar.gz"
"""

START_CHAINCODE = """#!/bin/sh
# Start {org}'s chaincode server (chaincode as a service; the peer connects to it with mutual TLS).
here=$(cd "$(dirname "$0")" && pwd)
exec "${{SERUMS:-serums}}" chaincode serve --chaincode-id {package_id} --address {address} \\
  --module {module} --tls-cert "$here/chaincode/tls/server.crt" \\
  --tls-key "$here/chaincode/tls/server.key" --client-ca "$here/chaincode/tls/ca.crt"
"""


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, src: Path, arcname: str) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_file():
            private = path.name.endswith(("_sk", ".key"))
            _add(tar, f"{arcname}/{path.relative_to(src)}", path.read_bytes(), 0o600 if private else 0o644)


def write_bundle(net: FabricNetwork, hospital: str, out: Path) -> Path:
    """Write ``hospital``'s bundle (a .tar.gz) to ``out``; see the module docstring."""
    if not net.state.get("committed"):
        raise FabricError(f"no Fabric network in {net.root}: run `serums network up --engine fabric` first")
    org = net.cfg.org(hospital)
    if org.name == net.cfg.orderer.name:
        raise FabricError("bundles are for hospitals; the ordering service stays where it runs")
    home = Path(net.state["bin"]).parent
    ports = net.state["ports"][org.name]
    top = f"{org.name}-bundle"
    host = net.host(org.name)
    core = core_yaml(home / "config" / "core.yaml", org.name, org.msp_id, Path("."), ports,
                     Path(BUILDERS) / "ccaas", net.proposal_time_window_s, host, bind="0.0.0.0")  # noqa: S104
    # Fabric wants absolute ledger folders: start-peer.sh writes the bundle's own place in
    core["peer"]["fileSystemPath"] = f"{HERE}/peer0/data"
    core["ledger"]["snapshots"]["rootDir"] = f"{HERE}/peer0/data/snapshots"
    # a fresh peer cannot fetch the private data of its hospital's earlier approvals (only its old
    # ledger held them): commit those blocks without waiting Fabric's default minute each
    core["peer"]["gossip"]["pvtData"]["pullRetryThreshold"] = "5s"
    o = net.cfg.orderer.name
    info = {
        "hospital": org.name, "msp_id": org.msp_id, "channel": net.cfg.channel,
        "peer": net.peer_address(org.name), "orderer_endpoints": [net.orderer_address],
        "chaincode": net.chaincode, "package_id": net.state["package_ids"][org.name],
        "host": host, "chaincode_server": f"{host}:{ports['ccserver']}",
        "anchor_peers": {h.msp_id: net.peer_address(h.name) for h in net.cfg.hospitals},
    }
    profile = net.connection_profile()
    profile["client"]["organization"] = org.msp_id
    profile["organizations"] = {org.msp_id: profile["organizations"][org.msp_id]}
    profile["peers"] = {f"peer0.{org.name}": profile["peers"][f"peer0.{org.name}"]}
    profile["channels"][net.cfg.channel]["peers"] = {f"peer0.{org.name}": {}}
    out.parent.mkdir(parents=True, exist_ok=True)
    base = net.org_dir(org.name)
    with tarfile.open(out, "w:gz") as tar:
        _add_dir(tar, base / "msp", f"{top}/msp")
        _add_dir(tar, net.node_dir(org.name) / "msp", f"{top}/peer0/msp")
        _add_dir(tar, net.node_dir(org.name) / "tls", f"{top}/peer0/tls")
        _add_dir(tar, base / "admin", f"{top}/admin")
        _add_dir(tar, base / "chaincode" / "tls", f"{top}/chaincode/tls")
        _add(tar, f"{top}/chaincode/{net.chaincode}.tar.gz",
             (base / "chaincode" / f"{net.chaincode}.tar.gz").read_bytes())
        _add(tar, f"{top}/peer0/core.yaml.in", yaml.safe_dump(core).encode())
        _add(tar, f"{top}/channel/genesis.block", (net.root / "channel" / "genesis.block").read_bytes())
        _add(tar, f"{top}/orderer-tls-ca.pem", net.tls_ca(o))
        _add(tar, f"{top}/connection.json", json.dumps(profile, indent=2).encode())
        _add(tar, f"{top}/bundle.json", json.dumps(info, indent=2).encode())
        _add(tar, f"{top}/start-peer.sh", START_PEER.format(org=org.name, builders_mark=BUILDERS, here_mark=HERE,
                                                              logging_spec=LOGGING_SPEC).encode(), 0o755)
        _add(tar, f"{top}/join.sh", JOIN.format(org=org.name, channel=net.cfg.channel, msp=org.msp_id,
                                                peer=info["peer"], chaincode=net.chaincode).encode(), 0o755)
        _add(tar, f"{top}/start-chaincode.sh", START_CHAINCODE.format(
            org=org.name, package_id=info["package_id"], address=f"0.0.0.0:{ports['ccserver']}",
            module=net.chaincode_module).encode(), 0o755)
    os.chmod(out, 0o600)  # it holds the hospital's private keys
    return out
