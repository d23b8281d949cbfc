"""Share-code redemption (step 3): clinicians only, and guessing is throttled per user and per
client address with Retry-After, on auth's throttle counters (600 guesses in 21 s went through)."""

from __future__ import annotations

import pytest

from auth import FakeClock
from gateway.problems import Problem
from gateway.store import SHARE_ADDRESS_THROTTLE, SHARE_USER_THROTTLE, GatewayStore

from .stack import enrol

WRONG = "0000-0000-0000"


def test_guessing_is_throttled_per_user_with_retry_after(world, http):
    doc = enrol(world.services, "lothian", "gp")
    tok = http.login(doc)
    statuses = []
    for _ in range(SHARE_USER_THROTTLE.free_failures + 3):
        r = http.post("/doctors/share-codes/redeem", token=tok, json={"code": WRONG})
        statuses.append(r.status)
        if r.status == 429:
            break
    assert statuses[:SHARE_USER_THROTTLE.free_failures + 1] == [404] * (SHARE_USER_THROTTLE.free_failures + 1)
    assert statuses[-1] == 429
    assert r.json["type"] == "/problems/share-code-throttled" and int(r.headers["Retry-After"]) >= 1
    assert r.json["retry_after"] == int(r.headers["Retry-After"])
    # while locked even a right code waits (the lock is checked before the code is looked up) …
    code = world.services.store.create_share_code("pat-x", "lothian", 300)
    r = http.post("/doctors/share-codes/redeem", token=tok, json={"code": code.code})
    assert r.status == 429
    # … and so does the share code inside an access request; another clinician is not affected
    r = http.post("/doctors/requests", token=tok, json={"share_code": code.code, "sections": ["*"],
                                                         "purpose": "treatment", "justification": "referral"})
    assert r.status == 429
    other = http.login(enrol(world.services, "lothian", "nurse"))
    r = http.post("/doctors/share-codes/redeem", token=other, json={"code": code.code})
    assert r.status == 200 and r.json == {"patient_id": "pat-x", "hospital": "lothian"}


@pytest.mark.parametrize("role", ["insurer", "researcher"])
def test_only_clinicians_redeem_share_codes(world, http, role):
    tok = http.login(enrol(world.services, "zmc", role))
    code = world.services.store.create_share_code("pat-y", "lothian", 300)
    r = http.post("/doctors/share-codes/redeem", token=tok, json={"code": code.code})
    assert r.status == 403 and r.json["type"] == "/problems/forbidden"
    assert f"logged in as {'an' if role == 'insurer' else 'a'} {role}" in r.json["detail"]
    r = http.post("/doctors/requests", token=tok, json={"share_code": code.code, "sections": ["*"],
                                                         "purpose": "research", "justification": "research-protocol"})
    assert r.status == 403 and "share codes are redeemed by gp, specialist, nurse users" in r.json["detail"]
    # the code was not used up by the refused attempts
    assert world.services.store.redeem_share_code(code.code, "u-gp") == ("pat-y", "lothian")


def test_an_address_is_throttled_across_users_and_right_codes_cost_nothing(world):
    clock = FakeClock(1_000_000.0)
    store = GatewayStore(world.services.store.engine, b"p" * 32, clock=clock)
    addr = "203.0.113.7"
    for _ in range(2 * SHARE_ADDRESS_THROTTLE.free_failures):  # right codes are refunded: never throttled
        c = store.create_share_code("pat-z", "zmc", 300)
        assert store.redeem_share_code(c.code, "u-right", addr) == ("pat-z", "zmc")
    for i in range(SHARE_ADDRESS_THROTTLE.free_failures + 1):  # each user stays under its own limit
        with pytest.raises(Problem) as e:
            store.redeem_share_code(WRONG, f"u-guess-{i // 3}", addr)
        assert e.value.type.slug == "share-code-invalid"
    with pytest.raises(Problem) as e:
        store.redeem_share_code(WRONG, "u-fresh", addr)
    assert e.value.type.slug == "share-code-throttled" and e.value.headers["Retry-After"] == "1"
    with pytest.raises(Problem):
        store.redeem_share_code(WRONG, "u-fresh", "2001:db8::1")  # another address: its own counter
    clock.advance(SHARE_ADDRESS_THROTTLE.forget_after + 1)  # quiet for an hour: forgotten
    c = store.create_share_code("pat-z", "zmc", 300)
    assert store.redeem_share_code(c.code, "u-fresh", addr) == ("pat-z", "zmc")
