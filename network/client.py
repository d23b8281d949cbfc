"""The Fabric Gateway client: one API for the embedded node and for real Fabric peers (≥ 2.5).

Shaped like hyperledger/fabric-gateway::

    gw = connect(identity, signer, "127.0.0.1:7051")
    contract = gw.network("serums").contract("serums", "TransportContract")
    result = contract.submit("RequestAccess", patient, sections, purpose)   # endorse, submit, wait
    data = contract.evaluate("GetGrant", grant_id)

Offline signing is the same path, not a special case: connect without a signer, then sign each
step's digest elsewhere (a patient's device) and hand the signature back::

    proposal = contract.new_proposal("AddPreference", args=[...])
    proposal.set_signature(device.sign(proposal.digest()))
    tx = proposal.endorse()
    tx.set_signature(device.sign(tx.digest()))
    commit = tx.submit()
    commit.set_signature(device.sign(commit.digest()))
    status = commit.status()

Every step's bytes (``proposal.bytes()``, ``tx.bytes()``, ``commit.bytes()``) can travel to the
signer and be restored with ``gateway.new_proposal(bytes)`` & co.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import events_pb2_grpc, proposal_pb2
from google.rpc import status_pb2

from . import protocol as P
from .identity import Identity

SignFn = Callable[[bytes], bytes]  # signs a SHA-256 digest
_CC_RESPONSE = re.compile(r"chaincode response (\d+), (.*)", re.S)
# Fabric v3.1.5's texts (tests/interop measures them against a native network)
_CHANNEL_NOT_FOUND = re.compile(r"failed to get config for channel|failed to get policy manager for channel|"
                                r"channel \[?\S+?\]? (is )?not found|channel not found", re.I)
_CHAINCODE_NOT_FOUND = re.compile(r"no metadata was found for chaincode|no peers available to \w+ chaincode|"
                                  r"chaincode definition for \S+ not found", re.I)
#: a Fabric peer that cannot reach its chaincode server (down or restarting): the ledger is unreachable
_CHAINCODE_DOWN = re.compile(r"could not launch chaincode|chaincode stream terminated", re.I)
_ACCESS_DENIED = re.compile(r"access denied|status=FORBIDDEN|failed evaluating policy on signed data", re.I)

# What a gateway error means, whichever engine answered (see GatewayError.kind).
CHAINCODE_REFUSAL = "chaincode"            # the chaincode answered an error status (chaincode_status)
ACCESS_DENIED = "access-denied"            # the caller's identity or signature was refused
CHANNEL_NOT_FOUND = "channel-not-found"    # the peer has no such channel
CHAINCODE_NOT_FOUND = "chaincode-not-found"  # no such chaincode on the channel
INVALID_REQUEST = "invalid-request"        # a malformed or inconsistent request
UNREACHABLE = "unreachable"                # no answer: the node is down, unreachable or too slow
LEDGER_FAILURE = "ledger-failure"          # anything else the ledger answered


# --------------------------------------------------------------------------- errors


class GatewayError(Exception):
    """A gRPC call to the gateway failed. ``details`` are the per-endorser ErrorDetails;
    ``chaincode_status``/``chaincode_message`` are the chaincode's own when it refused; ``kind``
    says what the error means (the class constants below), the same for both engines."""

    CHAINCODE_REFUSAL = CHAINCODE_REFUSAL
    ACCESS_DENIED = ACCESS_DENIED
    CHANNEL_NOT_FOUND = CHANNEL_NOT_FOUND
    CHAINCODE_NOT_FOUND = CHAINCODE_NOT_FOUND
    INVALID_REQUEST = INVALID_REQUEST
    UNREACHABLE = UNREACHABLE
    LEDGER_FAILURE = LEDGER_FAILURE

    def __init__(self, code: grpc.StatusCode, message: str, details: list[gateway_pb2.ErrorDetail] | None = None,
                 transaction_id: str | None = None, *, kind: str | None = None):
        self.code = code
        self.message = message
        self.details = details or []
        self.transaction_id = transaction_id
        self.chaincode_status: int | None = None
        self.chaincode_message: str | None = None
        for text in [*(d.message for d in self.details), message]:
            m = _CC_RESPONSE.search(text)
            if m:
                self.chaincode_status, self.chaincode_message = int(m.group(1)), m.group(2)
                break
        self.kind = kind or self._classify()
        super().__init__(str(self))

    def _classify(self) -> str:
        """What the error means, from the status code and texts Fabric's gateway (and the
        embedded node, which answers the same) gives: one of the module's kind constants."""
        C = grpc.StatusCode
        if self.chaincode_status is not None:
            return CHAINCODE_REFUSAL
        texts = " ".join([self.message, *(d.message for d in self.details)])
        if self.code in (C.UNAVAILABLE, C.PERMISSION_DENIED, C.NOT_FOUND) and _CHANNEL_NOT_FOUND.search(texts):
            return CHANNEL_NOT_FOUND
        if self.code in (C.FAILED_PRECONDITION, C.NOT_FOUND) and _CHAINCODE_NOT_FOUND.search(texts):
            return CHAINCODE_NOT_FOUND
        if self.code == C.PERMISSION_DENIED or (
                self.code in (C.FAILED_PRECONDITION, C.ABORTED, C.UNKNOWN) and _ACCESS_DENIED.search(texts)):
            return ACCESS_DENIED
        if self.code in (C.INVALID_ARGUMENT, C.OUT_OF_RANGE):
            return INVALID_REQUEST
        if self.code in (C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.CANCELLED, C.RESOURCE_EXHAUSTED) or (
                self.code in (C.ABORTED, C.UNKNOWN) and _CHAINCODE_DOWN.search(texts)):
            return UNREACHABLE
        return LEDGER_FAILURE

    def __str__(self) -> str:
        if self.chaincode_message is not None:
            return self.chaincode_message
        extra = "; ".join(f"{d.msp_id}: {d.message}" for d in self.details)
        return f"{self.message} ({extra})" if extra else self.message

    @classmethod
    def from_rpc(cls, err: grpc.RpcError, transaction_id: str | None = None) -> GatewayError:
        details: list[gateway_pb2.ErrorDetail] = []
        for key, value in (err.trailing_metadata() or ()):  # type: ignore[attr-defined]
            if key == "grpc-status-details-bin":
                st = status_pb2.Status()
                try:
                    st.ParseFromString(value)
                except Exception:  # noqa: BLE001 - unreadable details: keep the message
                    continue
                for any_ in st.details:
                    d = gateway_pb2.ErrorDetail()
                    if any_.Unpack(d):
                        details.append(d)
        return cls(err.code(), err.details() or "", details, transaction_id)  # type: ignore[attr-defined]


class EndorseError(GatewayError):
    pass


class SubmitError(GatewayError):
    pass


class CommitStatusError(GatewayError):
    pass


class CommitError(Exception):
    """The transaction was ordered but not committed as VALID (e.g. MVCC_READ_CONFLICT)."""

    def __init__(self, transaction_id: str, code: int, block_number: int):
        self.transaction_id = transaction_id
        self.code = code
        self.code_name = P.validation_code_name(code)
        self.block_number = block_number
        super().__init__(f"transaction {transaction_id} failed to commit with status code {code} ({self.code_name})")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Status:
    transaction_id: str
    code: int
    block_number: int

    @property
    def successful(self) -> bool:
        return self.code == P.VALID

    @property
    def code_name(self) -> str:
        return P.validation_code_name(self.code)


@dataclass(frozen=True)
class ChaincodeEvent:
    block_number: int
    transaction_id: str
    chaincode_name: str
    event_name: str
    payload: bytes

    def json(self) -> Any:
        return json.loads(self.payload)


# --------------------------------------------------------------------------- checkpointers


class Checkpointer:
    """Where an event listener got to: resume from ``block_number`` after ``transaction_id``."""

    def __init__(self) -> None:
        self.block_number: int | None = None
        self.transaction_id: str | None = None

    def checkpoint_block(self, block_number: int) -> None:
        self.block_number, self.transaction_id = block_number + 1, None
        self._save()

    def checkpoint_transaction(self, block_number: int, transaction_id: str) -> None:
        self.block_number, self.transaction_id = block_number, transaction_id
        self._save()

    def checkpoint_chaincode_event(self, event: ChaincodeEvent) -> None:
        self.checkpoint_transaction(event.block_number, event.transaction_id)

    def _save(self) -> None:
        pass


class InMemoryCheckpointer(Checkpointer):
    pass


class FileCheckpointer(Checkpointer):
    """Keeps the checkpoint in a JSON file, written atomically, so a restarted listener resumes."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        if self.path.exists():
            data = json.loads(self.path.read_text() or "{}")
            self.block_number = data.get("block_number")
            self.transaction_id = data.get("transaction_id")

    def _save(self) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({"block_number": self.block_number, "transaction_id": self.transaction_id}))
        tmp.replace(self.path)


# --------------------------------------------------------------------------- gateway


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def connect(
    identity: Identity,
    signer: SignFn | None,
    endpoint: str | grpc.Channel,
    *,
    tls_root_certs: bytes | None = None,
    tls_client_cert: bytes | None = None,
    tls_client_key: bytes | None = None,
    server_name_override: str | None = None,
    evaluate_timeout: float = 30.0,
    endorse_timeout: float = 30.0,
    submit_timeout: float = 30.0,
    commit_status_timeout: float = 60.0,
) -> Gateway:
    """Connect to a gateway peer. ``signer`` signs SHA-256 digests (a :class:`network.Signer` is
    one); pass None for offline signing. ``endpoint`` is ``host:port`` or an existing channel.

    ``tls_root_certs`` (PEM) connects over TLS, trusting those CAs; ``tls_client_cert`` and
    ``tls_client_key`` (PEM, from the organisation's TLS CA) add the client certificate that a peer
    requiring mutual TLS asks for."""
    if (tls_client_cert is None) != (tls_client_key is None):
        raise ValueError("mutual TLS needs both tls_client_cert and tls_client_key")
    if tls_client_cert is not None and tls_root_certs is None:
        raise ValueError("a TLS client certificate needs tls_root_certs (the server's TLS CA)")
    if isinstance(endpoint, str):
        options = [
            ("grpc.max_receive_message_length", 100 * 1024 * 1024),
            ("grpc.max_send_message_length", 100 * 1024 * 1024),
        ]
        if server_name_override:
            options.append(("grpc.ssl_target_name_override", server_name_override))
        if tls_root_certs is not None:
            creds = grpc.ssl_channel_credentials(tls_root_certs, private_key=tls_client_key,
                                                 certificate_chain=tls_client_cert)
            channel = grpc.secure_channel(endpoint, creds, options=options)
        else:
            channel = grpc.insecure_channel(endpoint, options=options)
        owns = True
    else:
        channel, owns = endpoint, False
    return Gateway(
        identity, signer, channel, owns_channel=owns,
        timeouts={"evaluate": evaluate_timeout, "endorse": endorse_timeout, "submit": submit_timeout,
                  "commit": commit_status_timeout},
    )


class Gateway:
    def __init__(self, identity: Identity, signer: SignFn | None, channel: grpc.Channel, *,
                 owns_channel: bool = False, timeouts: dict[str, float] | None = None):
        self.identity = identity
        self.signer = signer
        self.channel = channel
        self._owns = owns_channel
        self.timeouts = timeouts or {}
        self.stub = gateway_pb2_grpc.GatewayStub(channel)
        self.deliver_stub = events_pb2_grpc.DeliverStub(channel)
        self._creator = identity.serialize()

    @property
    def creator(self) -> bytes:
        return self._creator

    def network(self, name: str) -> Network:
        return Network(self, name)

    def sign(self, digest: bytes) -> bytes:
        if self.signer is None:
            raise ValueError("no signer: this gateway signs offline; call set_signature() with a signature of digest()")
        return self.signer(digest)

    def close(self) -> None:
        if self._owns:
            self.channel.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- restoring steps carried to an offline signer and back
    def new_proposal(self, data: bytes, signature: bytes | None = None) -> Proposal:
        pt, unpacked = P.unpack_proposed_transaction(data)
        p = Proposal(self, unpacked.channel, pt.proposal.proposal_bytes, pt.transaction_id,
                     list(pt.endorsing_organizations))
        if signature or pt.proposal.signature:
            p.set_signature(signature or pt.proposal.signature)
        return p

    def new_transaction(self, data: bytes, signature: bytes | None = None) -> Transaction:
        pt = gateway_pb2.PreparedTransaction()
        pt.ParseFromString(data)
        _, _, ch = P.parse_envelope_header(pt.envelope.SerializeToString())
        tx = Transaction(self, ch.channel_id, pt.transaction_id, pt.envelope.payload)
        if signature or pt.envelope.signature:
            tx.set_signature(signature or pt.envelope.signature)
        return tx

    def new_commit(self, data: bytes, signature: bytes | None = None) -> Commit:
        sreq = gateway_pb2.SignedCommitStatusRequest()
        sreq.ParseFromString(data)
        req = gateway_pb2.CommitStatusRequest()
        req.ParseFromString(sreq.request)
        c = Commit(self, req.channel_id, req.transaction_id)
        if signature or sreq.signature:
            c.set_signature(signature or sreq.signature)
        return c


class Network:
    def __init__(self, gateway: Gateway, name: str):
        self.gateway = gateway
        self.name = name

    def contract(self, chaincode: str, contract_name: str | None = None) -> Contract:
        return Contract(self, chaincode, contract_name)

    def chaincode_events(
        self,
        chaincode: str,
        *,
        start_block: int | None = None,
        after_transaction_id: str | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> EventStream:
        """Events of committed VALID transactions of ``chaincode``, in order, from ``start_block``
        (default: the next block to commit), or from where ``checkpointer`` says."""
        if checkpointer is not None and checkpointer.block_number is not None:
            start_block = checkpointer.block_number
            after_transaction_id = checkpointer.transaction_id
        req = gateway_pb2.ChaincodeEventsRequest(
            channel_id=self.name, chaincode_id=chaincode, identity=self.gateway.creator,
            after_transaction_id=after_transaction_id or "",
        )
        if start_block is not None:
            req.start_position.specified.number = start_block
        else:
            req.start_position.next_commit.SetInParent()
        data = req.SerializeToString()
        signed = gateway_pb2.SignedChaincodeEventsRequest(request=data, signature=self.gateway.sign(_digest(data)))
        call = self.gateway.stub.ChaincodeEvents(signed)

        def gen() -> Iterator[ChaincodeEvent]:
            for resp in call:
                for ev in resp.events:
                    yield ChaincodeEvent(resp.block_number, ev.tx_id, ev.chaincode_id, ev.event_name, ev.payload)

        return EventStream(call, gen())

    def block_events(self, *, start_block: int | None = None, checkpointer: Checkpointer | None = None,
                     stop_block: int | None = None) -> EventStream:
        """Committed blocks (Fabric's Deliver service), with the peer's validation codes in their
        TRANSACTIONS_FILTER metadata."""
        return self._deliver("Deliver", "block", start_block, checkpointer, stop_block)

    def filtered_block_events(self, *, start_block: int | None = None, checkpointer: Checkpointer | None = None,
                              stop_block: int | None = None) -> EventStream:
        """Filtered blocks (``DeliverFiltered``): each transaction's id, type and validation code,
        and its chaincode events without their payloads — ``peer.FilteredBlock`` messages."""
        return self._deliver("DeliverFiltered", "filtered_block", start_block, checkpointer, stop_block)

    def block_and_private_data_events(self, *, start_block: int | None = None,
                                      checkpointer: Checkpointer | None = None,
                                      stop_block: int | None = None) -> EventStream:
        """Blocks with the private data this peer holds for them (``DeliverWithPrivateData``) —
        ``peer.BlockAndPrivateData`` messages."""
        return self._deliver("DeliverWithPrivateData", "block_and_private_data", start_block, checkpointer,
                             stop_block)

    def _deliver(self, method: str, field: str, start_block: int | None, checkpointer: Checkpointer | None,
                 stop_block: int | None) -> EventStream:
        if checkpointer is not None and checkpointer.block_number is not None:
            start_block = checkpointer.block_number
        payload = P.seek_info_envelope_payload(self.name, self.gateway.creator, start_block, stop_block)
        env = common_pb2.Envelope(payload=payload, signature=self.gateway.sign(_digest(payload)))
        call = getattr(self.gateway.deliver_stub, method)(iter([env]))

        def gen() -> Iterator[Any]:
            for resp in call:
                which = resp.WhichOneof("Type")
                if which == field:
                    yield getattr(resp, field)
                elif which == "status":
                    if resp.status != common_pb2.Status.Value("SUCCESS"):
                        raise deliver_error(resp.status)
                    return

        return EventStream(call, gen())


_DELIVER_KINDS = {"FORBIDDEN": ACCESS_DENIED, "NOT_FOUND": CHANNEL_NOT_FOUND, "BAD_REQUEST": INVALID_REQUEST,
                  "SERVICE_UNAVAILABLE": UNREACHABLE}


def deliver_error(status: int) -> GatewayError:
    """A Deliver stream that ended with a failure status (Fabric answers these in the stream, not
    as gRPC errors): FORBIDDEN is an identity refusal, NOT_FOUND an unknown channel."""
    name = common_pb2.Status.Name(status) if status in common_pb2.Status.values() else str(status)
    return GatewayError(grpc.StatusCode.UNKNOWN, f"deliver failed with status {name}",
                        kind=_DELIVER_KINDS.get(name, LEDGER_FAILURE))


class EventStream:
    """An iterator over a server stream; ``close()`` (or leaving a ``with`` block) cancels it."""

    def __init__(self, call, it: Iterator):
        self._call = call
        self._it = it

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._it)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                raise StopIteration from None
            raise GatewayError.from_rpc(err) from None

    def close(self) -> None:
        self._call.cancel()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Contract:
    def __init__(self, network: Network, chaincode: str, contract_name: str | None):
        self.network = network
        self.chaincode = chaincode
        self.contract_name = contract_name

    def _fn(self, name: str) -> str:
        return f"{self.contract_name}:{name}" if self.contract_name else name

    def new_proposal(
        self,
        name: str,
        args: Sequence[str | bytes] = (),
        *,
        transient: Mapping[str, bytes] | None = None,
        endorsing_organizations: Sequence[str] = (),
    ) -> Proposal:
        raw = [self._fn(name).encode()] + [a if isinstance(a, bytes) else str(a).encode() for a in args]
        gw = self.network.gateway
        msg = P.create_proposal(gw.creator, self.network.name, self.chaincode, raw, transient)
        return Proposal(gw, self.network.name, msg.bytes, msg.tx_id, list(endorsing_organizations))

    def evaluate(self, name: str, *args: str | bytes, transient: Mapping[str, bytes] | None = None,
                 target_organizations: Sequence[str] = ()) -> bytes:
        p = self.new_proposal(name, args, transient=transient)
        return p.evaluate(target_organizations=target_organizations)

    def submit_async(self, name: str, *args: str | bytes, transient: Mapping[str, bytes] | None = None,
                     endorsing_organizations: Sequence[str] = ()) -> tuple[bytes, Commit]:
        tx = self.new_proposal(name, args, transient=transient, endorsing_organizations=endorsing_organizations).endorse()
        return tx.result, tx.submit()

    def submit(self, name: str, *args: str | bytes, transient: Mapping[str, bytes] | None = None,
               endorsing_organizations: Sequence[str] = ()) -> bytes:
        """Endorse, submit and wait for the commit; raises CommitError unless VALID."""
        result, commit = self.submit_async(name, *args, transient=transient,
                                           endorsing_organizations=endorsing_organizations)
        status = commit.status()
        if not status.successful:
            raise CommitError(status.transaction_id, status.code, status.block_number)
        return result

    # JSON conveniences: arguments that are not strings are JSON-encoded, results decoded
    def submit_json(self, name: str, *args: Any, **kw) -> Any:
        return _decode(self.submit(name, *[_encode(a) for a in args], **kw))

    def evaluate_json(self, name: str, *args: Any, **kw) -> Any:
        return _decode(self.evaluate(name, *[_encode(a) for a in args], **kw))


def _encode(a: Any) -> str | bytes:
    return a if isinstance(a, str | bytes) else json.dumps(a, separators=(",", ":"))


def _decode(b: bytes) -> Any:
    return json.loads(b) if b else None


class _Signable:
    _signature: bytes | None = None

    def _message(self) -> bytes:
        raise NotImplementedError

    def digest(self) -> bytes:
        """SHA-256 of the bytes to sign: what an offline signer signs."""
        return _digest(self._message())

    def set_signature(self, signature: bytes) -> None:
        self._signature = signature

    def _ensure_signed(self) -> bytes:
        if self._signature is None:
            self._signature = self.gateway.sign(self.digest())  # type: ignore[attr-defined]
        return self._signature


class Proposal(_Signable):
    def __init__(self, gateway: Gateway, channel: str, proposal_bytes: bytes, tx_id: str,
                 endorsing_organizations: list[str]):
        self.gateway = gateway
        self.channel = channel
        self.proposal_bytes = proposal_bytes
        self.transaction_id = tx_id
        self.endorsing_organizations = endorsing_organizations

    def _message(self) -> bytes:
        return self.proposal_bytes

    def bytes(self) -> bytes:
        sp = proposal_pb2.SignedProposal(proposal_bytes=self.proposal_bytes, signature=self._signature or b"")
        return gateway_pb2.ProposedTransaction(
            transaction_id=self.transaction_id, proposal=sp, endorsing_organizations=self.endorsing_organizations
        ).SerializeToString()

    def _signed(self) -> proposal_pb2.SignedProposal:
        return proposal_pb2.SignedProposal(proposal_bytes=self.proposal_bytes, signature=self._ensure_signed())

    def evaluate(self, target_organizations: Sequence[str] = ()) -> bytes:
        req = gateway_pb2.EvaluateRequest(
            transaction_id=self.transaction_id, channel_id=self.channel, proposed_transaction=self._signed(),
            target_organizations=list(target_organizations),
        )
        try:
            resp = self.gateway.stub.Evaluate(req, timeout=self.gateway.timeouts.get("evaluate"))
        except grpc.RpcError as err:
            raise GatewayError.from_rpc(err, self.transaction_id) from None
        return resp.result.payload

    def endorse(self) -> Transaction:
        req = gateway_pb2.EndorseRequest(
            transaction_id=self.transaction_id, channel_id=self.channel, proposed_transaction=self._signed(),
            endorsing_organizations=self.endorsing_organizations,
        )
        try:
            resp = self.gateway.stub.Endorse(req, timeout=self.gateway.timeouts.get("endorse"))
        except grpc.RpcError as err:
            raise EndorseError.from_rpc(err, self.transaction_id) from None
        return Transaction(self.gateway, self.channel, self.transaction_id, resp.prepared_transaction.payload)


class Transaction(_Signable):
    """An endorsed transaction: its result is known; it still has to be signed and submitted."""

    def __init__(self, gateway: Gateway, channel: str, tx_id: str, payload: bytes):
        self.gateway = gateway
        self.channel = channel
        self.transaction_id = tx_id
        self.payload = payload
        self._result: bytes | None = None

    def _message(self) -> bytes:
        return self.payload

    @property
    def result(self) -> bytes:
        if self._result is None:
            env = common_pb2.Envelope(payload=self.payload).SerializeToString()
            self._result = P.transaction_result(env).payload
        return self._result

    def envelope(self) -> common_pb2.Envelope:
        return common_pb2.Envelope(payload=self.payload, signature=self._ensure_signed())

    def bytes(self) -> bytes:
        env = common_pb2.Envelope(payload=self.payload, signature=self._signature or b"")
        return gateway_pb2.PreparedTransaction(transaction_id=self.transaction_id, envelope=env).SerializeToString()

    def submit(self) -> Commit:
        req = gateway_pb2.SubmitRequest(
            transaction_id=self.transaction_id, channel_id=self.channel, prepared_transaction=self.envelope()
        )
        try:
            self.gateway.stub.Submit(req, timeout=self.gateway.timeouts.get("submit"))
        except grpc.RpcError as err:
            raise SubmitError.from_rpc(err, self.transaction_id) from None
        return Commit(self.gateway, self.channel, self.transaction_id)


class Commit(_Signable):
    """A submitted transaction; :meth:`status` waits until it is committed."""

    def __init__(self, gateway: Gateway, channel: str, tx_id: str):
        self.gateway = gateway
        self.channel = channel
        self.transaction_id = tx_id
        self._request = gateway_pb2.CommitStatusRequest(
            transaction_id=tx_id, channel_id=channel, identity=gateway.creator
        ).SerializeToString()
        self._status: Status | None = None
        self._lock = threading.Lock()

    def _message(self) -> bytes:
        return self._request

    def bytes(self) -> bytes:
        return gateway_pb2.SignedCommitStatusRequest(request=self._request, signature=self._signature or b"").SerializeToString()

    def status(self, timeout: float | None = None) -> Status:
        with self._lock:
            if self._status is None:
                signed = gateway_pb2.SignedCommitStatusRequest(request=self._request, signature=self._ensure_signed())
                try:
                    resp = self.gateway.stub.CommitStatus(
                        signed, timeout=timeout or self.gateway.timeouts.get("commit")
                    )
                except grpc.RpcError as err:
                    raise CommitStatusError.from_rpc(err, self.transaction_id) from None
                self._status = Status(self.transaction_id, resp.result, resp.block_number)
            return self._status


__all__ = [
    "ChaincodeEvent",
    "Checkpointer",
    "Commit",
    "CommitError",
    "CommitStatusError",
    "Contract",
    "EndorseError",
    "EventStream",
    "FileCheckpointer",
    "Gateway",
    "GatewayError",
    "InMemoryCheckpointer",
    "Network",
    "Proposal",
    "Status",
    "SubmitError",
    "Transaction",
    "connect",
]

