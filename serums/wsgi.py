"""The gunicorn entry point: ``gunicorn -w 2 'serums.wsgi:create_app()'`` (or ``serums.wsgi:app``).

Each worker builds :class:`serums.config.Settings` from the environment (``SERUMS_DATA_DIR``,
``SERUMS_DATABASE_URL``, ``SERUMS_NODE_ADDRESS`` — default: the address in ``<data dir>/node.json``
written by the running ``serums node``, else the network's endpoint —, ``SERUMS_KEY_PASSPHRASE``,
``SERUMS_CORS_ORIGINS``, ``SERUMS_LOG_LEVEL``, ``SERUMS_AUTH_*``) and opens its own
:class:`gateway.services.Services` from it, so workers share the ledger through the node's gRPC
endpoint and the directory and vaults through their databases, and nothing is forked half-open.
The gateway package itself never reads the environment.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .config import Settings

if TYPE_CHECKING:
    from flask import Flask


def create_app(settings: Settings | None = None) -> Flask:
    """The gateway app with the whole API, from ``settings`` (default: the environment's)."""
    import gateway
    from gateway.services import Services

    from .datadir import private_umask

    private_umask()
    settings = settings or Settings.from_env()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
                                               defaults={"request_id": "-"}))
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    services = Services.open(settings.gateway_settings(), auth_config=settings.auth_config())
    return gateway.create_app(settings.app_config(), services=services)


def __getattr__(name: str):
    """``serums.wsgi:app``: built on first access (importing this module opens nothing)."""
    if name == "app":
        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
