"""The embedded node: one peer per hospital, an ordering service and the committers, in one process.

Start-up reads the network configuration, creates the channel's genesis block on first run,
brings every peer up to the orderer's height (so a node killed at any moment resumes where its
blocks say it was), then serves the Gateway and Deliver gRPC services on a loopback port.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from fabric_protos.common import common_pb2

from .. import protocol as P
from ..config import NetworkConfig
from ..policy import parse_policy
from .configtx import apply_config_update, config_in_force, hospital_msp_ids, is_config_block
from .genesis import channel_config, msps_from_config, tls_roots_from_genesis
from .lifecycle import (
    LIFECYCLE,
    commit_definition_transaction,
    definition_keys,
    ledger_definitions,
    lifecycle_policy,
)
from .membership import Membership
from .orderer import Orderer
from .peer import DeployedChaincode, Peer, load_chaincode, wake_loops
from .store import OrdererStore, PeerStore

log = logging.getLogger(__name__)


#: parsed transactions kept for the committer at most (see ``EmbeddedNode._parsed``)
PARSED_KEPT = 5_000


def genesis_config(cfg: NetworkConfig):
    """The channel configuration of a new embedded network: its MSPs with their TLS CAs, the node
    as the Raft consenter and orderer endpoint, the configured block cutting."""
    from cryptography import x509

    from ..identity import MSP
    from .tls import node_tls, tls_cas

    msps = {msp_id: MSP(msp_id, certs) for msp_id, certs in cfg.root_certs().items()}
    tls_roots: dict[str, list[x509.Certificate]] = {m: [ca.certificate] for m, ca in tls_cas(cfg).items()}
    return channel_config(msps, cfg.orderer.msp_id, endpoint=cfg.endpoint, batch=cfg.batch, tls_roots=tls_roots,
                          consenter_tls_cert=node_tls(cfg).cert)


def _ordered_members(cfg: NetworkConfig, config) -> list[str]:
    """The channel's hospitals (MSP ids) in the network configuration's order, which policies
    like MAJORITY list them in (the channel configuration's map has its own order)."""
    members = hospital_msp_ids(config)
    return [h.msp_id for h in cfg.hospitals if h.msp_id in members] + sorted(
        set(members) - {h.msp_id for h in cfg.hospitals})


class EmbeddedNode:
    def __init__(self, cfg: NetworkConfig, *, passphrase: str | None = None, ledger_dir: Path | None = None,
                 max_proposal_skew_s: float = 600.0):
        self.cfg = cfg
        self.channel = cfg.channel
        self.address: str | None = None
        #: endorsers refuse proposals dated further than this from their clock (seconds)
        self.max_proposal_skew_s = max_proposal_skew_s
        self._passphrase = passphrase
        self.ledger = ledger = Path(ledger_dir or cfg.ledger_dir())
        ledger.mkdir(parents=True, exist_ok=True)

        o_ident, o_signer = cfg.load_peer(cfg.orderer.name, passphrase)
        self.orderer_store = OrdererStore(ledger / "orderer.db")
        self._commit_queue: queue.Queue[common_pb2.Block | None] = queue.Queue()
        #: held while the committer moves the peers to a new height, and by an endorsement while it
        #: simulates on its peers: they simulate on one height
        self.publish_lock = threading.Lock()
        #: transactions as the gateway parsed them at Submit, by their envelope's bytes: the
        #: committer takes each from here when the same bytes reach it in a block, rather than
        #: parsing them again (a pure function of the bytes; entries that never reach a block are
        #: dropped, oldest first, past PARSED_KEPT)
        self._parsed: dict[bytes, P.ParsedTransaction] = {}
        self.orderer = Orderer(
            cfg.channel, o_ident, o_signer, self.orderer_store, cfg.batch, self._commit_queue.put,
            busy=lambda: self._commit_queue.unfinished_tasks > 0,
        )

        if self.orderer.height == 0:
            self.orderer.create_genesis(genesis_config(cfg))
        #: the channel configuration in force at the orderer (genesis, or the last CONFIG block)
        self.config, config_block = config_in_force(self.orderer_store.block, self.orderer.height)
        self._config_lock = threading.Lock()
        self._redefine: threading.Thread | None = None
        msps, _ = msps_from_config(self.config)
        self.membership = Membership(msps)
        #: the TLS root certificates of the channel's organisations (clients' CAs for mutual TLS)
        # (as of the last configuration block; each CONFIG block committed since replaces them)
        self.tls_client_roots = tls_roots_from_genesis(P.parse_block(self.orderer_store.block(config_block) or b""))

        hospital_msps = _ordered_members(cfg, self.config)
        self.chaincodes: dict[str, DeployedChaincode] = {}
        for d in cfg.chaincodes:
            self.chaincodes[d.name] = DeployedChaincode(
                d, parse_policy(d.endorsement_policy, hospital_msps), load_chaincode(d.module)
            )

        self.peers: dict[str, Peer] = {}
        self._signers: dict[str, tuple] = {}
        for h in cfg.hospitals:
            if h.msp_id in hospital_msps:  # a hospital whose joining the channel has not committed: none yet
                self._add_peer(h.name, h.msp_id)

        self._server = None
        self.tls = False
        self._committer: threading.Thread | None = None
        self._stopping = threading.Event()
        self.catch_up()

    def _add_peer(self, name: str, msp_id: str) -> Peer:
        ident, signer = self.cfg.load_peer(name, self._passphrase)
        policies = {n: c.policy for n, c in self.chaincodes.items()}
        policies[LIFECYCLE] = lifecycle_policy(hospital_msp_ids(self.config))
        store = PeerStore(self.ledger / f"peer0.{name}.db")
        peer = Peer(msp_id, ident, signer, store, self.channel, self.chaincodes, self.membership, policies)
        self._signers = {**self._signers, msp_id: (ident, signer)}
        self.peers = {**self.peers, msp_id: peer}  # replaced, not mutated: the services iterate it
        return peer

    # ------------------------------------------------------------------ channel configuration

    def update_config(self, envelope: bytes) -> int:
        """Order a ``CONFIG_UPDATE`` envelope (see :mod:`.configtx`) once it is checked against the
        configuration in force and its Admins policy; returns the CONFIG block's number. Raises
        :class:`~.configtx.ConfigUpdateError` (nothing is ordered) when it is refused."""
        with self._config_lock:
            config = apply_config_update(self.config, self.channel, envelope, self.membership)
            previous, self.config = self.config, config
            try:
                block = self.orderer.order_config(config, envelope)
            except BaseException:
                self.config = previous
                raise
        log.info("channel %s: configuration %d ordered in block %d", self.channel, config.sequence,
                 block.header.number)
        return block.header.number

    def _config_committed(self, num: int) -> None:
        """The peers committed CONFIG block ``num``: a hospital that joined gets its peer here
        (its identity from the network's configuration on disk), caught up from the orderer's block
        store, and the chaincodes' endorsement policies are redefined over the new set of hospitals."""
        peer = next(iter(self.peers.values()))
        # the new organisation's TLS CA: its clients are accepted at their next handshake (mutual TLS)
        self.tls_client_roots = tls_roots_from_genesis(P.parse_block(self.orderer_store.block(num) or b""))
        try:
            on_disk = NetworkConfig.load(self.cfg.root)
        except Exception:  # noqa: BLE001 - the peers stay as they are; the node's log says why
            log.exception("cannot read the network configuration for the new organisations")
            on_disk = self.cfg
        members = _ordered_members(on_disk, peer.config)
        for cc in self.chaincodes.values():
            cc.policy = parse_policy(cc.definition.endorsement_policy, members)
        for h in on_disk.hospitals:
            if h.msp_id in members and h.msp_id not in self.peers:
                new = self._add_peer(h.name, h.msp_id)
                for n in range(new.height, num + 1):
                    block = P.parse_block(self.orderer_store.block(n) or b"")
                    new.commit(block, P.parse_block_transactions(block) if n else [None])
                if all(x.name != h.name for x in self.cfg.hospitals):
                    self.cfg.hospitals.append(h)
                log.info("peer0.%s (%s) joined channel %s at height %d", h.name, h.msp_id, self.channel, new.height)
        self._redefine = threading.Thread(target=self._record_definitions_logged, name="redefine", daemon=True)
        self._redefine.start()

    def _record_definitions_logged(self) -> None:
        try:
            self.record_definitions()
        except Exception:  # noqa: BLE001 - a later start re-records them
            log.exception("recording the chaincode definitions for the new organisations failed")

    def wait_redefined(self, timeout: float = 30.0) -> None:
        """Wait until the chaincode definitions of the last configuration update are committed."""
        if self._redefine is not None:
            self._redefine.join(timeout)

    # ------------------------------------------------------------------ commit pipeline

    def catch_up(self) -> int:
        """Commit on every peer the orderer's blocks it does not have yet. Returns how many."""
        target = self.orderer.height
        done = 0
        for peer in self.peers.values():
            if peer.height > target:
                raise RuntimeError(
                    f"peer {peer.msp_id} is at height {peer.height} but the orderer only at {target}: "
                    "the orderer's block store is missing blocks"
                )
        for num in range(min((p.height for p in self.peers.values()), default=target), target):
            block = P.parse_block(self.orderer_store.block(num) or b"")
            parsed = P.parse_block_transactions(block) if num else [None]
            for peer in self.peers.values():
                if peer.height == num:
                    peer.commit(block, parsed)
                    done += 1
        if done:
            log.info("caught up %d block commits to height %d", done, target)
        return done

    def remember_parsed(self, envelope: bytes, ptx: P.ParsedTransaction) -> None:
        """Keep ``ptx``, parsed from ``envelope`` at Submit, for the committer (see ``_parsed``)."""
        parsed = self._parsed
        parsed[envelope] = ptx
        if len(parsed) > PARSED_KEPT:
            with contextlib.suppress(StopIteration, KeyError, RuntimeError):  # (the committer pops too)
                del parsed[next(iter(parsed))]

    def _parse_block(self, block: common_pb2.Block) -> list[P.ParsedTransaction | None]:
        """Every envelope of ``block`` as a transaction (None where it is not one), each taken from
        what Submit parsed when it has the same bytes, else parsed here."""
        return P.parse_block_transactions(block, lambda data: self._parsed.pop(data, None))

    def _commit_loop(self) -> None:
        while True:
            block = self._commit_queue.get()
            if block is None:
                self._commit_queue.task_done()
                return
            parsed = self._parse_block(block) if block.header.number else [None]
            header_hash = P.block_header_hash(block.header)
            accepted = True
            prepared = []
            for peer in self.peers.values():
                try:
                    prep = peer.prepare(block, parsed, header_hash)
                except Exception:  # noqa: BLE001 - keep the other peers going; verify will report it
                    log.exception("peer %s failed to commit block %d", peer.msp_id, block.header.number)
                    accepted = False
                    continue
                accepted = prep.codes == [P.VALID] and accepted
                prepared.append((peer, prep))
            # every peer reaches the new height at once: an endorsement simulates on peers at one height
            with self.publish_lock:
                for peer, prep in prepared:
                    self._guarded("publishing", peer, block, peer.publish, prep)
            woken: dict = {}
            for peer, prep in prepared:
                self._guarded("notifying the waiters of", peer, block, peer.notify, prep, woken)
            wake_loops(woken)
            if block.header.number and parsed == [None] and is_config_block(block):
                if accepted:
                    self._config_committed(block.header.number)
                else:
                    log.error("configuration block %d was refused by the peers", block.header.number)
            self._commit_queue.task_done()
            self.orderer.kick()

    @staticmethod
    def _guarded(what: str, peer: Peer, block: common_pb2.Block, step, *args) -> None:
        """One peer's step of a commit; a failure is logged and the other peers go on (as a failed
        validation is: a peer that did not publish stays behind, ``serums ledger verify`` says so)."""
        try:
            step(*args)
        except Exception:  # noqa: BLE001 - the committer must keep running
            log.exception("peer %s: %s block %d failed", peer.msp_id, what, block.header.number)

    def start(self, address: str | None = None, *, tls: bool = False, mutual_tls: bool = False) -> str:
        """Start ordering and committing, and serve gRPC on ``address`` (default: the configured
        endpoint; port 0 picks a free one). Returns the address actually bound.

        ``tls`` serves TLS with the node's certificate from the network's TLS CA (see :mod:`.tls`);
        ``mutual_tls`` (implies ``tls``) also requires a client certificate from the TLS CA of one
        of the channel's organisations."""
        from chaincode import server_ssl_context

        from .service import GrpcServer
        from .tls import client_root_certs, node_tls

        ssl_context = None
        if tls or mutual_tls:
            files = node_tls(self.cfg)
            cert, key = files.cert, files.key

            def roots() -> bytes:
                # the channel's TLS roots; a channel configured before they were recorded: the network's
                return b"".join(self.tls_client_roots) or client_root_certs(self.cfg)

            if not mutual_tls:
                ssl_context = server_ssl_context(cert, key, None)
            else:
                served = {"roots": roots()}
                served["ctx"] = server_ssl_context(cert, key, served["roots"])

                def ssl_context():  # each connection: the roots again once a hospital has joined the channel
                    now = roots()
                    if now != served["roots"]:
                        served["roots"], served["ctx"] = now, server_ssl_context(cert, key, now)
                    return served["ctx"]
        self.tls = ssl_context is not None
        self._committer = threading.Thread(target=self._commit_loop, name="committer", daemon=True)
        self._committer.start()
        self.orderer.start()
        self.record_definitions()
        address = address or self.cfg.endpoint
        self._server = GrpcServer(self, address, ssl_context)
        port = self._server.start()
        host = address.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        log.info("embedded node serving channel %s on %s (%d peers%s)", self.channel, self.address, len(self.peers),
                 ", mutual TLS" if mutual_tls else ", TLS" if self.tls else "")
        return self.address

    def record_definitions(self, timeout: float = 30.0) -> list[str]:
        """Commit on the ledger (``_lifecycle``) the definition of every deployed chaincode whose
        version or endorsement policy differs from the ledger's, with the next sequence number.
        Returns the names recorded. Runs once ordering and committing are up, before serving."""
        peer = next(iter(self.peers.values()))
        on_ledger = ledger_definitions(peer.store.reader())
        endorsers = list(self._signers.values())
        recorded = []
        for name, cc in self.chaincodes.items():
            current = on_ledger.get(name)
            if current is not None and current.same_as(cc.definition.version, cc.policy):
                continue
            sequence = current.sequence + 1 if current is not None else 1
            reader = peer.store.reader()
            reads = {k: reader.version(LIFECYCLE, k) for k in definition_keys(name)}
            tx_id, envelope = commit_definition_transaction(
                self.channel, name, cc.definition.version, sequence, cc.policy, reads,
                *endorsers[0], endorsers,
            )
            self.orderer.broadcast(envelope)
            for p in self.peers.values():
                hit = p.wait_for_tx(tx_id, timeout)
                if hit is None or hit[1] != P.VALID:
                    code = "not committed" if hit is None else P.validation_code_name(hit[1])
                    raise RuntimeError(f"recording chaincode {name!r} definition {sequence} failed: {code}")
            log.info("chaincode %s: definition %d (version %s, policy %s) committed on the ledger",
                     name, sequence, cc.definition.version, cc.definition.endorsement_policy)
            recorded.append(name)
        return recorded

    def stop(self, grace: float = 1.0) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace)
        self.orderer.stop()
        if self._committer is not None:
            self._commit_queue.put(None)
            self._committer.join(timeout=30)
        for p in self.peers.values():
            p.store.close()
        self.orderer_store.close()

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait()

    # ------------------------------------------------------------------ reading

    async def aiter_peer_blocks(self, peer: Peer, start: int) -> AsyncIterator[tuple[int, common_pb2.Block]]:
        """Committed blocks of ``peer`` from ``start`` on, waiting (asynchronously) for new ones.
        Ends when the node stops; a cancelled call (client gone) closes it."""
        import asyncio

        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def listener(_height: int) -> None:
            loop.call_soon_threadsafe(ready.set)

        peer.add_height_listener(listener)
        try:
            num = start
            while not self._stopping.is_set():
                if num >= peer.height:
                    ready.clear()
                    if num >= peer.height:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(ready.wait(), 0.5)
                    continue
                data = peer.store.block(num)
                if data is None:
                    return
                yield num, P.parse_block(data)
                num += 1
        finally:
            peer.remove_height_listener(listener)
