"""``serums ledger verify`` on real Fabric: every hospital's peer's chain, read through Deliver.

For each peer, block by block: the number sequence, the hash chain, the data hash over the
envelopes, the orderer's signature (an orderer certificate of the ordering organisation's CA, a
valid low-S signature over Fabric's block signature message; the genesis block is unsigned), and a
validation code for every transaction. Across peers: the same header hash and the same validation
codes at every height. Fabric's own committer did the transaction-level validation; re-deriving it
(and the state) from the blocks is what the embedded engine's verify adds and this one does not.
"""

from __future__ import annotations

from collections.abc import Iterable

from fabric_protos.common import common_pb2, ledger_pb2

from .. import protocol as P
from ..audit import Finding, PeerSummary, VerifyReport
from ..client import GatewayError, connect
from ..identity import MSP, Identity, IdentityError, verify
from .network import FabricError, FabricNetwork


def _orderer_signature_problem(block: common_pb2.Block, orderer: MSP) -> str | None:
    md = block.metadata.metadata
    if len(md) <= P.METADATA_SIGNATURES or not md[P.METADATA_SIGNATURES]:
        return "no orderer signature"
    meta = common_pb2.Metadata.FromString(md[P.METADATA_SIGNATURES])
    for ms in meta.signatures:
        try:
            sh = common_pb2.SignatureHeader.FromString(ms.signature_header)
            ident = Identity.deserialize(sh.creator)
            orderer.validate(ident)
        except (IdentityError, ValueError):
            continue
        if ident.node_role != "orderer":
            continue
        if verify(ident.public_key, P.block_signature_message(meta.value, ms.signature_header, block.header),
                  ms.signature):
            return None
    return "orderer signature does not verify"


def check_chain(name: str, blocks: Iterable[common_pb2.Block], orderer: MSP,
                report: VerifyReport) -> tuple[list[bytes], list[bytes]]:
    """Check one peer's blocks (in order from 0); record its summary and its first problem in
    ``report``. Returns the header hashes and validation codes of the blocks that checked out."""
    prev = b""
    hashes: list[bytes] = []
    filters: list[bytes] = []
    txs = valid = 0
    for block in blocks:
        num, h = len(hashes), block.header
        problem = None
        if h.number != num:
            problem = f"expected block {num}, found block {h.number}"
        elif h.previous_hash != prev:
            problem = f"previous hash {h.previous_hash.hex()[:16]}… does not match block {num - 1}'s hash"
        elif h.data_hash != P.block_data_hash(block.data.data):
            problem = "data hash does not match the envelopes: the block's transactions were altered"
        elif num and (sig := _orderer_signature_problem(block, orderer)):
            problem = sig
        elif len(flt := P.transactions_filter(block)) != len(block.data.data):
            problem = f"validation codes for {len(flt)} of {len(block.data.data)} transactions"
        if problem:
            report.problems.append(Finding(name, num, problem))
            break
        prev = P.block_header_hash(h)
        hashes.append(prev)
        filters.append(flt)
        txs += len(flt)
        valid += sum(1 for c in flt if c == P.VALID)
    report.peers[name] = PeerSummary(len(hashes), prev.hex(), "", txs, valid, 0)
    return hashes, filters


def verify_fabric(net: FabricNetwork, passphrase: str | None = None) -> VerifyReport:
    """Read every hospital's peer's whole chain through Deliver and check it (see the module)."""
    cfg = net.cfg
    if not net.state.get("committed"):
        raise FabricError(f"no Fabric network in {net.root}: run `serums network up --engine fabric` first")
    report = VerifyReport()
    orderer = MSP(cfg.orderer.msp_id, cfg.root_certs()[cfg.orderer.msp_id])
    chains: dict[str, tuple[list[bytes], list[bytes]]] = {}
    for h in cfg.hospitals:
        name = f"peer0.{h.name}"
        ident, signer = cfg.load_user(h.name, "admin", passphrase)
        try:
            with connect(ident, signer, net.peer_address(h.name), tls_root_certs=net.tls_ca(h.name),
                         evaluate_timeout=10) as gw:
                network = gw.network(cfg.channel)
                raw = network.contract("qscc").evaluate("GetChainInfo", cfg.channel)
                height = ledger_pb2.BlockchainInfo.FromString(raw).height
                with network.block_events(start_block=0, stop_block=height - 1) as blocks:
                    chains[name] = check_chain(name, blocks, orderer, report)
        except GatewayError as exc:
            report.problems.append(Finding(name, None, f"cannot read the chain: {exc}"))
    if chains:
        report.orderer_height = max(len(c[0]) for c in chains.values())
    names = sorted(chains)
    for other in names[1:]:
        a, b = chains[names[0]], chains[other]
        for num in range(min(len(a[0]), len(b[0]))):
            if a[0][num] != b[0][num]:
                report.problems.append(Finding(other, num, f"block hash differs from {names[0]}'s"))
                break
            if a[1][num] != b[1][num]:
                report.problems.append(Finding(other, num, f"validation codes differ from {names[0]}'s"))
                break
    return report
