"""bench/proctime.py: the CPU accounting the benchmarks print must put the CPU where it was spent."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import proctime  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\ntime.sleep(30)\n"


def test_busy_and_idle_descendants_are_told_apart():
    # a shell that starts a burner and a sleeper: both are grandchildren of this test
    parent = subprocess.Popen(
        ["/bin/sh", "-c", f'{sys.executable} -c "$0" & {sys.executable} -c "import time; time.sleep(30)" & wait', BURN]
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            kids = [p for p in proctime.tree(parent.pid).values() if p.pid != parent.pid]
            if len(kids) == 2 and any(p.cpu_s >= 0.35 for p in kids):
                break
            time.sleep(0.05)
        before = {}
        after = proctime.tree(parent.pid)
        used = proctime.used(before, after)
        kids = sorted((p for p in after.values() if p.pid != parent.pid), key=lambda p: used[p.pid])
        assert len(kids) == 2, after
        assert all(p.ppid == parent.pid for p in kids)
        assert used[kids[1].pid] >= 0.35  # the burner, counted from nothing since it is new
        assert used[kids[0].pid] < 0.2  # the sleeper
        assert "time.sleep(30)" in kids[0].cmdline
        # a second snapshot: the burner is asleep now, so it used next to nothing since the first
        again = proctime.used(after, proctime.tree(parent.pid))
        assert again[kids[1].pid] < 0.1
    finally:
        for p in proctime.tree(parent.pid).values():
            subprocess.run(["kill", str(p.pid)], check=False)
        parent.wait(timeout=10)


def test_a_gone_process_reads_as_zero():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert proctime.cpu_s(p.pid) == 0.0
    assert proctime.tree(p.pid) == {}


def test_children_cpu_counts_waited_children():
    t0 = proctime.children_cpu_s()
    subprocess.run([sys.executable, "-c", BURN.replace("time.sleep(30)", "pass")], check=True)
    assert proctime.children_cpu_s() - t0 >= 0.35
