"""Interoperability: the official Node Gateway client (``@hyperledger/fabric-gateway`` from npm,
installed into tests/interop/node by scripts/setup.sh) drives both engines — the embedded node
(plaintext and mutual TLS) and a native Fabric v3 network — with the same checks
(tests/interop/node/interop.js), so every answer of the embedded node is the one Fabric gives."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from network.node import EmbeddedNode
from network.node.tls import client_tls, node_tls
from tests.network.conftest import make_network

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "interop.js"

# every check the script makes; a check that silently stopped running fails this test too
EXPECTED_CHECKS = {
    "evaluate", "submit", "submitAsync", "offline signing", "transient data",
    "chaincode events with in-memory checkpointer",
    "chaincode events resume after a transaction in an earlier block",
    "chaincode events with file checkpointer", "block events", "genesis block is a complete channel configuration",
    "filtered block events", "private data block events", "MVCC conflict is a CommitError",
    "error: chaincode refusal on evaluate is UNKNOWN with the chaincode message",
    "error: chaincode refusal on submit is EndorseError ABORTED with details",
    "error: unknown chaincode is FAILED_PRECONDITION", "error: unknown channel is UNAVAILABLE",
    "error: unknown channel chaincode events are PERMISSION_DENIED",
    "error: unknown channel block events end with status NOT_FOUND",
    "error: events of an unknown chaincode open and yield nothing",
    'error: bad signature on evaluate is FAILED_PRECONDITION "access denied"',
    'error: bad signature on endorse is ABORTED with "access denied" details',
    "error: bad signature on submit is ABORTED status=FORBIDDEN",
    "error: bad signature on chaincode events is PERMISSION_DENIED",
    "error: bad signature on block events ends with status FORBIDDEN",
}


def _node_client_available() -> str | None:
    """Why the Node client cannot run here, or None."""
    if shutil.which("node") is None:
        return "node (Node.js ≥ 20) is not installed"
    if not (NODE_DIR / "node_modules" / "@hyperledger" / "fabric-gateway").is_dir():
        return "the Node client is not installed: run scripts/setup.sh (npm ci in tests/interop/node)"
    return None


@pytest.fixture(scope="module")
def node_client():
    why = _node_client_available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"interop tests must run in CI: {why}")
        pytest.skip(why)


def run_interop(cfg, address: str, org: str = "lothian", **extra) -> dict:
    user = cfg.user_dir(org, "admin")
    args = {
        "address": address, "channel": cfg.channel, "chaincode": "assets", "contract": "AssetContract",
        "mspId": cfg.org(org).msp_id, "certPath": str(user / "cert.pem"), "keyPath": str(user / "key.pem"), **extra,
    }
    proc = subprocess.run(["node", str(SCRIPT), json.dumps(args)], cwd=NODE_DIR, capture_output=True, text=True,
                          timeout=240)
    assert proc.stdout.strip(), f"no output from interop.js (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# What Fabric v3.1.5 answers the project's own Python client where the Node client cannot ask (start
# positions it never sends) or is not asked above: (gRPC code, message) — measured on a native network.
PYTHON_CLIENT_ANSWERS = {
    "commit status, bad signature": ("PERMISSION_DENIED", "Failed evaluating policy on signed data during check policy "
                                     "on channel [serums] with policy [/Channel/Application/Readers]: [implicit policy "
                                     "evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of "
                                     "the 'Readers' sub-policies to be satisfied]"),
    "commit status, unknown channel": ("PERMISSION_DENIED", "Failed to get policy manager for channel [nochannel]"),
    "events from oldest": ("INVALID_ARGUMENT", "invalid start position type: *orderer.SeekPosition_Oldest"),
    "events from newest": ("INVALID_ARGUMENT", "invalid start position type: *orderer.SeekPosition_Newest"),
}


def python_client_answers(cfg, address: str, **tls) -> dict[str, tuple[str, str]]:
    from fabric_protos.gateway import gateway_pb2

    from network import protocol as P
    from network.client import Commit, GatewayError, connect
    from network.identity import Signer

    ident, signer = cfg.load_user("lothian")
    gw = connect(ident, signer, address, **tls)
    rogue = connect(ident, Signer.generate().sign_digest, address, **tls)
    out = {}
    for name, call in (("commit status, bad signature", lambda: Commit(rogue, cfg.channel, "0" * 64).status(timeout=5)),
                       ("commit status, unknown channel", lambda: Commit(gw, "nochannel", "0" * 64).status(timeout=5))):
        try:
            call()
            out[name] = ("OK", "")
        except GatewayError as e:
            out[name] = (e.code.name, e.message)
    for which in ("oldest", "newest"):
        req = gateway_pb2.ChaincodeEventsRequest(channel_id=cfg.channel, chaincode_id="assets", identity=gw.creator)
        getattr(req.start_position, which).SetInParent()
        data = req.SerializeToString()
        signed = gateway_pb2.SignedChaincodeEventsRequest(request=data, signature=gw.sign(P.sha256(data)))
        try:
            next(iter(gw.stub.ChaincodeEvents(signed, timeout=5)))
            out[f"events from {which}"] = ("OK", "")
        except grpc.RpcError as e:
            out[f"events from {which}"] = (e.code().name, e.details())
    gw.close()
    rogue.close()
    return out


def _failures(report: dict) -> dict:
    return {name: r["detail"] for name, r in report["checks"].items() if not r["ok"]}


@pytest.mark.parametrize("transport", ["plaintext", "mutual TLS"])
def test_official_node_client_against_the_embedded_node(node_client, tmp_path, caplog, transport):
    caplog.set_level(logging.INFO)
    cfg = make_network(tmp_path / "net")
    node = EmbeddedNode(cfg)
    mutual = transport == "mutual TLS"
    address = node.start("127.0.0.1:0", mutual_tls=mutual)
    tls, py_tls = {}, {}
    if mutual:
        server, client = node_tls(cfg), client_tls(cfg, "lothian")
        tls = {"tlsRootCertPath": str(server.directory / "ca.crt"),
               "tlsClientCertPath": str(client.directory / "server.crt"),
               "tlsClientKeyPath": str(client.directory / "server.key")}
        py_tls = {"tls_root_certs": server.ca, "tls_client_cert": client.cert, "tls_client_key": client.key}
    try:
        report = run_interop(cfg, address, **tls)
        answers = python_client_answers(cfg, address, **py_tls)
    finally:
        node.stop()
    assert answers == PYTHON_CLIENT_ANSWERS
    assert "fatal" not in report, report.get("fatal")
    assert set(report["checks"]) == EXPECTED_CHECKS, set(report["checks"]) ^ EXPECTED_CHECKS
    assert _failures(report) == {}
    assert report["checks"]["block events"]["detail"]["ordererMsps"] == ["OrdererMSP"]
    # refusals are logged as warnings with their reason; closed streams log nothing at error level
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "does not verify" in caplog.text


@pytest.mark.fabric
@pytest.mark.slow
def test_official_node_client_against_real_fabric(node_client, tmp_path):
    """The same checks against a native Fabric network (one orderer, a peer per hospital, the
    assets chaincode served by our CCaaS shim): the reference the embedded node is held to."""
    from network.fabric import FabricNetwork
    from tests.conftest import fabric_bin

    bin_dir = fabric_bin()
    assert bin_dir is not None, "Fabric binaries not found (FABRIC_BIN, PATH, ../shared/fabric/bin)"
    cfg = make_network(tmp_path / "net", batch_timeout_ms=10)
    fab = FabricNetwork(cfg, bin_dir=bin_dir, chaincode="assets", chaincode_module="chaincode.samples:assets_chaincode",
                        batch_timeout_ms=10)
    try:
        fab.up(timeout=300)
        admin_tls = fab.org_dir("lothian") / "admin" / "tls"
        address = fab.peer_address("lothian")
        report = run_interop(cfg, address, tlsRootCertPath=str(fab.node_dir("lothian") / "tls" / "ca.crt"),
                             tlsClientCertPath=str(admin_tls / "server.crt"),
                             tlsClientKeyPath=str(admin_tls / "server.key"))
        answers = python_client_answers(cfg, address, tls_root_certs=fab.tls_ca("lothian"))
    finally:
        fab.down()
    assert answers == PYTHON_CLIENT_ANSWERS
    assert "fatal" not in report, report.get("fatal")
    assert set(report["checks"]) == EXPECTED_CHECKS, set(report["checks"]) ^ EXPECTED_CHECKS
    assert _failures(report) == {}
