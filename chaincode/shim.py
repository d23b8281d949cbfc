"""Chaincode as a service: Fabric's chaincode protocol, served over gRPC, behind :class:`ChaincodeStub`.

A Fabric peer (≥ 2.4, with the ``ccaas`` external builder) connects to this server's
``protos.Chaincode/Connect`` stream. The server registers under the chaincode's package id and
then runs every ``TRANSACTION`` the peer sends against the same contracts the embedded node runs::

    chaincode → REGISTER(package id)          peer → REGISTERED, READY
    peer → TRANSACTION(txid, channel, input, signed proposal)
    chaincode → GET_STATE / PUT_STATE / DEL_STATE / GET_STATE_BY_RANGE / QUERY_STATE_NEXT /
                QUERY_STATE_CLOSE / GET_HISTORY_FOR_KEY        peer → RESPONSE | ERROR
    chaincode → COMPLETED(protos.Response, ChaincodeEvent) | ERROR(message)

Many transactions run at once on one stream. Everything runs on one event loop thread: the
connection is served by :mod:`chaincode.h2grpc` (HTTP/2 from ``h2``, TLS from ``ssl``), and each
transaction runs in a greenlet on that thread. A ledger call sends its message and switches back
to the loop, which switches into the transaction again when the peer's answer arrives (matched by
channel and txid; a transaction whose answer does not come within ``PEER_TIMEOUT_S`` fails alone),
so the stream is written by the loop thread only. Why not gRPC's own servers: they hand every
message between threads (gRPC core's event engine, its poller, Python's), ≈ 30-60 context switches
a transaction of six messages against ≈ 5 here, and on this kind of machine the switches cost more
than the work (``bench/ledger.py``'s chaincode servers: ≈ 0.39 of a peer's CPU per transaction
with the synchronous server and a thread per transaction, ≈ 0.31 on ``grpc.aio`` with greenlets,
≈ 0.26 now). A contract's refusal (status ≥ 400) is sent as a ``COMPLETED`` response with that
status and message, which the peer hands to the client as an endorsement error; a failure of the
shim itself is sent as ``ERROR``. The server answers the peer's keepalive pings, and serves TLS, or
mutual TLS when a client CA is configured.

Imports nothing of the project outside ``chaincode``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import greenlet
from fabric_protos.common import common_pb2
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    chaincode_shim_pb2,
    proposal_pb2,
    proposal_response_pb2,
)
from google.protobuf.message import DecodeError

from .contract import Response
from .h2grpc import H2Server, Method, server_ssl_context
from .stub import (
    KV,
    ChaincodeStub,
    ClientIdentity,
    KeyModification,
    QueryPage,
    StubError,
    validate_simple_key,
)

log = logging.getLogger(__name__)

MSG = chaincode_shim_pb2.ChaincodeMessage
REGISTER, REGISTERED, READY = MSG.REGISTER, MSG.REGISTERED, MSG.READY
TRANSACTION, INIT, COMPLETED, ERROR, RESPONSE = MSG.TRANSACTION, MSG.INIT, MSG.COMPLETED, MSG.ERROR, MSG.RESPONSE
KEEPALIVE = MSG.KEEPALIVE
PAGINATED_WRITE = "paginated queries are only allowed in read-only transactions"
#: how long a transaction waits for the peer's answer to one of its requests
PEER_TIMEOUT_S = 30.0
#: the gRPC method a peer calls
CONNECT = "/protos.Chaincode/Connect"


class ShimError(Exception):
    """The chaincode server cannot start or a message breaks the protocol."""


@dataclass(frozen=True)
class TLSConfig:
    """The chaincode server's certificate and key (PEM); with ``client_ca`` the peer must present a
    certificate issued by it (mutual TLS)."""

    cert: bytes
    key: bytes
    client_ca: bytes | None = None


# --------------------------------------------------------------------------- the stub


@dataclass(frozen=True)
class _Proposal:
    creator: ClientIdentity
    timestamp: _dt.datetime
    transient: dict[str, bytes]


def _unpack_proposal(signed: proposal_pb2.SignedProposal) -> _Proposal:
    """Creator, timestamp and transient data of the proposal the peer forwarded."""
    prop = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
    header = common_pb2.Header.FromString(prop.header)
    chdr = common_pb2.ChannelHeader.FromString(header.channel_header)
    shdr = common_pb2.SignatureHeader.FromString(header.signature_header)
    sid = identities_pb2.SerializedIdentity.FromString(shdr.creator)
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(prop.payload)
    ts = _dt.datetime.fromtimestamp(chdr.timestamp.seconds, tz=_dt.UTC) + _dt.timedelta(
        microseconds=chdr.timestamp.nanos // 1000
    )
    return _Proposal(ClientIdentity(sid.mspid, bytes(sid.id_bytes)), ts, dict(payload.TransientMap))


class ShimStub(ChaincodeStub):
    """The stub of one transaction running on a real peer: every ledger call is a message to it."""

    def __init__(self, stream: _Stream, msg: chaincode_shim_pb2.ChaincodeMessage):
        self._stream = stream
        self._txid = msg.txid
        self._channel = msg.channel_id
        self._input = chaincode_pb2.ChaincodeInput.FromString(msg.payload)
        self._proposal = _unpack_proposal(msg.proposal) if msg.HasField("proposal") else None
        self.event: tuple[str, bytes] | None = None
        self.paginated = False
        self.wrote = False

    # -- talking to the peer
    def _call(self, mtype: int, payload: Any) -> bytes:
        answer = self._stream.request(
            MSG(type=mtype, payload=payload.SerializeToString(), txid=self._txid, channel_id=self._channel)
        )
        if answer is _TIMEOUT:
            raise StubError(f"the peer did not answer {MSG.Type.Name(mtype)} within {PEER_TIMEOUT_S:.0f} s")
        if answer is _CLOSED:
            raise StubError("the peer closed the chaincode stream")
        if answer.type == RESPONSE:
            return answer.payload
        if answer.type == ERROR:
            raise StubError(f"peer refused {MSG.Type.Name(mtype)}: {answer.payload.decode(errors='replace')}")
        raise StubError(f"unexpected {MSG.Type.Name(answer.type)} from the peer")

    def _query(self, mtype: int, payload: Any) -> tuple[list[bytes], bytes]:
        """Run a query to its end: every result's bytes and the response metadata."""
        resp = chaincode_shim_pb2.QueryResponse.FromString(self._call(mtype, payload))
        results = [r.resultBytes for r in resp.results]
        metadata = resp.metadata
        while resp.has_more:
            resp = chaincode_shim_pb2.QueryResponse.FromString(
                self._call(MSG.QUERY_STATE_NEXT, chaincode_shim_pb2.QueryStateNext(id=resp.id))
            )
            results.extend(r.resultBytes for r in resp.results)
            metadata = resp.metadata or metadata
        return results, metadata

    def _need_proposal(self) -> _Proposal:
        if self._proposal is None:
            raise StubError("the peer sent no signed proposal with this transaction")
        return self._proposal

    # -- context
    def get_args(self) -> list[bytes]:
        return list(self._input.args)

    def get_tx_id(self) -> str:
        return self._txid

    def get_channel_id(self) -> str:
        return self._channel

    def get_tx_timestamp(self) -> _dt.datetime:
        return self._need_proposal().timestamp

    def get_creator(self) -> ClientIdentity:
        return self._need_proposal().creator

    def get_transient(self) -> dict[str, bytes]:
        return dict(self._need_proposal().transient) if self._proposal else {}

    def set_event(self, name: str, payload: bytes) -> None:
        if not name:
            raise StubError("event name must not be empty")
        self.event = (name, bytes(payload))

    # -- state
    def get_state(self, key: str) -> bytes | None:
        if not key:
            raise StubError("key must not be empty")
        value = self._call(MSG.GET_STATE, chaincode_shim_pb2.GetState(key=key))
        return value or None

    def put_state(self, key: str, value: bytes) -> None:
        if not key.startswith("\x00"):
            validate_simple_key(key)
        if not isinstance(value, bytes | bytearray):
            raise StubError("state values must be bytes")
        self.wrote = True
        self._call(MSG.PUT_STATE, chaincode_shim_pb2.PutState(key=key, value=bytes(value)))

    def del_state(self, key: str) -> None:
        if not key:
            raise StubError("key must not be empty")
        self.wrote = True
        self._call(MSG.DEL_STATE, chaincode_shim_pb2.DelState(key=key))

    def get_state_by_range(self, start_key: str, end_key: str) -> Iterator[KV]:
        results, _ = self._query(
            MSG.GET_STATE_BY_RANGE, chaincode_shim_pb2.GetStateByRange(startKey=start_key, endKey=end_key)
        )
        return iter([_kv(r) for r in results])

    def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> QueryPage:
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise StubError("page size must be a positive integer")
        if bookmark and (bookmark < start_key or (end_key and bookmark >= end_key)):
            raise StubError("bookmark lies outside the queried range")
        self.paginated = True
        meta = chaincode_shim_pb2.QueryMetadata(pageSize=page_size, bookmark=bookmark).SerializeToString()
        results, raw_meta = self._query(
            MSG.GET_STATE_BY_RANGE,
            chaincode_shim_pb2.GetStateByRange(startKey=start_key, endKey=end_key, metadata=meta),
        )
        rmeta = chaincode_shim_pb2.QueryResponseMetadata.FromString(raw_meta)
        records = [_kv(r) for r in results]
        # Fabric's bookmark is the key the next page starts at, empty after the last page
        return QueryPage(records, rmeta.fetched_records_count or len(records), rmeta.bookmark)

    def get_history_for_key(self, key: str) -> Iterator[KeyModification]:
        results, _ = self._query(MSG.GET_HISTORY_FOR_KEY, chaincode_shim_pb2.GetHistoryForKey(key=key))
        for raw in reversed(results):  # Fabric answers newest first; the stub promises oldest first
            km = kv_query_result_pb2.KeyModification.FromString(raw)
            ts = _dt.datetime.fromtimestamp(km.timestamp.seconds, tz=_dt.UTC) + _dt.timedelta(
                microseconds=km.timestamp.nanos // 1000
            )
            yield KeyModification(km.tx_id, km.value, ts, km.is_delete)


def _kv(raw: bytes) -> KV:
    kv = kv_query_result_pb2.KV.FromString(raw)
    return KV(kv.key, kv.value)


# --------------------------------------------------------------------------- one Connect stream


_CLOSED = object()  # what a waiting transaction receives when its stream ends
_TIMEOUT = object()  # … or when the peer did not answer in time


class _Stream:
    """One peer's Connect stream, served on the server's event loop thread.

    Every transaction runs in its own greenlet on that thread: a stub call sends its message and
    switches back to the loop, which switches into the transaction again with the peer's answer
    (matched by channel and txid). Messages are written by the loop thread only."""

    def __init__(self, server: ChaincodeServer, write: Callable[[chaincode_shim_pb2.ChaincodeMessage], None]):
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.hub = greenlet.getcurrent()  # the loop's greenlet: where a waiting transaction returns to
        self._write = write
        self.running: dict[tuple[str, str], greenlet.greenlet] = {}
        self.deadlines: dict[tuple[str, str], float] = {}  # when each waiting transaction gives up
        self.sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    def send(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        if not self.closed:
            self._write(msg)

    def close(self) -> None:
        """The stream ended: every waiting transaction ends with an error."""
        if self.closed:
            return
        self.closed = True
        for g in list(self.running.values()):
            if not g.dead:
                g.switch(_CLOSED)

    def request(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> Any:
        """Called in a transaction's greenlet: send ``msg``, wait for the peer's answer."""
        if self.closed:
            return _CLOSED
        self.send(msg)
        key = (msg.channel_id, msg.txid)
        self.deadlines[key] = self.loop.time() + PEER_TIMEOUT_S
        if self.sweeper is None:
            self.sweeper = self.loop.call_later(min(1.0, PEER_TIMEOUT_S / 4), self._sweep)
        try:
            return self.hub.switch()
        finally:
            self.deadlines.pop(key, None)

    def _sweep(self) -> None:
        """Every second while transactions wait: those the peer left unanswered too long fail (one
        timer for the stream, not one per request)."""
        self.sweeper = None
        now = self.loop.time()
        for key in [k for k, t in self.deadlines.items() if t <= now]:
            g = self.running.get(key)
            if g is not None and not g.dead:
                g.switch(_TIMEOUT)
        if self.deadlines and not self.closed:
            self.sweeper = self.loop.call_later(min(1.0, PEER_TIMEOUT_S / 4), self._sweep)

    def handle(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        mtype = msg.type
        if mtype in (RESPONSE, ERROR):
            g = self.running.get((msg.channel_id, msg.txid))
            if g is None:
                log.warning("answer for unknown transaction %s on %s dropped", msg.txid, msg.channel_id)
            else:
                g.switch(msg)
        elif mtype in (TRANSACTION, INIT):
            self.start_transaction(msg)
        elif mtype == REGISTERED:
            log.debug("registered with the peer")
        elif mtype == READY:
            self.server._ready.set()
        elif mtype != KEEPALIVE:
            log.warning("unexpected %s message from the peer ignored", MSG.Type.Name(mtype))

    def start_transaction(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        key = (msg.channel_id, msg.txid)
        if key in self.running:
            self.send(MSG(type=ERROR, payload=f"transaction {msg.txid} is already running".encode(),
                          txid=msg.txid, channel_id=msg.channel_id))
            return
        try:
            stub = ShimStub(self, msg)
        except DecodeError as exc:
            self.send(MSG(type=ERROR, payload=f"malformed transaction: {exc}".encode(),
                          txid=msg.txid, channel_id=msg.channel_id))
            return
        g = greenlet.greenlet(self.run, self.hub)
        self.running[key] = g
        g.switch(key, stub)

    def run(self, key: tuple[str, str], stub: ShimStub) -> None:
        try:
            resp: Response = self.server.chaincode.invoke(stub)
            if resp.ok and stub.paginated and stub.wrote:
                resp = Response(400, PAGINATED_WRITE)
            event = None
            if stub.event is not None and resp.ok:
                event = chaincode_event_pb2.ChaincodeEvent(
                    event_name=stub.event[0], payload=stub.event[1], tx_id=key[1], chaincode_id=self.server.name
                )
            done = MSG(
                type=COMPLETED,
                payload=proposal_response_pb2.Response(
                    status=resp.status, message=resp.message, payload=resp.payload
                ).SerializeToString(),
                txid=key[1],
                channel_id=key[0],
                chaincode_event=event,
            )
        except Exception as exc:  # noqa: BLE001 - never leave the peer waiting
            log.exception("transaction %s failed in the shim", key[1])
            done = MSG(type=ERROR, payload=str(exc).encode(), txid=key[1], channel_id=key[0])
        finally:
            self.running.pop(key, None)
        self.send(done)


# --------------------------------------------------------------------------- the server


class _Loop:
    """The event loop (in a daemon thread) that serves every chaincode server of this process."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="cc-loop").start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coro, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, cls.get()).result(timeout)


class ChaincodeServer:
    """Serve ``chaincode`` (an object with ``invoke(stub) -> Response``) to Fabric peers.

    ``chaincode_id`` is the package id the peer installed (``label:sha256``); ``address`` is
    ``host:port`` (port 0 picks a free one, see :attr:`address` after :meth:`start`)."""

    def __init__(
        self,
        chaincode: Any,
        *,
        chaincode_id: str,
        address: str = "127.0.0.1:0",
        tls: TLSConfig | None = None,
    ):
        if not chaincode_id:
            raise ShimError("a chaincode server needs the chaincode's package id (CHAINCODE_ID)")
        self.chaincode = chaincode
        self.chaincode_id = chaincode_id
        self.name = chaincode_id.split(":", 1)[0]
        self._bind = address
        self._tls = tls
        self._server: H2Server | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self.address = ""

    def _open(self, write, end) -> tuple[Callable, Callable]:
        stream = _Stream(self, write)
        stream.send(MSG(type=REGISTER, payload=chaincode_pb2.ChaincodeID(name=self.chaincode_id).SerializeToString()))
        return stream.handle, stream.close

    async def _start(self) -> int:
        ctx = None
        if self._tls is not None:
            ctx = server_ssl_context(self._tls.cert, self._tls.key, self._tls.client_ca)
        server = H2Server([Method(CONNECT, MSG.FromString, self._open)], ssl_context=ctx)
        host, _, port = self._bind.rpartition(":")
        port = server.listen(host.strip("[]"), int(port))
        self._server = server
        return port

    def start(self) -> str:
        host, _, _ = self._bind.rpartition(":")
        try:
            port = _Loop.run(self._start(), 30)
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ShimError(f"cannot listen on {self._bind}: {exc}") from exc
        if not port:
            raise ShimError(f"cannot listen on {self._bind}")
        self.address = f"{host}:{port}"
        log.info("chaincode %s serving on %s%s", self.chaincode_id, self.address, " (TLS)" if self._tls else "")
        return self.address

    def wait_ready(self, timeout: float) -> bool:
        """True once a peer has connected and sent READY."""
        return self._ready.wait(timeout)

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self, grace: float = 1.0) -> None:
        """Stop listening and end every connection with a GOAWAY (``grace`` is accepted for the
        callers of gRPC's servers: a peer's transactions in flight fail at once and are retried by
        its client, as when the process dies)."""
        if self._server is not None:
            async def close(server: H2Server = self._server) -> None:
                server.close()

            _Loop.run(close())
            self._server = None
        self._stopped.set()


__all__ = ["ChaincodeServer", "ShimError", "ShimStub", "TLSConfig"]
