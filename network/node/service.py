"""The embedded node's gRPC face: Fabric's ``gateway.Gateway`` and ``protos.Deliver`` services.

Served by :mod:`chaincode.h2grpc` (HTTP/2 from ``h2``, TLS from ``ssl``) on one event loop in its
own thread: a transaction waiting for its commit is a future, not a parked thread, a request is
read, handled and answered in one pass of the loop without gRPC core's hand-offs between threads,
and the handlers' short CPU work runs without threads convoying on the GIL. Handlers raise
:class:`Abort`; the wrappers turn it into the gRPC status.

Status codes and messages are those Fabric's gateway (v3.1) gives, so one client serves both
engines: a chaincode error is UNKNOWN "chaincode response <status>, <message>" (Evaluate) or
ABORTED with an ErrorDetail per endorser (Endorse); malformed requests are INVALID_ARGUMENT; an
unknown channel UNAVAILABLE (Evaluate, Endorse, Submit) or PERMISSION_DENIED (CommitStatus,
ChaincodeEvents); an unknown chaincode FAILED_PRECONDITION; a creator that is not a channel member
or whose signature fails FAILED_PRECONDITION (Evaluate), ABORTED with a per-endorser detail
(Endorse), ABORTED "status=FORBIDDEN" (Submit) — the client is told only "access denied", the
reason goes to this node's log, as a Fabric peer does. Rich details travel in the
``grpc-status-details-bin`` trailer as a ``google.rpc.Status`` carrying ``gateway.ErrorDetail``
messages. Deliver failures are a ``DeliverResponse`` status (BAD_REQUEST, NOT_FOUND, FORBIDDEN).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import events_pb2, events_pb2_grpc, proposal_response_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2

from chaincode import H2Server, Method, Stream

from .. import protocol as P
from ..identity import Identity
from ..policy import PolicyError, plan_orgs
from .membership import MembershipError

if TYPE_CHECKING:
    from .node import EmbeddedNode
    from .peer import Peer

log = logging.getLogger(__name__)

DEFAULT_COMMIT_TIMEOUT = 60.0
# The proposal's timestamp is the chaincode's only clock (grant expiries, rule windows): an
# endorser refuses one too far from its own (EmbeddedNode.max_proposal_skew_s, 600 s by default:
# wide enough for a proposal signed on a patient's device after a moment's thought), so a client
# cannot back- or post-date a decision.
ENDORSE_ATTEMPTS = 5
MAX_BLOCK = 2**64 - 1
# The texts of Fabric v3.1.5's gateway, peer and orderer for the same cases (measured with the
# official Node client against a native network: tests/interop)
ACCESS_DENIED = "error validating proposal: access denied: channel [{channel}] creator org [{org}]"
ORDERER_FORBIDDEN = ("received unsuccessful response from orderer: status=FORBIDDEN, info=implicit policy "
                     "evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the "
                     "'Writers' sub-policies to be satisfied: permission denied")
READERS_REFUSED = ("Failed evaluating policy on signed data during check policy on channel [{channel}] with policy "
                   "[/Channel/Application/Readers]: [implicit policy evaluation failed - 0 sub-policies were "
                   "satisfied, but this policy requires 1 of the 'Readers' sub-policies to be satisfied]")
CHAINCODE_NOT_FOUND = {
    "evaluate": "no peers available to evaluate chaincode {chaincode} in channel {channel}",
    "endorse": ("no combination of peers can be derived which satisfy the endorsement policy: No metadata "
                "was found for chaincode {chaincode} in channel {channel}"),
}
CHANNEL_NOT_FOUND = "failed to get config for channel [{channel}]: could not get last config for channel {channel}"
CHANNEL_NO_POLICY = "Failed to get policy manager for channel [{channel}]"


class Abort(Exception):
    """End the call with this gRPC status (and ErrorDetails in the status-details trailer)."""

    def __init__(self, code: grpc.StatusCode, message: str, details: list | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []

    def trailer(self) -> tuple[tuple[str, bytes], ...]:
        st = status_pb2.Status(code=self.code.value[0], message=self.message)
        for d in self.details:
            a = any_pb2.Any()
            a.Pack(d)
            st.details.append(a)
        return (("grpc-status-details-bin", st.SerializeToString()),)


def abort(context, code: grpc.StatusCode, message: str, details: list | None = None):
    raise Abort(code, message, details)


class GatewayService(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, node: EmbeddedNode):
        self.node = node
        self._rotate = itertools.count()
        self._plans: dict[tuple, list[str]] = {}

    # ------------------------------------------------------------------ helpers

    def _detail(self, peer: Peer, message: str) -> gateway_pb2.ErrorDetail:
        return gateway_pb2.ErrorDetail(address=self.node.address or "embedded", msp_id=peer.msp_id, message=message)

    def _unpack(self, sp, request_txid: str, request_channel: str, context,
                what: str = "evaluate") -> tuple[P.UnpackedProposal, Identity]:
        if sp is None or not sp.proposal_bytes:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the proposed transaction must contain a signed proposal")
        try:
            prop = P.unpack_signed_proposal(sp.proposal_bytes, sp.signature)
        except P.ProtocolError as exc:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"failed to unpack transaction proposal: {exc}")
        if request_txid and request_txid != prop.tx_id:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "transaction_id does not match the proposal's")
        if request_channel and request_channel != prop.channel:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "channel_id does not match the proposal's")
        self._check_channel(prop.channel, context)
        if prop.chaincode not in self.node.chaincodes:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                  CHAINCODE_NOT_FOUND[what].format(chaincode=prop.chaincode, channel=prop.channel))
        try:
            creator = self.node.membership.verified_identity(prop.creator, prop.proposal_bytes, prop.signature)
        except MembershipError as exc:
            log.warning("access denied: %s proposal %s: %s", what, prop.tx_id, exc)
            denied = ACCESS_DENIED.format(channel=prop.channel, org=_claimed_msp(prop.creator))
            peer = self._peer_for(None)
            if what == "evaluate":
                abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"evaluate call to endorser returned error: {denied}",
                      [self._detail(peer, denied)])
            abort(context, grpc.StatusCode.ABORTED, "failed to endorse transaction, see attached details for more info",
                  [self._detail(peer, denied)])
        skew = abs(time.time() - prop.timestamp_us / 1e6)
        if skew > self.node.max_proposal_skew_s:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                  f"proposal timestamp is {skew:.0f} s away from the endorser's clock "
                  f"(at most {self.node.max_proposal_skew_s:.0f} s allowed)")
        return prop, creator

    def _check_channel(self, channel: str, context, *, acl: bool = False) -> None:
        """An unknown channel: UNAVAILABLE from Evaluate/Endorse/Submit, PERMISSION_DENIED where
        Fabric checks the channel's ACL first (CommitStatus, ChaincodeEvents)."""
        if channel != self.node.channel:
            if acl:
                abort(context, grpc.StatusCode.PERMISSION_DENIED, CHANNEL_NO_POLICY.format(channel=channel))
            abort(context, grpc.StatusCode.UNAVAILABLE, CHANNEL_NOT_FOUND.format(channel=channel))

    def _peer_for(self, msp_id: str | None) -> Peer:
        return self.node.peers.get(msp_id or "") or next(iter(self.node.peers.values()))

    def _plan(self, policy, first: str) -> list[str]:
        """The endorsing organisations for the next transaction (:func:`plan_orgs`, rotating over
        the others); plans are remembered per policy, peers, creator's organisation and rotation."""
        orgs = tuple(self.node.peers)
        rotate = next(self._rotate) % max(1, len(orgs) - (first in orgs))
        key = (policy, orgs, first, rotate)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 1024:
                self._plans.clear()
            plan = self._plans[key] = plan_orgs(policy, list(orgs), first=first, rotate=rotate)
        return list(plan)

    def _orgs(self, names, context) -> list[str]:
        out = []
        for n in names:
            if n not in self.node.peers:
                abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"no peers of organisation {n!r} on this channel")
            out.append(n)
        return list(dict.fromkeys(out))

    # ------------------------------------------------------------------ Evaluate

    def Evaluate(self, request, context):
        prop, creator = self._unpack(request.proposed_transaction, request.transaction_id, request.channel_id, context)
        orgs = self._orgs(request.target_organizations, context)
        peer = self.node.peers[orgs[0]] if orgs else self._peer_for(creator.msp_id)
        sim = peer.simulate(prop, creator)
        if not sim.response.ok:
            msg = f"chaincode response {sim.response.status}, {sim.response.message}"
            abort(context, grpc.StatusCode.UNKNOWN, f"evaluate call to endorser returned error: {msg}",
                  [self._detail(peer, msg)])
        return gateway_pb2.EvaluateResponse(
            result=proposal_response_pb2.Response(
                status=sim.response.status, message=sim.response.message, payload=sim.response.payload
            )
        )

    # ------------------------------------------------------------------ Endorse

    async def Endorse(self, request, context):
        prop, creator = self._unpack(request.proposed_transaction, request.transaction_id, request.channel_id, context,
                                     "endorse")
        cc = self.node.chaincodes[prop.chaincode]
        orgs = self._orgs(request.endorsing_organizations, context)
        if not orgs:
            try:
                orgs = self._plan(cc.policy, creator.msp_id)
            except PolicyError as exc:
                abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        peers = [self.node.peers[o] for o in orgs]
        for attempt in range(ENDORSE_ATTEMPTS):
            # The committer moves every peer to a new height at once (under publish_lock, which the
            # simulations below hold), but a peer may lag (one that joined and is catching up):
            # simulate on peers at the same height so that honest peers agree, and if heights still
            # differ between two simulations, try again rather than report a divergence.
            target = max(p.height for p in peers)
            for _ in range(5000):
                if all(p.height >= target for p in peers):
                    break
                await asyncio.sleep(0.001)
            prp: bytes | None = None
            endorsements = []
            heights = set()
            mismatch: Peer | None = None
            with self.node.publish_lock:  # no commit moves these peers while they simulate
                for peer in peers:
                    pr, height = peer.endorse(prop, creator)
                    heights.add(height)
                    if pr.response.status >= 400:
                        msg = f"chaincode response {pr.response.status}, {pr.response.message}"
                        abort(context, grpc.StatusCode.ABORTED,
                              "failed to endorse transaction, see attached details for more info",
                              [self._detail(peer, msg)])
                    if prp is None:
                        prp = pr.payload
                    elif pr.payload != prp:
                        mismatch = peer
                        break
                    endorsements.append(pr.endorsement)
            if mismatch is None:
                break
            if len(heights) == 1 or attempt == ENDORSE_ATTEMPTS - 1:
                abort(context, grpc.StatusCode.ABORTED,
                      "failed to collect enough transaction endorsements, see attached details for more info",
                      [self._detail(mismatch, "ProposalResponsePayloads do not match")])
        assert prp is not None
        payload = P.create_transaction_envelope_payload(prop, prp, endorsements)
        return gateway_pb2.EndorseResponse(prepared_transaction=common_pb2.Envelope(payload=payload))

    # ------------------------------------------------------------------ Submit

    def Submit(self, request, context):
        env = request.prepared_transaction
        if env is None or not env.payload:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "a prepared transaction is required")
        if not env.signature:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the prepared transaction must be signed")
        data = env.SerializeToString()
        try:
            ptx = P.parse_transaction(data)
        except P.ProtocolError as exc:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"failed to unpack transaction: {exc}")
        if request.transaction_id and request.transaction_id != ptx.tx_id:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "transaction_id does not match the transaction's")
        self._check_channel(ptx.channel_header.channel_id, context)
        try:
            self.node.membership.verified_identity(ptx.creator, ptx.payload_bytes, ptx.signature)
        except MembershipError as exc:
            log.warning("access denied: broadcast of %s: %s", ptx.tx_id, exc)
            abort(context, grpc.StatusCode.ABORTED, ORDERER_FORBIDDEN)
        self.node.remember_parsed(data, ptx)
        try:
            self.node.orderer.broadcast(data)
        except Exception as exc:  # noqa: BLE001 - shutting down
            abort(context, grpc.StatusCode.UNAVAILABLE, f"ordering service unavailable: {exc}")
        return gateway_pb2.SubmitResponse()

    # ------------------------------------------------------------------ CommitStatus

    def _signed_inner(self, request, msg_type, what: str, context):
        inner = msg_type()
        try:
            inner.ParseFromString(request.request)
        except Exception:  # noqa: BLE001 - protobuf DecodeError
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"malformed {what} request")
        if not inner.identity:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"the {what} request carries no identity")
        # Fabric checks the channel's ACL first: an unknown channel and a refused identity are
        # both PERMISSION_DENIED
        self._check_channel(inner.channel_id, context, acl=True)
        try:
            ident = self.node.membership.verified_identity(inner.identity, request.request, request.signature)
        except MembershipError as exc:
            log.warning("access denied: %s request: %s", what, exc)
            abort(context, grpc.StatusCode.PERMISSION_DENIED, READERS_REFUSED.format(channel=inner.channel_id))
        return inner, ident

    async def CommitStatus(self, request, context):
        inner, ident = self._signed_inner(request, gateway_pb2.CommitStatusRequest, "commit status", context)
        if not inner.transaction_id:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "a transaction_id is required")
        peer = self._peer_for(ident.msp_id)
        remaining = context.time_remaining()
        timeout = DEFAULT_COMMIT_TIMEOUT if remaining is None else max(0.0, min(remaining, 3600.0))
        hit = await peer.wait_for_tx_async(inner.transaction_id, timeout)
        if hit is None:
            abort(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                  f"transaction {inner.transaction_id} was not committed within {timeout:.1f}s")
        block, code = hit
        return gateway_pb2.CommitStatusResponse(result=code, block_number=block)

    # ------------------------------------------------------------------ ChaincodeEvents

    async def ChaincodeEvents(self, request, context) -> AsyncIterator[gateway_pb2.ChaincodeEventsResponse]:
        inner, ident = self._signed_inner(request, gateway_pb2.ChaincodeEventsRequest, "chaincode events", context)
        # an unknown chaincode is not an error: the stream stays open and yields what it emits
        peer = self._peer_for(ident.msp_id)
        after = inner.after_transaction_id or None
        hit = peer.tx_status(after) if after else None
        if hit is not None:
            start = hit[0]  # Fabric: resume at the block holding the checkpointed transaction
        else:
            which = inner.start_position.WhichOneof("Type")
            if which not in (None, "next_commit", "specified"):
                abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                      f"invalid start position type: *orderer.SeekPosition_{which.capitalize()}")
            start = _start_block(inner.start_position, peer.height)
        passed = after is None  # Fabric skips every event up to and including the checkpointed one
        async for num, block in self.node.aiter_peer_blocks(peer, start):
            events = []
            for ev in _valid_events(block):
                if not passed:
                    passed = ev.tx_id == after
                elif ev.chaincode_id == inner.chaincode_id:
                    events.append(ev)
            if events:
                yield gateway_pb2.ChaincodeEventsResponse(events=events, block_number=num)


def _claimed_msp(creator: bytes) -> str:
    """The MSP id a serialized creator claims (for the refusal text), without trusting it."""
    from fabric_protos.msp import identities_pb2

    sid = identities_pb2.SerializedIdentity()
    try:
        sid.ParseFromString(creator)
    except Exception:  # noqa: BLE001 - a malformed creator
        return "unknown"
    return sid.mspid or "unknown"


def _valid_events(block: common_pb2.Block) -> list:
    """The chaincode events of a block's VALID transactions, in block order."""
    flt = P.transactions_filter(block)
    out = []
    for i, data in enumerate(block.data.data):
        if i < len(flt) and flt[i] != P.VALID:
            continue
        try:
            ev = P.parse_transaction(data).event
        except P.ProtocolError:
            continue
        if ev is not None:
            out.append(ev)
    return out


def _start_block(pos: ab_pb2.SeekPosition, height: int) -> int:
    which = pos.WhichOneof("Type") if pos is not None else None
    if which == "specified":
        return pos.specified.number
    if which == "oldest":
        return 0
    if which == "newest":
        return max(0, height - 1)
    return height  # next commit


class DeliverService(events_pb2_grpc.DeliverServicer):
    """Block events: Fabric's peer Deliver service — full blocks with the peer's metadata
    (``Deliver``), filtered blocks (``DeliverFiltered``: per transaction its id, type, validation
    code and chaincode events without payload) and blocks with their private data
    (``DeliverWithPrivateData``; this engine has no private data collections, so the map is empty)."""

    def __init__(self, node: EmbeddedNode):
        self.node = node

    @staticmethod
    def _status(code: str):
        return events_pb2.DeliverResponse(status=common_pb2.Status.Value(code))

    def Deliver(self, request_iterator, context) -> AsyncIterator[events_pb2.DeliverResponse]:
        return self._deliver(request_iterator, lambda block: events_pb2.DeliverResponse(block=block))

    def DeliverFiltered(self, request_iterator, context) -> AsyncIterator[events_pb2.DeliverResponse]:
        channel = self.node.channel
        return self._deliver(
            request_iterator, lambda block: events_pb2.DeliverResponse(filtered_block=P.filtered_block(block, channel))
        )

    def DeliverWithPrivateData(self, request_iterator, context) -> AsyncIterator[events_pb2.DeliverResponse]:
        return self._deliver(
            request_iterator,
            lambda block: events_pb2.DeliverResponse(block_and_private_data=events_pb2.BlockAndPrivateData(block=block)),
        )

    async def _deliver(self, request_iterator, respond) -> AsyncIterator[events_pb2.DeliverResponse]:
        async for env in request_iterator:
            try:
                _, payload, ch = P.parse_envelope_header(env.SerializeToString())
                if ch.type != P.DELIVER_SEEK_INFO:
                    raise P.ProtocolError("not a seek request")
                sh = common_pb2.SignatureHeader()
                sh.ParseFromString(payload.header.signature_header)
                seek = ab_pb2.SeekInfo()
                seek.ParseFromString(payload.data)
            except Exception:  # noqa: BLE001 - malformed request
                yield self._status("BAD_REQUEST")
                return
            if ch.channel_id != self.node.channel:
                yield self._status("NOT_FOUND")
                return
            try:
                ident = self.node.membership.verified_identity(sh.creator, env.payload, env.signature)
            except MembershipError as exc:
                log.warning("deliver: access denied: %s", exc)
                yield self._status("FORBIDDEN")
                return
            peer = self.node.peers.get(ident.msp_id) or next(iter(self.node.peers.values()))
            start = _start_block(seek.start, peer.height)
            stop_which = seek.stop.WhichOneof("Type")
            if stop_which == "specified":
                stop = seek.stop.specified.number
            elif stop_which == "newest":
                stop = max(0, peer.height - 1)
            else:
                stop = MAX_BLOCK
            if start > stop:
                yield self._status("BAD_REQUEST")
                return
            fail_if_not_ready = seek.behavior == ab_pb2.SeekInfo.SeekBehavior.Value("FAIL_IF_NOT_READY")
            if fail_if_not_ready and start >= peer.height:
                yield self._status("NOT_FOUND")
                return
            async for num, block in self.node.aiter_peer_blocks(peer, start):
                yield respond(block)
                if num >= stop:
                    break
            else:
                return
            yield self._status("SUCCESS")


class BroadcastService:
    """The ordering service's ``AtomicBroadcast.Broadcast``, for channel configuration updates:
    a ``CONFIG_UPDATE`` envelope from a channel member is checked against the configuration in
    force and its Admins policy (:mod:`.configtx`) and ordered; the answer is Fabric's
    ``BroadcastResponse`` (``FORBIDDEN`` when the policy is not satisfied, ``BAD_REQUEST`` for a
    malformed, stale or unsupported update, with the reason in ``info``). Endorsed transactions
    go through the Gateway's ``Submit``."""

    def __init__(self, node: EmbeddedNode):
        self.node = node

    @staticmethod
    def _status(code: str, info: str = "") -> ab_pb2.BroadcastResponse:
        return ab_pb2.BroadcastResponse(status=common_pb2.Status.Value(code), info=info)

    async def Broadcast(self, request_iterator, context) -> AsyncIterator[ab_pb2.BroadcastResponse]:
        async for env in request_iterator:
            yield await asyncio.to_thread(self._one, env)

    def _one(self, env: common_pb2.Envelope) -> ab_pb2.BroadcastResponse:
        from .configtx import ConfigUpdateError

        try:
            _, payload, ch = P.parse_envelope_header(env.SerializeToString())
            sh = common_pb2.SignatureHeader()
            sh.ParseFromString(payload.header.signature_header)
        except Exception:  # noqa: BLE001 - malformed request
            return self._status("BAD_REQUEST", "malformed envelope")
        if ch.channel_id != self.node.channel:
            return self._status("NOT_FOUND", f"channel {ch.channel_id!r} does not exist")
        if ch.type != common_pb2.CONFIG_UPDATE:
            return self._status("BAD_REQUEST", "only CONFIG_UPDATE envelopes are broadcast here; submit "
                                               "endorsed transactions through the Gateway")
        try:
            self.node.membership.verified_identity(sh.creator, env.payload, env.signature)
        except MembershipError as exc:
            return self._status("FORBIDDEN", str(exc))
        try:
            num = self.node.update_config(env.SerializeToString())
        except ConfigUpdateError as exc:
            return self._status("FORBIDDEN" if exc.status == 403 else "BAD_REQUEST", exc.detail)
        return self._status("SUCCESS", f"block {num}")


class _Context:
    """What a handler sees of its call (grpc's ``ServicerContext`` as far as the node uses it)."""

    __slots__ = ("stream",)

    def __init__(self, stream: Stream):
        self.stream = stream

    def time_remaining(self) -> float | None:
        return self.stream.time_remaining()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple(self.stream.metadata.items())

    def done(self) -> bool:
        return self.stream.closed


def _fail(stream: Stream, a: Abort) -> None:
    stream.close(a.code.value[0], a.message, a.trailer())


def _unexpected(stream: Stream, exc: Exception) -> None:
    """A handler's bug: logged, and the client gets UNKNOWN, as from grpc's servers."""
    log.error("a call of the node failed", exc_info=exc)
    stream.close(grpc.StatusCode.UNKNOWN.value[0], f"Unexpected {type(exc)}: {exc}")


def _method(path: str, kind: str, req_type, fn, calls: set[asyncio.Task]) -> Method:
    """Serve ``fn`` (a servicer method) at ``path`` on the HTTP/2 server: requests are parsed here
    (a malformed message is INVALID_ARGUMENT, as Fabric's gateway gives it), :class:`Abort` becomes
    the status with its details trailer, a call the client cancels (or whose connection is lost)
    cancels its handler quietly: a listener that stopped is the normal end of an event stream.
    ``calls`` holds the running handlers' tasks (waited for at shutdown)."""
    name = req_type.DESCRIPTOR.full_name

    def parse(data: bytes):
        msg = req_type()
        try:
            msg.ParseFromString(data)
        except Exception:  # noqa: BLE001 - protobuf DecodeError and friends
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {name} message") from None
        return msg

    def spawn(coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        calls.add(task)
        task.add_done_callback(calls.discard)
        return task

    async def answer(stream: Stream, coro) -> None:
        try:
            result = await coro
        except Abort as a:
            _fail(stream, a)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - reported to the client
            _unexpected(stream, exc)
        else:
            stream.send(result)
            stream.close(0)

    async def pump(stream: Stream, items) -> None:
        try:
            async with contextlib.aclosing(items):
                async for item in items:
                    if stream.closed:
                        return
                    stream.send(item)
                    await stream.drain()
        except Abort as a:
            _fail(stream, a)
        except asyncio.CancelledError:
            log.debug("%s: stream closed by the client", path)
        except Exception as exc:  # noqa: BLE001 - reported to the client
            _unexpected(stream, exc)
        else:
            stream.close(0)

    def open_one_request(stream: Stream):
        """Unary and server-streaming calls: one request, then the answer or the stream of them."""
        state: dict = {}

        def on_message(data: bytes) -> None:
            if state:
                stream.close(grpc.StatusCode.UNIMPLEMENTED.value[0], f"more than one request on a {kind} call")
                return
            state["got"] = True
            try:
                result = fn(parse(data), _Context(stream))
            except Abort as a:
                _fail(stream, a)
                return
            except Exception as exc:  # noqa: BLE001 - reported to the client
                _unexpected(stream, exc)
                return
            if kind == "unary_stream":
                state["task"] = spawn(pump(stream, result))
            elif inspect.isawaitable(result):
                state["task"] = spawn(answer(stream, result))
            else:
                stream.send(result)
                stream.close(0)

        def on_end() -> None:
            task = state.get("task")
            if task is not None and not task.done():
                task.cancel()

        def on_half_close() -> None:
            if not state:
                stream.close(grpc.StatusCode.UNIMPLEMENTED.value[0], f"a {kind} call needs one request")

        return on_message, on_end, on_half_close

    def open_bidi(stream: Stream):
        queue: asyncio.Queue = asyncio.Queue()

        async def requests():
            while (data := await queue.get()) is not None:
                yield parse(data)

        task = spawn(pump(stream, fn(requests(), _Context(stream))))

        def on_end() -> None:
            if not task.done():
                task.cancel()

        return queue.put_nowait, on_end, lambda: queue.put_nowait(None)

    return Method(path, bytes, open_bidi if kind == "stream_stream" else open_one_request, full=True)


class GrpcServer:
    """The node's gRPC server (:mod:`chaincode.h2grpc`: HTTP/2 and TLS on one event loop, in its own
    thread). ``ssl_context`` is a context or a callable giving one per connection (TLS; None:
    plaintext)."""

    def __init__(self, node: EmbeddedNode, address: str, ssl_context=None):
        self.node = node
        self.address = address
        self.ssl_context = ssl_context
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="node-grpc", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: H2Server | None = None
        self._calls: set[asyncio.Task] = set()

    def _methods(self) -> list[Method]:
        gw = GatewayService(self.node)
        deliver = DeliverService(self.node)
        broadcast = BroadcastService(self.node)
        calls = self._calls
        return [
            _method("/gateway.Gateway/Evaluate", "unary_unary", gateway_pb2.EvaluateRequest, gw.Evaluate, calls),
            _method("/gateway.Gateway/Endorse", "unary_unary", gateway_pb2.EndorseRequest, gw.Endorse, calls),
            _method("/gateway.Gateway/Submit", "unary_unary", gateway_pb2.SubmitRequest, gw.Submit, calls),
            _method("/gateway.Gateway/CommitStatus", "unary_unary", gateway_pb2.SignedCommitStatusRequest,
                    gw.CommitStatus, calls),
            _method("/gateway.Gateway/ChaincodeEvents", "unary_stream", gateway_pb2.SignedChaincodeEventsRequest,
                    gw.ChaincodeEvents, calls),
            *(_method(f"/protos.Deliver/{name}", "stream_stream", common_pb2.Envelope, getattr(deliver, name), calls)
              for name in ("Deliver", "DeliverFiltered", "DeliverWithPrivateData")),
            _method("/orderer.AtomicBroadcast/Broadcast", "stream_stream", common_pb2.Envelope, broadcast.Broadcast,
                    calls),
        ]

    async def _start(self) -> None:
        server = H2Server(self._methods(), ssl_context=self.ssl_context)
        host, _, port = self.address.rpartition(":")
        try:
            self.port = server.listen(host.strip("[]"), int(port))
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot listen on {self.address} (in use, or not an address of this machine): "
                          f"{exc}") from exc
        self._server = server

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> int:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self.port

    async def _stop(self, grace: float) -> None:
        """Accept no new connection, give the calls in flight ``grace`` seconds, then end every
        connection (GOAWAY; what still runs is cancelled)."""
        self._server.stop_listening()
        if self._calls:
            await asyncio.wait(set(self._calls), timeout=grace)
        self._server.close()
        await asyncio.sleep(0)  # the cancelled handlers unwind

    def stop(self, grace: float = 1.0) -> None:
        if self._server is not None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._stop(grace), self.loop).result(timeout=grace + 10)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    def wait(self) -> None:
        self._thread.join()
