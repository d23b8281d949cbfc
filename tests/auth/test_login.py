"""Login paths: textual or graphical key, then TOTP, push approval or a recovery code."""

from __future__ import annotations

import pytest

from auth import (
    AccountSuspended,
    ApprovalDenied,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalPending,
    ChallengeInvalid,
    InvalidCredentials,
    InvalidInput,
    LoginRequest,
    SecondFactorInvalid,
    SecondFactorRequired,
    SecondFactorUnavailable,
    TokenRevoked,
    UserExists,
)
from auth.crypto import KeyHasher

from .conftest import IMAGES, KEY, OTHER_IMAGES, OTHER_KEY, login, register, totp_now


def begin(service, username="dr.smith", key=KEY, **kw):
    return service.begin_login(LoginRequest(username, "text", text_key=key, **kw))


# ----------------------------------------------------------------------------- textual key + TOTP


def test_text_login_with_totp(service, doctor):
    challenge = begin(service, "Dr.Smith ")  # usernames are case- and space-insensitive
    assert challenge.factors[0] == "totp" and "recovery" in challenge.factors
    assert "push" not in challenge.factors  # no other session yet
    result = service.complete_login(challenge.token, totp_code=totp_now(service, doctor.reg))
    assert result.user.username == "dr.smith" and result.user.role == "specialist" and result.user.hospital == "lothian"
    assert result.method == "text" and result.second_factor == "totp"
    assert result.amr == ["pwd", "otp", "mfa"]
    assert result.user.totp_confirmed  # the first good code confirms the enrolment
    assert service.sessions.get(result.session_id).active


def test_totp_accepts_one_step_of_drift_but_not_more(service, doctor):
    step = service.config.totp_interval
    assert service.complete_login(begin(service).token, totp_code=totp_now(service, doctor.reg, -step))
    service.clock.advance(3 * step)
    with pytest.raises(SecondFactorInvalid):
        service.complete_login(begin(service).token, totp_code=totp_now(service, doctor.reg, -2 * step))


def test_wrong_key_is_refused(service, doctor):
    with pytest.raises(InvalidCredentials) as exc:
        begin(service, key=KEY.upper())
    assert exc.value.status == 401 and exc.value.slug == "invalid-credentials"


def test_suspended_user_cannot_log_in_even_with_the_right_key(service, doctor):
    service.suspend(doctor.reg.user.user_id)
    with pytest.raises(AccountSuspended):
        begin(service)
    service.reinstate(doctor.reg.user.user_id)
    assert begin(service).token


def test_chain_suspension_is_checked_at_login(make_service):
    suspended: set[str] = set()
    service = make_service(is_suspended=lambda uid: uid in suspended)
    reg = register(service)
    suspended.add(reg.user.user_id)
    with pytest.raises(AccountSuspended):
        begin(service)


# ----------------------------------------------------------------------------- no enumeration


def test_unknown_user_and_wrong_key_are_indistinguishable(service, doctor, monkeypatch):
    calls: list[tuple[bool, int]] = []
    real_verify = KeyHasher.verify

    def spy(self, encoded, secret):
        calls.append((encoded is None, len(secret)))
        return real_verify(self, encoded, secret)

    monkeypatch.setattr(KeyHasher, "verify", spy)
    errors = []
    for username in ("dr.smith", "dr.nobody"):
        with pytest.raises(InvalidCredentials) as exc:
            begin(service, username, key="Not the right key at all, sorry")
        errors.append(exc.value)
    for selection in (IMAGES[:4] + ["places.castle"], IMAGES):
        with pytest.raises(InvalidCredentials) as exc:
            service.begin_login(LoginRequest("dr.nobody2", "graphical", selection=selection))
        errors.append(exc.value)
    # the same error, word for word, with the same status and type
    assert len({(e.slug, e.status, e.detail) for e in errors}) == 1
    assert {e.problem()["type"] for e in errors} == {"/problems/invalid-credentials"}
    # and the same work: one Argon2id verification each (the unknown user against the dummy hash)
    assert [c[1] for c in calls] == [32, 32, 32, 32]
    assert [c[0] for c in calls] == [False, True, True, True]


def test_dummy_hash_costs_the_same_as_a_real_one(service):
    hasher = service.hasher
    real = hasher.hash(b"k" * 32)
    dummy = hasher._dummy  # noqa: SLF001 - the parameters of the dummy are the point of the test
    assert real.split("$")[3] == dummy.split("$")[3]  # m=…,t=…,p=… identical
    assert not hasher.verify(None, b"k" * 32)


# ----------------------------------------------------------------------------- second factor


def test_second_factor_missing_changes_nothing(service, doctor):
    challenge = begin(service)
    with pytest.raises(SecondFactorRequired) as exc:
        service.complete_login(challenge.token)
    assert exc.value.status == 401
    # the challenge is still usable and no attempt was counted
    result = service.complete_login(challenge.token, totp_code=totp_now(service, doctor.reg))
    assert result.second_factor == "totp"


def test_malformed_second_factor_is_invalid_input(service, doctor):
    challenge = begin(service)
    for kwargs in ({"totp_code": "12ab56"}, {"totp_code": "1234567"}, {"recovery_code": "short"},
                   {"totp_code": "123456", "recovery_code": "AAAA-AAAA-AAAA-AAAA"}):
        with pytest.raises(InvalidInput):
            service.complete_login(challenge.token, **kwargs)
    assert service.complete_login(challenge.token, totp_code=totp_now(service, doctor.reg))


def test_wrong_totp_counts_and_exhausts_the_challenge(service, doctor):
    challenge = begin(service)
    good = totp_now(service, doctor.reg)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    for left in range(service.config.challenge_max_attempts - 1, 0, -1):
        with pytest.raises(SecondFactorInvalid) as exc:
            service.complete_login(challenge.token, totp_code=wrong)
        assert exc.value.extra["attempts_left"] == left
    with pytest.raises(SecondFactorInvalid):
        service.complete_login(challenge.token, totp_code=wrong)
    with pytest.raises(ChallengeInvalid):  # even the right code is too late now
        service.complete_login(challenge.token, totp_code=good)
    # the failures count against the account too
    assert service.lockout_status("dr.smith") > 0


def test_totp_code_cannot_be_replayed(service, doctor):
    code = totp_now(service, doctor.reg)
    assert service.complete_login(begin(service).token, totp_code=code)
    with pytest.raises(SecondFactorInvalid):
        service.complete_login(begin(service).token, totp_code=code)


def test_challenge_expires_and_is_single_use(service, doctor):
    challenge = begin(service)
    service.clock.advance(service.config.challenge_ttl + 1)
    with pytest.raises(ChallengeInvalid):
        service.complete_login(challenge.token, totp_code=totp_now(service, doctor.reg))
    challenge = begin(service)
    service.complete_login(challenge.token, totp_code=totp_now(service, doctor.reg))
    service.clock.advance(30)
    with pytest.raises(ChallengeInvalid):
        service.complete_login(challenge.token, totp_code=totp_now(service, doctor.reg))
    for forged in ("nonsense", challenge.token.split(".")[0] + ".AAAA", "a.b.c", None):
        with pytest.raises(ChallengeInvalid):
            service.complete_login(forged, totp_code="123456")  # type: ignore[arg-type]


def test_recovery_codes_are_single_use(service, doctor):
    code = doctor.reg.recovery_codes[0]
    result = service.complete_login(begin(service).token, recovery_code=code.lower().replace("-", " "))
    assert result.second_factor == "recovery"
    with pytest.raises(SecondFactorInvalid):
        service.complete_login(begin(service).token, recovery_code=code)
    other = register(service, "dr.other", key=OTHER_KEY, images=OTHER_IMAGES)
    with pytest.raises(SecondFactorInvalid):  # another user's code is no good either
        service.complete_login(begin(service).token, recovery_code=other.recovery_codes[0])
    fresh = service.regenerate_recovery_codes(doctor.reg.user.user_id)
    with pytest.raises(SecondFactorInvalid):
        service.complete_login(begin(service).token, recovery_code=doctor.reg.recovery_codes[1])
    assert service.complete_login(begin(service).token, recovery_code=fresh[0])


def test_reset_totp_replaces_the_secret(service, doctor):
    prov = service.reset_totp(doctor.reg.user.user_id)
    assert prov.uri.startswith("otpauth://totp/") and prov.qr_png.startswith(b"\x89PNG")
    with pytest.raises(SecondFactorInvalid):
        service.complete_login(begin(service).token, totp_code=totp_now(service, doctor.reg))
    code = service.totp.code_at(prov.secret, service.clock())
    assert service.complete_login(begin(service).token, totp_code=code)


# ----------------------------------------------------------------------------- push approval


def test_push_approval_from_another_session(service, doctor):
    first = login(service, doctor.reg)
    challenge = service.begin_login(LoginRequest("dr.smith", "graphical", selection=IMAGES, client_addr="10.1.1.1"))
    assert "push" in challenge.factors
    push = service.request_approval(challenge.token)
    assert len(push.match_code) == 2
    assert service.request_approval(challenge.token) == push  # idempotent while pending
    with pytest.raises(ApprovalPending) as exc:
        service.complete_login(challenge.token, approval_id=push.approval_id)
    assert exc.value.retry_after and exc.value.status == 202
    pending = service.pending_approvals(first.session_id)
    assert [p.approval_id for p in pending] == [push.approval_id]
    assert pending[0].client_addr == "10.1.1.1" and pending[0].method == "graphical"
    service.decide_approval(first.session_id, push.approval_id, approve=True, match_code=push.match_code)
    result = service.complete_login(challenge.token, approval_id=push.approval_id)
    assert result.second_factor == "push" and result.session_id != first.session_id
    assert result.amr == ["pwd", "mca", "mfa"]


def test_push_denied_or_wrong_number_refuses_the_login(service, doctor):
    first = login(service, doctor.reg)
    challenge = begin(service)
    push = service.request_approval(challenge.token)
    wrong = f"{(int(push.match_code) + 1) % 100:02d}"
    with pytest.raises(ApprovalDenied):
        service.decide_approval(first.session_id, push.approval_id, approve=True, match_code=wrong)
    with pytest.raises(ApprovalDenied):
        service.complete_login(challenge.token, approval_id=push.approval_id)
    with pytest.raises(ApprovalDenied):  # a denied login is over, whatever factor it tries next
        service.complete_login(challenge.token, totp_code=totp_now(service, doctor.reg))
    with pytest.raises(ApprovalDenied):  # and cannot ask again
        service.request_approval(challenge.token)

    challenge = begin(service)
    push = service.request_approval(challenge.token)
    service.decide_approval(first.session_id, push.approval_id, approve=False)
    with pytest.raises(ApprovalDenied):
        service.complete_login(challenge.token, approval_id=push.approval_id)
    with pytest.raises(ApprovalNotFound):  # decided once and for all
        service.decide_approval(first.session_id, push.approval_id, approve=True, match_code=push.match_code)
    # each denial counted as a failed attempt on the account
    from auth.throttle import account_key

    assert service.throttle.state(account_key(service.config.pepper, "dr.smith")).failures == 2


def test_push_needs_a_live_session_of_the_same_user(service, doctor):
    with pytest.raises(SecondFactorUnavailable):
        service.request_approval(begin(service).token)
    other = register(service, "dr.other", key=OTHER_KEY, images=OTHER_IMAGES)
    other_session = login(service, other, key=OTHER_KEY)
    mine = login(service, doctor.reg)
    challenge = begin(service)
    push = service.request_approval(challenge.token)
    assert service.pending_approvals(other_session.session_id) == []
    with pytest.raises(ApprovalNotFound):
        service.decide_approval(other_session.session_id, push.approval_id, approve=True, match_code=push.match_code)
    service.logout(mine.session_id)
    with pytest.raises(TokenRevoked):
        service.decide_approval(mine.session_id, push.approval_id, approve=True, match_code=push.match_code)
    with pytest.raises(ApprovalPending):
        service.complete_login(challenge.token, approval_id=push.approval_id)


def test_push_approval_expires(service, doctor):
    first = login(service, doctor.reg)
    challenge = begin(service)
    push = service.request_approval(challenge.token)
    service.clock.advance(service.config.approval_ttl + 1)
    with pytest.raises(ApprovalExpired):
        service.decide_approval(first.session_id, push.approval_id, approve=True, match_code=push.match_code)
    with pytest.raises(ApprovalExpired):
        service.complete_login(challenge.token, approval_id=push.approval_id)
    assert service.pending_approvals(first.session_id) == []


# ----------------------------------------------------------------------------- enrolment


def test_invitation_flow(service):
    inv = service.invite("Nurse.Jones", "specialist", "zmc")
    assert inv.username == "nurse.jones"
    reg = service.accept_invitation(inv.code, text_key=OTHER_KEY, images=OTHER_IMAGES)
    assert reg.user.hospital == "zmc" and reg.user.msp_id == "ZmcMSP"
    from auth import InvitationInvalid

    with pytest.raises(InvitationInvalid):
        service.accept_invitation(inv.code, text_key=OTHER_KEY, images=OTHER_IMAGES)
    late = service.invite("nurse.late", "patient", "zmc", ttl=3600)
    service.clock.advance(3601)
    with pytest.raises(InvitationInvalid):
        service.accept_invitation(late.code, text_key=OTHER_KEY, images=OTHER_IMAGES)
    with pytest.raises(UserExists):
        service.invite("nurse.jones", "specialist", "zmc")


def test_duplicate_username_is_refused(service, doctor):
    with pytest.raises(UserExists):
        register(service, "DR.SMITH", key=OTHER_KEY, images=OTHER_IMAGES)
    assert len(service.list_users()) == 1


def test_parallel_second_factor_guesses_are_capped_per_challenge(service, doctor, monkeypatch):
    import threading

    from auth.factors import Totp

    checked = []
    real = Totp.matching_step

    def counting(self, *args, **kwargs):
        checked.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Totp, "matching_step", counting)
    challenge = begin(service)
    good = totp_now(service, doctor.reg)
    barrier = threading.Barrier(16)
    outcomes: list[str] = []

    def guess(i: int) -> None:
        code = f"{(int(good) + 1 + i) % 1_000_000:06d}"
        barrier.wait()
        try:
            service.complete_login(challenge.token, totp_code=code)
        except (SecondFactorInvalid, ChallengeInvalid) as exc:
            outcomes.append(exc.slug)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checked) == service.config.challenge_max_attempts
    assert outcomes.count("second-factor-invalid") == service.config.challenge_max_attempts
    assert outcomes.count("login-challenge-invalid") == 16 - service.config.challenge_max_attempts


def test_session_check_reads_without_waiting_for_a_writer(service, doctor):
    """The check every authenticated request makes is a pure read: on SQLite it must not queue
    behind a transaction holding the write lock (a login being recorded, say)."""
    import sqlite3
    import threading

    res = login(service, doctor.reg)
    claims = {"sid": res.session_id, "sub": res.user.user_id, "exp": service.clock() + 60}
    holder = sqlite3.connect(service.engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        done = threading.Event()
        errors: list[BaseException] = []

        def check() -> None:
            try:
                service.sessions.check_claims(claims)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            done.set()

        threading.Thread(target=check, daemon=True).start()
        assert done.wait(5), "the session check waited for the write lock"
        assert not errors
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    service.sessions.revoke(res.session_id, "logout")
    with pytest.raises(TokenRevoked):
        service.sessions.check_claims(claims)
