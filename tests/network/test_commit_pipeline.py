"""The embedded node's commit pipeline: every peer validates and writes a block, then all of them
reach the new height together, so that endorsements simulate on one height."""

from __future__ import annotations

import threading

from fabric_protos.common import common_pb2

from network import protocol as P
from network.client import Transaction
from network.node.peer import BlockValidator
from network.policy import parse_policy


def _hold_apply(peer, marker: str):
    """Make ``peer`` stop inside the in-memory apply of the block that writes a key containing
    ``marker``; returns (reached, release, restore)."""
    reached, release = threading.Event(), threading.Event()
    real_apply = peer.store.state.apply

    def slow_apply(updates, height=None):
        if any(marker in u.key for u in updates):
            reached.set()
            assert release.wait(10)
        real_apply(updates, height)

    peer.store.state.apply = slow_apply

    def restore():
        release.set()
        peer.store.state.apply = real_apply

    return reached, release, restore


def _block_of_one(running, peer, args: list[str], endorsers: int = 2):
    """The next block for ``peer``, holding one Put endorsed by ``endorsers`` peers and signed by
    lothian's user; (block, parsed transactions, transaction id)."""
    node = running.node
    gw = running.gateway("lothian")
    prop = running.contract("lothian").new_proposal("Put", args)
    sp = prop._signed()
    unpacked = P.unpack_signed_proposal(sp.proposal_bytes, sp.signature)
    creator = node.membership.identity(unpacked.creator)
    responses = [p.endorse(unpacked, creator)[0] for p in list(node.peers.values())[:endorsers]]
    payload = P.create_transaction_envelope_payload(unpacked, responses[0].payload, [r.endorsement for r in responses])
    env = Transaction(gw, running.cfg.channel, prop.transaction_id, payload).envelope().SerializeToString()
    block = common_pb2.Block()
    block.header.number = peer.height
    block.header.previous_hash = peer.store.block_hash(peer.height - 1)
    block.data.data.append(env)
    block.header.data_hash = P.block_data_hash([env])
    return block, P.parse_block_transactions(block), prop.transaction_id


def test_prepared_block_is_invisible_until_published(running):
    """prepare() validates and writes the block durably; simulations, the height and the
    transaction's status change only at publish()."""
    node = running.node
    c = running.contract("lothian")
    c.submit_json("Put", "p", "a0", {"v": 0})
    peer = next(iter(node.peers.values()))
    height = peer.height

    # a block holding one endorsed and signed transaction, handed to this peer only (the orderer
    # never sees it, so the committer leaves this peer alone)
    block, parsed, tx_id = _block_of_one(running, peer, ["p", "a0", '{"v": 1}'])

    prepared = peer.prepare(block, parsed)
    assert prepared.codes == [P.VALID]
    assert peer.store.tx_status(tx_id) is not None  # durable ...
    assert peer.height == height  # ... but not yet the peer's height
    assert peer.tx_status(tx_id) is None
    with peer.store.snapshot() as reader:
        assert reader.height() == height
        key = next(iter(u.key for u in prepared.updates))
        assert b'"version": 1' in reader.get("assets", key)[0]

    peer.publish(prepared)
    peer.notify(prepared)
    assert peer.height == height + 1
    assert peer.tx_status(tx_id) == (height, P.VALID)
    with peer.store.snapshot() as reader:
        assert b'"version": 2' in reader.get("assets", key)[0]


def test_endorsement_waits_for_every_peer_to_reach_the_new_height(running):
    """While the committer is moving the peers to a new height, an endorsement does not simulate on
    a mix of heights: it waits, then endorses on the new state, and its transaction is valid."""
    peers = list(running.node.peers.values())
    orgs = [p.msp_id for p in peers]
    c = running.contract("lothian")
    c.submit_json("Put", "h", "a1", {"v": 0})
    reached, release, restore = _hold_apply(peers[-1], "a1")
    try:
        first = c.new_proposal("Put", ["h", "a1", '{"v": 1}']).endorse().submit()
        assert reached.wait(10)  # the last peer is being moved to the new height
        box: list = []
        endorser = threading.Thread(target=lambda: box.append(
            c.new_proposal("Put", ["h", "a1", '{"v": 2}'], endorsing_organizations=orgs).endorse()))
        endorser.start()
        endorser.join(0.5)
        assert not box, "an endorsement simulated while the peers were at different heights"
        release.set()
        endorser.join(10)
        assert box
        assert first.status().successful
        assert box[0].submit().status().successful  # it read the version the first one wrote
        assert c.evaluate_json("Get", "h", "a1")["version"] == 3
        assert len({p.height for p in peers}) == 1
    finally:
        restore()


def test_signature_checks_run_once_for_all_peers_but_never_across_policies(running):
    """The peers validate the same parsed block: creator and endorser signatures are checked once
    for all of them; a validator under another endorsement policy decides for itself."""
    node = running.node
    peers = list(node.peers.values())
    block, parsed, _ = _block_of_one(running, peers[0], ["s", "a0", "{}"])
    calls: list[bytes] = []
    real = node.membership.check_signature

    def counting(ident, message, signature):
        calls.append(signature)
        return real(ident, message, signature)

    node.membership.check_signature = counting
    try:
        for peer in peers:
            codes, _ = peer.validator.validate_block(block.header.number, parsed, peer.store.reader(), lambda _: False)
            assert codes == [P.VALID]
        assert len(calls) == 3  # the creator's and two endorsers', once
        strict = BlockValidator(node.channel, {"assets": parse_policy("ALL", [p.msp_id for p in peers])},
                                node.membership)
        codes, updates = strict.validate_block(block.header.number, parsed, peers[0].store.reader(), lambda _: False)
        assert codes == [P.TxValidationCode.Value("ENDORSEMENT_POLICY_FAILURE")] and not updates
    finally:
        node.membership.check_signature = real


def test_a_failing_listener_does_not_stop_the_committer(running, caplog):
    """A peer's height listener that raises (an event stream's loop gone) is logged; the committer
    goes on committing the next blocks on every peer."""
    peer = next(iter(running.node.peers.values()))

    def broken(_height: int) -> None:
        raise RuntimeError("Event loop is closed")

    peer.add_height_listener(broken)
    try:
        c = running.contract("lothian")
        assert c.submit_json("Put", "l", "a0", {})["version"] == 1
        assert c.submit_json("Put", "l", "a0", {})["version"] == 2
        assert len({p.height for p in running.node.peers.values()}) == 1
        assert "notifying the waiters of block" in caplog.text
    finally:
        peer.remove_height_listener(broken)


def test_the_committer_takes_each_transaction_as_submit_parsed_it_and_keeps_none(running, monkeypatch):
    """A submitted transaction is parsed once, at Submit: the committer takes that parse when the same
    bytes reach it in a block, so none is left behind; what Submit never saw is parsed at commit."""
    from network.node import node as node_module

    node = running.node
    c = running.contract("lothian")
    committer_parses = []
    real = P.parse_transaction

    def counting(data):
        if threading.current_thread() is node._committer:
            committer_parses.append(data)
        return real(data)

    monkeypatch.setattr(P, "parse_transaction", counting)
    for i in range(5):
        c.submit_json("Put", "p", f"parsed{i}", {"v": i})
    assert committer_parses == []  # each parsed at Submit only
    assert node._parsed == {}
    # an envelope Submit never parsed (or whose parse was dropped): the committer parses it
    block, _, tx_id = _block_of_one(running, next(iter(node.peers.values())), ["p", "x", '{"v": 1}'])
    assert node._parse_block(block)[0].tx_id == tx_id
    # kept parses are bounded: the oldest go first
    monkeypatch.setattr(node_module, "PARSED_KEPT", 3)
    for i in range(5):
        node.remember_parsed(b"envelope %d" % i, None)
    assert list(node._parsed) == [b"envelope 2", b"envelope 3", b"envelope 4"]
    node._parsed.clear()
