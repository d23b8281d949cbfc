"""Calling the ``serums`` chaincode from the gateway: submits that report their transaction id,
retries of MVCC conflicts, and the offline-signing steps of a patient's device.

Every transaction a user makes is signed with that user's own identity (their wallet signer,
opened for their session) — the gateway only carries it. For offline signing the gateway
prepares the proposal, the device signs its digest, the gateway endorses and hands back the
transaction's digest, the device signs that, and the gateway submits and waits for the commit
(the commit-status request is signed by a service identity: it only asks whether the
transaction committed).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fabric_protos.common import common_pb2
from google.protobuf.message import DecodeError

from network import Commit, CommitError, Contract, Gateway, Identity, protocol, verify
from network.client import EndorseError, GatewayError, Proposal, Transaction

from . import problems as P

log = logging.getLogger("serums.gateway")

CHAINCODE = "serums"
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
RETRY_CODES = ("MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT")
#: Fabric's Gateway when the endorsing peers simulated at different block heights (one committed a
#: block a moment before another): a legitimate outcome under concurrency, to be endorsed again
HEIGHT_SKEW = "ProposalResponsePayloads do not match"

OFFLINE_INVALID = P.problem_type(
    "offline-signing-invalid", 422, "Offline signing: invalid message",
    "The proposal or transaction bytes, or the signature over them, are not acceptable: not base64, not the "
    "message that was prepared for this user, or a signature that does not verify with the user's certificate.",
)


def encode_arg(a: Any) -> str | bytes:
    return a if isinstance(a, str | bytes) else json.dumps(a, separators=(",", ":"))


def decode_result(raw: bytes) -> Any:
    return json.loads(raw) if raw else None


@dataclass(frozen=True)
class TxResult:
    """A committed transaction: the chaincode's answer and where it is on the ledger."""

    result: Any
    transaction_id: str
    block_number: int

    def evidence(self) -> dict[str, Any]:
        return {"transaction_id": self.transaction_id, "block": self.block_number}


def submit(contract: Contract, fn: str, *args: Any, transient: Mapping[str, bytes] | None = None,
           retries: int = 2) -> TxResult:
    """Endorse, submit and wait for the commit. A transaction invalidated by a concurrent change
    (MVCC or phantom read conflict) is proposed again, up to ``retries`` times: each attempt is a
    new proposal evaluated against the newer state, so nothing slips through on stale reads."""
    encoded = [encode_arg(a) for a in args]
    for attempt in range(retries + 1):
        tx = endorse(lambda: contract.new_proposal(fn, encoded, transient=transient))
        status = tx.submit().status()
        if status.successful:
            return TxResult(decode_result(tx.result), status.transaction_id, status.block_number)
        if status.code_name in RETRY_CODES and attempt < retries:
            log.info("%s: %s, proposing again", fn, status.code_name)
            continue
        raise CommitError(status.transaction_id, status.code, status.block_number)
    raise AssertionError("unreachable")


def endorse(propose: Callable[[], Proposal], timeout: float = 30.0) -> Transaction:
    """Endorse a new proposal from ``propose()``; when the endorsers disagreed because they were at
    different block heights (``HEIGHT_SKEW``, as Fabric's documentation advises) a fresh proposal is
    endorsed again, with a growing pause, for at most ``timeout`` seconds. Any other refusal is raised."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while True:
        try:
            return propose().endorse()
        except EndorseError as exc:
            if HEIGHT_SKEW not in str(exc) or time.monotonic() + pause > deadline:
                raise
            log.info("endorsers at different block heights, endorsing again in %.2f s", pause)
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def await_every_peer(contract: Contract, orgs: list[str], fn: str, *args: Any, timeout: float = 30.0) -> None:
    """Wait until ``fn`` evaluates without a chaincode "not found" (404) on the peer of every organisation in
    ``orgs``: a committed transaction is on the peer that reported its commit, while other
    organisations' peers may still be a block behind — and a next transaction that depends on it
    may be endorsed there. Until Fabric's discovery has (again) seen an organisation's peer with the
    chaincode, its gateway answers "no peers available"; that is waited out too, within ``timeout``."""
    deadline = time.monotonic() + timeout
    for org in orgs:
        while True:
            try:
                contract.evaluate(fn, *[encode_arg(a) for a in args], target_organizations=[org])
                break
            except GatewayError as exc:
                pending = exc.chaincode_status == 404 or exc.kind == GatewayError.CHAINCODE_NOT_FOUND
                if not pending or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def evaluate(contract: Contract, fn: str, *args: Any) -> Any:
    return contract.evaluate_json(fn, *args)


def encode_bookmark(bookmark: str) -> str:
    """The chain's bookmark (a composite key, with NUL separators) as an opaque URL-safe token."""
    return base64.urlsafe_b64encode(bookmark.encode("utf-8")).decode("ascii").rstrip("=") if bookmark else ""


def decode_bookmark(token: str) -> str:
    if not token:
        return ""
    if not _B64URL.fullmatch(token):
        raise ValueError("not a bookmark returned by this API")
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a bookmark returned by this API") from None


def page(doc: dict) -> dict:
    """A paginated chain answer with its bookmark made opaque (pass it back as ``bookmark``)."""
    return {**doc, "bookmark": encode_bookmark(doc.get("bookmark") or "")}


# --------------------------------------------------------------------------- offline signing


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise P.Problem(OFFLINE_INVALID, f"{what} is not base64") from None


@dataclass(frozen=True)
class ProposalInfo:
    creator: bytes
    channel: str
    chaincode: str
    function: str
    args: list[bytes]
    transaction_id: str


def inspect_proposal(proposal_bytes: bytes) -> ProposalInfo:
    """What a proposal asks (creator, chaincode, function, arguments), from Fabric's messages."""
    try:
        pt, unpacked = protocol.unpack_proposed_transaction(proposal_bytes)
    except protocol.ProtocolError as exc:
        raise P.Problem(OFFLINE_INVALID, f"proposal: not a Fabric proposed transaction ({exc})") from None
    args = unpacked.args
    if not args:
        raise P.Problem(OFFLINE_INVALID, "proposal: it names no function")
    try:
        fn = args[0].decode("utf-8")
    except UnicodeDecodeError:
        raise P.Problem(OFFLINE_INVALID, "proposal: the function name is not text") from None
    return ProposalInfo(unpacked.creator, unpacked.channel, unpacked.chaincode, fn, args[1:], pt.transaction_id)


def transaction_creator(tx_bytes: bytes) -> tuple[bytes, str, bytes]:
    """(creator, transaction id, payload) of a prepared transaction."""
    from fabric_protos.gateway import gateway_pb2

    try:
        pt = gateway_pb2.PreparedTransaction()
        pt.ParseFromString(tx_bytes)
        payload = common_pb2.Payload()
        payload.ParseFromString(pt.envelope.payload)
        sh = common_pb2.SignatureHeader()
        sh.ParseFromString(payload.header.signature_header)
    except (DecodeError, ValueError, TypeError):
        raise P.Problem(OFFLINE_INVALID, "transaction: not a Fabric prepared transaction") from None
    if not pt.envelope.payload:
        raise P.Problem(OFFLINE_INVALID, "transaction: empty")
    return sh.creator, pt.transaction_id, pt.envelope.payload


def check_signature(identity: Identity, message: bytes, signature: bytes, what: str) -> None:
    if not signature or not verify(identity.public_key, message, signature):
        raise P.Problem(OFFLINE_INVALID, f"{what}: the signature does not verify with your certificate "
                                         "(sign the SHA-256 digest with ECDSA P-256, DER, low-S)")


def wait_for_commit(service_gw: Gateway, channel: str, transaction_id: str):
    """Commit status of a transaction, asked (and signed) by a service identity."""
    return Commit(service_gw, channel, transaction_id).status()


__all__ = [
    "CHAINCODE", "OFFLINE_INVALID", "ProposalInfo", "TxResult", "b64", "check_signature", "decode_result",
    "encode_arg", "evaluate", "inspect_proposal", "submit", "transaction_creator", "unb64", "wait_for_commit",
]
