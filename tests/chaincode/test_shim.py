"""The chaincode-as-a-service shim against a fake peer that speaks Fabric's chaincode protocol with
the real protos over real gRPC: registration, state, ranges with several batches, pagination with
bookmarks, history, creator and transient data, events in COMPLETED, errors, many concurrent
transactions on one stream with answers out of order, keepalive pings, TLS and mutual TLS."""

from __future__ import annotations

import json
import queue
import random
import threading
import time
import uuid
from concurrent.futures import Future

import grpc
import pytest
from fabric_protos.common import common_pb2
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.peer import (
    chaincode_pb2,
    chaincode_shim_pb2,
    chaincode_shim_pb2_grpc,
    proposal_pb2,
    proposal_response_pb2,
)

from chaincode import create_composite_key
from chaincode.samples import assets_chaincode
from chaincode.shim import PAGINATED_WRITE, ChaincodeServer, ShimError, TLSConfig
from network import CertificateAuthority

MSG = chaincode_shim_pb2.ChaincodeMessage
PACKAGE_ID = "serums_1.0:" + "ab" * 32
CHANNEL = "serums"


class FakePeer:
    """Plays a Fabric peer on one Connect stream: committed state in memory, each transaction's
    writes applied when it COMPLETES with a status below 400. Query results come in batches of
    ``batch`` (so a long range needs QUERY_STATE_NEXT); answers are delayed at random when
    ``jitter`` is set, so that concurrent transactions get them out of order."""

    def __init__(self, address: str, creator: bytes, *, credentials=None, batch: int = 2, jitter: float = 0.0,
                 options=None):
        self.creator = creator
        self.batch = batch
        self.jitter = jitter
        self.state: dict[str, bytes] = {}
        self.history: dict[str, list[kv_query_result_pb2.KeyModification]] = {}
        self.writes: dict[tuple[str, str], dict[str, bytes | None]] = {}
        self.results: dict[tuple[str, str], Future] = {}
        self.iterators: dict[str, list[bytes]] = {}
        self.registered: Future = Future()
        self.in_flight: set[str] = set()
        self.max_in_flight = 0
        self.refuse_keys: set[str] = set()
        self.silent_keys: set[str] = set()  # GET_STATE of these is never answered
        self.lock = threading.Lock()
        self.out: queue.SimpleQueue = queue.SimpleQueue()
        opts = options or []
        self.channel = (grpc.secure_channel(address, credentials, options=opts) if credentials
                        else grpc.insecure_channel(address, options=opts))
        stub = chaincode_shim_pb2_grpc.ChaincodeStub(self.channel)
        self.stream = stub.Connect(iter(self.out.get, None))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def close(self) -> None:
        self.out.put(None)
        self.channel.close()

    # -- the peer's side of the protocol
    def _read(self) -> None:
        try:
            for msg in self.stream:
                self._handle(msg)
        except grpc.RpcError as exc:
            if not self.registered.done():
                self.registered.set_exception(exc)

    def _answer(self, msg: MSG, mtype: int, payload: bytes) -> None:
        reply = MSG(type=mtype, payload=payload, txid=msg.txid, channel_id=msg.channel_id)
        if self.jitter:
            threading.Timer(random.random() * self.jitter, self.out.put, (reply,)).start()
        else:
            self.out.put(reply)

    def _query_response(self, rows: list[bytes], meta: bytes = b"") -> bytes:
        qid = uuid.uuid4().hex
        first, rest = rows[: self.batch], rows[self.batch:]
        if rest:
            self.iterators[qid] = rest
        return chaincode_shim_pb2.QueryResponse(
            results=[chaincode_shim_pb2.QueryResultBytes(resultBytes=r) for r in first],
            has_more=bool(rest), id=qid, metadata=meta,
        ).SerializeToString()

    def _handle(self, msg: MSG) -> None:
        key = (msg.channel_id, msg.txid)
        if msg.type == MSG.REGISTER:
            self.registered.set_result(chaincode_pb2.ChaincodeID.FromString(msg.payload).name)
            self.out.put(MSG(type=MSG.REGISTERED))
            self.out.put(MSG(type=MSG.READY))
        elif msg.type == MSG.GET_STATE:
            k = chaincode_shim_pb2.GetState.FromString(msg.payload).key
            if k in self.silent_keys:
                return
            if k in self.refuse_keys:
                self._answer(msg, MSG.ERROR, f"access to {k} denied by the peer".encode())
            else:
                self._answer(msg, MSG.RESPONSE, self.state.get(k, b""))
        elif msg.type in (MSG.PUT_STATE, MSG.DEL_STATE):
            if msg.type == MSG.PUT_STATE:
                put = chaincode_shim_pb2.PutState.FromString(msg.payload)
                self.writes.setdefault(key, {})[put.key] = put.value
            else:
                self.writes.setdefault(key, {})[chaincode_shim_pb2.DelState.FromString(msg.payload).key] = None
            self._answer(msg, MSG.RESPONSE, b"")
        elif msg.type == MSG.GET_STATE_BY_RANGE:
            q = chaincode_shim_pb2.GetStateByRange.FromString(msg.payload)
            start = q.startKey
            keys = sorted(k for k in self.state if k >= start and (not q.endKey or k < q.endKey))
            meta = b""
            if q.metadata:
                qm = chaincode_shim_pb2.QueryMetadata.FromString(q.metadata)
                keys = [k for k in keys if k >= (qm.bookmark or start)]
                page, more = keys[: qm.pageSize], keys[qm.pageSize:]
                meta = chaincode_shim_pb2.QueryResponseMetadata(
                    fetched_records_count=len(page), bookmark=more[0] if more else "").SerializeToString()
                keys = page
            rows = [kv_query_result_pb2.KV(namespace="serums", key=k, value=self.state[k]).SerializeToString()
                    for k in keys]
            self._answer(msg, MSG.RESPONSE, self._query_response(rows, meta))
        elif msg.type == MSG.QUERY_STATE_NEXT:
            qid = chaincode_shim_pb2.QueryStateNext.FromString(msg.payload).id
            rows = self.iterators.pop(qid)
            self._answer(msg, MSG.RESPONSE, self._query_response(rows))
        elif msg.type == MSG.GET_HISTORY_FOR_KEY:
            k = chaincode_shim_pb2.GetHistoryForKey.FromString(msg.payload).key
            rows = [m.SerializeToString() for m in reversed(self.history.get(k, []))]  # newest first, as Fabric
            self._answer(msg, MSG.RESPONSE, self._query_response(rows))
        elif msg.type in (MSG.COMPLETED, MSG.ERROR):
            with self.lock:
                self.in_flight.discard(msg.txid)
            writes = self.writes.pop(key, {})
            if msg.type == MSG.COMPLETED:
                resp = proposal_response_pb2.Response.FromString(msg.payload)
                if resp.status < 400:
                    for k, v in writes.items():
                        if v is None:
                            self.state.pop(k, None)
                        else:
                            self.state[k] = v
                        mod = kv_query_result_pb2.KeyModification(tx_id=msg.txid, value=v or b"", is_delete=v is None)
                        mod.timestamp.GetCurrentTime()
                        self.history.setdefault(k, []).append(mod)
            self.results.pop(key).set_result(msg)

    # -- what a test calls
    def invoke(self, fn: str, *args, transient: dict[str, bytes] | None = None, txid: str | None = None) -> Future:
        txid = txid or uuid.uuid4().hex
        raw = [fn.encode()] + [a if isinstance(a, bytes) else
                               (a if isinstance(a, str) else json.dumps(a)).encode() for a in args]
        chdr = common_pb2.ChannelHeader(type=common_pb2.ENDORSER_TRANSACTION, channel_id=CHANNEL, tx_id=txid)
        chdr.timestamp.FromSeconds(1_700_000_000)
        shdr = common_pb2.SignatureHeader(creator=self.creator, nonce=b"n" * 24)
        header = common_pb2.Header(channel_header=chdr.SerializeToString(), signature_header=shdr.SerializeToString())
        payload = proposal_pb2.ChaincodeProposalPayload(TransientMap=transient or {})
        prop = proposal_pb2.Proposal(header=header.SerializeToString(), payload=payload.SerializeToString())
        fut: Future = Future()
        with self.lock:
            self.results[(CHANNEL, txid)] = fut
            self.in_flight.add(txid)
            self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
        self.out.put(MSG(type=MSG.TRANSACTION, txid=txid, channel_id=CHANNEL,
                         payload=chaincode_pb2.ChaincodeInput(args=raw).SerializeToString(),
                         proposal=proposal_pb2.SignedProposal(proposal_bytes=prop.SerializeToString())))
        return fut

    def call(self, fn: str, *args, **kw) -> tuple[proposal_response_pb2.Response, MSG]:
        msg = self.invoke(fn, *args, **kw).result(timeout=20)
        assert msg.type == MSG.COMPLETED, msg
        return proposal_response_pb2.Response.FromString(msg.payload), msg


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("LothianMSP", "lothian")


@pytest.fixture(scope="module")
def creator(ca) -> bytes:
    ident, _ = ca.issue("alice", "client", attributes={"role": "gp"})
    return ident.serialize()


@pytest.fixture
def server():
    s = ChaincodeServer(assets_chaincode(), chaincode_id=PACKAGE_ID)
    s.start()
    yield s
    s.stop(0)


@pytest.fixture
def peer(server, creator):
    p = FakePeer(server.address, creator)
    assert p.registered.result(timeout=10) == PACKAGE_ID
    yield p
    p.close()


def test_registers_with_its_package_id_and_becomes_ready(server, peer):
    assert server.wait_ready(5)
    with pytest.raises(ShimError, match="package id"):
        ChaincodeServer(assets_chaincode(), chaincode_id="")


def test_writes_reads_and_the_event_arrive_in_completed(peer):
    resp, msg = peer.call("AssetContract:Put", "ann", "a1", {"x": 1})
    assert resp.status == 200 and json.loads(resp.payload)["version"] == 1
    assert msg.chaincode_event.event_name == "AssetPut"
    assert json.loads(msg.chaincode_event.payload) == {"owner": "ann", "id": "a1", "version": 1}
    assert msg.chaincode_event.tx_id == msg.txid and msg.chaincode_event.chaincode_id == "serums_1.0"
    assert json.loads(peer.state[create_composite_key("asset", ["ann", "a1"])])["value"] == {"x": 1}
    resp, _ = peer.call("AssetContract:Put", "ann", "a1", {"x": 2})
    assert json.loads(resp.payload)["version"] == 2
    resp, _ = peer.call("AssetContract:Get", "ann", "a1")
    assert json.loads(resp.payload)["value"] == {"x": 2}
    resp, msg = peer.call("AssetContract:Delete", "ann", "a1")
    assert resp.status == 200 and not msg.HasField("chaincode_event")
    assert create_composite_key("asset", ["ann", "a1"]) not in peer.state
    history = json.loads(peer.call("AssetContract:History", "ann", "a1")[0].payload)
    assert [h["deleted"] for h in history] == [False, False, True]
    assert [h["value"]["value"] if h["value"] else None for h in history] == [{"x": 1}, {"x": 2}, None]


def test_refusals_and_peer_errors_come_back_as_errors_with_status_and_message(peer):
    resp, msg = peer.call("AssetContract:Get", "ann", "missing")
    assert (resp.status, resp.message) == (404, "asset ann/missing does not exist")
    assert not msg.HasField("chaincode_event")
    resp, _ = peer.call("AssetContract:Nope")
    assert resp.status == 404 and "Nope" in resp.message
    resp, _ = peer.call("AssetContract:Increment", "c", "not-a-number")
    assert resp.status == 400 and "by" in resp.message
    peer.refuse_keys.add("counter/locked")
    resp, _ = peer.call("AssetContract:Increment", "locked", "1")
    assert resp.status == 400 and "access to counter/locked denied by the peer" in resp.message
    # a refused transaction leaves no writes behind
    assert "counter/locked" not in peer.state


def test_ranges_span_several_batches_and_pages_follow_bookmarks(peer):
    for i in range(7):
        peer.call("AssetContract:Put", "bob", f"b{i}", {"i": i})
    peer.call("AssetContract:Put", "carl", "c0", {"i": 0})
    seen, bookmark, pages = [], "", 0
    while True:
        page = json.loads(peer.call("AssetContract:List", "bob", "3", bookmark)[0].payload)
        seen += [a["id"] for a in page["assets"]]
        pages += 1
        bookmark = page["bookmark"]
        if not bookmark:
            break
    assert seen == [f"b{i}" for i in range(7)] and pages == 3
    # a full range of 7 rows arrives in 4 batches of 2 (QUERY_STATE_NEXT), all of them moved
    resp, _ = peer.call("AssetContract:TransferAll", "bob", "dora")
    assert json.loads(resp.payload) == 7
    assert not [k for k in peer.state if k.startswith(create_composite_key("asset", ["bob"]))]
    assert len([k for k in peer.state if k.startswith(create_composite_key("asset", ["dora"]))]) == 7


def test_a_transaction_that_paginates_and_writes_is_refused(server, creator):
    from chaincode import Chaincode, Contract, transaction

    class Mixed(Contract):
        @transaction
        def PageThenWrite(self, ctx) -> int:
            page = ctx.stub.get_state_by_range_with_pagination("a", "z", 2, "")
            ctx.stub.put_state("k", b"v")
            return len(page.records)

    s = ChaincodeServer(Chaincode(Mixed()), chaincode_id=PACKAGE_ID)
    s.start()
    p = FakePeer(s.address, creator)
    try:
        resp, _ = p.call("PageThenWrite")
        assert (resp.status, resp.message) == (400, PAGINATED_WRITE) and "k" not in p.state
    finally:
        p.close()
        s.stop(0)


def test_creator_timestamp_and_transient_data_come_from_the_proposal(peer):
    resp, _ = peer.call("AssetContract:WhoAmI", transient={"secret": b"s3", "other": b"x"})
    me = json.loads(resp.payload)
    assert me["msp_id"] == "LothianMSP" and me["role"] == "client" and me["attrs"] == {"role": "gp"}
    assert "CN=alice" in me["id"] and me["transient"] == ["other", "secret"]


def test_many_concurrent_transactions_share_one_stream(server, creator):
    p = FakePeer(server.address, creator, jitter=0.02)
    try:
        futs = [p.invoke("AssetContract:Put", f"o{i % 5}", f"x{i}", {"i": i}) for i in range(40)]
        futs += [p.invoke("AssetContract:Increment", f"n{i}", str(i)) for i in range(20)]
        msgs = [f.result(timeout=30) for f in futs]
        assert all(m.type == MSG.COMPLETED for m in msgs)
        resps = [proposal_response_pb2.Response.FromString(m.payload) for m in msgs]
        assert [json.loads(r.payload)["id"] for r in resps[:40]] == [f"x{i}" for i in range(40)]
        assert [json.loads(r.payload) for r in resps[40:]] == list(range(20))
        assert [m.chaincode_event.event_name for m in msgs[:40]] == ["AssetPut"] * 40
        assert len({m.txid for m in msgs}) == 60
        assert p.max_in_flight > 10  # they really ran at the same time
        # the same txid twice at once: the second is refused, the first completes
        slow = p.invoke("AssetContract:TransferAll", "o0", "o9", txid="dup")
        again = p.invoke("AssetContract:Get", "o1", "x1", txid="dup2")
        assert again.result(timeout=10).type == MSG.COMPLETED and slow.result(timeout=10).type == MSG.COMPLETED
    finally:
        p.close()


def test_a_transaction_the_peer_leaves_unanswered_fails_alone(peer, monkeypatch):
    import chaincode.shim

    monkeypatch.setattr(chaincode.shim, "PEER_TIMEOUT_S", 1.0)
    peer.silent_keys.add("counter/stuck")
    stuck = peer.invoke("AssetContract:Increment", "stuck", "1")
    # the others on the same stream go on meanwhile
    assert [peer.call("AssetContract:Increment", "free", "1")[0].status for _ in range(5)] == [200] * 5
    assert not stuck.done()
    msg = stuck.result(timeout=10)
    resp = proposal_response_pb2.Response.FromString(msg.payload)
    assert msg.type == MSG.COMPLETED and resp.status == 400
    assert resp.message == "the peer did not answer GET_STATE within 1 s"
    assert "counter/stuck" not in peer.state and peer.state["counter/free"] == b"5"


def test_a_peer_that_goes_away_leaves_nothing_waiting(server, creator):
    first = FakePeer(server.address, creator)
    first.registered.result(timeout=10)
    first.silent_keys.add("counter/stuck")
    first.invoke("AssetContract:Increment", "stuck", "1")
    time.sleep(0.3)
    first.close()  # the stream ends while a transaction waits for the peer
    deadline = time.monotonic() + 10
    while server._server.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server._server.connections
    second = FakePeer(server.address, creator)
    try:
        assert second.call("AssetContract:Increment", "free", "1")[0].status == 200
    finally:
        second.close()


def test_messages_larger_than_the_windows_cross_both_ways(peer):
    # 3 MB values: many HTTP/2 frames, and more than a 64 KiB flow-control window either way
    value = {"blob": "x" * 3_000_000}
    resp, _ = peer.call("AssetContract:Put", "big", "b1", value)
    assert resp.status == 200
    resp, _ = peer.call("AssetContract:Get", "big", "b1")
    assert json.loads(resp.payload)["value"] == value
    # 24 MB more on the same stream: past the 16 MiB window the server offers, so its WINDOW_UPDATEs count
    assert [peer.call("AssetContract:Put", "big", f"b{i}", value)[0].status for i in range(2, 10)] == [200] * 8


def test_another_method_is_unimplemented_and_the_server_stops(server):
    channel = grpc.insecure_channel(server.address)
    with pytest.raises(grpc.RpcError) as err:
        channel.unary_unary("/protos.Chaincode/Other")(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    channel.close()
    server.stop(0)
    with pytest.raises(grpc.RpcError) as err:
        channel = grpc.insecure_channel(server.address)
        channel.unary_unary("/protos.Chaincode/Other")(b"", timeout=2)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_keepalive_pings_of_the_peer_are_accepted(server, creator):
    opts = [("grpc.keepalive_time_ms", 300), ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0)]
    p = FakePeer(server.address, creator, options=opts)
    try:
        p.registered.result(timeout=10)
        time.sleep(2.5)  # ~8 pings on an idle stream
        resp, _ = p.call("AssetContract:GetCounter", "k")
        assert resp.status == 200
    finally:
        p.close()


def _tls_material(ca: CertificateAuthority):
    server_ident, server_key = ca.issue("cc.lothian", "peer", dns_names=["localhost"])
    client_ident, client_key = ca.issue("peer0.lothian", "peer")
    pem = ca.certificate.public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.PEM)
    return pem, (server_ident.pem, server_key.private_key_pem()), (client_ident.pem, client_key.private_key_pem())


def test_tls_and_mutual_tls(ca, creator):
    root, (scert, skey), (ccert, ckey) = _tls_material(ca)
    override = [("grpc.ssl_target_name_override", "localhost")]
    s = ChaincodeServer(assets_chaincode(), chaincode_id=PACKAGE_ID, tls=TLSConfig(scert, skey))
    s.start()
    p = FakePeer(s.address, creator, credentials=grpc.ssl_channel_credentials(root), options=override)
    try:
        assert p.registered.result(timeout=10) == PACKAGE_ID
        assert p.call("AssetContract:GetCounter", "k")[0].status == 200
    finally:
        p.close()
        s.stop(0)
    s = ChaincodeServer(assets_chaincode(), chaincode_id=PACKAGE_ID, tls=TLSConfig(scert, skey, client_ca=root))
    s.start()
    try:
        anonymous = FakePeer(s.address, creator, credentials=grpc.ssl_channel_credentials(root), options=override)
        with pytest.raises(grpc.RpcError):
            anonymous.registered.result(timeout=10)
        anonymous.close()
        p = FakePeer(s.address, creator, credentials=grpc.ssl_channel_credentials(root, ckey, ccert),
                     options=override)
        assert p.registered.result(timeout=10) == PACKAGE_ID
        assert p.call("AssetContract:GetCounter", "k")[0].status == 200
        p.close()
    finally:
        s.stop(0)
