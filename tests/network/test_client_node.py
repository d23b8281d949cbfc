"""The Gateway client against the embedded node over gRPC, as any process would reach it."""

from __future__ import annotations

import json

import grpc
import pytest
from fabric_protos.gateway import gateway_pb2

from network.client import FileCheckpointer, GatewayError, InMemoryCheckpointer, connect
from network.identity import Signer
from network.protocol import VALID, transactions_filter


def test_submit_then_evaluate_and_history(running):
    c = running.contract()
    doc = c.submit_json("Put", "alice", "a1", {"dose_mg": 120})
    assert doc["version"] == 1 and doc["value"] == {"dose_mg": 120}
    c.submit_json("Put", "alice", "a1", {"dose_mg": 80})
    got = c.evaluate_json("Get", "alice", "a1")
    assert got["version"] == 2 and got["value"] == {"dose_mg": 80}
    hist = c.evaluate_json("History", "alice", "a1")
    assert [h["value"]["version"] for h in hist] == [1, 2]
    # every peer committed the same state (the commit status came from the creator's peer; the
    # others commit the same block a moment later): evaluate on each organisation's peer
    for p in running.node.peers.values():
        assert p.wait_for_height(running.node.orderer.height, 5)
    for org in ("LothianMSP", "ZmcMSP", "FcrbMSP"):
        raw = c.evaluate("Get", "alice", "a1", target_organizations=[org])
        assert json.loads(raw)["version"] == 2


def test_transient_data_and_creator_reach_the_chaincode_but_not_the_ledger(running):
    c = running.contract("zmc")
    who = c.evaluate_json("WhoAmI", transient={"secret": b"do-not-store"})
    assert who["msp_id"] == "ZmcMSP" and who["role"] == "admin"
    assert who["attrs"]["role"] == "hospital_admin"
    assert who["transient"] == ["secret"]
    tx = c.new_proposal("Put", ["t", "1", "{}"], transient={"secret": b"do-not-store"}).endorse()
    assert b"do-not-store" not in tx.payload  # transient data never enters the transaction
    assert tx.submit().status().successful


def test_pagination_with_bookmarks(running):
    c = running.contract()
    for i in range(7):
        c.submit_json("Put", "bob", f"b{i}", {"i": i})
    seen, bookmark = [], ""
    while True:
        page = c.evaluate_json("List", "bob", 3, bookmark)
        seen += [a["id"] for a in page["assets"]]
        bookmark = page["bookmark"]
        if not bookmark:
            break
    assert seen == [f"b{i}" for i in range(7)]


def test_chaincode_errors_carry_status_and_message(running):
    c = running.contract()
    with pytest.raises(GatewayError) as e:
        c.evaluate("Get", "nobody", "x")
    assert e.value.code == grpc.StatusCode.UNKNOWN
    assert e.value.chaincode_status == 404 and "does not exist" in str(e.value)
    with pytest.raises(GatewayError) as e:
        c.submit("Put", "only-one-arg")
    assert e.value.code == grpc.StatusCode.ABORTED and e.value.chaincode_status == 400
    assert "takes 3 argument(s)" in e.value.chaincode_message
    assert e.value.details and e.value.details[0].msp_id == "LothianMSP"
    with pytest.raises(GatewayError) as e:
        c.submit("Put", "x", "y", "not json")
    assert e.value.chaincode_status == 400 and "argument 'value'" in str(e.value)
    with pytest.raises(GatewayError) as e:
        c.evaluate("NoSuchFunction")
    assert e.value.chaincode_status == 404
    gw = running.gateway()
    with pytest.raises(GatewayError) as e:
        gw.network("serums").contract("nope").evaluate("x")
    # Fabric's gateway: an unknown chaincode is FAILED_PRECONDITION, an unknown channel UNAVAILABLE
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and e.value.kind == GatewayError.CHAINCODE_NOT_FOUND
    with pytest.raises(GatewayError) as e:
        gw.network("otherchannel").contract("assets").evaluate("x")
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and e.value.kind == GatewayError.CHANNEL_NOT_FOUND


def test_metadata_in_fabric_shape(running):
    meta = running.contract().network.contract("assets").evaluate_json("org.hyperledger.fabric:GetMetadata")
    txs = {t["name"]: t for t in meta["contracts"]["AssetContract"]["transactions"]}
    assert txs["Put"]["tags"] == ["submit"] and txs["Get"]["tags"] == ["evaluate"]
    assert [p["name"] for p in txs["Put"]["parameters"]] == ["owner", "asset_id", "value"]
    assert txs["Put"]["parameters"][2]["schema"] == {"type": "object"}


def test_malformed_protobuf_gets_invalid_argument_and_node_survives(running):
    ch = grpc.insecure_channel(running.address)
    raw = ch.unary_unary("/gateway.Gateway/Endorse", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as e:
        raw(b"\x0a\x03abc\x1a\x05\xff\xff\xff\xff\xff")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub_req = gateway_pb2.EndorseRequest(transaction_id="x", channel_id="serums")
    with pytest.raises(grpc.RpcError) as e:
        raw(stub_req.SerializeToString())
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    submit = ch.unary_unary("/gateway.Gateway/Submit", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as e:
        submit(gateway_pb2.SubmitRequest().SerializeToString())
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = ch.unary_unary("/gateway.Gateway/CommitStatus", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as e:
        status(b"\xff\xff")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ch.close()
    assert running.contract().submit_json("Put", "still", "alive", {})["version"] == 1


def test_offline_signing_path_with_bytes_round_trip(running):
    ident, signer = running.cfg.load_user("fcrb")
    device = signer  # the key stays on the "device"; the server-side gateway has no signer
    gw = connect(ident, None, running.address)
    contract = gw.network("serums").contract("assets", "AssetContract")
    proposal = contract.new_proposal("Put", ["patient-7", "pref-1", json.dumps({"deny": "research"})])
    with pytest.raises(ValueError, match="no signer"):
        proposal.endorse()
    # carry the bytes to the device and back
    restored = gw.new_proposal(proposal.bytes())
    restored.set_signature(device.sign_digest(restored.digest()))
    tx = restored.endorse()
    assert json.loads(tx.result)["version"] == 1
    tx2 = gw.new_transaction(tx.bytes())
    tx2.set_signature(device.sign_digest(tx2.digest()))
    commit = tx2.submit()
    c2 = gw.new_commit(commit.bytes())
    c2.set_signature(device.sign_digest(c2.digest()))
    status = c2.status()
    assert status.successful and status.transaction_id == proposal.transaction_id
    # a signature by another key is refused before anything is written
    bad = contract.new_proposal("Put", ["patient-7", "pref-2", "{}"])
    bad.set_signature(Signer.generate().sign_digest(bad.digest()))
    with pytest.raises(GatewayError) as e:
        bad.endorse()
    assert e.value.code == grpc.StatusCode.ABORTED and e.value.kind == GatewayError.ACCESS_DENIED


def test_chaincode_events_in_order_and_resume_from_checkpoint(running, tmp_path):
    c = running.contract()
    first = c.submit_json("Put", "ev", "e0", {})
    del first
    net = c.network
    stream = net.chaincode_events("assets", start_block=0)
    for i in range(1, 6):
        c.submit_json("Put", "ev", f"e{i}", {})
    got = []
    cp = FileCheckpointer(tmp_path / "cp.json")
    for ev in stream:
        got.append(ev)
        cp.checkpoint_chaincode_event(ev)
        if len(got) == 3:
            break
    stream.close()
    ids = [json.loads(e.payload)["id"] for e in got]
    assert ids == ["e0", "e1", "e2"]
    assert [e.block_number for e in got] == sorted(e.block_number for e in got)
    # a new listener resumes exactly after the last checkpointed event
    resumed = FileCheckpointer(tmp_path / "cp.json")
    assert resumed.transaction_id == got[-1].transaction_id
    with net.chaincode_events("assets", checkpointer=resumed) as s2:
        rest = [json.loads(next(s2).payload)["id"] for _ in range(3)]
    assert rest == ["e3", "e4", "e5"]
    # live events: from the next commit on
    mem = InMemoryCheckpointer()
    with net.chaincode_events("assets") as live:
        c.submit_json("Put", "ev", "live", {})
        ev = next(live)
        mem.checkpoint_chaincode_event(ev)
    assert ev.event_name == "AssetPut" and ev.json()["id"] == "live"
    assert mem.block_number == ev.block_number


def test_block_events_carry_hash_chain_and_validation_codes(running):
    c = running.contract()
    for i in range(3):
        c.submit_json("Put", "blk", str(i), {})
    net = c.network
    with net.block_events(start_block=0, stop_block=3) as blocks:
        got = list(blocks)
    assert [b.header.number for b in got] == [0, 1, 2, 3]
    from network.protocol import block_header_hash

    for prev, cur in zip(got, got[1:], strict=False):
        assert cur.header.previous_hash == block_header_hash(prev.header)
    assert all(set(transactions_filter(b)) <= {VALID} for b in got[1:])


def test_events_resume_with_a_transaction_not_in_the_start_block_delivers_the_whole_block(running):
    c = running.contract()
    c.submit_json("Put", "rs", "r0", {})
    c.submit_json("Put", "rs", "r1", {})
    with c.network.chaincode_events("assets", start_block=0) as s:
        evs = [next(s), next(s)]
    # checkpoint says "after r0's transaction" but points at r1's block: r1 must still arrive
    with c.network.chaincode_events("assets", start_block=evs[1].block_number,
                                    after_transaction_id=evs[0].transaction_id) as s:
        assert json.loads(next(s).payload)["id"] == "r1"
