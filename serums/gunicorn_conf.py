"""gunicorn settings of the gateway that ``serums up`` starts (``-c python:serums.gunicorn_conf``).

The gateway stops when its ``serums up`` is gone (even after ``kill -9``): the master watches its
parent and stops gracefully once it has been re-parented, so no orphaned gateway keeps the port
and answers 503 for a node nobody runs.
"""

from __future__ import annotations

import os
import signal
import threading
import time


def when_ready(server) -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        server.log.warning("serums up (pid %s) is gone; stopping the gateway", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
