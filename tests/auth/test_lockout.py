"""Exponential backoff per account and per address, told to the user, unlockable, race-free."""

from __future__ import annotations

import threading

import pytest

from auth import InvalidCredentials, LoginRequest, LoginThrottled, ThrottlePolicy
from auth.crypto import KeyHasher

from .conftest import KEY, OTHER_IMAGES, OTHER_KEY, register, totp_now

WRONG = "definitely not the key, sorry"


def attempt(service, username="dr.smith", key=WRONG, addr="10.0.0.7"):
    return service.begin_login(LoginRequest(username, "text", text_key=key, client_addr=addr))


def fail(service, **kw) -> InvalidCredentials:
    with pytest.raises(InvalidCredentials) as exc:
        attempt(service, **kw)
    return exc.value


def test_policy_doubles_up_to_the_cap():
    p = ThrottlePolicy(free_failures=3, base_delay=1.0, max_delay=900.0)
    assert [p.delay(n) for n in range(1, 9)] == [0, 0, 0, 1, 2, 4, 8, 16]
    assert p.delay(40) == 900.0 and p.delay(10**6) == 900.0


def test_account_backoff_timing_and_message(service, doctor):
    clock = service.clock
    for _ in range(3):  # free failures: no wait
        assert fail(service).retry_after is None
    waits = []
    for expected in (1, 2, 4, 8, 16):
        err = fail(service)
        assert err.retry_after == pytest.approx(expected)
        assert f"{expected} second" in err.detail  # the user is told how long to wait
        with pytest.raises(LoginThrottled) as exc:  # even the right key is refused while locked
            attempt(service, key=KEY)
        assert exc.value.status == 429 and exc.value.retry_after_seconds == expected
        assert exc.value.problem()["retry_after"] == expected
        clock.advance(expected - 0.5)
        with pytest.raises(LoginThrottled):
            attempt(service, key=KEY)
        clock.advance(0.5)
        waits.append(service.lockout_status("dr.smith"))
    assert waits == [0, 0, 0, 0, 0]
    # the right key and second factor end the backoff
    challenge = attempt(service, key=KEY)
    service.complete_login(challenge.token, totp_code=totp_now(service, doctor.reg))
    for _ in range(3):
        assert fail(service).retry_after is None


def test_backoff_is_capped_and_forgotten(service, doctor):
    for _ in range(30):
        with pytest.raises((InvalidCredentials, LoginThrottled)):
            attempt(service)
        service.clock.advance(service.lockout_status("dr.smith"))
    assert fail(service).retry_after == pytest.approx(900)
    service.clock.advance(24 * 3600 + 1)
    assert fail(service).retry_after is None  # a day of quiet: counting starts over


def test_unknown_usernames_are_throttled_exactly_like_real_ones(service, doctor):
    def trace(username: str) -> list[tuple[str, float | None]]:
        out = []
        for _ in range(8):
            try:
                attempt(service, username=username, addr=None)
            except (InvalidCredentials, LoginThrottled) as exc:
                out.append((exc.slug, exc.retry_after))
            service.clock.advance(0.75)
        return out

    real = trace("dr.smith")
    ghost = trace("dr.ghost")
    assert real == ghost
    assert [slug for slug, _ in real].count("login-throttled") >= 2


def test_admin_unlock(service, doctor):
    for _ in range(5):
        service.clock.advance(service.lockout_status("dr.smith"))
        fail(service)
    with pytest.raises(LoginThrottled):
        attempt(service, key=KEY)
    service.unlock("DR.SMITH")
    assert service.lockout_status("dr.smith") == 0
    assert attempt(service, key=KEY).token


def test_address_backoff_spans_usernames_and_survives_own_success(make_service, config):
    from dataclasses import replace

    cfg = replace(config, address_throttle=ThrottlePolicy(free_failures=4, base_delay=10.0, max_delay=600.0))
    service = make_service(cfg)
    reg = register(service)
    # an attacker sprays usernames from one address
    for name in ("a.one", "a.two", "a.three", "a.four"):
        fail(service, username=name, addr="192.0.2.9")
    err = fail(service, username="a.five", addr="192.0.2.9")
    assert err.retry_after == pytest.approx(10)
    with pytest.raises(LoginThrottled):
        attempt(service, username="a.six", addr="192.0.2.9")
    # another address is not affected, nor the same host through its IPv4-mapped IPv6 form... which is the same
    assert attempt(service, key=KEY, addr="198.51.100.1").token
    with pytest.raises(LoginThrottled):
        attempt(service, username="a.six", addr="::ffff:192.0.2.9")
    service.clock.advance(10)
    # logging into one's own account does not reset the address: the next wrong guess waits longer
    challenge = attempt(service, key=KEY, addr="192.0.2.9")
    service.complete_login(challenge.token, totp_code=totp_now(service, reg))
    assert fail(service, username="a.seven", addr="192.0.2.9").retry_after == pytest.approx(20)
    service.unlock_address("192.0.2.9")
    assert fail(service, username="a.eight", addr="192.0.2.9").retry_after is None


def test_ipv6_addresses_are_grouped_by_slash_64(service, doctor):
    from auth.throttle import address_key

    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:10.0.0.1") == address_key("10.0.0.1") == "addr:10.0.0.1"


def test_wrong_second_factor_counts_towards_the_account(service, doctor):
    for _ in range(4):
        challenge = attempt(service, key=KEY)
        with pytest.raises(Exception, match="not correct"):
            service.complete_login(challenge.token, totp_code="000000" if totp_now(service, doctor.reg) != "000000"
                                   else "111111")
    with pytest.raises(LoginThrottled):
        attempt(service, key=KEY)


def test_parallel_guesses_cannot_outrun_the_lock(make_service, config, monkeypatch):
    from dataclasses import replace

    cfg = replace(config, account_throttle=ThrottlePolicy(free_failures=3, base_delay=60.0, max_delay=600.0))
    service = make_service(cfg)
    register(service, "dr.target", key=OTHER_KEY, images=OTHER_IMAGES)
    verified = []
    real_verify = KeyHasher.verify

    def counting(self, encoded, secret):
        verified.append(1)
        return real_verify(self, encoded, secret)

    monkeypatch.setattr(KeyHasher, "verify", counting)
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def guess(i: int) -> None:
        barrier.wait()
        try:
            attempt(service, username="dr.target", key=f"guess number {i} of many", addr=None)
        except InvalidCredentials:
            outcomes.append("wrong")
        except LoginThrottled:
            outcomes.append("throttled")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 3 free failures + the one that triggers the lock: no more than 4 keys were ever checked
    assert outcomes.count("wrong") == len(verified) <= 4
    assert outcomes.count("throttled") == 12 - len(verified)


def test_malformed_input_does_not_count(service, doctor):
    from auth import InvalidInput

    for bad in ("", None, "x" * 1000):
        with pytest.raises(InvalidInput):
            attempt(service, key=bad)
    with pytest.raises(InvalidInput):
        attempt(service, username="no spaces allowed")
    assert service.throttle.state(
        __import__("auth.throttle", fromlist=["account_key"]).account_key(service.config.pepper, "dr.smith")
    ).failures == 0


def test_a_shift_change_behind_one_nat_address_is_never_locked_out(make_service, config, monkeypatch):
    """Many right logins at once from one address (a hospital's NAT) all get through, and leave the
    address unlocked; failures from that address still count."""
    import time
    from dataclasses import replace

    cfg = replace(config, address_throttle=ThrottlePolicy(free_failures=3, base_delay=30.0, max_delay=600.0))
    service = make_service(cfg)
    extra = ("marmalade", "lighthouse", "tangerine", "porcupine", "quicksand", "saxophone", "umbrella", "volcano")
    keys = {f"dr.rota{i}": f"{KEY} with {word}" for i, word in enumerate(extra)}
    staff = [register(service, name, key=key) for name, key in keys.items()]
    real_verify = KeyHasher.verify

    def slow(self, encoded, secret):  # every login in flight at once, as with production Argon2 parameters
        ok = real_verify(self, encoded, secret)
        time.sleep(0.3)
        return ok

    monkeypatch.setattr(KeyHasher, "verify", slow)
    barrier = threading.Barrier(len(staff))
    outcomes: list[str] = []

    def login(i: int) -> None:
        barrier.wait()
        try:
            outcomes.append("ok" if attempt(service, username=f"dr.rota{i}", key=keys[f"dr.rota{i}"],
                                            addr="203.0.113.7").token else "none")
        except LoginThrottled:
            outcomes.append("throttled")

    threads = [threading.Thread(target=login, args=(i,)) for i in range(len(staff))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["ok"] * len(staff)
    from auth.throttle import address_key

    assert service.throttle.retry_after(address_key("203.0.113.7")) == 0
    # wrong guesses from the same address still lock it after its free failures
    for name in ("x.one", "x.two", "x.three"):
        fail(service, username=name, addr="203.0.113.7")
    assert fail(service, username="x.four", addr="203.0.113.7").retry_after == pytest.approx(30)
    with pytest.raises(LoginThrottled):
        attempt(service, username="dr.rota0", key=keys["dr.rota0"], addr="203.0.113.7")
