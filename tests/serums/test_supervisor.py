"""The supervisor with real child processes: restart with back-off, give up after repeated fast
failures (saying so), a child without a restart policy ends the run, every event logged."""

from __future__ import annotations

import sys
import threading
import time

from serums.supervisor import RestartPolicy, Supervisor

FAST = RestartPolicy(initial=0.05, maximum=0.2, fast=10.0, give_up_after=3, ready_timeout=10.0)


def test_back_off_doubles_up_to_its_maximum():
    p = RestartPolicy(initial=0.5, maximum=30.0)
    assert [p.delay(n) for n in (1, 2, 3, 4, 7, 20)] == [0.5, 1.0, 2.0, 4.0, 30.0, 30.0]


def test_a_child_that_keeps_failing_fast_is_restarted_then_given_up_on(tmp_path, capsys):
    sup = Supervisor(tmp_path / "logs")
    child = sup.spawn("flaky", [sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(3)"],
                      ready=lambda: True, restart=FAST)
    started = time.monotonic()
    try:
        assert sup.wait(poll=0.05) == 1
    finally:
        sup.stop_all()
    assert time.monotonic() - started < 10
    assert child.restarts == 2 and child.fast_failures == 3
    out, err = capsys.readouterr()
    assert "[up] flaky exited with code 3 after" in out and "restarting in 0.1s" in out
    assert "[up] flaky: restart #2" in out
    assert "flaky keeps failing (3 times in a row, each within 10s of starting)" in err
    log = (tmp_path / "logs" / "flaky.log").read_text()
    assert log.count("[supervisor] flaky: restart #") == 2 and "giving up after 3 failures in a row" in log


def test_a_restarted_child_that_serves_again_keeps_the_others_running(tmp_path, capsys):
    sup = Supervisor(tmp_path / "logs")
    marker = tmp_path / "once"
    # the first run dies at once; the restarted one (marker present) keeps running
    code = (f"import pathlib, time, sys\np = pathlib.Path({str(marker)!r})\n"
            "if not p.exists():\n    p.touch(); time.sleep(0.2); sys.exit(1)\ntime.sleep(60)\n")
    steady = sup.spawn("steady", [sys.executable, "-c", "import time; time.sleep(60)"], ready=lambda: True)
    node = sup.spawn("node", [sys.executable, "-c", code], ready=lambda: True, restart=FAST)
    first_pid = steady.proc.pid
    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(sup.wait(stop_event=stop, poll=0.05)))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (node.restarts == 1 and node.state == "running"):
            time.sleep(0.05)
        assert node.restarts == 1 and node.state == "running" and node.alive()
        assert steady.alive() and steady.proc.pid == first_pid
    finally:
        stop.set()
        t.join(10)
        sup.stop_all()
    assert result == [0]
    assert "[up] node: serving again after restart #1" in capsys.readouterr().out


def test_a_child_without_a_restart_policy_ends_the_run(tmp_path, capsys):
    sup = Supervisor(tmp_path / "logs")
    sup.spawn("gateway", [sys.executable, "-c", "import time; time.sleep(0.3)"], ready=lambda: True)
    try:
        assert sup.wait(poll=0.05) == 1
    finally:
        sup.stop_all()
    assert "gateway stopped unexpectedly" in capsys.readouterr().err


def test_an_adopted_child_is_restarted_through_its_launcher_then_given_up_on(tmp_path, capsys):
    """A process started by someone else (a Fabric node the network started) is adopted: when it
    dies the launcher starts it again, with the same back-off and give-up."""
    import subprocess

    def launch() -> subprocess.Popen:
        launched.append(subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"]))
        return launched[-1]

    launched: list[subprocess.Popen] = []
    (tmp_path / "fabric").mkdir()  # the network's log folder
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    sup = Supervisor(tmp_path / "logs")
    child = sup.adopt("peer0.x", first, log=tmp_path / "fabric" / "peer0.x.log", launch=launch,
                      ready=lambda: True, restart=FAST)
    assert child.state == "running" and child.proc is first
    try:
        assert sup.wait(poll=0.05) == 1
    finally:
        sup.stop_all()
    assert len(launched) == 2 and child.proc is launched[-1] and child.restarts == 2
    out, err = capsys.readouterr()
    assert "[up] peer0.x: restart #1" in out and "peer0.x exited with code 4" in out
    assert "peer0.x keeps failing (3 times in a row" in err
    assert "giving up after 3 failures" in (tmp_path / "fabric" / "peer0.x.log").read_text()
