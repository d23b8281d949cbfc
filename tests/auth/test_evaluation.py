"""Evaluation mode: login time and method preference, as in the FlexPass study."""

from __future__ import annotations

from dataclasses import replace

import pytest

from auth import InvalidCredentials, LoginEvent, LoginRequest, usability_figures

from .conftest import IMAGES, KEY, OTHER_IMAGES, OTHER_KEY, register, totp_now


def ev(uid, method, start, seconds, success=True, factor="totp"):
    return LoginEvent(f"a{start}", uid, method, factor, start, start + 1, start + seconds, success,
                      "success" if success else "invalid-credentials")


def test_usability_figures_from_events():
    events = [
        ev("u1", "text", 0, 10), ev("u1", "text", 100, 14), ev("u1", "graphical", 200, 8),
        ev("u2", "graphical", 0, 6), ev("u2", "graphical", 50, 12), ev("u2", "text", 70, 2, success=False),
        ev("u3", "graphical", 0, 9, factor="push"), ev("u3", "text", 30, 10),
        LoginEvent("never", None, None, None, 0, None, None, None, "started"),  # page shown, no key: ignored
    ]
    r = usability_figures(events)
    assert r.attempts == 8 and r.successful_logins == 7 and r.users == 3
    text, pic = r.methods["text"], r.methods["graphical"]
    assert (text.attempts, text.successes) == (4, 3) and text.success_rate == pytest.approx(0.75)
    assert text.mean_login_s == pytest.approx((10 + 14 + 10) / 3) and text.median_login_s == 10
    assert pic.mean_login_s == pytest.approx((8 + 6 + 12 + 9) / 4) and pic.median_login_s == pytest.approx(8.5)
    assert r.method_share == {"text": pytest.approx(3 / 7), "graphical": pytest.approx(4 / 7)}
    # u1 prefers text, u2 graphical, u3 is a tie (half each)
    assert r.user_preference == {"text": pytest.approx(1.5 / 3), "graphical": pytest.approx(1.5 / 3)}
    assert r.second_factor_share["push"] == pytest.approx(1 / 7)
    assert r.to_json()["methods"]["text"]["attempts"] == 4


def test_service_records_method_time_and_outcome(make_service, config):
    service = make_service(replace(config, evaluation_mode=True))
    clock = service.clock
    a = register(service)
    b = register(service, "dr.jones", key=OTHER_KEY, images=OTHER_IMAGES)

    # dr.smith: text login, 12 s from page to completion
    attempt = service.start_attempt()
    clock.advance(9)
    ch = service.begin_login(LoginRequest("dr.smith", "text", text_key=KEY, attempt_id=attempt))
    clock.advance(3)
    service.complete_login(ch.token, totp_code=totp_now(service, a))
    # dr.jones: graphical, 20 s, a wrong TOTP first
    clock.advance(60)
    grid = service.login_grid("dr.jones")
    clock.advance(15)
    ch = service.begin_login(LoginRequest("dr.jones", "graphical", selection=OTHER_IMAGES, attempt_id=grid.attempt_id))
    good = totp_now(service, b)
    with pytest.raises(Exception, match="not correct"):
        service.complete_login(ch.token, totp_code=f"{(int(good) + 7) % 10**6:06d}")
    clock.advance(5)
    service.complete_login(ch.token, totp_code=totp_now(service, b))
    # a failed graphical attempt by dr.smith
    clock.advance(60)
    grid = service.login_grid("dr.smith")
    clock.advance(4)
    with pytest.raises(InvalidCredentials):
        service.begin_login(LoginRequest("dr.smith", "graphical", selection=IMAGES[:4] + ["food.apple"],
                                         attempt_id=grid.attempt_id))

    events = [e for e in service.evaluation.events() if e.method]
    assert [(e.method, e.success, e.second_factor) for e in events] == [
        ("text", True, "totp"), ("graphical", True, "totp"), ("graphical", False, None)]
    assert events[0].login_seconds == pytest.approx(12) and events[1].login_seconds == pytest.approx(20)
    assert all(e.user_id in (a.user.user_id, b.user.user_id) for e in events)
    report = service.usability_report()
    assert report.methods["text"].mean_login_s == pytest.approx(12)
    assert report.methods["graphical"].success_rate == pytest.approx(0.5)
    assert report.method_share == {"text": 0.5, "graphical": 0.5}


def test_nothing_is_recorded_when_evaluation_is_off(service, doctor):
    attempt = service.start_attempt()
    assert attempt  # an id is always handed out, so pages need not care
    ch = service.begin_login(LoginRequest("dr.smith", "text", text_key=KEY, attempt_id=attempt))
    service.complete_login(ch.token, totp_code=totp_now(service, doctor.reg))
    assert service.evaluation.events() == []
