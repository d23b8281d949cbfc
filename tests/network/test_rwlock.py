"""The peer store's read-write lock: simulations read together, a commit writes alone, and a
waiting commit holds new simulations back (it is never starved by a stream of them)."""

from __future__ import annotations

import threading

from network.node.store import RWLock


def _in_thread(fn) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        fn()
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, done


def test_a_writer_waits_for_the_last_reader_and_holds_new_readers_back():
    lock = RWLock()
    order: list[str] = []
    first, second = lock.read(), lock.read()
    first.__enter__()
    second.__enter__()  # readers share the lock

    def write() -> None:
        with lock.write():
            order.append("write")

    writer, wrote = _in_thread(write)
    assert not wrote.wait(0.2)  # two readers inside

    def late_read() -> None:
        with lock.read():
            order.append("late read")

    reader, read = _in_thread(late_read)
    assert not read.wait(0.2)  # behind the waiting writer
    first.__exit__(None, None, None)
    assert not wrote.wait(0.2)  # one reader still inside
    second.__exit__(None, None, None)  # the last reader wakes the writer
    assert wrote.wait(5) and read.wait(5)
    assert order == ["write", "late read"]
    writer.join(5)
    reader.join(5)


def test_readers_without_writers_never_wait():
    lock = RWLock()
    with lock.read(), lock.read():
        _, done = _in_thread(lambda: lock.read().__enter__())
        assert done.wait(5)
