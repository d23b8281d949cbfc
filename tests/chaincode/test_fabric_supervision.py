"""Real Hyperledger Fabric (the session's network, reused): the supervision `serums up --engine
fabric` runs. A chaincode server and a peer killed with SIGKILL are started again by the supervisor
by themselves — the restart logged in their own log, the new process recorded in state.json (what
`serums network down` stops) — and a submit succeeds afterwards, its chaincode run by the restarted
server; the restarted peer runs the chaincode again. `serums network down` refuses while `serums up`
supervises the network (the supervisor would restart what it stops)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from network import GatewayError, connect
from serums.commands.network import supervise_fabric
from serums.datadir import DataDirLock
from serums.supervisor import RestartPolicy, Supervisor

from .conftest import CC, HOSPITALS, World, uid

pytestmark = [pytest.mark.fabric, pytest.mark.parametrize("world", ["fabric"], indirect=True)]
POLICY = RestartPolicy(initial=0.2, maximum=2.0, fast=30.0, give_up_after=5, ready_timeout=60.0)


def _until(what: str, ok, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = ok()
            if result:
                return result
        except GatewayError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f}s (last error: {last})")


def test_killed_chaincode_server_and_peer_are_restarted_by_the_supervisor(world: World, tmp_path, capsys):
    net = world.fabric
    assert net is not None
    sup = Supervisor(tmp_path / "logs")
    children = {c.name: c for c in supervise_fabric(sup, net, POLICY)}
    assert set(children) == {"orderer", *(f"peer0.{h}" for h in HOSPITALS), *(f"chaincode.{h}" for h in HOSPITALS)}
    # a peer whose chaincode server is down answers "could not launch chaincode": the ledger is
    # unreachable (the gateway's 503 ledger-unavailable with Retry-After), not a ledger error
    first = net.state["processes"]["chaincode.lothian"]["pid"]
    os.kill(first, signal.SIGKILL)
    _until("chaincode.lothian dead", lambda: not net.running("chaincode.lothian"), 10)
    user = uid("sup")
    gp = world.identity("lothian", "gp", user)[0].fingerprint
    with pytest.raises(GatewayError) as down:  # (an evaluation would be answered by another hospital's peer)
        world.admins["lothian"].proposal("UserContract", "RegisterUser", [user, "gp", gp]).endorse()
    assert down.value.kind == GatewayError.UNREACHABLE, down.value
    stop = threading.Event()
    rc: list[int] = []
    loop = threading.Thread(target=lambda: rc.append(sup.wait(stop, poll=0.2)), daemon=True)
    loop.start()
    try:
        for name in ("chaincode.lothian", "peer0.zmc"):
            old = net.state["processes"][name]["pid"]
            if name != "chaincode.lothian":  # (killed above, before the supervision started)
                os.kill(old, signal.SIGKILL)
            child = children[name]
            _until(f"{name} restarted and serving", lambda c=child: c.restarts == 1 and c.state == "running")
            new = net.state["processes"][name]["pid"]
            assert new != old and new == child.proc.pid and net.running(name)
            # what a separate `serums network down` reads: the new process
            assert json.loads(net.state_path.read_text())["processes"][name]["pid"] == new
            log = net.log_path(name).read_text()
            assert f"{name} was killed by SIGKILL" in log and f"[supervisor] {name}: restart #1 (pid {new})" in log
            assert f"{name}: serving again after restart #1" in log
        assert loop.is_alive() and not rc  # nothing gave up, nothing else died
        # a restarted peer is back in the gateway's discovery only once gossip has found it again
        net.wait_for_discovery(180, lambda _: None)
        # a submit through lothian's peer, which endorses on its restarted chaincode server (the one
        # that failed above), succeeds and is committed
        world.admins["lothian"].submit("UserContract", "RegisterUser", user, "gp", gp)
        assert world.admins["lothian"].evaluate("UserContract", "GetUser", user)["id"] == user
        # and the restarted peer runs the chaincode again for its own hospital
        ident, signer = world.cfg.load_user("zmc")
        with connect(ident, signer, net.peer_address("zmc"), tls_root_certs=net.tls_ca("zmc")) as gw:
            contract = gw.network(world.cfg.channel).contract(CC, "UserContract")
            who = _until("peer0.zmc answering after its restart", lambda: contract.evaluate("WhoAmI"))
        assert json.loads(who)["msp"] == "ZmcMSP"
        # while `serums up` supervises the network, `serums network down` refuses (the supervisor
        # would restart what it stops) and changes nothing
        lock = DataDirLock.acquire(world.cfg.root.parent, "serums up")
        try:
            down = subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(world.cfg.root.parent),
                                   "network", "down"], capture_output=True, text=True, timeout=120)
        finally:
            lock.release()
        assert down.returncode == 1, down.stdout + down.stderr
        assert "supervises this Fabric network" in down.stderr and len(down.stderr.strip().splitlines()) == 1
        assert all(net.running(n) for n in children) and all(c.restarts <= 1 for c in children.values())
    finally:
        stop.set()
        loop.join(10)
        net.wait_for_discovery(180, lambda _: None)  # the session's network, as healthy as it was found
    assert rc == [0]
    out = capsys.readouterr().out
    assert "[up] chaincode.lothian: restart #1" in out and "[up] peer0.zmc: restart #1" in out
    # the session's network keeps running (its teardown, `down`, stops the restarted processes)
    assert all(net.running(n) for n in children)
