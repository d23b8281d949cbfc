"""The embedded node answers as Fabric's peer and gateway (v3.1) do: the Deliver variants, the
COMMIT_HASH metadata, resuming chaincode events after a transaction, and the status codes of
FABRIC_NOTES.md's table."""

from __future__ import annotations

import logging
import time

import grpc
import pytest
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2

from network import protocol as P
from network.client import GatewayError, InMemoryCheckpointer, connect
from network.identity import CertificateAuthority

PUT = "Put"
pytestmark = pytest.mark.timeout(60)


def _events(stream, n: int) -> list:
    out = []
    for ev in stream:
        out.append(ev)
        if len(out) == n:
            break
    return out


def test_filtered_blocks_carry_ids_codes_and_events_without_payload(running):
    c = running.contract()
    r1 = c.submit_json(PUT, "f", "a", {"v": 1})
    assert r1["version"] == 1
    net = c.network
    height = running.node.peers["LothianMSP"].height
    with net.filtered_block_events(start_block=0, stop_block=height - 1) as blocks:
        got = list(blocks)
    assert [b.number for b in got] == list(range(height))
    assert all(b.channel_id == "serums" for b in got)
    genesis = got[0].filtered_transactions[0]
    assert genesis.type == common_pb2.HeaderType.Value("CONFIG") and not genesis.HasField("transaction_actions")
    last = got[-1].filtered_transactions[0]
    assert last.type == P.ENDORSER_TRANSACTION and last.tx_validation_code == P.VALID
    ev = last.transaction_actions.chaincode_actions[0].chaincode_event
    assert ev.chaincode_id == "assets" and ev.event_name and ev.tx_id == last.txid and ev.payload == b""
    # the full block holds the same transaction, with the payload the filtered one left out
    with net.block_events(start_block=height - 1, stop_block=height - 1) as full:
        block = next(iter(full))
    assert P.parse_transaction(block.data.data[0]).event.payload


def test_private_data_deliver_sends_blocks_with_an_empty_private_data_map(running):
    c = running.contract()
    c.submit_json(PUT, "p", "a", {"v": 1})
    height = running.node.peers["LothianMSP"].height
    with c.network.block_and_private_data_events(start_block=0, stop_block=height - 1) as stream:
        got = list(stream)
    assert [b.block.header.number for b in got] == list(range(height))
    assert all(len(b.private_data_map) == 0 for b in got)
    assert P.transactions_filter(got[-1].block) == bytes([P.VALID])


def test_commit_hash_is_wrapped_in_common_metadata(running):
    c = running.contract()
    c.submit_json(PUT, "h", "a", {"v": 1})
    peer = running.node.peers["ZmcMSP"]
    block = P.parse_block(peer.store.block(peer.height - 1))
    md = common_pb2.Metadata()
    md.ParseFromString(block.metadata.metadata[P.METADATA_COMMIT_HASH])
    assert len(md.value) == 32 and md.value == P.block_commit_hash(block)
    # the genesis block has none, as in Fabric
    assert P.parse_block(peer.store.block(0)).metadata.metadata[P.METADATA_COMMIT_HASH] == b""
    # the legacy bare form still reads
    block.metadata.metadata[P.METADATA_COMMIT_HASH] = md.value
    assert P.block_commit_hash(block) == md.value


def test_events_resume_after_a_transaction_in_an_earlier_block(running):
    """Fabric starts at the block holding the checkpointed transaction and skips past it, wherever
    the checkpoint's block number says to start."""
    c = running.contract()
    txs = [c.new_proposal(PUT, ["r", f"k{i}", "{}"]).endorse().submit() for i in range(3)]
    blocks = [t.status().block_number for t in txs]
    ids = [t.transaction_id for t in txs]
    cp = InMemoryCheckpointer()
    cp.checkpoint_transaction(blocks[-1] + 5, ids[0])  # a block number beyond the transaction's
    with c.network.chaincode_events("assets", checkpointer=cp) as stream:
        got = _events(stream, 2)
    assert [e.transaction_id for e in got] == ids[1:]
    assert [e.block_number for e in got] == blocks[1:]


def test_status_codes_as_fabric_gives_them(running):
    gw = running.gateway()
    # unknown chaincode: Endorse FAILED_PRECONDITION too
    with pytest.raises(GatewayError) as e:
        gw.network("serums").contract("nope").submit("x")
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and e.value.kind == GatewayError.CHAINCODE_NOT_FOUND
    # unknown channel: UNAVAILABLE for Endorse, PERMISSION_DENIED for CommitStatus and ChaincodeEvents
    with pytest.raises(GatewayError) as e:
        gw.network("nochannel").contract("assets").submit("AssetContract:Put", "a", "b", "{}")
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and e.value.kind == GatewayError.CHANNEL_NOT_FOUND
    from network.client import Commit

    with pytest.raises(GatewayError) as e:
        Commit(gw, "nochannel", "0" * 64).status()
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED and e.value.kind == GatewayError.CHANNEL_NOT_FOUND
    with pytest.raises(GatewayError) as e:
        next(iter(gw.network("nochannel").chaincode_events("assets", start_block=0)))
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    # events of an unknown chaincode: the stream opens and yields nothing
    running.contract().submit_json(PUT, "s", "a", {})
    stream = gw.network("serums").chaincode_events("nope", start_block=0)
    call = stream._call
    time.sleep(0.5)
    assert call.running() or not call.done()
    stream.close()
    # start positions oldest/newest: INVALID_ARGUMENT
    for which in ("oldest", "newest"):
        req = gateway_pb2.ChaincodeEventsRequest(channel_id="serums", chaincode_id="assets", identity=gw.creator)
        getattr(req.start_position, which).SetInParent()
        data = req.SerializeToString()
        signed = gateway_pb2.SignedChaincodeEventsRequest(request=data, signature=gw.sign(P.sha256(data)))
        with pytest.raises(grpc.RpcError) as err:
            next(iter(gw.stub.ChaincodeEvents(signed)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"SeekPosition_{which.capitalize()}" in err.value.details()


def test_bad_creator_for_commit_status_and_events_is_permission_denied(running):
    rogue = CertificateAuthority.create("LothianMSP", "lothian")
    ident, signer = rogue.issue("admin@lothian", "admin")
    gw = connect(ident, signer, running.address)
    from network.client import Commit

    with pytest.raises(GatewayError) as e:
        Commit(gw, "serums", "0" * 64).status()
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED and e.value.kind == GatewayError.ACCESS_DENIED
    with pytest.raises(GatewayError) as e:
        next(iter(gw.network("serums").chaincode_events("assets", start_block=0)))
    assert e.value.kind == GatewayError.ACCESS_DENIED
    # Deliver answers with a status in the stream: FORBIDDEN, and NOT_FOUND for an unknown channel
    for method in ("block_events", "filtered_block_events", "block_and_private_data_events"):
        with pytest.raises(GatewayError) as e:
            next(iter(getattr(gw.network("serums"), method)(start_block=0)))
        assert "FORBIDDEN" in str(e.value) and e.value.kind == GatewayError.ACCESS_DENIED
    with pytest.raises(GatewayError) as e:
        next(iter(running.gateway().network("nochannel").filtered_block_events(start_block=0)))
    assert "NOT_FOUND" in str(e.value) and e.value.kind == GatewayError.CHANNEL_NOT_FOUND


def test_closing_deliver_streams_logs_nothing_at_error_level(running, caplog):
    c = running.contract()
    for i in range(20):  # enough blocks that the node is still writing when the client closes
        c.new_proposal(PUT, ["d", f"k{i}", "{}"]).endorse().submit()
    c.submit_json(PUT, "d", "a", {})
    caplog.set_level(logging.DEBUG)
    net = running.gateway().network("serums")
    for _ in range(3):
        for method in ("block_events", "filtered_block_events", "block_and_private_data_events"):
            stream = getattr(net, method)(start_block=0)
            next(iter(stream))
            stream.close()
    ev = net.chaincode_events("assets", start_block=0)
    next(iter(ev))
    ev.close()
    c.submit_json(PUT, "d", "b", {})  # the node goes on; the cancelled streams notice
    time.sleep(1.0)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
