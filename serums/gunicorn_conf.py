"""gunicorn settings of the gateway that ``serums up`` starts (``-c python:serums.gunicorn_conf``).

The gateway stops when its ``serums up`` is gone (even after ``kill -9``): the master watches its
parent and stops gracefully once it has been re-parented, so no orphaned gateway keeps the port
and answers 503 for a node nobody runs.
"""

from __future__ import annotations

import os
import signal

from serums.config import Settings
from serums.datadir import stop_with_parent


def when_ready(server) -> None:
    def gone(parent: int) -> None:
        server.log.warning("serums up (pid %s) is gone; stopping the gateway", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    stop_with_parent(gone, Settings.from_env().data_dir)
