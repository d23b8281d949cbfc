"""The ordering service of the embedded node (the genesis configuration is made in :mod:`.genesis`).

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

from fabric_protos.common import common_pb2, configtx_pb2

from .. import protocol as P
from ..config import BatchConfig
from ..identity import Identity, Signer
from .configtx import last_config
from .genesis import genesis_envelope
from .store import OrdererStore

log = logging.getLogger(__name__)


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
        self._cut_lock = threading.Lock()  # blocks are cut and delivered in order, by one thread at a time
        self._last_config = 0
        if self._height:
            self._last_config = last_config(P.parse_block(store.block(self._height - 1) or b""))

    @property
    def height(self) -> int:
        return self._height

    def create_genesis(self, config: configtx_pb2.Config) -> common_pb2.Block:
        """Cut block 0: the channel's configuration (see :mod:`.genesis`)."""
        if self._height:
            raise OrdererError("the channel already has a genesis block")
        return self._cut([genesis_envelope(self.channel, config, self.identity, self.signer)])

    def order_config(self, config: configtx_pb2.Config, last_update: bytes) -> common_pb2.Block:
        """Cut a block holding only the CONFIG transaction that installs ``config`` (produced by
        the checked ``CONFIG_UPDATE`` envelope ``last_update``) and deliver it."""
        update = common_pb2.Envelope()
        update.ParseFromString(last_update)
        envelope = genesis_envelope(self.channel, config, self.identity, self.signer, update)
        with self._cut_lock:
            block = self._cut([envelope], config=True)
            self._deliver(block)
        return block

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
            with self._cut_lock:
                try:
                    block = self._cut(batch)
                except Exception:  # noqa: BLE001 - the orderer must keep running; the txs will time out
                    log.exception("could not cut a block of %d transactions", len(batch))
                    continue
                try:
                    self._deliver(block)
                except Exception:  # noqa: BLE001
                    log.exception("delivering block %d failed", block.header.number)

    def _cut(self, envelopes: list[bytes], *, config: bool = False) -> common_pb2.Block:
        if config:
            self._last_config = self._height
        block = common_pb2.Block()
        block.header.number = self._height
        block.header.previous_hash = self._prev_hash
        block.data.data.extend(envelopes)
        block.header.data_hash = P.block_data_hash(envelopes)
        value = common_pb2.OrdererBlockMetadata(
            last_config=common_pb2.LastConfig(index=self._last_config)).SerializeToString()
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
