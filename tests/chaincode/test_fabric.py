"""Real Hyperledger Fabric only (the session's network, reused): 32 concurrent submits through our
chaincode shim, every one accounted for and every event delivered; what runs, as `serums network
status` tells it; a killed peer catches up after its restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from fabric_protos.common import ledger_pb2

from gateway import ledger as L
from network import GatewayError, connect
from network.fabric.network import _listening
from network.protocol import VALID, TxValidationCode

from .conftest import CC, HOSPITALS, Cast, World, concurrently, uid

pytestmark = [pytest.mark.fabric, pytest.mark.parametrize("world", ["fabric"], indirect=True)]
MVCC = TxValidationCode.Value("MVCC_READ_CONFLICT")


def _submit(actor, cname: str, fn: str, args: list):
    """Endorse, submit, and return the commit status. An endorsement refused because the endorsers
    simulated on different block heights (a block committed on one peer a moment before another:
    "ProposalResponsePayloads do not match") is endorsed again, as a Fabric application does: the
    gateway's own bounded retry (``gateway.ledger.endorse``)."""
    return L.endorse(lambda: actor.proposal(cname, fn, args)).submit().status()


def _height(world: World, org: str, default: int | None = None) -> int:
    """The block height of ``org``'s peer (``default`` while it does not answer)."""
    assert world.fabric is not None
    ident, signer = world.cfg.load_user(org)
    try:
        with connect(ident, signer, world.fabric.peer_address(org), tls_root_certs=world.fabric.tls_ca(org),
                     evaluate_timeout=5) as gw:
            raw = gw.network(world.cfg.channel).contract("qscc").evaluate("GetChainInfo", world.cfg.channel)
    except GatewayError:
        if default is None:
            raise
        return default
    return ledger_pb2.BlockchainInfo.FromString(raw).height


def test_32_concurrent_submits_all_accounted_for_and_every_event_delivered(world: World, cast: Cast):
    admins = [world.admins[o] for o in HOSPITALS]
    target = world.user("lothian", "nurse")
    jobs = []
    # 24 registrations (disjoint keys) and 8 updates of one user (the same key: MVCC conflicts expected)
    for i in range(24):
        admin = admins[i % 3]
        fp = world.identity(admin.org, "gp")[0].fingerprint
        jobs.append(lambda a=admin, fp=fp: _submit(a, "UserContract", "RegisterUser", [uid("c"), "gp", fp]))
    for i in range(8):
        role = "gp" if i % 2 else "nurse"
        jobs.append(lambda r=role: _submit(world.admins["lothian"], "UserContract", "UpdateUser",
                                           [target.name, {"role": r}]))
    statuses = concurrently(jobs)
    assert len(statuses) == 32 and len({s.transaction_id for s in statuses}) == 32  # none lost
    codes = [s.code for s in statuses]
    assert set(codes) <= {VALID, MVCC}, [s.code_name for s in statuses]
    assert codes[:24] == [VALID] * 24
    assert VALID in codes[24:]  # at least the first writer of the shared key wins
    valid = {s.transaction_id for s in statuses if s.code == VALID}
    first, last = min(s.block_number for s in statuses), max(s.block_number for s in statuses)
    # one more transaction after them, so that the event stream shows a block past the last one
    end = world.admins["zmc"].tx("UserContract", "RegisterUser", uid("c"), "gp",
                                 world.identity("zmc", "gp")[0].fingerprint).status
    assert end.block_number > last
    seen: dict[str, str] = {}
    with cast.auditor.gw.network(world.cfg.channel).chaincode_events(CC, start_block=first) as events:
        for ev in events:
            if ev.block_number > last:
                break
            seen[ev.transaction_id] = ev.event_name
    assert set(seen) == valid  # every valid transaction's event, and none of a refused one
    assert sorted(seen[s.transaction_id] for s in statuses[:24]) == ["UserRegistered"] * 24


def test_network_status_tells_what_runs(world: World):
    assert world.fabric is not None
    out = subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(world.cfg.root.parent), "network",
                          "status", "--json"], capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(out.stdout)
    names = {p["name"]: p["running"] for p in report["processes"]}
    assert names == {"orderer": True, **{f"peer0.{o}": True for o in HOSPITALS},
                     **{f"chaincode.{o}": True for o in HOSPITALS}}
    profile = json.loads((world.fabric.root / "connection.json").read_text())
    assert set(profile["organizations"]) == {"LothianMSP", "ZmcMSP", "FcrbMSP"}
    assert all(p["url"].startswith("grpcs://127.0.0.1:") for p in profile["peers"].values())


def test_ledger_verify_reads_every_peers_chain_through_deliver(world: World, cast: Cast):
    from network.fabric import verify_fabric
    from network.fabric.audit import check_chain
    from network.identity import MSP

    net = world.fabric
    assert net is not None
    world.synced(world.admins["zmc"].tx("UserContract", "RegisterUser", uid("v"), "gp",
                                        world.identity("zmc", "gp")[0].fingerprint).status.block_number)
    report = verify_fabric(net)
    assert report.ok, [str(p) for p in report.problems]
    assert set(report.peers) == {f"peer0.{o}" for o in HOSPITALS}
    assert len({s.last_hash for s in report.peers.values()}) == 1 and report.orderer_height > 5
    assert all(s.valid > 0 for s in report.peers.values())
    # the same check finds an altered transaction, a broken chain and a forged orderer signature
    with cast.auditor.gw.network(world.cfg.channel).block_events(start_block=0, stop_block=4) as events:
        blocks = list(events)
    orderer = MSP(world.cfg.orderer.msp_id, world.cfg.root_certs()[world.cfg.orderer.msp_id])
    tampered = [type(b).FromString(b.SerializeToString()) for b in blocks]
    tampered[3].data.data[0] = tampered[3].data.data[0].replace(b"serums", b"SERUMS", 1)
    from network.audit import VerifyReport

    r = VerifyReport()
    check_chain("peer0.x", tampered, orderer, r)
    assert [(p.block, "data hash" in p.message) for p in r.problems] == [(3, True)]
    r = VerifyReport()
    check_chain("peer0.x", blocks[:2] + blocks[3:], orderer, r)
    assert r.problems[0].block == 2 and "expected block 2" in r.problems[0].message
    stranger = MSP("OrdererMSP", [world.cfg.load_ca("lothian").certificate])
    r = VerifyReport()
    check_chain("peer0.x", blocks, stranger, r)
    assert r.problems[0].block == 1 and "signature" in r.problems[0].message
    # and from the command line
    out = subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(world.cfg.root.parent), "ledger",
                          "verify", "--engine", "fabric", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ok"] is True


def test_a_hospital_runs_its_peer_from_its_bundle(world: World, tmp_path):
    import os
    import tarfile

    net = world.fabric
    assert net is not None
    out = subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(world.cfg.root.parent), "network",
                          "bundle", "zmc", "--out", str(tmp_path / "zmc.tar.gz")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    with tarfile.open(tmp_path / "zmc.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path, filter="tar")
    keys = [n for n in names if n.endswith(("_sk", ".key"))]
    assert keys and all(n.startswith("zmc-bundle/") for n in keys)
    zmc_certs = {(world.cfg.root / "fabric" / "orgs" / "zmc" / sub).read_bytes()
                 for sub in ("peer0/tls/server.crt", "admin/tls/server.crt", "chaincode/tls/server.crt")}
    for n in names:  # only zmc's own material: no other organisation's certificate or key
        if n.endswith((".crt", "cert.pem")) and "cacerts" not in n and "ca.crt" not in n:
            data = (tmp_path / n).read_bytes()
            assert b"lothian" not in data.lower() or data in zmc_certs, n
    home = tmp_path / "zmc-bundle"
    info = json.loads((home / "bundle.json").read_text())
    assert info["msp_id"] == "ZmcMSP" and info["orderer_endpoints"] == [net.orderer_address]
    # move zmc's peer into the bundle: a fresh ledger, joined from the genesis block, caught up
    target = _height(world, "lothian")
    assert net.stop_process("peer0.zmc")
    env = {**os.environ, "FABRIC_BIN": str(net.bin_dir)}
    with (tmp_path / "peer.log").open("wb") as log:
        peer = subprocess.Popen([str(home / "start-peer.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        port = int(net.peer_address("zmc").rsplit(":", 1)[1])
        while not _listening(port):  # (no channel yet: it answers no query before join.sh)
            assert peer.poll() is None, (tmp_path / "peer.log").read_text()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.5)
        joined = subprocess.run([str(home / "join.sh")], env=env, capture_output=True, text=True, timeout=120)
        assert joined.returncode == 0, joined.stderr[-2000:]
        deadline = time.monotonic() + 60
        while _height(world, "zmc", default=0) < target:
            assert time.monotonic() < deadline, "the bundle's peer did not catch up"
            time.sleep(0.5)
        assert (home / "peer0" / "data" / "ledgersData").is_dir()  # its ledger lives in the bundle
        ident, signer = world.cfg.load_user("zmc")
        with connect(ident, signer, net.peer_address("zmc"), tls_root_certs=net.tls_ca("zmc")) as gw:
            who = gw.network(world.cfg.channel).contract(CC, "UserContract").evaluate("WhoAmI")
        assert json.loads(who)["msp"] == "ZmcMSP"  # its peer runs the chaincode through its server
        assert peer.poll() is None, (tmp_path / "peer.log").read_text()[-2000:]
    finally:
        if peer.poll() is None:
            os.killpg(peer.pid, 15)
        peer.wait(30)
        net.start_peer("zmc")
    net.wait_for_discovery(180, lambda _: None)  # gossip has found the restarted peer again
    world.synced(target - 1)  # the original peer is back and up to date


def test_a_killed_peer_catches_up_after_its_restart(world: World, cast: Cast):
    net = world.fabric
    assert net is not None
    assert net.stop_process("peer0.fcrb", kill=True)
    assert not net.running("peer0.fcrb")
    # MAJORITY (2 of 3) still holds: the gateway endorses with the two live hospitals
    done = []
    deadline = time.monotonic() + 60
    while len(done) < 5 and time.monotonic() < deadline:
        try:
            done.append(world.admins["lothian"].proposal(
                "UserContract", "RegisterUser", [uid("k"), "gp", world.identity("lothian", "gp")[0].fingerprint])
                .endorse().submit().status())
        except GatewayError:  # until the gateway notices the dead peer
            time.sleep(1)
    assert len(done) == 5 and all(s.successful for s in done)
    target = max(s.block_number for s in done) + 1
    assert _height(world, "lothian") >= target
    net.start_peer("fcrb")
    deadline = time.monotonic() + 60
    while _height(world, "fcrb", default=0) < target:
        assert time.monotonic() < deadline, "the restarted peer did not catch up"
        time.sleep(0.5)
    # and it endorses again: a transaction that needs all three hospitals' peers up to date
    net.wait_for_discovery(180, lambda _: None)
    world.synced(target - 1)
