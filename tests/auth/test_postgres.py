"""The user directory on PostgreSQL, in a schema of its own (created and dropped here)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import replace

import pytest
import sqlalchemy as sa

from auth import (
    AuthService,
    InvalidCredentials,
    LoginRequest,
    LoginThrottled,
    RefreshTokenReused,
    ThrottlePolicy,
    make_engine,
)

from .conftest import IMAGES, KEY, login, register, totp_now

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_service(postgres_url, config, clock, cas):
    schema = f"auth_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(postgres_url, execution_options={"schema_translate_map": {None: schema}})
    cfg = replace(config, account_throttle=ThrottlePolicy(free_failures=3, base_delay=60.0, max_delay=600.0))
    service = AuthService(engine, cfg, ca_provider=cas.__getitem__, clock=clock)
    service.create_tables()
    try:
        yield service
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_enrol_login_and_sessions_on_postgres(pg_service):
    service = pg_service
    reg = register(service)
    by_text = login(service, reg)
    by_picture = login(service, reg, method="graphical")
    assert service.signer_for_session(by_picture.session_id, by_picture.wallet_session_key)
    grant = service.sessions.issue_refresh(by_text.session_id)
    rotated = service.sessions.rotate(by_text.session_id, grant.jti)
    with pytest.raises(RefreshTokenReused):
        service.sessions.rotate(by_text.session_id, grant.jti)
    assert not service.sessions.get(by_text.session_id).active
    assert rotated.jti != grant.jti
    with pytest.raises(InvalidCredentials):
        service.begin_login(LoginRequest("dr.smith", "text", text_key="wrong key, clearly"))
    code = reg.recovery_codes[0]
    challenge = service.begin_login(LoginRequest("dr.smith", "text", text_key=KEY))
    assert service.complete_login(challenge.token, recovery_code=code).second_factor == "recovery"
    service.clock.advance(30)
    challenge = service.begin_login(LoginRequest("dr.smith", "graphical", selection=IMAGES))
    assert service.complete_login(challenge.token, totp_code=totp_now(service, reg))


def test_parallel_guesses_are_serialised_on_postgres(pg_service):
    service = pg_service
    register(service)
    barrier = threading.Barrier(10)
    outcomes: list[str] = []

    def guess(i: int) -> None:
        barrier.wait()
        try:
            service.begin_login(LoginRequest("dr.smith", "text", text_key=f"parallel guess {i} of ten"))
        except InvalidCredentials:
            outcomes.append("wrong")
        except LoginThrottled:
            outcomes.append("throttled")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 10 and outcomes.count("wrong") <= 4
