"""Ledger audit (``serums ledger verify``): re-check the whole chain of every peer from its blocks alone.

For each peer, block by block: the number sequence, the hash chain (each header's previous hash is
the previous header's hash), the data hash over the envelopes, the stored header hash, the
orderer's signature; then every transaction is validated again (signatures, endorsement policy,
MVCC and phantom reads, duplicate ids) against the state rebuilt from the preceding blocks, and
the result must equal the validation codes the peer recorded; the running commit hash must match.
At the end the rebuilt state must equal the peer's state database, every peer must hold the same
block hashes as the orderer, and peers at the same height must agree on the commit hash.

The first inconsistency of each peer is reported precisely (peer, block, what differs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fabric_protos.common import common_pb2, configtx_pb2
from google.protobuf.message import DecodeError

from . import protocol as P
from .config import NetworkConfig
from .identity import IdentityError
from .node.configtx import ConfigUpdateError, hospital_msp_ids, is_config_block, validate_config_block
from .node.genesis import config_from_block, msps_from_config, msps_from_genesis
from .node.lifecycle import LIFECYCLE, apply_updates, lifecycle_policy
from .node.membership import Membership
from .node.peer import BlockValidator, compute_commit_hash
from .node.store import OrdererStore, PeerStore, VersionedState
from .policy import parse_policy


@dataclass
class Finding:
    where: str
    block: int | None
    message: str

    def __str__(self) -> str:
        at = f" block {self.block}" if self.block is not None else ""
        return f"{self.where}{at}: {self.message}"


@dataclass
class PeerSummary:
    height: int
    last_hash: str
    commit_hash: str
    transactions: int
    valid: int
    state_keys: int


@dataclass
class VerifyReport:
    peers: dict[str, PeerSummary] = field(default_factory=dict)
    orderer_height: int = 0
    problems: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Stop(Exception):
    pass


def _check_orderer_signature(block: common_pb2.Block, membership: Membership, orderer_msp: str) -> str | None:
    md = block.metadata.metadata
    if len(md) <= P.METADATA_SIGNATURES or not md[P.METADATA_SIGNATURES]:
        return "no orderer signature"
    meta = common_pb2.Metadata()
    try:
        meta.ParseFromString(md[P.METADATA_SIGNATURES])
    except Exception:  # noqa: BLE001
        return "unreadable SIGNATURES metadata"
    if not meta.signatures:
        return "no orderer signature"
    for ms in meta.signatures:
        sh = common_pb2.SignatureHeader()
        try:
            sh.ParseFromString(ms.signature_header)
            ident = membership.identity(sh.creator)
        except Exception:  # noqa: BLE001 - any failure: this signature does not count
            continue
        if ident.msp_id != orderer_msp or ident.node_role != "orderer":
            continue
        msg = P.block_signature_message(meta.value, ms.signature_header, block.header)
        if membership.check_signature(ident, msg, ms.signature):
            return None
    return "orderer signature does not verify"


def _revalidate_config(block: common_pb2.Block, config, validator: BlockValidator, membership: Membership,
                       orderer_msp: str) -> tuple[int, configtx_pb2.Config | None]:
    """A CONFIG block re-derived from its update against the configuration before it (as a peer
    accepts it); when valid, its organisations join ``membership`` and the LifecycleEndorsement
    policy covers them."""
    try:
        new = validate_config_block(block, config, validator.channel, membership, orderer_msp)
    except (ConfigUpdateError, P.ProtocolError, DecodeError):
        return P.TxValidationCode.Value("INVALID_CONFIG_TRANSACTION"), None
    membership.accept(msps_from_config(new)[0])
    validator.policies[LIFECYCLE] = lifecycle_policy(hospital_msp_ids(new))
    return P.VALID, new


def verify_peer(name: str, store: PeerStore, validator: BlockValidator, membership: Membership,
                orderer_msp: str, report: VerifyReport) -> None:
    state = VersionedState()
    seen_tx: set[str] = set()
    prev_hash = b""
    commit_hash = b""
    height = txs = valid = 0
    config = configtx_pb2.Config()  # the channel configuration reached (block 0 sets it)

    def fail(block: int | None, msg: str) -> None:
        report.problems.append(Finding(name, block, msg))
        raise _Stop

    try:
        for num, stored_hash, data in store.iter_blocks():
            if num != height:
                fail(num, f"expected block {height}, found block {num} (a block is missing)")
            try:
                block = P.parse_block(data)
            except P.ProtocolError:
                fail(num, "stored block does not parse (corrupted bytes)")
            h = block.header
            if h.number != num:
                fail(num, f"header says block {h.number}")
            if h.previous_hash != prev_hash:
                fail(num, f"previous hash {h.previous_hash.hex()[:16]}… does not match block {num - 1}'s hash "
                          f"{prev_hash.hex()[:16]}…")
            computed_data = P.block_data_hash(block.data.data)
            if h.data_hash != computed_data:
                fail(num, f"data hash {h.data_hash.hex()[:16]}… does not match the envelopes "
                          f"({computed_data.hex()[:16]}…): the block's transactions were altered")
            header_hash = P.block_header_hash(h)
            if stored_hash != header_hash:
                fail(num, "stored header hash does not match the header")
            problem = _check_orderer_signature(block, membership, orderer_msp)
            if problem:
                fail(num, problem)
            flt = P.transactions_filter(block)
            if len(flt) != len(block.data.data):
                fail(num, f"validation codes for {len(flt)} of {len(block.data.data)} transactions")
            if num == 0:
                updates = []
                codes = [P.VALID]
                config = config_from_block(block)
            elif is_config_block(block):
                updates = []
                code, new_config = _revalidate_config(block, config, validator, membership, orderer_msp)
                codes = [code]
                config = new_config or config
            else:
                parsed = P.parse_block_transactions(block)
                codes, updates = validator.validate_block(num, parsed, state, seen_tx.__contains__)
                apply_updates(validator.policies, updates)
                for i, (want, got) in enumerate(zip(codes, flt, strict=True)):
                    if want != got:
                        tx = parsed[i].tx_id if parsed[i] is not None else "?"
                        fail(num, f"transaction {i} ({tx[:16]}…) is recorded as {P.validation_code_name(got)} "
                                  f"but re-validates as {P.validation_code_name(want)}")
                for p in parsed:
                    if p is not None:
                        seen_tx.add(p.tx_id)
                txs += len(parsed)
                valid += sum(1 for c in codes if c == P.VALID)
            try:
                recorded = P.block_commit_hash(block)
            except P.ProtocolError:
                fail(num, "unreadable COMMIT_HASH metadata")
            # the genesis block has no commit hash (as in Fabric); ledgers written before gave it one
            if num or recorded:
                commit_hash = compute_commit_hash(commit_hash, num, bytes(codes), updates)
            if recorded != commit_hash:
                fail(num, "commit hash differs from the one recomputed from the blocks")
            state.apply(updates)
            prev_hash = header_hash
            height = num + 1
        # the state database must equal the state rebuilt from the blocks
        db = {(ns, k): (v, ver) for ns, k, v, ver in store.iter_state()}
        rebuilt = dict(state.items())
        for key in sorted(set(db) | set(rebuilt)):
            if db.get(key) != rebuilt.get(key):
                what = "missing from" if key not in db else ("not written by any block but present in" if key not in rebuilt
                                                             else "different in")
                fail(None, f"state key {key[1]!r} of {key[0]} is {what} the state database "
                           f"(version in db {db.get(key, (None, None))[1]}, from blocks "
                           f"{rebuilt.get(key, (None, None))[1]})")
    except _Stop:
        pass
    report.peers[name] = PeerSummary(height, prev_hash.hex(), commit_hash.hex(), txs, valid, len(state))


def verify_ledger(cfg: NetworkConfig, ledger_dir: Path | None = None) -> VerifyReport:
    ledger = Path(ledger_dir or cfg.ledger_dir())
    report = VerifyReport()
    if not (ledger / "orderer.db").exists():
        report.problems.append(Finding("orderer", None, f"no ledger in {ledger}: has the node ever run?"))
        return report
    ostore = OrdererStore(ledger / "orderer.db")
    try:
        report.orderer_height = ostore.height()
        genesis_data = ostore.block(0)
        if genesis_data is None:
            report.problems.append(Finding("orderer", 0, "genesis block missing"))
            return report
        try:
            msps, orderer_msp = msps_from_genesis(P.parse_block(genesis_data))
        except (P.ProtocolError, IdentityError, KeyError) as exc:
            report.problems.append(Finding("orderer", 0, f"genesis block unreadable: {exc}"))
            return report
        membership = Membership(msps)
        hospital_msps = [m for m in msps if m != orderer_msp]
        # Each block is validated against the chaincode definitions committed before it
        # (``_lifecycle``); the configured policy stands in only for a chaincode the ledger has
        # no definition of (a ledger written before definitions were recorded).
        policies = {cc.name: parse_policy(cc.endorsement_policy, hospital_msps) for cc in cfg.chaincodes}
        policies[LIFECYCLE] = lifecycle_policy(hospital_msps)
        orderer_hashes = {}
        for num in range(report.orderer_height):
            data = ostore.block(num)
            try:
                orderer_hashes[num] = P.block_header_hash(P.parse_block(data or b"").header)
            except P.ProtocolError:
                report.problems.append(Finding("orderer", num, "stored block does not parse (corrupted bytes)"))
        for h in cfg.hospitals:
            path = ledger / f"peer0.{h.name}.db"
            name = f"peer0.{h.name}"
            if not path.exists():
                report.problems.append(Finding(name, None, "no block store"))
                continue
            store = PeerStore(path)
            try:
                validator = BlockValidator(cfg.channel, dict(policies), membership)
                verify_peer(name, store, validator, membership, orderer_msp, report)
                for num, stored_hash, _ in store.iter_blocks():
                    if num in orderer_hashes and orderer_hashes[num] != stored_hash:
                        report.problems.append(Finding(name, num, "block differs from the orderer's block"))
                        break
            finally:
                store.close()
        by_height: dict[int, set[str]] = {}
        for s in report.peers.values():
            by_height.setdefault(s.height, set()).add(s.commit_hash)
        for height, hashes in by_height.items():
            if len(hashes) > 1:
                report.problems.append(
                    Finding("peers", height - 1, "peers at the same height disagree on the commit hash")
                )
    finally:
        ostore.close()
    return report

