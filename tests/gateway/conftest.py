"""Fixtures for the gateway's unit tests: an embedded node in this process, ``Services`` over it
(cheap Argon2), the world provisioned as ``serums up`` does, and the Flask test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auth import Argon2Params, AuthConfig
from gateway.app import create_app
from gateway.services import GatewaySettings, Services
from network.node import EmbeddedNode

from .stack import Http, World, init_data_dir, provision

FAST = Argon2Params(memory_kib=1024, iterations=1, parallelism=1)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("gateway")
    cfg = init_data_dir(data_dir)
    node = EmbeddedNode(cfg)
    address = node.start("127.0.0.1:0")
    services = Services.open(GatewaySettings(data_dir, node_address=address),
                             auth_config=AuthConfig.ephemeral(argon2=FAST, wallet_kdf=FAST))
    try:
        yield provision(services)
    finally:
        services.close()
        node.stop()


@pytest.fixture(scope="session")
def app(world: World):
    return create_app({"TESTING": True}, services=world.services)


@pytest.fixture
def http(app) -> Http:
    return Http(app.test_client())
