"""A peer of the embedded node: endorses by simulating chaincode, validates and commits blocks.

Endorsement runs the chaincode in-process against this peer's own world state through
:class:`TxSimulator`, which records a Fabric read-write set (reads with versions, writes,
range-query reads for phantom detection), and signs the proposal response with the peer's key.

Validation follows Fabric's committer: for each transaction of a block, the creator's
certificate and signature, the transaction id, duplicate ids, every endorser's certificate and
signature over the same response payload, the chaincode's endorsement policy, then MVCC on read
versions and phantom reads for range queries against the state as left by the block's earlier
valid transactions. Only VALID transactions' writes apply; every transaction's validation code
goes into the block's TRANSACTIONS_FILTER metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hashlib
import importlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from fabric_protos.common import common_pb2
from fabric_protos.peer import chaincode_event_pb2, proposal_response_pb2
from google.protobuf.message import DecodeError

from chaincode import (
    KV,
    ChaincodeStub,
    ClientIdentity,
    KeyModification,
    QueryPage,
    Response,
    StubError,
    validate_simple_key,
)

from .. import protocol as P
from ..config import ChaincodeDefinition
from ..identity import Identity, Signer
from ..policy import Policy, evaluate
from .configtx import (
    ConfigUpdateError,
    config_in_force,
    hospital_msp_ids,
    is_config_block,
    validate_config_block,
)
from .genesis import config_from_block, msps_from_config
from .lifecycle import (
    LIFECYCLE,
    apply_updates,
    definition_keys,
    definitions_from_writes,
    ledger_definitions,
    lifecycle_policy,
)
from .membership import Membership, MembershipError
from .store import PeerStore, StateReader, StateUpdate, Version

log = logging.getLogger(__name__)

TXC = P.TxValidationCode
MAX_VALUE_BYTES = 4 * 1024 * 1024


def load_chaincode(module_spec: str):
    """Import ``package.module:factory`` and return the chaincode object it makes."""
    mod_name, _, attr = module_spec.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"chaincode module {module_spec!r} must look like 'package.module:factory'")
    obj = getattr(importlib.import_module(mod_name), attr)
    return obj() if callable(obj) and not hasattr(obj, "invoke") else obj


@dataclass
class DeployedChaincode:
    definition: ChaincodeDefinition
    policy: Policy
    code: object  # has invoke(stub) -> chaincode.Response


# --------------------------------------------------------------------------- simulation


class SimulationError(Exception):
    pass


class TxSimulator(ChaincodeStub):
    """The stub of the embedded engine: reads from a snapshot, records a read-write set."""

    def __init__(self, reader: StateReader, prop: P.UnpackedProposal, creator: Identity):
        self._reader = reader
        self._prop = prop
        self._creator = creator
        self.ns = prop.chaincode
        self.rwset = P.RWSet(self.ns)
        self.event: tuple[str, bytes] | None = None
        self.paginated = False
        self._client: ClientIdentity | None = None

    # context
    def get_args(self) -> list[bytes]:
        return self._prop.args

    def get_tx_id(self) -> str:
        return self._prop.tx_id

    def get_channel_id(self) -> str:
        return self._prop.channel

    def get_tx_timestamp(self) -> _dt.datetime:
        return self._prop.timestamp

    def get_creator(self) -> ClientIdentity:
        if self._client is None:
            self._client = ClientIdentity(self._creator.msp_id, self._creator.pem)
        return self._client

    def get_transient(self) -> dict[str, bytes]:
        return dict(self._prop.transient)

    def set_event(self, name: str, payload: bytes) -> None:
        if not name:
            raise StubError("event name must not be empty")
        self.event = (name, bytes(payload))

    # state
    def _record_read(self, key: str, version: Version | None) -> None:
        self.rwset.reads.setdefault(key, version)

    def get_state(self, key: str) -> bytes | None:
        if not key:
            raise StubError("key must not be empty")
        got = self._reader.get(self.ns, key)
        self._record_read(key, got[1] if got else None)
        return got[0] if got else None

    def put_state(self, key: str, value: bytes) -> None:
        if not key.startswith("\x00"):
            validate_simple_key(key)
        if not isinstance(value, bytes | bytearray):
            raise StubError("state values must be bytes")
        if len(value) > MAX_VALUE_BYTES:
            raise StubError(f"state value of {len(value)} bytes exceeds {MAX_VALUE_BYTES}")
        self.rwset.writes[key] = bytes(value)

    def del_state(self, key: str) -> None:
        if not key:
            raise StubError("key must not be empty")
        self.rwset.writes[key] = None

    def get_state_by_range(self, start_key: str, end_key: str) -> Iterator[KV]:
        rows = self._reader.range(self.ns, start_key, end_key)
        self.rwset.range_queries.append(
            P.RangeQuery(start_key, end_key, True, [(k, ver) for k, _, ver in rows])
        )
        return iter([KV(k, v) for k, v, _ in rows])

    def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> QueryPage:
        if not isinstance(page_size, int) or page_size < 1:
            raise StubError("page size must be a positive integer")
        self.paginated = True
        start = bookmark or start_key
        if bookmark and (bookmark < start_key or (end_key and bookmark >= end_key)):
            raise StubError("bookmark lies outside the queried range")
        rows = self._reader.range(self.ns, start, end_key, limit=page_size + 1)
        page, more = rows[:page_size], len(rows) > page_size
        self.rwset.range_queries.append(
            P.RangeQuery(start, end_key, not more, [(k, ver) for k, _, ver in page])
        )
        return QueryPage([KV(k, v) for k, v, _ in page], len(page), rows[page_size][0] if more else "")

    def get_history_for_key(self, key: str) -> Iterator[KeyModification]:
        for h in self._reader.history(self.ns, key):
            yield KeyModification(
                h.tx_id, h.value, _dt.datetime.fromtimestamp(h.ts_us / 1e6, tz=_dt.UTC), h.is_delete
            )


@dataclass
class SimulationResult:
    response: Response
    rwset: bytes
    event: chaincode_event_pb2.ChaincodeEvent | None
    height: int = 0  # the block height of the state the simulation read


class StateView(Protocol):
    """What validation reads: committed versions and ranges (a peer's store, or a state rebuilt
    from blocks by ``serums ledger verify``)."""

    def version(self, ns: str, key: str) -> Version | None: ...

    def range(self, ns: str, start: str, end: str, limit: int | None = None) -> list[tuple[str, bytes, Version]]: ...


class BlockValidator:
    """Fabric's committer-side validation, a pure function of the block, the channel's members and
    policies, and the state before the block."""

    def __init__(self, channel: str, policies: dict[str, Policy], membership: Membership):
        self.channel = channel
        self.policies = policies
        self.membership = membership


    def _static_check(self, ptx: P.ParsedTransaction) -> int:
        """Checks that need no state: creator, signatures, policy, shape. A pure function of the
        transaction, the channel, the members and the chaincode's policy: the peers of the node,
        which validate the same parsed block, compute it once."""
        key = ("static", self.channel, self.policies.get(ptx.chaincode), self.membership, self.membership.generation)
        code = ptx.checks.get(key)
        if code is None:
            code = ptx.checks[key] = self._static_code(ptx)
        return code

    def _static_code(self, ptx: P.ParsedTransaction) -> int:
        if ptx.channel_header.channel_id != self.channel:
            return TXC.Value("TARGET_CHAIN_NOT_FOUND")
        try:
            creator = self.membership.identity(ptx.creator)
        except MembershipError:
            return TXC.Value("BAD_CREATOR_SIGNATURE")
        if not self.membership.check_signature(creator, ptx.payload_bytes, ptx.signature):
            return TXC.Value("BAD_CREATOR_SIGNATURE")
        if ptx.action_header_creator != ptx.creator:
            return TXC.Value("BAD_PAYLOAD")
        if ptx.tx_id != P.compute_txid(ptx.signature_header.nonce, ptx.creator):
            return TXC.Value("BAD_PROPOSAL_TXID")
        policy = self.policies.get(ptx.chaincode)
        if policy is None:
            return TXC.Value("INVALID_CHAINCODE")
        if ptx.action.chaincode_id.name != ptx.chaincode:
            return TXC.Value("BAD_PAYLOAD")
        if ptx.response.status >= 400:
            return TXC.Value("BAD_RESPONSE_PAYLOAD")
        signers: list[tuple[str, str | None]] = []
        for e in ptx.endorsements:
            try:
                ident = self.membership.identity(e.endorser)
            except MembershipError:
                continue
            if self.membership.check_signature(ident, P.endorsement_message(ptx.prp_bytes, e.endorser), e.signature):
                signers.append((ident.msp_id, ident.node_role))
        if not evaluate(policy, signers):
            return TXC.Value("ENDORSEMENT_POLICY_FAILURE")
        return P.VALID

    def validate_block(
        self,
        num: int,
        parsed: list[P.ParsedTransaction | None],
        reader: StateView,
        is_duplicate: Callable[[str], bool],
    ) -> tuple[list[int], list[StateUpdate]]:
        """Validation codes of block ``num``'s transactions and the writes of the valid ones."""
        codes: list[int] = []
        pending: dict[tuple[str, str], _Pending] = {}
        updates: list[StateUpdate] = []
        seen: set[str] = set()
        for txnum, ptx in enumerate(parsed):
            if ptx is None:
                codes.append(TXC.Value("BAD_PAYLOAD"))
                continue
            code = self._static_check(ptx)
            if code == P.VALID and (ptx.tx_id in seen or is_duplicate(ptx.tx_id)):
                code = TXC.Value("DUPLICATE_TXID")
            seen.add(ptx.tx_id)
            rwsets: list[P.RWSet] = []
            if code == P.VALID:
                try:
                    rwsets = ptx.rwsets()
                except P.ProtocolError:
                    code = TXC.Value("BAD_RWSET")
            if code == P.VALID and any(rw.namespace != ptx.chaincode for rw in rwsets):
                code = TXC.Value("ILLEGAL_WRITESET")
            if code == P.VALID and ptx.chaincode == LIFECYCLE and not _well_formed_definitions(rwsets):
                code = TXC.Value("ILLEGAL_WRITESET")
            if code == P.VALID:
                code = self._mvcc(rwsets, pending, reader)
            codes.append(code)
            if code != P.VALID:
                continue
            ts_us = ptx.timestamp_us
            for rw in rwsets:
                for key, value in rw.writes.items():
                    pending[(rw.namespace, key)] = _Pending(value, (num, txnum))
                    updates.append(StateUpdate(rw.namespace, key, value, (num, txnum), ptx.tx_id, ts_us))
        return codes, updates

    @staticmethod
    def _current(ns: str, key: str, pending: dict, reader: StateView) -> Version | None:
        p = pending.get((ns, key))
        if p is not None:
            return None if p.value is None else p.version
        return reader.version(ns, key)

    def _mvcc(self, rwsets: list[P.RWSet], pending: dict, reader: StateView) -> int:
        for rw in rwsets:
            for key, ver in rw.reads.items():
                if self._current(rw.namespace, key, pending, reader) != ver:
                    return TXC.Value("MVCC_READ_CONFLICT")
            for rq in rw.range_queries:
                if not self._range_unchanged(rw.namespace, rq, pending, reader):
                    return TXC.Value("PHANTOM_READ_CONFLICT")
        return P.VALID

    @staticmethod
    def _range_unchanged(ns: str, rq: P.RangeQuery, pending: dict, reader: StateView) -> bool:
        end = rq.end_key
        if not rq.exhausted:
            # the simulation stopped early: compare only up to (and including) its last key
            if not rq.reads:
                return True
            end = rq.reads[-1][0] + "\x00"
        current = {k: ver for k, _, ver in reader.range(ns, rq.start_key, end)}
        for (pns, key), p in pending.items():
            if pns == ns and key >= rq.start_key and (not end or key < end):
                if p.value is None:
                    current.pop(key, None)
                else:
                    current[key] = p.version
        return sorted(current.items()) == [(k, v) for k, v in rq.reads]


def _well_formed_definitions(rwsets: list[P.RWSet]) -> bool:
    """A ``_lifecycle`` transaction writes complete chaincode definitions, nothing else."""
    try:
        for rw in rwsets:
            defs = definitions_from_writes(rw.writes)
            if not defs or set(rw.writes) != {k for name in defs for k in definition_keys(name)}:
                return False
    except P.ProtocolError:
        return False
    return True


# --------------------------------------------------------------------------- the peer


@dataclass
class PreparedCommit:
    """A block a peer validated and wrote, not yet visible to simulations (see :meth:`Peer.prepare`)."""

    num: int
    codes: list[int]
    updates: list[StateUpdate]
    txs: list[tuple[str, int, int]]
    commit_hash: bytes
    wake: list[tuple[Callable[[tuple[int, int]], None], tuple[int, int]]] = field(default_factory=list)
    woken: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, tuple[int, int]]]] = field(default_factory=dict)
    listeners: list[Callable[[int], None]] = field(default_factory=list)


def _resolve_all(futs: list[tuple[asyncio.Future, tuple[int, int]]]) -> None:
    for fut, hit in futs:
        if not fut.done():
            fut.set_result(hit)


def wake_loops(woken: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, tuple[int, int]]]]) -> None:
    """Resolve the commit waiters' futures, with one call into each of their event loops."""
    for loop, futs in woken.items():
        with contextlib.suppress(RuntimeError):  # a loop that closed meanwhile has no waiters left
            loop.call_soon_threadsafe(_resolve_all, futs)


@dataclass
class _Pending:
    value: bytes | None
    version: Version


class Peer:
    def __init__(
        self,
        msp_id: str,
        identity: Identity,
        signer: Signer,
        store: PeerStore,
        channel: str,
        chaincodes: dict[str, DeployedChaincode],
        membership: Membership,
        policies: dict[str, Policy] | None = None,
    ):
        self.msp_id = msp_id
        self.identity = identity
        self.signer = signer
        self.store = store
        self.channel = channel
        self.chaincodes = chaincodes
        self.membership = membership
        self._serialized = identity.serialize()
        # the endorsement policies validation applies: the deployed chaincodes', then the
        # definitions this peer's ledger holds (``_lifecycle``), updated as blocks commit
        initial = dict(policies) if policies is not None else {n: c.policy for n, c in chaincodes.items()}
        initial.update({n: d.policy for n, d in ledger_definitions(store.reader()).items()})
        self.validator = BlockValidator(channel, initial, membership)
        #: the channel configuration this peer's ledger has reached (genesis, or the last CONFIG block)
        self.config = config_in_force(store.block, store.height())[0] if store.height() else None
        if self.config is not None:
            initial[LIFECYCLE] = lifecycle_policy(hospital_msp_ids(self.config))
        self._cond = threading.Condition()  # height changes (few waiters: event streams, endorsers)
        self._lock = threading.Lock()  # _recent and _waiters
        self._waiters: dict[str, list[Callable[[tuple[int, int]], None]]] = {}
        self._async_waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}
        self._height_listeners: list[Callable[[int], None]] = []
        self._recent: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._height = store.height()
        self._last_commit_hash = self._read_last_commit_hash()

    @property
    def height(self) -> int:
        return self._height

    # ------------------------------------------------------------------ endorsement

    def simulate(self, prop: P.UnpackedProposal, creator: Identity) -> SimulationResult:
        cc = self.chaincodes.get(prop.chaincode)
        if cc is None:
            return SimulationResult(Response(404, f"chaincode {prop.chaincode!r} is not deployed"), b"", None)
        with self.store.snapshot() as reader:
            height = reader.height()  # the first read fixes the snapshot
            stub = TxSimulator(reader, prop, creator)
            resp = cc.code.invoke(stub)  # type: ignore[attr-defined]
        if resp.ok and stub.paginated and stub.rwset.writes:
            resp = Response(400, "paginated queries are only allowed in read-only transactions")
        event = None
        if stub.event is not None:
            event = chaincode_event_pb2.ChaincodeEvent(
                chaincode_id=prop.chaincode, tx_id=prop.tx_id, event_name=stub.event[0], payload=stub.event[1]
            )
        return SimulationResult(resp, stub.rwset.to_proto().SerializeToString(), event, height)

    def endorse(
        self, prop: P.UnpackedProposal, creator: Identity
    ) -> tuple[proposal_response_pb2.ProposalResponse, int]:
        """Simulate and, when the chaincode succeeded, sign the response payload. Returns the
        proposal response and the block height of the state it was simulated on."""
        sim = self.simulate(prop, creator)
        resp = proposal_response_pb2.Response(
            status=sim.response.status, message=sim.response.message, payload=sim.response.payload
        )
        if not sim.response.ok:
            return proposal_response_pb2.ProposalResponse(version=1, response=resp), sim.height
        cc = self.chaincodes[prop.chaincode]
        prp = P.create_proposal_response_payload(
            prop,
            status=sim.response.status,
            message=sim.response.message,
            payload=sim.response.payload,
            rwset=sim.rwset,
            event=sim.event,
            chaincode_version=cc.definition.version,
        )
        msg = P.endorsement_message(prp, self._serialized)
        sig = self.signer.sign(msg)
        self.membership.remember_signature(self.identity, msg, sig)
        pr = proposal_response_pb2.ProposalResponse(
            version=1,
            response=resp,
            payload=prp,
            endorsement=proposal_response_pb2.Endorsement(endorser=self._serialized, signature=sig),
        )
        pr.timestamp.FromNanoseconds(time.time_ns())
        return pr, sim.height

    # ------------------------------------------------------------------ commit

    def _read_last_commit_hash(self) -> bytes:
        h = self.store.height()
        if h == 0:
            return b""
        data = self.store.block(h - 1)
        return P.block_commit_hash(P.parse_block(data or b""))

    def commit(
        self, block: common_pb2.Block, parsed: list[P.ParsedTransaction | None], header_hash: bytes | None = None
    ) -> list[int]:
        """Validate and commit the orderer's ``block`` (it must be the next one). Returns the codes."""
        prepared = self.prepare(block, parsed, header_hash)
        self.publish(prepared)
        self.notify(prepared)
        return prepared.codes

    def prepare(
        self, block: common_pb2.Block, parsed: list[P.ParsedTransaction | None], header_hash: bytes | None = None
    ) -> PreparedCommit:
        """The first half of :meth:`commit`: validate ``block`` and write it durably. Simulations
        still see the previous height until :meth:`publish`, which the node calls for every peer
        at once, so that the peers' states move together and endorsers agree."""
        num = block.header.number
        if num != self._height:
            raise RuntimeError(f"peer {self.msp_id} at height {self._height} cannot commit block {num}")
        if num == 0:
            codes, updates = [P.VALID] * len(parsed), []
            self.config = config_from_block(block)
            self.validator.policies[LIFECYCLE] = lifecycle_policy(hospital_msp_ids(self.config))
        elif is_config_block(block):
            codes, updates = [self._accept_config(block)], []
        else:
            known = self.store.known_txids([p.tx_id for p in parsed if p is not None])
            codes, updates = self.validator.validate_block(num, parsed, self.store.reader(), known.__contains__)
        committed = common_pb2.Block()
        committed.CopyFrom(block)
        flt = bytes(codes)
        # the running commit hash starts after the genesis block, which has none (as in Fabric)
        commit_hash = compute_commit_hash(self._last_commit_hash, num, flt, updates) if num else b""
        while len(committed.metadata.metadata) < P.METADATA_SLOTS:
            committed.metadata.metadata.append(b"")
        committed.metadata.metadata[P.METADATA_TRANSACTIONS_FILTER] = flt
        committed.metadata.metadata[P.METADATA_COMMIT_HASH] = P.commit_hash_metadata(commit_hash) if num else b""
        txs = [(ptx.tx_id, i, codes[i]) for i, ptx in enumerate(parsed) if ptx is not None and ptx.tx_id]
        self.store.write_block(
            num, header_hash or P.block_header_hash(block.header), committed.SerializeToString(), txs, updates
        )
        return PreparedCommit(num, codes, updates, txs, commit_hash)

    def publish(self, prepared: PreparedCommit) -> None:
        """The second half of :meth:`commit`: the block's state becomes what simulations read, its
        transactions' statuses become visible. Waiters are woken by :meth:`notify`."""
        num = prepared.num
        self.store.publish(prepared.updates, num + 1)
        apply_updates(self.validator.policies, prepared.updates)
        self._last_commit_hash = prepared.commit_hash
        wake = prepared.wake
        woken = prepared.woken
        with self._lock:
            for tx_id, _, code in prepared.txs:
                if tx_id not in self._recent:
                    self._recent[tx_id] = (num, code)
                hit = self._recent[tx_id]
                wake.extend((cb, hit) for cb in self._waiters.pop(tx_id, ()))
                for loop, fut in self._async_waiters.pop(tx_id, ()):
                    woken.setdefault(loop, []).append((fut, hit))
            while len(self._recent) > 100_000:
                self._recent.popitem(last=False)
            prepared.listeners = list(self._height_listeners)
        self._height = num + 1

    def notify(self, prepared: PreparedCommit, woken: dict | None = None) -> None:
        """Wake who waits for the published block: height waiters, each committed transaction's
        waiters and the height listeners. The waiters of one event loop are resolved with a single
        call into it (by :func:`wake_loops`); given ``woken``, they are added to it instead, so
        that the node wakes every peer's waiters of a block at once."""
        with self._cond:
            self._cond.notify_all()
        for cb, hit in prepared.wake:
            cb(hit)
        if woken is None:
            wake_loops(prepared.woken)
        else:
            for loop, futs in prepared.woken.items():
                woken.setdefault(loop, []).extend(futs)
        for listener in prepared.listeners:
            listener(prepared.num + 1)

    def _accept_config(self, block: common_pb2.Block) -> int:
        """Check a configuration update's block against this peer's configuration; when valid,
        install it: the new organisations' MSPs are accepted, LifecycleEndorsement covers them."""
        assert self.config is not None
        orderer_msp = next(iter(self.config.channel_group.groups["Orderer"].groups))
        try:
            config = validate_config_block(block, self.config, self.channel, self.membership, orderer_msp)
        except (ConfigUpdateError, P.ProtocolError, DecodeError) as exc:
            log.warning("peer %s: configuration block %d refused: %s", self.msp_id, block.header.number, exc)
            return TXC.Value("INVALID_CONFIG_TRANSACTION")
        self.config = config
        self.membership.accept(msps_from_config(config)[0])
        self.validator.policies[LIFECYCLE] = lifecycle_policy(hospital_msp_ids(config))
        return P.VALID

    # ------------------------------------------------------------------ waiting

    def tx_status(self, tx_id: str) -> tuple[int, int] | None:
        """(block, validation code) once ``tx_id`` is committed on this peer — which means its
        writes are visible to simulations. The block store's index alone does not say so: it is
        written a moment before the in-memory state is updated, and a client told "committed" in
        that moment would read its own write back as missing."""
        with self._lock:
            hit = self._recent.get(tx_id)
        if hit is None:
            hit = self.store.tx_status(tx_id)
            if hit is not None and hit[0] >= self._height:
                return None  # the commit of its block is still under way: wait for it
        return hit

    def _add_waiter(self, tx_id: str, waiter, registry: dict | None = None) -> tuple[int, int] | None:
        """Register ``waiter`` (a callback, or (loop, future) in ``_async_waiters``) for the commit
        of ``tx_id`` — or return its status if it has already committed."""
        with self._lock:
            hit = self._recent.get(tx_id)
            if hit is None:
                (self._waiters if registry is None else registry).setdefault(tx_id, []).append(waiter)
            return hit

    def _remove_waiter(self, tx_id: str, waiter, registry: dict | None = None) -> None:
        registry = self._waiters if registry is None else registry
        with self._lock:
            lst = registry.get(tx_id)
            if lst is not None and waiter in lst:
                lst.remove(waiter)
                if not lst:
                    del registry[tx_id]

    def wait_for_tx(self, tx_id: str, timeout: float, is_active=lambda: True) -> tuple[int, int] | None:
        """Wait until ``tx_id`` is committed on this peer: (block number, validation code), or None
        on timeout or when ``is_active()`` turns false. Each waiter is woken by the commit of its
        own transaction only: no thundering herd."""
        hit = self.tx_status(tx_id)
        if hit is not None:
            return hit
        ev = threading.Event()
        box: list[tuple[int, int]] = []

        def cb(h: tuple[int, int]) -> None:
            box.append(h)
            ev.set()

        hit = self._add_waiter(tx_id, cb)
        if hit is not None:
            return hit
        deadline = time.monotonic() + timeout
        try:
            while not ev.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline or not is_active():
                    return None
        finally:
            self._remove_waiter(tx_id, cb)
        return box[0]

    async def wait_for_tx_async(self, tx_id: str, timeout: float) -> tuple[int, int] | None:
        """The same, for the asyncio gRPC service: the waiter is a future, resolved with the other
        waiters of its block in one call into the event loop."""
        hit = self.tx_status(tx_id)
        if hit is not None:
            return hit
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        entry = (loop, fut)
        hit = self._add_waiter(tx_id, entry, self._async_waiters)
        if hit is not None:
            return hit
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:
            self._remove_waiter(tx_id, entry, self._async_waiters)

    def add_height_listener(self, cb: Callable[[int], None]) -> None:
        with self._lock:
            self._height_listeners.append(cb)

    def remove_height_listener(self, cb: Callable[[int], None]) -> None:
        with self._lock:
            if cb in self._height_listeners:
                self._height_listeners.remove(cb)

    def wait_for_height(self, height: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._height >= height, timeout)


def compute_commit_hash(previous: bytes, num: int, flt: bytes, updates: list[StateUpdate]) -> bytes:
    """A running hash over every block's validation codes and applied writes: peers that committed
    the same blocks the same way agree on it, and a rebuilt state can be checked against it."""
    h = hashlib.sha256()
    h.update(previous)
    h.update(num.to_bytes(8, "big"))
    h.update(len(flt).to_bytes(4, "big"))
    h.update(flt)
    for u in updates:
        for part in (u.ns.encode(), u.key.encode(), b"" if u.value is None else u.value):
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        h.update(b"\x01" if u.value is None else b"\x00")
        h.update(u.version[0].to_bytes(8, "big") + u.version[1].to_bytes(4, "big"))
    return h.digest()
