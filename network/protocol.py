"""Fabric's transaction messages, built and taken apart with ``fabric_protos``.

Everything here is a pure function of bytes: the client builds proposals and signs the
envelope the gateway prepared; endorsers build proposal responses; the orderer and committers
parse envelopes and blocks. The byte layouts are Fabric's own (protoutil), so blocks written by
the embedded node and by a real Fabric peer are read by the same audit code.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    events_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

ENDORSER_TRANSACTION = common_pb2.HeaderType.Value("ENDORSER_TRANSACTION")
CONFIG = common_pb2.HeaderType.Value("CONFIG")
DELIVER_SEEK_INFO = common_pb2.HeaderType.Value("DELIVER_SEEK_INFO")
TxValidationCode = transaction_pb2.TxValidationCode
VALID = TxValidationCode.Value("VALID")


class ProtocolError(ValueError):
    """A message that is malformed or inconsistent."""


def _parse(msg_type, data: bytes, what: str):
    msg = msg_type()
    try:
        msg.ParseFromString(data)
    except (DecodeError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed {what}") from exc
    return msg


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def new_nonce() -> bytes:
    return os.urandom(24)


def compute_txid(nonce: bytes, creator: bytes) -> str:
    """Fabric's transaction id: hex(SHA-256(nonce ‖ serialized creator))."""
    return hashlib.sha256(nonce + creator).hexdigest()


def timestamp_now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def timestamp_to_datetime(ts: Timestamp) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=_dt.UTC)


def validation_code_name(code: int) -> str:
    try:
        return TxValidationCode.Name(code)
    except ValueError:
        return f"UNKNOWN_CODE_{code}"


# --------------------------------------------------------------------------- proposals


@dataclass(frozen=True)
class ProposalMessage:
    """A proposal ready to sign: ``bytes`` is what the creator signs (its SHA-256 is the digest)."""

    bytes: bytes
    tx_id: str
    channel: str
    chaincode: str


def create_proposal(
    creator: bytes,
    channel: str,
    chaincode: str,
    args: Sequence[bytes],
    transient: Mapping[str, bytes] | None = None,
    *,
    nonce: bytes | None = None,
    timestamp: Timestamp | None = None,
) -> ProposalMessage:
    nonce = nonce or new_nonce()
    tx_id = compute_txid(nonce, creator)
    ext = proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode))
    ch = common_pb2.ChannelHeader(
        type=ENDORSER_TRANSACTION,
        version=0,
        channel_id=channel,
        tx_id=tx_id,
        epoch=0,
        extension=ext.SerializeToString(),
    )
    ch.timestamp.CopyFrom(timestamp or timestamp_now())
    sh = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    header = common_pb2.Header(channel_header=ch.SerializeToString(), signature_header=sh.SerializeToString())
    spec = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            type=chaincode_pb2.ChaincodeSpec.Type.Value("GOLANG"),
            chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode),
            input=chaincode_pb2.ChaincodeInput(args=list(args)),
        )
    )
    cpp = proposal_pb2.ChaincodeProposalPayload(input=spec.SerializeToString())
    for k, v in (transient or {}).items():
        cpp.TransientMap[k] = v
    prop = proposal_pb2.Proposal(header=header.SerializeToString(), payload=cpp.SerializeToString())
    return ProposalMessage(prop.SerializeToString(), tx_id, channel, chaincode)


def proposal_payload_for_tx(cpp: proposal_pb2.ChaincodeProposalPayload) -> bytes:
    """The chaincode proposal payload as it goes into the transaction: transient data removed."""
    return proposal_pb2.ChaincodeProposalPayload(input=cpp.input).SerializeToString()


def proposal_hash(channel_header: bytes, signature_header: bytes, cpp_for_tx: bytes) -> bytes:
    """Fabric's GetProposalHash1: binds a proposal response to its proposal, transient data excluded."""
    h = hashlib.sha256()
    h.update(channel_header)
    h.update(signature_header)
    h.update(cpp_for_tx)
    return h.digest()


class _Headers:
    """What proposals and transactions share: the fields of their channel and signature headers."""

    channel_header: common_pb2.ChannelHeader
    signature_header: common_pb2.SignatureHeader

    @property
    def tx_id(self) -> str:
        return self.channel_header.tx_id

    @property
    def channel(self) -> str:
        return self.channel_header.channel_id

    @property
    def creator(self) -> bytes:
        return self.signature_header.creator

    @property
    def timestamp(self) -> _dt.datetime:
        return timestamp_to_datetime(self.channel_header.timestamp)

    @property
    def timestamp_us(self) -> int:
        """The header's timestamp in microseconds since the epoch (exact, without a datetime)."""
        ts = self.channel_header.timestamp
        return ts.seconds * 1_000_000 + ts.nanos // 1000


@dataclass
class UnpackedProposal(_Headers):
    """A signed proposal taken apart and checked for internal consistency (not for signatures)."""

    proposal_bytes: bytes
    signature: bytes
    header: common_pb2.Header
    channel_header: common_pb2.ChannelHeader
    signature_header: common_pb2.SignatureHeader
    cpp: proposal_pb2.ChaincodeProposalPayload
    chaincode: str
    args: list[bytes]
    transient: dict[str, bytes]

    @property
    def cpp_for_tx(self) -> bytes:
        return proposal_payload_for_tx(self.cpp)

    @property
    def hash(self) -> bytes:
        return proposal_hash(self.header.channel_header, self.header.signature_header, self.cpp_for_tx)


def unpack_signed_proposal(proposal_bytes: bytes, signature: bytes) -> UnpackedProposal:
    if not proposal_bytes:
        raise ProtocolError("the signed proposal is empty")
    prop = _parse(proposal_pb2.Proposal, proposal_bytes, "proposal")
    header = _parse(common_pb2.Header, prop.header, "proposal header")
    ch = _parse(common_pb2.ChannelHeader, header.channel_header, "channel header")
    sh = _parse(common_pb2.SignatureHeader, header.signature_header, "signature header")
    if ch.type != ENDORSER_TRANSACTION:
        raise ProtocolError(f"proposal header type {ch.type} is not ENDORSER_TRANSACTION")
    if not ch.channel_id:
        raise ProtocolError("proposal names no channel")
    if not sh.creator or not sh.nonce:
        raise ProtocolError("proposal lacks creator or nonce")
    if ch.tx_id != compute_txid(sh.nonce, sh.creator):
        raise ProtocolError("transaction id does not match hash(nonce + creator)")
    ext = _parse(proposal_pb2.ChaincodeHeaderExtension, ch.extension, "chaincode header extension")
    cpp = _parse(proposal_pb2.ChaincodeProposalPayload, prop.payload, "chaincode proposal payload")
    spec = _parse(chaincode_pb2.ChaincodeInvocationSpec, cpp.input, "chaincode invocation spec")
    name = spec.chaincode_spec.chaincode_id.name or ext.chaincode_id.name
    if not name:
        raise ProtocolError("proposal names no chaincode")
    if ext.chaincode_id.name and ext.chaincode_id.name != name:
        raise ProtocolError("chaincode in header extension differs from the invocation spec")
    return UnpackedProposal(
        proposal_bytes=proposal_bytes,
        signature=signature,
        header=header,
        channel_header=ch,
        signature_header=sh,
        cpp=cpp,
        chaincode=name,
        args=list(spec.chaincode_spec.input.args),
        transient=dict(cpp.TransientMap),
    )


def unpack_proposed_transaction(data: bytes):
    """A serialized ``gateway.ProposedTransaction`` (what a proposal's ``bytes()`` carries to an
    offline signer and back) and its proposal, unpacked and checked."""
    from fabric_protos.gateway import gateway_pb2

    pt = _parse(gateway_pb2.ProposedTransaction, data, "proposed transaction")
    return pt, unpack_signed_proposal(pt.proposal.proposal_bytes, pt.proposal.signature)


# --------------------------------------------------------------------------- read-write sets


@dataclass
class RangeQuery:
    start_key: str
    end_key: str
    exhausted: bool
    reads: list[tuple[str, tuple[int, int] | None]]


@dataclass
class RWSet:
    """What a simulation read and wrote in one namespace. Versions are (block, tx)."""

    namespace: str
    reads: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    writes: dict[str, bytes | None] = field(default_factory=dict)  # None: delete
    range_queries: list[RangeQuery] = field(default_factory=list)

    def to_proto(self) -> rwset_pb2.TxReadWriteSet:
        kv = kv_rwset_pb2.KVRWSet()
        for key in sorted(self.reads):
            ver = self.reads[key]
            r = kv.reads.add(key=key)
            if ver is not None:
                r.version.block_num, r.version.tx_num = ver
        for rq in self.range_queries:
            info = kv.range_queries_info.add(start_key=rq.start_key, end_key=rq.end_key, itr_exhausted=rq.exhausted)
            for key, ver in rq.reads:
                r = info.raw_reads.kv_reads.add(key=key)
                if ver is not None:
                    r.version.block_num, r.version.tx_num = ver
        for key in sorted(self.writes):
            val = self.writes[key]
            kv.writes.add(key=key, is_delete=val is None, value=val or b"")
        tx = rwset_pb2.TxReadWriteSet(data_model=rwset_pb2.TxReadWriteSet.DataModel.Value("KV"))
        tx.ns_rwset.add(namespace=self.namespace, rwset=kv.SerializeToString())
        return tx

    @classmethod
    def from_bytes(cls, data: bytes) -> list[RWSet]:
        tx = _parse(rwset_pb2.TxReadWriteSet, data, "read-write set")
        out = []
        for ns in tx.ns_rwset:
            kv = _parse(kv_rwset_pb2.KVRWSet, ns.rwset, "KV read-write set")
            rw = cls(ns.namespace)
            for r in kv.reads:
                rw.reads[r.key] = (r.version.block_num, r.version.tx_num) if r.HasField("version") else None
            for info in kv.range_queries_info:
                rw.range_queries.append(
                    RangeQuery(
                        info.start_key,
                        info.end_key,
                        info.itr_exhausted,
                        [
                            (r.key, (r.version.block_num, r.version.tx_num) if r.HasField("version") else None)
                            for r in info.raw_reads.kv_reads
                        ],
                    )
                )
            for w in kv.writes:
                rw.writes[w.key] = None if w.is_delete else w.value
            out.append(rw)
        return out


# --------------------------------------------------------------------------- proposal responses


def create_proposal_response_payload(
    proposal: UnpackedProposal,
    *,
    status: int,
    message: str,
    payload: bytes,
    rwset: bytes,
    event: chaincode_event_pb2.ChaincodeEvent | None,
    chaincode_version: str,
) -> bytes:
    action = proposal_pb2.ChaincodeAction(
        results=rwset,
        events=event.SerializeToString() if event is not None else b"",
        response=proposal_response_pb2.Response(status=status, message=message, payload=payload),
        chaincode_id=chaincode_pb2.ChaincodeID(name=proposal.chaincode, version=chaincode_version),
    )
    prp = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=proposal.hash, extension=action.SerializeToString()
    )
    return prp.SerializeToString()


def endorsement_message(prp_bytes: bytes, endorser: bytes) -> bytes:
    """What an endorser signs: the proposal response payload followed by its own identity."""
    return prp_bytes + endorser


def create_transaction_envelope_payload(
    proposal: UnpackedProposal, prp_bytes: bytes, endorsements: Iterable[proposal_response_pb2.Endorsement]
) -> bytes:
    """Assemble the transaction from a proposal and matching endorsements (protoutil.CreateSignedTx);
    returns the payload bytes the creator must sign."""
    cap = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=proposal.cpp_for_tx,
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=prp_bytes, endorsements=list(endorsements)
        ),
    )
    tx = transaction_pb2.Transaction(
        actions=[
            transaction_pb2.TransactionAction(
                header=proposal.header.signature_header, payload=cap.SerializeToString()
            )
        ]
    )
    payload = common_pb2.Payload(header=proposal.header, data=tx.SerializeToString())
    return payload.SerializeToString()


# --------------------------------------------------------------------------- transactions


@dataclass
class ParsedTransaction(_Headers):
    """An endorser transaction envelope taken apart: everything validation and audit need."""

    envelope: bytes
    payload_bytes: bytes
    signature: bytes
    channel_header: common_pb2.ChannelHeader
    signature_header: common_pb2.SignatureHeader
    chaincode: str
    args: list[bytes]
    prp_bytes: bytes
    proposal_hash: bytes
    action: proposal_pb2.ChaincodeAction
    endorsements: list[proposal_response_pb2.Endorsement]
    action_header_creator: bytes
    #: results of checks that depend only on this transaction and the arguments in the key (the
    #: peers of one node validate the same parsed block: each check runs once for all of them)
    checks: dict = field(default_factory=dict, repr=False, compare=False)
    _rwsets: list[RWSet] | None = field(default=None, repr=False, compare=False)

    @property
    def response(self) -> proposal_response_pb2.Response:
        return self.action.response

    @property
    def event(self) -> chaincode_event_pb2.ChaincodeEvent | None:
        if not self.action.events:
            return None
        return _parse(chaincode_event_pb2.ChaincodeEvent, self.action.events, "chaincode event")

    def rwsets(self) -> list[RWSet]:
        """The read-write sets (parsed once; callers must not modify them)."""
        if self._rwsets is None:
            self._rwsets = RWSet.from_bytes(self.action.results)
        return self._rwsets


def parse_envelope_header(envelope: bytes) -> tuple[common_pb2.Envelope, common_pb2.Payload, common_pb2.ChannelHeader]:
    env = _parse(common_pb2.Envelope, envelope, "envelope")
    payload = _parse(common_pb2.Payload, env.payload, "envelope payload")
    ch = _parse(common_pb2.ChannelHeader, payload.header.channel_header, "channel header")
    return env, payload, ch


def parse_transaction(envelope: bytes) -> ParsedTransaction:
    env, payload, ch = parse_envelope_header(envelope)
    if ch.type != ENDORSER_TRANSACTION:
        raise ProtocolError(f"envelope type {ch.type} is not an endorser transaction")
    sh = _parse(common_pb2.SignatureHeader, payload.header.signature_header, "signature header")
    tx = _parse(transaction_pb2.Transaction, payload.data, "transaction")
    if len(tx.actions) != 1:
        raise ProtocolError(f"a transaction must have exactly one action, not {len(tx.actions)}")
    ta = tx.actions[0]
    ah = _parse(common_pb2.SignatureHeader, ta.header, "action header")
    cap = _parse(transaction_pb2.ChaincodeActionPayload, ta.payload, "chaincode action payload")
    prp = _parse(
        proposal_response_pb2.ProposalResponsePayload, cap.action.proposal_response_payload, "response payload"
    )
    action = _parse(proposal_pb2.ChaincodeAction, prp.extension, "chaincode action")
    cpp = _parse(proposal_pb2.ChaincodeProposalPayload, cap.chaincode_proposal_payload, "proposal payload")
    spec = _parse(chaincode_pb2.ChaincodeInvocationSpec, cpp.input, "invocation spec")
    return ParsedTransaction(
        envelope=envelope,
        payload_bytes=env.payload,
        signature=env.signature,
        channel_header=ch,
        signature_header=sh,
        chaincode=spec.chaincode_spec.chaincode_id.name or action.chaincode_id.name,
        args=list(spec.chaincode_spec.input.args),
        prp_bytes=cap.action.proposal_response_payload,
        proposal_hash=prp.proposal_hash,
        action=action,
        endorsements=list(cap.action.endorsements),
        action_header_creator=ah.creator,
    )


def expected_proposal_hash(tx: ParsedTransaction, header: common_pb2.Header, cpp_bytes: bytes) -> bytes:
    return proposal_hash(header.channel_header, header.signature_header, cpp_bytes)


def transaction_result(envelope: bytes) -> proposal_response_pb2.Response:
    """The chaincode's response inside a prepared or committed transaction."""
    return parse_transaction(envelope).response


# --------------------------------------------------------------------------- blocks


def _der(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length (short form below 128 bytes), content."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def block_header_bytes(header: common_pb2.BlockHeader) -> bytes:
    """Fabric's BlockHeaderBytes: the ASN.1 DER of SEQUENCE {number INTEGER, previous hash OCTET
    STRING, data hash OCTET STRING}, encoded here directly (a block's number is never negative, so
    its INTEGER is the shortest big-endian form with a clear top bit)."""
    num = header.number
    return _der(0x30, _der(0x02, num.to_bytes(num.bit_length() // 8 + 1, "big"))
                + _der(0x04, header.previous_hash) + _der(0x04, header.data_hash))


def block_header_hash(header: common_pb2.BlockHeader) -> bytes:
    return sha256(block_header_bytes(header))


def block_data_hash(data: Iterable[bytes]) -> bytes:
    """Fabric's block data hash: SHA-256 over the concatenated envelopes."""
    h = hashlib.sha256()
    for d in data:
        h.update(d)
    return h.digest()


METADATA_SIGNATURES = common_pb2.BlockMetadataIndex.Value("SIGNATURES")
METADATA_LAST_CONFIG = common_pb2.BlockMetadataIndex.Value("LAST_CONFIG")
METADATA_TRANSACTIONS_FILTER = common_pb2.BlockMetadataIndex.Value("TRANSACTIONS_FILTER")
METADATA_COMMIT_HASH = common_pb2.BlockMetadataIndex.Value("COMMIT_HASH")
METADATA_SLOTS = 5


def block_signature_message(metadata_value: bytes, signature_header: bytes, header: common_pb2.BlockHeader) -> bytes:
    """What the orderer signs in the SIGNATURES metadata: value ‖ signature header ‖ header bytes."""
    return metadata_value + signature_header + block_header_bytes(header)


def transactions_filter(block: common_pb2.Block) -> bytes:
    md = block.metadata.metadata
    return md[METADATA_TRANSACTIONS_FILTER] if len(md) > METADATA_TRANSACTIONS_FILTER else b""


def commit_hash_metadata(commit_hash: bytes) -> bytes:
    """The COMMIT_HASH metadata slot as Fabric's committer writes it: a ``common.Metadata`` whose
    value is the hash."""
    return common_pb2.Metadata(value=commit_hash).SerializeToString()


def block_commit_hash(block: common_pb2.Block) -> bytes:
    """The commit hash a peer recorded in a block (b"" if none). Ledgers written before the slot
    was wrapped in ``common.Metadata`` hold the bare 32-byte hash; both read the same."""
    md = block.metadata.metadata
    raw = md[METADATA_COMMIT_HASH] if len(md) > METADATA_COMMIT_HASH else b""
    if not raw or len(raw) == 32:
        return raw
    return _parse(common_pb2.Metadata, raw, "COMMIT_HASH metadata").value


def filtered_block(block: common_pb2.Block, channel: str) -> events_pb2.FilteredBlock:
    """A block as Fabric's ``DeliverFiltered`` sends it: per transaction its id, type and
    validation code, and each chaincode event without its payload."""
    flt = transactions_filter(block)
    out = events_pb2.FilteredBlock(channel_id=channel, number=block.header.number)
    for i, data in enumerate(block.data.data):
        try:
            _, payload, ch = parse_envelope_header(data)
        except ProtocolError:
            continue
        ftx = out.filtered_transactions.add(
            txid=ch.tx_id, type=ch.type, tx_validation_code=flt[i] if i < len(flt) else VALID
        )
        if ch.type != ENDORSER_TRANSACTION:
            continue
        try:
            event = parse_transaction(data).event
        except ProtocolError:
            event = None
        ftx.transaction_actions.SetInParent()
        if event is not None and event.chaincode_id:
            ftx.transaction_actions.chaincode_actions.add().chaincode_event.CopyFrom(
                chaincode_event_pb2.ChaincodeEvent(
                    chaincode_id=event.chaincode_id, tx_id=event.tx_id, event_name=event.event_name
                )
            )
    return out


def parse_block(data: bytes) -> common_pb2.Block:
    return _parse(common_pb2.Block, data, "block")


def parse_block_transactions(
    block: common_pb2.Block, parsed: Callable[[bytes], ParsedTransaction | None] | None = None
) -> list[ParsedTransaction | None]:
    """Every envelope of a block parsed as a transaction (None where it is not one). ``parsed``
    may give an envelope's transaction as parsed before from the same bytes (None: parse it here)."""
    out: list[ParsedTransaction | None] = []
    for data in block.data.data:
        ptx = parsed(data) if parsed is not None else None
        if ptx is None:
            try:
                ptx = parse_transaction(data)
            except ProtocolError:
                ptx = None
        out.append(ptx)
    return out


def seek_info_envelope_payload(
    channel: str, creator: bytes, start: int | None, stop: int | None, *, nonce: bytes | None = None
) -> bytes:
    """The payload of a Deliver request: a SeekInfo from ``start`` (None: newest) to ``stop`` (None:
    follow for ever)."""
    nonce = nonce or new_nonce()
    seek = ab_pb2.SeekInfo(behavior=ab_pb2.SeekInfo.SeekBehavior.Value("BLOCK_UNTIL_READY"))
    if start is None:
        seek.start.newest.SetInParent()
    else:
        seek.start.specified.number = start
    if stop is None:
        seek.stop.specified.number = 2**64 - 1
    else:
        seek.stop.specified.number = stop
    ch = common_pb2.ChannelHeader(
        type=DELIVER_SEEK_INFO, channel_id=channel, tx_id=compute_txid(nonce, creator), epoch=0
    )
    ch.timestamp.CopyFrom(timestamp_now())
    sh = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=ch.SerializeToString(), signature_header=sh.SerializeToString()),
        data=seek.SerializeToString(),
    )
    return payload.SerializeToString()
