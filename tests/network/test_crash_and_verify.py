"""Crash safety of the node process, and `serums ledger verify` finding tampering."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from network import NetworkConfig
from network.audit import verify_ledger
from network.client import GatewayError, connect
from network.node import EmbeddedNode
from serums.supervisor import free_port, start_node_process

from .conftest import make_network


def _serums(data_dir, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=120, **kw)


def _start_node(data_dir, port) -> subprocess.Popen:
    return start_node_process(data_dir, f"127.0.0.1:{port}", log=data_dir / "node.log", timeout=30)


@pytest.mark.slow
def test_kill_9_during_submits_loses_nothing_acknowledged(tmp_path):
    make_network(tmp_path / "network")
    cfg = NetworkConfig.load(tmp_path / "network")
    port = free_port()
    acked: list[tuple[str, str, str]] = []  # (owner, asset, tx id) whose commit was confirmed VALID
    lock = threading.Lock()
    for cycle in range(2):
        proc = _start_node(tmp_path, port)
        stop = threading.Event()

        def submitter(worker: int, cycle=cycle, stop=stop):
            ident, signer = cfg.load_user(["lothian", "zmc", "fcrb"][worker % 3])
            c = connect(ident, signer, f"127.0.0.1:{port}", commit_status_timeout=10).network(
                "serums").contract("assets", "AssetContract")
            i = 0
            while not stop.is_set():
                owner, asset = f"w{cycle}-{worker}", f"a{i}"
                try:
                    tx = c.new_proposal("Put", [owner, asset, json.dumps({"i": i})]).endorse()
                    if tx.submit().status().successful:
                        with lock:
                            acked.append((owner, asset, tx.transaction_id))
                except GatewayError:
                    return  # the node is gone
                i += 1

        threads = [threading.Thread(target=submitter, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 40 * (cycle + 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # in the middle of the stream of submits
        proc.wait()
        stop.set()
        for t in threads:
            t.join(timeout=20)
    assert len(acked) >= 80
    proc = _start_node(tmp_path, port)
    try:
        ident, signer = cfg.load_user("zmc")
        c = connect(ident, signer, f"127.0.0.1:{port}").network("serums").contract("assets", "AssetContract")
        for owner, asset, tx_id in acked:
            assert c.evaluate_json("Get", owner, asset)["tx"] == tx_id
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    out = _serums(tmp_path, "ledger", "verify")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ledger verified: OK" in out.stdout


def _ledger_with_transactions(tmp_path) -> NetworkConfig:
    cfg = make_network(tmp_path / "network")
    node = EmbeddedNode(cfg)
    addr = node.start("127.0.0.1:0")
    ident, signer = cfg.load_user("lothian")
    c = connect(ident, signer, addr).network("serums").contract("assets", "AssetContract")
    for i in range(5):
        c.submit_json("Put", "v", f"k{i}", {"i": i})
    c.submit_json("TransferAll", "v", "w")
    node.peers["FcrbMSP"].wait_for_height(node.orderer.height, 5)
    node.peers["ZmcMSP"].wait_for_height(node.orderer.height, 5)
    node.stop()
    return cfg


def test_verify_passes_on_an_honest_ledger_and_reports_it(tmp_path):
    cfg = _ledger_with_transactions(tmp_path)
    report = verify_ledger(cfg)
    assert report.ok, [str(p) for p in report.problems]
    # genesis, the chaincode's definition (_lifecycle), 6 transactions
    assert report.orderer_height == 8
    assert {s.height for s in report.peers.values()} == {8}
    assert all(s.valid == 7 and s.state_keys == 5 + 5 for s in report.peers.values())


def test_one_flipped_byte_in_a_stored_block_is_found(tmp_path):
    cfg = _ledger_with_transactions(tmp_path)
    db = cfg.ledger_dir() / "peer0.zmc.db"
    with sqlite3.connect(db) as conn:
        data = bytearray(conn.execute("SELECT data FROM blocks WHERE num=3").fetchone()[0])
        data[len(data) // 3] ^= 0x01
        conn.execute("UPDATE blocks SET data=? WHERE num=3", (bytes(data),))
    report = verify_ledger(cfg)
    assert not report.ok
    first = report.problems[0]
    assert (first.where, first.block) == ("peer0.zmc", 3), str(first)
    assert {p.where for p in report.problems} <= {"peer0.zmc", "peers"}
    out = _serums(tmp_path, "ledger", "verify")
    assert out.returncode == 1 and "INCONSISTENT peer0.zmc block 3" in out.stdout


def test_altered_state_and_altered_validation_code_are_found(tmp_path):
    cfg = _ledger_with_transactions(tmp_path)
    with sqlite3.connect(cfg.ledger_dir() / "peer0.lothian.db") as conn:
        conn.execute("UPDATE state SET value=? WHERE key=(SELECT min(key) FROM state)", (b"{}",))
    with sqlite3.connect(cfg.ledger_dir() / "peer0.fcrb.db") as conn:
        from network.protocol import METADATA_TRANSACTIONS_FILTER, parse_block

        block = parse_block(conn.execute("SELECT data FROM blocks WHERE num=2").fetchone()[0])
        block.metadata.metadata[METADATA_TRANSACTIONS_FILTER] = bytes([11])  # VALID -> MVCC_READ_CONFLICT
        conn.execute("UPDATE blocks SET data=? WHERE num=2", (block.SerializeToString(),))
    problems = {p.where: p for p in verify_ledger(cfg).problems}
    assert "different in the state database" in problems["peer0.lothian"].message
    assert problems["peer0.fcrb"].block == 2
    assert "recorded as MVCC_READ_CONFLICT but re-validates as VALID" in problems["peer0.fcrb"].message
    assert "peer0.zmc" not in problems


def test_cli_reports_bad_input_in_one_line(tmp_path):
    out = _serums(tmp_path, "ledger", "verify")
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0
    assert "run `serums up` to create one" in out.stderr and "serums network init" in out.stderr
    make_network(tmp_path / "network")
    out = _serums(tmp_path, "chaincode", "deploy", "x", "--module", "nope.nothing:here")
    assert out.returncode == 1 and "--module nope.nothing:here" in out.stderr and "Traceback" not in out.stderr
    out = _serums(tmp_path, "chaincode", "deploy", "x", "--module", "chaincode.samples:assets_chaincode",
                  "--policy", "OutOf(3, 'LothianMSP.peer')")
    assert out.returncode == 1 and "can never be satisfied" in out.stderr
    out = _serums(tmp_path, "node", "--listen", "nowhere")
    assert out.returncode == 2 and "is not host:port" in out.stderr and "Traceback" not in out.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        out = _serums(tmp_path, "node", "--listen", f"127.0.0.1:{busy.getsockname()[1]}")
    assert out.returncode == 1 and "cannot serve on" in out.stderr and "Traceback" not in out.stderr
    assert os.path.exists(tmp_path / "network" / "network.json")
    assert [c.name for c in NetworkConfig.load(tmp_path / "network").chaincodes] == ["assets"]


def test_block_store_checkpoints_its_log_beside_the_writer(tmp_path):
    """Commits never run SQLite's checkpoint themselves (it stalled one commit in a thousand);
    the store's own thread keeps the write-ahead log checkpointed, and closing empties it."""
    import time

    from network.node.store import OrdererStore

    store = OrdererStore(tmp_path / "orderer.db")
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for num in range(300):
        store.append(num, b"h" * 32, b"x" * 15_000)
    wal, db = tmp_path / "orderer.db-wal", tmp_path / "orderer.db"
    assert wal.stat().st_size > 300 * 15_000 > db.stat().st_size  # all in the log so far, or being copied
    deadline = time.monotonic() + 10
    while db.stat().st_size < 300 * 15_000:  # the store's thread copies the log into the database file
        assert time.monotonic() < deadline, "the log was never checkpointed"
        time.sleep(0.05)
    assert wal.stat().st_size > 0
    store.close()
    assert not wal.exists() or wal.stat().st_size == 0
    reopened = OrdererStore(tmp_path / "orderer.db")
    assert reopened.height() == 300 and reopened.block(299) == b"x" * 15_000
    reopened.close()


@pytest.mark.parametrize("restart_frames, bounded", [(64, True), (10**9, False)])
def test_block_store_log_starts_over_under_readers_that_never_pause(tmp_path, restart_frames, bounded):
    """Reads that always overlap (commit-status and history reads under load) keep a PASSIVE
    checkpoint from ever finishing the log, so the writer never starts it over and it grows without
    bound; past ``restart_frames`` the checkpointer waits for them once and the log starts again.
    (The unbounded case shows that this test's readers do starve a PASSIVE checkpoint.)"""
    from network.node.store import Checkpointer

    path = tmp_path / "peer.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE blocks (num INTEGER PRIMARY KEY, data BLOB)")
    cp = Checkpointer(path, interval=0.01, restart_frames=restart_frames)
    cp.configure(writer)
    stop = threading.Event()

    def read() -> None:  # two connections taking turns: one of them always holds a snapshot
        conns = [sqlite3.connect(path, isolation_level=None, timeout=30) for _ in range(2)]
        for c in conns:
            c.execute("BEGIN")
            c.execute("SELECT max(num) FROM blocks").fetchone()
        k = 0
        while not stop.is_set():
            conns[k].execute("COMMIT")
            conns[k].execute("BEGIN")
            conns[k].execute("SELECT max(num) FROM blocks").fetchone()
            k ^= 1
            time.sleep(0.0005)
        for c in conns:
            c.execute("COMMIT")
            c.close()

    readers = [threading.Thread(target=read)]
    for t in readers:
        t.start()
    try:
        for num in range(600):
            writer.execute("INSERT INTO blocks VALUES (?, ?)", (num, os.urandom(8000)))
            cp.touch()
            time.sleep(0.001)
        wal = (tmp_path / "peer.db-wal").stat().st_size
    finally:
        stop.set()
        for t in readers:
            t.join()
        cp.close()
        writer.close()
    written = 600 * 8000
    assert (wal < written / 4) if bounded else (wal > written), wal
