"""Flower's deployment engine on loopback: SuperLink, two SuperNodes, the ServerApp, DP-SGD.

A recording TCP proxy sits between the SuperNodes and the SuperLink: every byte a hospital sends
passes through it. The test shows the engine really ran (the replies' metric names are in the
recorded bytes, the accountant's ε grew over the rounds) and that no row of a hospital's matrix
was among those bytes, in any encoding a row could travel in; the ServerApp's own record of every
reply shows parameter arrays of the model's shape and three metrics, nothing else.
"""

from __future__ import annotations

import contextlib
import socket
import threading

import numpy as np
import pytest

from analytics.features import breast_cancer_dataset
from analytics.flower import Federation, Site, free_port
from analytics.learning import TrainConfig, evaluate, scale

pytestmark = pytest.mark.slow

ROOT = __file__.rsplit("/tests/", 1)[0]


class RecordingProxy:
    """Loopback TCP proxy that keeps every byte sent from clients to ``target``."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.upstream = bytearray()
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                conn.close()
                continue
            threading.Thread(target=self._pump, args=(conn, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    with self.lock:
                        self.upstream += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.stopped = True
        self.server.close()


def test_only_parameters_cross_the_wire(tmp_path):
    data, bounds = breast_cancer_dataset()
    train, test = data.split(0.2, seed=0)
    shards = train.shard(2, seed=1)
    sites = [Site(f"hospital{i}", {"loader": "tests.analytics.flower_sites:breast_cancer_shard",
                                   "shard": i, "shards": 2}) for i in range(2)]
    link_port = free_port()
    proxy = RecordingProxy(link_port)
    rounds = []
    try:
        with Federation(tmp_path, sites, env={"PYTHONPATH": ROOT}, superlink_port=link_port,
                        fleet_target=f"127.0.0.1:{proxy.port}") as fed:
            run = fed.run(TrainConfig(method="dpsgd", epsilon=1.0, delta=1e-5, rounds=2, local_epochs=1),
                          features=30, timeout=400, on_round=rounds.append)
    finally:
        proxy.close()
    wire = bytes(proxy.upstream)
    # the engine ran through the proxy, twice per hospital, and DP-SGD's accountant kept count
    assert b"epsilon-spent" in wire and b"num-examples" in wire
    assert [r["round"] for r in rounds] == [1, 2] and all(r["hospitals"] == 2 for r in rounds)
    assert 0 < rounds[0]["epsilon_spent"] < rounds[1]["epsilon_spent"] <= 1.0 + 1e-6
    assert evaluate(run.parameters, scale(test.x, bounds), test.y).accuracy > 0.6
    # what the ServerApp received: parameter arrays of the model's shape and three metrics per reply
    assert len(run.wire) == 4
    for reply in run.wire:
        assert reply == {"arrays": {"kind": "arrays", "shapes": [[1, 30], [1]]},
                         "metrics": {"kind": "metrics", "keys": ["epsilon-spent", "fit-seconds", "num-examples"]}}
    # no row of either hospital in any encoding it could travel in (raw, scaled; float64, float32)
    for shard in shards:
        for matrix in (shard.x, scale(shard.x, bounds)):
            for row in matrix:
                for dtype in (np.float64, np.float32):
                    for width in (len(row), 4):
                        assert np.asarray(row[:width], dtype=dtype).tobytes() not in wire
            assert repr(float(matrix[0, 0])).encode() not in wire


def test_secure_aggregation_with_secagg_plus(tmp_path):
    """Three hospitals, Flower's SecAgg+: the ServerApp gets only the sum; the model still learns."""
    data, bounds = breast_cancer_dataset()
    _, test = data.split(0.2, seed=0)
    sites = [Site(f"hospital{i}", {"loader": "tests.analytics.flower_sites:breast_cancer_shard",
                                   "shard": i, "shards": 3}) for i in range(3)]
    with Federation(tmp_path, sites, env={"PYTHONPATH": ROOT}) as fed:
        run = fed.run(TrainConfig(method="none", rounds=1, local_epochs=3), features=30, timeout=400, secure=True)
    assert run.wire == [{"secure": True}] and run.rounds[0]["hospitals"] == 3
    assert evaluate(run.parameters, scale(test.x, bounds), test.y).accuracy > 0.85


def test_secure_aggregation_needs_three_hospitals(tmp_path):
    from analytics import EngineUnavailable

    sites = [Site(f"hospital{i}", {"loader": "tests.analytics.flower_sites:breast_cancer_shard",
                                   "shard": i, "shards": 2}) for i in range(2)]
    with Federation(tmp_path, sites, env={"PYTHONPATH": ROOT}) as fed, pytest.raises(EngineUnavailable) as e:
        fed.run(TrainConfig(method="none", rounds=1, local_epochs=1), features=30, timeout=300, secure=True)
    assert "at least 3 hospitals" in str(e.value)
