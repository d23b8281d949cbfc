"""CPU time of processes, read from Linux's /proc: where a benchmark's CPU went.

A throughput figure alone does not say whether a run was limited by the server, by its own
clients, or by the machine; CPU seconds per operation for each process do. ``tree(pid)`` gives
the CPU seconds of a process and its descendants by pid, with their command lines, so that a
benchmark can take a snapshot before and after a measurement and divide by the operations done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    cpu_s: float  # user + system
    cmdline: str


def _read(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:  # gone meanwhile
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return Proc(pid, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, cmd)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far; 0 when it is gone."""
    p = _read(pid)
    return p.cpu_s if p else 0.0


def tree(root: int) -> dict[int, Proc]:
    """``root`` and every live descendant."""
    procs = [p for d in os.listdir("/proc") if d.isdigit() and (p := _read(int(d))) is not None]
    children: dict[int, list[Proc]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    out = {p.pid: p for p in procs if p.pid == root}
    todo = list(out)
    while todo:
        for c in children.get(todo.pop(), []):
            out[c.pid] = c
            todo.append(c.pid)
    return out


def used(before: dict[int, Proc], after: dict[int, Proc]) -> dict[int, float]:
    """CPU seconds each process of ``after`` used since ``before`` (all of it if it is new)."""
    return {pid: p.cpu_s - (before[pid].cpu_s if pid in before else 0.0) for pid, p in after.items()}


def children_cpu_s() -> float:
    """CPU seconds of this process's children that have been waited for (``os.times``)."""
    t = os.times()
    return t.children_user + t.children_system


def cpu_ceiling(cpu_ms_per_op: float) -> float:
    """What ``cpu_ms_per_op`` of CPU (summed over every process involved) allows on this machine even
    with every core busy: operations per second."""
    return round((os.cpu_count() or 1) * 1000 / cpu_ms_per_op, 1) if cpu_ms_per_op else 0.0
