"""Fixtures for the auth tests: a service on a temporary SQLite file, cheap Argon2, a fake clock.

Tests use small Argon2id parameters for speed (the defaults are checked separately against
OWASP's recommendation, and the benchmark measures them). The fake clock starts at the real time
so that JWTs issued by flask-jwt-extended (whose ``iat`` is real time) stay consistent with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from auth import (
    Argon2Params,
    AuthConfig,
    AuthService,
    FakeClock,
    LoginRequest,
    LoginResult,
    Registration,
    RegistrationRequest,
)
from network import CertificateAuthority

FAST = Argon2Params(memory_kib=1024, iterations=1, parallelism=1)
KEY = "Oskar's lopsided kettle whistles at dawn"
IMAGES = ["places.paris", "places.rome", "places.pisa", "places.chapel", "food.icecream"]
OTHER_KEY = "Seven umber herons nap beside the quarry"
OTHER_IMAGES = ["animals.owl", "animals.snail", "nature.moon", "objects.kite", "objects.bell"]


@pytest.fixture(scope="session")
def cas() -> dict[str, CertificateAuthority]:
    return {
        "lothian": CertificateAuthority.create("LothianMSP", "lothian"),
        "zmc": CertificateAuthority.create("ZmcMSP", "zmc"),
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config() -> AuthConfig:
    return AuthConfig.ephemeral(argon2=FAST, wallet_kdf=FAST)


@pytest.fixture
def make_service(tmp_path, clock, cas):
    """Build a service (optionally with config changes) on a fresh SQLite file."""
    made: list[AuthService] = []

    def build(config: AuthConfig | None = None, **kwargs) -> AuthService:
        cfg = config or AuthConfig.ephemeral(argon2=FAST, wallet_kdf=FAST)
        svc = AuthService.from_url(f"sqlite:///{tmp_path}/auth-{len(made)}.db", cfg, ca_provider=cas.__getitem__,
                                   clock=clock, **kwargs)
        svc.create_tables()
        made.append(svc)
        return svc

    yield build
    for svc in made:
        svc.engine.dispose()


@pytest.fixture
def service(make_service, config) -> AuthService:
    return make_service(config)


def register(service: AuthService, username: str = "dr.smith", *, role: str = "specialist", hospital: str = "lothian",
             key: str = KEY, images: list[str] | None = None, **kwargs) -> Registration:
    return service.register(RegistrationRequest(username, role, hospital, key, list(images or IMAGES), **kwargs))


def totp_now(service: AuthService, reg: Registration, offset: float = 0.0) -> str:
    return service.totp.code_at(reg.totp.secret, service.clock() + offset)


@dataclass
class Enrolled:
    reg: Registration
    key: str
    images: list[str]


@pytest.fixture
def doctor(service) -> Enrolled:
    return Enrolled(register(service), KEY, IMAGES)


def login(service: AuthService, reg: Registration, *, method: str = "text", key: str = KEY,
          images: list[str] | None = None, client_addr: str | None = "10.0.0.7") -> LoginResult:
    """A complete login with TOTP (advancing the fake clock one step so codes never repeat)."""
    service.clock.advance(service.config.totp_interval)  # type: ignore[attr-defined]
    if method == "text":
        req = LoginRequest(reg.user.username, "text", text_key=key, client_addr=client_addr)
    else:
        req = LoginRequest(reg.user.username, "graphical", selection=list(images or IMAGES), client_addr=client_addr)
    challenge = service.begin_login(req)
    return service.complete_login(challenge.token, totp_code=totp_now(service, reg))
