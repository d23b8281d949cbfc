"""The ordering service of the embedded node, and the channel's genesis (config) block.

Transactions arrive through :meth:`Orderer.broadcast` (after the gateway checked the creator's
signature); the orderer cuts a block when it holds ``max_message_count`` transactions,
``preferred_max_bytes`` bytes, or ``timeout_ms`` after the first one arrived. Each block is
hash-chained (Fabric's header hash over the ASN.1 header), carries Fabric's data hash, is signed
by the orderer in the SIGNATURES metadata, written to the orderer's block store, and only then
handed to the committers — so a block a peer committed can always be re-read from the orderer.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.msp import msp_config_pb2

from .. import protocol as P
from ..config import BatchConfig
from ..identity import MSP, Identity, Signer
from .store import OrdererStore

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- genesis


def genesis_envelope(channel: str, msps: dict[str, MSP], orderer: Identity, signer: Signer, orderer_msp: str) -> bytes:
    """A CONFIG envelope describing the channel: application orgs and the orderer org, each with its
    MSP (root certificates), as Fabric's channel configuration does."""
    root = configtx_pb2.ConfigGroup(mod_policy="Admins")
    app = root.groups["Application"]
    ordg = root.groups["Orderer"]
    for msp_id, msp in msps.items():
        group = ordg.groups[msp_id] if msp_id == orderer_msp else app.groups[msp_id]
        fmsp = msp_config_pb2.FabricMSPConfig(
            name=msp_id,
            root_certs=[c.public_bytes(serialization.Encoding.PEM) for c in msp.root_certs],
        )
        group.values["MSP"].value = msp_config_pb2.MSPConfig(type=0, config=fmsp.SerializeToString()).SerializeToString()
        group.values["MSP"].mod_policy = "Admins"
    cfg = configtx_pb2.ConfigEnvelope(config=configtx_pb2.Config(sequence=0, channel_group=root))
    nonce = P.new_nonce()
    creator = orderer.serialize()
    ch = common_pb2.ChannelHeader(type=P.CONFIG, channel_id=channel, tx_id=P.compute_txid(nonce, creator))
    ch.timestamp.CopyFrom(P.timestamp_now())
    sh = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=ch.SerializeToString(), signature_header=sh.SerializeToString()),
        data=cfg.SerializeToString(),
    ).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=signer.sign(payload)).SerializeToString()


def msps_from_genesis(block: common_pb2.Block) -> tuple[dict[str, MSP], str]:
    """The channel's MSPs (and the orderer org's MSP id) as written in its genesis block."""
    from cryptography import x509

    env, payload, ch = P.parse_envelope_header(block.data.data[0])
    if ch.type != P.CONFIG:
        raise P.ProtocolError("block 0 is not a configuration block")
    cfg = configtx_pb2.ConfigEnvelope()
    cfg.ParseFromString(payload.data)
    out: dict[str, MSP] = {}
    orderer_msp = ""
    for section in ("Application", "Orderer"):
        for msp_id, group in cfg.config.channel_group.groups[section].groups.items():
            mc = msp_config_pb2.MSPConfig()
            mc.ParseFromString(group.values["MSP"].value)
            fm = msp_config_pb2.FabricMSPConfig()
            fm.ParseFromString(mc.config)
            out[msp_id] = MSP(msp_id, [x509.load_pem_x509_certificate(c) for c in fm.root_certs])
            if section == "Orderer":
                orderer_msp = msp_id
    return out, orderer_msp


# --------------------------------------------------------------------------- orderer


class OrdererError(Exception):
    pass


class Orderer:
    def __init__(
        self,
        channel: str,
        identity: Identity,
        signer: Signer,
        store: OrdererStore,
        batch: BatchConfig,
        deliver: Callable[[common_pb2.Block], None],
        busy: Callable[[], bool] = lambda: False,
    ):
        self.channel = channel
        self.identity = identity
        self.signer = signer
        self.store = store
        self.batch = batch
        self._deliver = deliver
        self._busy = busy
        self._pending: collections.deque[bytes] = collections.deque()
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._height = store.height()
        self._prev_hash = store.last_hash() or b""
        self._serialized = identity.serialize()

    @property
    def height(self) -> int:
        return self._height

    def create_genesis(self, msps: dict[str, MSP], orderer_msp: str) -> common_pb2.Block:
        if self._height:
            raise OrdererError("the channel already has a genesis block")
        env = genesis_envelope(self.channel, msps, self.identity, self.signer, orderer_msp)
        return self._cut([env])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="orderer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.kick()
        if self._thread:
            self._thread.join(timeout=10)

    def broadcast(self, envelope: bytes) -> None:
        if self._stop.is_set():
            raise OrdererError("the ordering service is shutting down")
        with self._cv:
            self._pending.append(envelope)
            if len(self._pending) == 1 or len(self._pending) >= self.batch.max_message_count:
                self._cv.notify()

    def kick(self) -> None:
        """The committers finished a block: a waiting batch may be cut now."""
        with self._cv:
            self._cv.notify()

    def _take_batch(self) -> list[bytes] | None:
        """Wait for transactions and return the next block's worth.

        Cut at the size limits, or once ``timeout_ms`` passed since the first transaction *and*
        the committers are free: while they work on the previous block, transactions keep joining
        this one, so blocks grow with load instead of queueing up behind each other."""
        b = self.batch
        timeout = b.timeout_ms / 1000.0
        with self._cv:
            while not self._pending:
                if self._stop.is_set():
                    return None
                self._cv.wait(0.2)
            deadline = time.monotonic() + timeout
            while True:
                if len(self._pending) >= b.max_message_count:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 and not self._busy():
                    break
                if self._stop.is_set():
                    break
                self._cv.wait(remaining if remaining > 0 else 0.05)
            batch: list[bytes] = []
            size = 0
            while self._pending and len(batch) < b.max_message_count and size < b.preferred_max_bytes:
                item = self._pending.popleft()
                batch.append(item)
                size += len(item)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            try:
                block = self._cut(batch)
            except Exception:  # noqa: BLE001 - the orderer must keep running; the txs will time out
                log.exception("could not cut a block of %d transactions", len(batch))
                continue
            try:
                self._deliver(block)
            except Exception:  # noqa: BLE001
                log.exception("delivering block %d failed", block.header.number)

    def _cut(self, envelopes: list[bytes]) -> common_pb2.Block:
        block = common_pb2.Block()
        block.header.number = self._height
        block.header.previous_hash = self._prev_hash
        block.data.data.extend(envelopes)
        block.header.data_hash = P.block_data_hash(envelopes)
        value = common_pb2.OrdererBlockMetadata(last_config=common_pb2.LastConfig(index=0)).SerializeToString()
        sh = common_pb2.SignatureHeader(creator=self._serialized, nonce=P.new_nonce()).SerializeToString()
        sig = self.signer.sign(P.block_signature_message(value, sh, block.header))
        md = common_pb2.Metadata(value=value, signatures=[common_pb2.MetadataSignature(signature_header=sh, signature=sig)])
        block.metadata.metadata.extend([b""] * P.METADATA_SLOTS)
        block.metadata.metadata[P.METADATA_SIGNATURES] = md.SerializeToString()
        header_hash = P.block_header_hash(block.header)
        self.store.append(block.header.number, header_hash, block.SerializeToString())
        self._height += 1
        self._prev_hash = header_hash
        return block
