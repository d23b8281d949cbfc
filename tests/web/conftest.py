"""Fixtures for the web pages: a world like the gateway tests' (embedded node, three hospitals,
vaults with the fixture patients), its people enrolled, the gateway served on a loopback port by
a thread, and (for ``browser`` tests) Debian's chromium driven by Playwright — never a browser
download. The auth service's clock can be moved forward to end sessions."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from auth import Argon2Params, AuthConfig
from gateway.app import create_app
from gateway.notifications import NotificationService
from gateway.services import GatewaySettings, Services
from network.node import EmbeddedNode
from tests.gateway.stack import Account, World, enrol, init_data_dir, provision

FAST = Argon2Params(memory_kib=1024, iterations=1, parallelism=1)
CHROMIUM = os.environ.get("SERUMS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(os.environ.get("SERUMS_SCREENSHOTS", "/tmp/serums-web-screenshots"))


class Clock:
    """The auth service's clock: real time plus an offset tests may move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class People:
    admin: Account
    patient: Account
    gp: Account
    nurse: Account
    auditor: Account
    patient_chi: str
    extra: dict[str, Account] = field(default_factory=dict)


@dataclass
class Site:
    world: World
    people: People
    url: str
    clock: Clock
    app: object
    notifier: NotificationService


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("web")
    cfg = init_data_dir(data_dir)
    node = EmbeddedNode(cfg)
    address = node.start("127.0.0.1:0")
    clock = Clock()
    services = Services.open(GatewaySettings(data_dir, node_address=address),
                             auth_config=AuthConfig.ephemeral(argon2=FAST, wallet_kdf=FAST), clock=clock)
    server = None
    try:
        world = provision(services)
        chi, ref = world.patient_ref("lothian")
        people = People(
            admin=enrol(services, "lothian", "hospital_admin", prefix="admin"),
            patient=enrol(services, "lothian", "patient", user_id=ref, prefix="alice"),
            gp=enrol(services, "lothian", "gp", treating=(ref,), prefix="dr.gp"),
            nurse=enrol(services, "lothian", "nurse", prefix="nurse"),
            auditor=enrol(services, "lothian", "auditor", prefix="auditor"),
            patient_chi=chi,
        )
        app = create_app({"TESTING": True}, services=services)
        notifier = NotificationService(services, app.extensions["serums_notifications"], retry_seconds=0.2).start()
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield Site(world, people, f"http://127.0.0.1:{server.server_port}", clock, app, notifier)
    finally:
        if server is not None:
            server.shutdown()
            notifier.stop()
        services.close()
        node.stop()


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (scripts/setup.sh installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser, site):
    """A factory of pages, each in its own browser context (its own cookies: one person each)."""
    contexts = []

    def make():
        ctx = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 900})
        ctx.set_default_timeout(20_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def shot(page, name: str) -> Path:
    """A full-page screenshot under SERUMS_SCREENSHOTS (to look at)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def actor_of(services, account: Account):
    """The application layer's actor for an account (its wallet opened with its key), to cause
    ledger events without a browser."""
    from gateway.flow import Actor

    user = account.reg.user
    signer = services.auth.open_wallet_with_key(account.username, account.key)
    return Actor(user.user_id, user.role, user.hospital, user.msp_id, "", lambda: signer)
