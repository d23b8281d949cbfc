"""The data directory: private, and owned by one running system at a time.

- **Private.** The ``serums`` command and the gunicorn workers run with umask 077, so everything
  they create under the data directory — the user directory, the vaults, the ledgers, keys, logs —
  is 0600 in 0700 directories; the owner tightens a looser data directory to 0700.
- **One owner.** ``serums up`` and ``serums node`` hold an exclusive ``flock`` on
  ``<data dir>/serums.lock`` for their whole life (the node that ``serums up`` starts inherits its
  parent's lock; it and the gateway stop when their ``serums up`` is gone, even after ``kill -9``). The kernel
  releases the lock when the process ends, even on ``kill -9``: a free lock means nobody runs
  here, and ``node.json``/``up.json`` found then are stale leftovers. A second owner exits at once
  with one line naming the running one's PID.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cli import CommandError

LOCK_NAME = "serums.lock"
#: files that describe a running system; meaningless once the lock is free
RUNTIME_FILES = ("node.json", "up.json")


def private_umask() -> int:
    """Files 0600 and directories 0700 from now on, in this process and its children; returns the
    previous umask."""
    return os.umask(0o077)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (0700), or tighten it to 0700 when it is ours and looser."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        path.chmod(0o700)
    return path


@dataclass(frozen=True)
class Owner:
    """Who holds the data directory: the locking process and, under ``serums up``, its node."""

    pid: int
    command: str
    node_pid: int | None = None

    def __str__(self) -> str:
        node = f", its node pid {self.node_pid}" if self.node_pid and self.node_pid != self.pid else ""
        return f"{self.command} (pid {self.pid}{node})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_owner(path: Path) -> Owner | None:
    try:
        doc = json.loads(path.read_text() or "{}")
        return Owner(int(doc["pid"]), str(doc.get("command", "serums")), doc.get("node_pid"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class DataDirLock:
    """The exclusive lock on a data directory, held until the process ends (or :meth:`release`)."""

    def __init__(self, data_dir: Path, fd: int):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_NAME
        self.fd = fd

    @classmethod
    def acquire(cls, data_dir: Path, command: str, *, wait: float = 2.0) -> DataDirLock:
        """Take the lock for ``command`` (e.g. ``"serums up"``), or raise a one-line
        :class:`CommandError` naming the running owner. ``wait`` rides out a reader's brief probe."""
        data_dir = ensure_private_dir(Path(data_dir))
        fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise
                owner = _read_owner(data_dir / LOCK_NAME)
                if owner is not None and _alive(owner.pid) or time.monotonic() >= deadline:
                    os.close(fd)
                    who = owner or "another process"
                    raise CommandError(f"{data_dir} is in use by {who}: one system per data directory "
                                       "(stop it first, or use another --data-dir)") from None
                time.sleep(0.05)
        lock = cls(data_dir, fd)
        for name in RUNTIME_FILES:  # left by an owner that was killed: nobody runs here now
            (data_dir / name).unlink(missing_ok=True)
        lock._write(Owner(os.getpid(), command))
        return lock

    @classmethod
    def inherited(cls, data_dir: Path, fd: int) -> DataDirLock:
        """The lock of the parent (``serums up``), passed to its node as an open descriptor: it is
        the same lock, so it stays held while either process lives."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a no-op on the lock we already share
            same = os.fstat(fd).st_ino == os.stat(Path(data_dir) / LOCK_NAME).st_ino
        except OSError as exc:
            raise CommandError(f"--lock-fd {fd}: not the lock of {data_dir} ({exc.strerror})") from None
        if not same:
            raise CommandError(f"--lock-fd {fd}: not the lock of {data_dir}")
        return cls(Path(data_dir), fd)

    def owner(self) -> Owner | None:
        return _read_owner(self.path)

    def note_node(self, pid: int) -> None:
        """Record the node's pid beside the owner's (shown to a second would-be owner)."""
        owner = self.owner() or Owner(pid, "serums node")
        self._write(Owner(owner.pid, owner.command, pid))

    def _write(self, owner: Owner) -> None:
        data = json.dumps({"pid": owner.pid, "command": owner.command, "node_pid": owner.node_pid}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data + b"\n", 0)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def running_owner(data_dir: Path) -> Owner | None:
    """Who runs on ``data_dir`` now, or None: the lock is free (nobody; any ``node.json`` or
    ``up.json`` there is stale)."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return _read_owner(path) or Owner(0, "an unknown process")
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def running_file(data_dir: Path, name: str) -> dict | None:
    """The contents of ``node.json``/``up.json`` when the system that wrote it is still running;
    None when it is absent, unreadable or stale (the data directory's lock is free)."""
    path = Path(data_dir) / name
    if not path.exists() or running_owner(data_dir) is None:
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def stop_with_parent(on_gone: Callable[[int], None], data_dir: Path, interval: float = 1.0) -> threading.Thread:
    """Call ``on_gone(parent_pid)`` once the ``serums up`` that started this process is gone, even
    after ``kill -9`` (which runs no clean-up in it): once this process is no longer its child.
    The parent is the data directory's recorded owner, not whatever ``getppid()`` says when this
    is called, so a child still starting when ``serums up`` died (already re-parented) stops too.
    Every child that ``serums up`` starts (node, gateway, notification service) watches this way,
    so none outlives it holding a port or following a ledger nobody runs."""
    owner = _read_owner(Path(data_dir) / LOCK_NAME)
    parent = owner.pid if owner is not None else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        on_gone(parent)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
