"""The gunicorn entry point: ``gunicorn -w 2 gateway.wsgi:app``.

Each worker imports this module and opens its own :class:`~gateway.services.Services` from the
environment — ``SERUMS_DATA_DIR``, ``SERUMS_DATABASE_URL``, ``SERUMS_NODE_ADDRESS`` (default: the
address in ``<data dir>/node.json`` written by ``serums node``, else the network's endpoint),
``SERUMS_KEY_PASSPHRASE`` — so workers share the ledger through the node's gRPC endpoint and the
directory and vaults through their databases, and nothing is forked half-open.
"""

from __future__ import annotations

import logging
import os

from .app import create_app
from .services import Services

if not logging.getLogger().handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
                                            defaults={"request_id": "-"}))
    logging.getLogger().addHandler(_handler)
    logging.getLogger().setLevel(os.environ.get("SERUMS_LOG_LEVEL", "INFO"))

services = Services.from_env()
app = create_app(services=services)
