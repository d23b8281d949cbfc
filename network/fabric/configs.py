"""What Fabric's own tools read: configtx.yaml, each peer's core.yaml, the orderer's orderer.yaml,
and the chaincode-as-a-service package (metadata.json + code.tar.gz holding connection.json).

core.yaml and orderer.yaml start from Fabric's sample configuration next to the binaries
(``<fabric>/config``) with this network's addresses, TLS files, folders and the ``ccaas`` external
builder filled in, so that every other setting keeps Fabric's default.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import tarfile
from pathlib import Path

import yaml

from ..config import NetworkConfig

LOOPBACK = "127.0.0.1"
#: Fabric's log levels for the peers and the orderer (``FABRIC_LOGGING_SPEC``; Fabric reads it from
#: the environment only): INFO, except the loggers that write a line for every gRPC call, endorsement,
#: gateway request and validated block, which log warnings and errors only. Committed blocks
#: (``kvledger``), Raft and start-up stay at INFO. A peer logs 110–125 bytes a transaction instead of
#: 690–910 (its CPU saving, ≈ 2 %, is within the benchmark's noise).
LOGGING_SPEC = "info:comm.grpc.server,grpc,endorser,gateway,gossip.privdata,committer.txvalidator=warning"


def bind_host(host: str) -> str:
    """Where a node whose address is ``host`` listens: that IP address itself, or every interface
    (0.0.0.0) for a DNS name."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "0.0.0.0"  # noqa: S104 - a named host is reached from other machines


def _sig(rule: str) -> dict:
    return {"Type": "Signature", "Rule": rule}


def _meta(rule: str) -> dict:
    return {"Type": "ImplicitMeta", "Rule": rule}


def org_section(msp_id: str, msp_dir: Path, *, anchor: tuple[str, int] | None = None,
                orderer_endpoint: str | None = None) -> dict:
    """One organisation of configtx.yaml (readers, writers, admins and endorsers by NodeOU)."""
    m = msp_id
    policies = {
        "Readers": _sig(f"OR('{m}.admin', '{m}.peer', '{m}.client', '{m}.orderer')"),
        "Writers": _sig(f"OR('{m}.admin', '{m}.client', '{m}.orderer')"),
        "Admins": _sig(f"OR('{m}.admin')"),
    }
    out: dict = {"Name": m, "ID": m, "MSPDir": str(msp_dir), "Policies": policies}
    if anchor is not None:
        policies["Endorsement"] = _sig(f"OR('{m}.peer')")
        out["AnchorPeers"] = [{"Host": anchor[0], "Port": anchor[1]}]
    if orderer_endpoint is not None:
        out["OrdererEndpoints"] = [orderer_endpoint]
    return out


def configtx(cfg: NetworkConfig, root: Path, ports: dict, batch_timeout_ms: float,
             hosts: dict[str, str] | None = None) -> dict:
    """configtx.yaml with one profile, ``SerumsChannel``: each hospital an application organisation
    with its anchor peer, one Raft orderer, TLS everywhere, Fabric v3 capabilities; each
    organisation's nodes at its host in ``hosts`` (default 127.0.0.1)."""
    hosts = hosts or {}
    ohost = hosts.get(cfg.orderer.name, LOOPBACK)
    orderer_org = org_section(cfg.orderer.msp_id, root / "orgs" / cfg.orderer.name / "msp",
                              orderer_endpoint=f"{ohost}:{ports['orderer']['listen']}")
    hospitals = [org_section(h.msp_id, root / "orgs" / h.name / "msp",
                             anchor=(hosts.get(h.name, LOOPBACK), ports[h.name]["listen"])) for h in cfg.hospitals]
    otls = root / "orgs" / cfg.orderer.name / "orderer0" / "tls" / "server.crt"
    orderer = {
        "OrdererType": "etcdraft",
        "EtcdRaft": {"Consenters": [{"Host": ohost, "Port": ports["orderer"]["listen"],
                                     "ClientTLSCert": str(otls), "ServerTLSCert": str(otls)}]},
        "BatchTimeout": f"{max(1, int(batch_timeout_ms))}ms",
        "BatchSize": {"MaxMessageCount": cfg.batch.max_message_count, "AbsoluteMaxBytes": "10 MB",
                      "PreferredMaxBytes": f"{max(1, cfg.batch.preferred_max_bytes // 1024)} KB"},
        "Organizations": [orderer_org],
        "Policies": {"Readers": _meta("ANY Readers"), "Writers": _meta("ANY Writers"),
                     "Admins": _meta("MAJORITY Admins"), "BlockValidation": _meta("ANY Writers")},
        "Capabilities": {"V2_0": True},
    }
    application = {
        "Organizations": hospitals,
        "Policies": {"Readers": _meta("ANY Readers"), "Writers": _meta("ANY Writers"),
                     "Admins": _meta("MAJORITY Admins"),
                     "LifecycleEndorsement": _meta("MAJORITY Endorsement"),
                     "Endorsement": _meta("MAJORITY Endorsement")},
        "Capabilities": {"V2_5": True},
    }
    channel_policies = {"Readers": _meta("ANY Readers"), "Writers": _meta("ANY Writers"),
                        "Admins": _meta("MAJORITY Admins")}
    profile = {"Policies": channel_policies, "Capabilities": {"V3_0": True},
               "Orderer": orderer, "Application": application}
    return {"Organizations": [orderer_org, *hospitals], "Profiles": {"SerumsChannel": profile}}


def _set(doc: dict, path: str, value) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        if not isinstance(doc.get(k), dict):
            doc[k] = {}
        doc = doc[k]
    doc[keys[-1]] = value


def core_yaml(sample: Path, org: str, msp_id: str, node_dir: Path, ports: dict, builder: Path,
              time_window_s: float = 900.0, host: str = LOOPBACK, bind: str | None = None) -> dict:
    """A peer's core.yaml: Fabric's sample with this peer's addresses, TLS, MSP and the ccaas builder;
    proposals dated further than ``time_window_s`` from the peer's clock are refused. Others reach
    it at ``host``; it listens on ``bind`` (default :func:`bind_host` of ``host``)."""
    doc = yaml.safe_load(sample.read_text())
    addr = f"{host}:{ports['listen']}"
    tls = node_dir / "tls"
    for path, value in {
        "peer.id": f"peer0.{org}",
        "peer.networkId": "serums",
        "peer.listenAddress": f"{bind or bind_host(host)}:{ports['listen']}",
        "peer.address": addr,
        "peer.chaincodeListenAddress": f"127.0.0.1:{ports['chaincode']}",
        "peer.chaincodeAddress": f"127.0.0.1:{ports['chaincode']}",
        "peer.gossip.bootstrap": addr,
        "peer.gossip.endpoint": addr,
        "peer.gossip.externalEndpoint": addr,
        "peer.gossip.useLeaderElection": False,
        "peer.gossip.orgLeader": True,
        "peer.tls.enabled": True,
        "peer.tls.cert.file": str(tls / "server.crt"),
        "peer.tls.key.file": str(tls / "server.key"),
        "peer.tls.rootcert.file": str(tls / "ca.crt"),
        "peer.tls.clientRootCAs.files": [str(tls / "ca.crt")],
        "peer.fileSystemPath": str(node_dir / "data"),
        "peer.mspConfigPath": str(node_dir / "msp"),
        "peer.localMspId": msp_id,
        "vm.endpoint": "",
        "chaincode.externalBuilders": [{"name": "ccaas_builder", "path": str(builder),
                                        "propagateEnvironment": ["CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG"]}],
        "ledger.snapshots.rootDir": str(node_dir / "data" / "snapshots"),
        "operations.listenAddress": f"127.0.0.1:{ports['operations']}",
        "metrics.provider": "disabled",
        "peer.authentication.timewindow": f"{int(time_window_s)}s",
    }.items():
        _set(doc, path, value)
    return doc


def orderer_yaml(sample: Path, msp_id: str, node_dir: Path, ports: dict, admin_client_ca: Path,
                 host: str = LOOPBACK) -> dict:
    """The orderer's orderer.yaml: TLS on its listener (Raft's cluster shares it) at ``host``, the
    admin endpoint (on loopback) with mutual TLS for osnadmin, no system channel, a short
    keepalive minimum for gateways."""
    doc = yaml.safe_load(sample.read_text())
    tls = node_dir / "tls"
    for path, value in {
        "General.ListenAddress": bind_host(host),
        "General.ListenPort": ports["listen"],
        "General.TLS.Enabled": True,
        "General.TLS.PrivateKey": str(tls / "server.key"),
        "General.TLS.Certificate": str(tls / "server.crt"),
        "General.TLS.RootCAs": [str(tls / "ca.crt")],
        "General.Keepalive.ServerMinInterval": "5s",
        "General.Cluster.ClientCertificate": str(tls / "server.crt"),
        "General.Cluster.ClientPrivateKey": str(tls / "server.key"),
        "General.BootstrapMethod": "none",
        "General.LocalMSPDir": str(node_dir / "msp"),
        "General.LocalMSPID": msp_id,
        "FileLedger.Location": str(node_dir / "data" / "ledger"),
        "Consensus.WALDir": str(node_dir / "data" / "etcdraft" / "wal"),
        "Consensus.SnapDir": str(node_dir / "data" / "etcdraft" / "snapshot"),
        "Operations.ListenAddress": f"127.0.0.1:{ports['operations']}",
        "Metrics.Provider": "disabled",
        "Admin.ListenAddress": f"127.0.0.1:{ports['admin']}",
        "Admin.TLS.Enabled": True,
        "Admin.TLS.Certificate": str(tls / "server.crt"),
        "Admin.TLS.PrivateKey": str(tls / "server.key"),
        "Admin.TLS.ClientAuthRequired": True,
        "Admin.TLS.ClientRootCAs": [str(admin_client_ca)],
        "ChannelParticipation.Enabled": True,
    }.items():
        _set(doc, path, value)
    return doc


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ccaas_package(label: str, connection: dict) -> tuple[bytes, str]:
    """A ``ccaas`` chaincode package and its package id (``label:sha256(package)``, as the peer computes)."""
    code = _tar_bytes({"connection.json": json.dumps(connection, indent=2).encode()})
    pkg = _tar_bytes({"metadata.json": json.dumps({"type": "ccaas", "label": label}).encode(),
                      "code.tar.gz": code})
    return pkg, f"{label}:{hashlib.sha256(pkg).hexdigest()}"


def signature_policy(policy: str, msp_ids: list[str]) -> str:
    """The chaincode's endorsement policy in Fabric's signature-policy syntax: MAJORITY, ANY and ALL
    of the hospitals' peers, or an explicit expression passed through."""
    peers = ", ".join(f"'{m}.peer'" for m in msp_ids)
    word = policy.strip().upper()
    if word == "MAJORITY":
        return f"OutOf({len(msp_ids) // 2 + 1}, {peers})"
    if word == "ANY":
        return f"OR({peers})"
    if word == "ALL":
        return f"AND({peers})"
    return policy
