"""An explicit pseudonymous user id at enrolment (a patient's is the vault's patient reference)."""

from __future__ import annotations

import pytest

from auth import InvalidInput, RegistrationRequest, UserExists, UserNotFound

from .conftest import IMAGES, KEY, OTHER_IMAGES, OTHER_KEY, login, register

REF = "0123456789abcdef0123456789abcdef"


def test_explicit_user_id_is_the_id_the_certificate_and_the_chain_see(service):
    reg = register(service, "pat.one", role="patient", user_id=REF)
    assert reg.user.user_id == REF
    ident = service.identity_of(REF)
    assert ident.common_name == REF
    assert ident.attributes["uid"] == REF and ident.attributes["role"] == "patient"
    result = login(service, reg)
    assert result.user.user_id == REF


def test_default_id_is_still_generated(service):
    assert register(service, "dr.two").user.user_id.startswith("u-")


@pytest.mark.parametrize("bad", ["", "x", "-lead", "has space", "a" * 41, "semi;colon", 42])
def test_malformed_user_ids_are_refused_before_anything_is_written(service, bad):
    with pytest.raises(InvalidInput):
        service.register(RegistrationRequest("pat.bad", "patient", "lothian", KEY, list(IMAGES), user_id=bad))
    assert service.find_user("pat.bad") is None


def test_a_taken_user_id_is_refused(service):
    register(service, "pat.one", role="patient", user_id=REF)
    with pytest.raises(UserExists):
        register(service, "pat.two", role="patient", user_id=REF, key=OTHER_KEY, images=OTHER_IMAGES)
    assert service.find_user("pat.two") is None


def test_invitation_accepted_under_an_explicit_id(service):
    inv = service.invite("pat.three", "patient", "lothian")
    reg = service.accept_invitation(inv.code, text_key=KEY, images=list(IMAGES), user_id=REF)
    assert reg.user.user_id == REF and reg.user.username == "pat.three"


def test_discard_enrolment_removes_a_user_who_never_logged_in(service):
    register(service, "pat.one", role="patient", user_id=REF)
    service.discard_enrolment(REF)
    assert service.get_user(REF) is None and service.find_user("pat.one") is None
    register(service, "pat.one", role="patient", user_id=REF)  # the name and id are free again
    with pytest.raises(UserNotFound):
        service.discard_enrolment("u-nobody")


def test_discard_enrolment_refuses_a_user_who_logged_in(service):
    reg = register(service, "pat.one", role="patient", user_id=REF)
    login(service, reg)
    with pytest.raises(InvalidInput):
        service.discard_enrolment(REF)
    assert service.get_user(REF) is not None
