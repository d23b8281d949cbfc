"""Validation at every peer: MVCC, phantoms, endorsement policy, signatures, membership, replays."""

from __future__ import annotations

import sqlite3
import threading

import grpc
import pytest
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2

from network import CertificateAuthority
from network.client import Commit, CommitError, EndorseError, GatewayError, connect
from network.identity import Signer
from network.protocol import parse_transaction, transactions_filter, validation_code_name


def _code(status) -> str:
    return validation_code_name(status.code)


def test_two_concurrent_transactions_on_one_key_exactly_one_valid(running):
    c = running.contract()
    c.submit_json("Increment", "k", 1)
    a = c.new_proposal("Increment", ["k", "10"]).endorse()
    b = c.new_proposal("Increment", ["k", "100"]).endorse()
    sa, sb = a.submit().status(), b.submit().status()
    assert sorted([_code(sa), _code(sb)]) == ["MVCC_READ_CONFLICT", "VALID"]
    winner = 11 if sa.successful else 101
    assert c.evaluate_json("GetCounter", "k") == winner


def test_many_threads_on_one_key_never_lose_an_update(running):
    c = running.contract()
    results: list[str] = []
    lock = threading.Lock()

    def worker():
        for _ in range(5):
            try:
                c.submit_json("Increment", "hot", 1)
                r = "VALID"
            except CommitError as e:
                r = e.code_name
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) <= {"VALID", "MVCC_READ_CONFLICT"}
    assert "MVCC_READ_CONFLICT" in results  # 8 writers on one key must collide at least once
    assert c.evaluate_json("GetCounter", "hot") == results.count("VALID")


def test_range_query_phantom_read_is_refused(running):
    c = running.contract()
    c.submit_json("Put", "ward7", "x1", {})
    move = c.new_proposal("TransferAll", ["ward7", "ward8"]).endorse()
    c.submit_json("Put", "ward7", "x2", {})  # a new key appears inside the range that was read
    status = move.submit().status()
    assert _code(status) == "PHANTOM_READ_CONFLICT"
    assert c.evaluate_json("Get", "ward7", "x1")["owner"] == "ward7"  # nothing moved


def test_single_endorsement_fails_majority_policy(running):
    c = running.contract()
    with pytest.raises(CommitError) as e:
        c.submit("Put", "solo", "s1", "{}", endorsing_organizations=["LothianMSP"])
    assert e.value.code_name == "ENDORSEMENT_POLICY_FAILURE"
    with pytest.raises(GatewayError):
        c.evaluate("Get", "solo", "s1")


def _alter_state_and_restart(running, org: str, owner: str, asset: str, new_value: bytes):
    """Tamper with one peer's state database while the node is down, then bring it back up."""
    from chaincode import create_composite_key
    from network.node import EmbeddedNode

    peers = running.node.peers
    assert all(p.wait_for_height(peers["LothianMSP"].height, 5) for p in peers.values())
    running.node.stop()
    path = running.cfg.ledger_dir() / f"peer0.{org}.db"
    key = create_composite_key("asset", [owner, asset]).encode()
    with sqlite3.connect(path) as db:
        n = db.execute("UPDATE state SET value=? WHERE ns='assets' AND key=?", (new_value, key)).rowcount
    assert n == 1
    running.node = EmbeddedNode(running.cfg)
    running.address = running.node.start("127.0.0.1:0")


def _with_endorsements(payload: bytes, extra) -> bytes:
    p = common_pb2.Payload()
    p.ParseFromString(payload)
    tx = transaction_pb2.Transaction()
    tx.ParseFromString(p.data)
    cap = transaction_pb2.ChaincodeActionPayload()
    cap.ParseFromString(tx.actions[0].payload)
    cap.action.endorsements.extend(extra)
    tx.actions[0].payload = cap.SerializeToString()
    p.data = tx.SerializeToString()
    return p.SerializeToString()



def test_peer_with_altered_state_cannot_get_a_transaction_committed(running):
    c = running.contract()
    c.submit_json("Put", "pat", "p1", {"v": 1})
    _alter_state_and_restart(
        running, "zmc", "pat", "p1", b'{"id":"p1","owner":"pat","tx":"forged","value":{"v":999},"version":7}'
    )
    c = running.contract()
    # the gateway sees the two endorsers disagree and refuses to assemble the transaction
    with pytest.raises(EndorseError) as e:
        c.submit("Put", "pat", "p1", '{"v":2}', endorsing_organizations=["LothianMSP", "ZmcMSP"])
    assert e.value.code == grpc.StatusCode.ABORTED
    assert "do not match" in str(e.value)
    # a client that stitches the altered peer's endorsement in anyway gets a policy failure
    gw = running.gateway()
    contract = gw.network("serums").contract("assets", "AssetContract")
    prop = contract.new_proposal("Put", ["pat", "p1", '{"v":2}'], endorsing_organizations=["LothianMSP"])
    honest = prop.endorse()
    again = gw.new_proposal(prop.bytes())
    again.endorsing_organizations = ["ZmcMSP"]
    altered = again.endorse()
    assert altered.payload != honest.payload
    stitched = gw.new_transaction(
        gateway_pb2.PreparedTransaction(
            transaction_id=honest.transaction_id,
            envelope=common_pb2.Envelope(payload=_with_endorsements(honest.payload, parse_transaction(
                common_pb2.Envelope(payload=altered.payload).SerializeToString()).endorsements)),
        ).SerializeToString()
    )
    status = stitched.submit().status()
    assert _code(status) == "ENDORSEMENT_POLICY_FAILURE"
    assert c.evaluate_json("Get", "pat", "p1", target_organizations=["LothianMSP"])["value"] == {"v": 1}


def test_forged_envelope_signature_is_refused_by_gateway_and_by_validation(running):
    c = running.contract()
    tx = c.new_proposal("Put", ["forge", "f1", "{}"]).endorse()
    tx.set_signature(Signer.generate().sign_digest(tx.digest()))
    with pytest.raises(GatewayError) as e:
        tx.submit()
    assert e.value.code == grpc.StatusCode.ABORTED and "status=FORBIDDEN" in e.value.message
    assert e.value.kind == GatewayError.ACCESS_DENIED
    # even if it reached the orderer (a compromised gateway), every peer marks it invalid
    running.node.orderer.broadcast(tx.envelope().SerializeToString())
    gw = running.gateway()
    status = Commit(gw, "serums", tx.transaction_id).status()
    assert _code(status) == "BAD_CREATOR_SIGNATURE"
    with pytest.raises(GatewayError):
        c.evaluate("Get", "forge", "f1")


def test_unknown_certificate_is_refused(running, caplog):
    """As Fabric: the client hears only "access denied" (FAILED_PRECONDITION from Evaluate, ABORTED
    with a per-endorser detail from Endorse); the reason is in the node's log."""
    rogue_ca = CertificateAuthority.create("LothianMSP", "lothian")  # same names, not the channel's CA
    ident, signer = rogue_ca.issue("admin@lothian", "admin")
    gw = connect(ident, signer, running.address)
    c = gw.network("serums").contract("assets", "AssetContract")
    for call, code in ((lambda: c.evaluate("Get", "a", "b"), grpc.StatusCode.FAILED_PRECONDITION),
                       (lambda: c.submit("Put", "a", "b", "{}"), grpc.StatusCode.ABORTED)):
        with pytest.raises(GatewayError) as e:
            call()
        assert e.value.code == code and e.value.kind == GatewayError.ACCESS_DENIED
        assert "access denied" in str(e.value) and "CA" not in str(e.value)
    assert "not issued by a CA of LothianMSP" in caplog.text
    outsider = CertificateAuthority.create("EvilMSP", "evil")
    ident2, signer2 = outsider.issue("mallory", "client")
    with pytest.raises(GatewayError) as e:
        connect(ident2, signer2, running.address).network("serums").contract("assets").evaluate("AssetContract:Get", "a", "b")
    assert e.value.kind == GatewayError.ACCESS_DENIED
    assert "not a member of the channel" in caplog.text


def test_replayed_transaction_is_marked_duplicate_and_changes_nothing(running):
    c = running.contract()
    c.submit_json("Increment", "replay", 5)
    tx = c.new_proposal("Increment", ["replay", "1"]).endorse()
    assert tx.submit().status().successful
    assert c.evaluate_json("GetCounter", "replay") == 6
    running.node.orderer.broadcast(tx.envelope().SerializeToString())  # replay the very same envelope
    c.submit_json("Put", "after", "replay", {})  # a later transaction, so the replay's block is committed
    with c.network.block_events(start_block=0, stop_block=running.node.peers["LothianMSP"].height - 1) as blocks:
        codes = []
        from network.protocol import parse_transaction

        for b in blocks:
            for i, data in enumerate(b.data.data):
                if b.header.number and parse_transaction(data).tx_id == tx.transaction_id:
                    codes.append(validation_code_name(transactions_filter(b)[i]))
    assert codes == ["VALID", "DUPLICATE_TXID"]
    assert c.evaluate_json("GetCounter", "replay") == 6


def test_back_or_post_dated_proposals_are_refused(running):
    from google.protobuf.timestamp_pb2 import Timestamp

    from network import protocol as P

    gw = running.gateway()
    c = gw.network("serums").contract("assets", "AssetContract")
    for offset in (-3600, +3600):
        ts = Timestamp()
        ts.GetCurrentTime()
        ts.seconds += offset
        msg = P.create_proposal(gw.creator, "serums", "assets", [b"AssetContract:Put", b"t", b"x", b"{}"], timestamp=ts)
        from network.client import Proposal

        prop = Proposal(gw, "serums", msg.bytes, msg.tx_id, [])
        with pytest.raises(GatewayError) as e:
            prop.endorse()
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "endorser's clock" in str(e.value)
    assert c.submit_json("Put", "t", "x", {})["version"] == 1  # a current proposal is fine


def test_committed_status_means_the_write_is_readable(running):
    """A peer writes a block to SQLite a moment before it applies the writes to its in-memory
    state. A commit status answered in that moment would let a client read its own write back as
    missing: the status must wait until the peer's state shows the transaction."""
    msp = running.cfg.hospitals[0].msp_id
    peer = running.node.peers[msp]
    c = running.contract("lothian")
    c.submit_json("Put", "race", "a0", '{"v": 0}')
    in_sqlite, release = threading.Event(), threading.Event()
    real_apply = peer.store.state.apply

    def slow_apply(updates, height=None):
        if any("a1" in u.key for u in updates):
            in_sqlite.set()
            assert release.wait(10)
        real_apply(updates, height)

    peer.store.state.apply = slow_apply
    try:
        commit = c.new_proposal("Put", ["race", "a1", '{"v": 1}']).endorse().submit()
        assert in_sqlite.wait(10)
        assert peer.store.tx_status(commit.transaction_id) is not None  # the block store has it ...
        assert peer.tx_status(commit.transaction_id) is None  # ... but the peer has not committed it yet
        box: list = []
        waiter = threading.Thread(target=lambda: box.append(commit.status()))
        waiter.start()
        waiter.join(0.5)
        assert not box, "commit status answered before the write was visible"
        release.set()
        waiter.join(10)
        assert box and box[0].successful
        assert c.evaluate_json("Get", "race", "a1")["value"] == {"v": 1}
    finally:
        release.set()
        peer.store.state.apply = real_apply
