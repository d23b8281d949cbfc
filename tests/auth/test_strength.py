"""Predictable textual keys are refused; articulations of a personal secret are accepted."""

from __future__ import annotations

import pytest

from auth import InvalidInput, WeakKey, assess_key, check_key_strength
from auth.errors import InvalidImageSelection
from auth.records import RegistrationRequest

from .conftest import IMAGES, KEY, register


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("password", "too-short"),
        ("Password1234", "common-phrase"),
        ("sunshinesunshine", "repeat"),
        ("abcdefghijklmnop", "sequence"),
        ("qwertyuiop123456", "dictionary-word"),
        ("aaaaaaaaaaaaaaaa", "repeat"),
        ("Summer2024!Summer", "repeat"),
        ("correcthorsebatterystaple", "common-phrase"),
        ("The quick brown fox jumps over the lazy dog", "common-phrase"),
        ("MayTheForceBeWithYou", "common-phrase"),
        ("M@ryH@dALittleL@mb", "common-phrase"),
        ("PlacesWeVisitedInEurope", "common-phrase"),  # the issue's own example is now public
        ("Tr0ub4dor&3", "too-short"),
        ("dr.smith-loves-lothian", "contains-personal-info"),
        ("monkeydragonbaseball", "dictionary-word"),
    ],
)
def test_predictable_keys_are_refused_with_a_reason(key, reason):
    report = assess_key(key, user_inputs=["dr.smith", "lothian"])
    assert not report.accepted
    assert reason in report.reasons
    with pytest.raises(WeakKey) as exc:
        check_key_strength(key, user_inputs=["dr.smith", "lothian"])
    assert exc.value.slug == "weak-key"
    assert reason in exc.value.problem()["reasons"]


@pytest.mark.parametrize(
    "key",
    [
        KEY,
        "GrandmasBlueKettleInTromso",
        "our picnic by the lighthouse at Skagen",
        "Wh1stl1ng otters swim under Fjaerland bridge",
    ],
)
def test_personal_articulations_are_accepted(key):
    report = check_key_strength(key, user_inputs=["dr.smith", "lothian"])
    assert report.accepted and report.score == 4 and report.guesses_log10 >= 10


def test_spelling_out_the_chosen_pictures_is_refused(service):
    key = "Paris Rome Pisa Chapel Ice cream"
    # on its own it looks strong: five capitalised words
    assert assess_key(key).accepted
    with pytest.raises(WeakKey):
        register(service, "dr.labels", key=key, images=IMAGES)
    assert service.find_user("dr.labels") is None


@pytest.mark.parametrize("bad", [None, "", 42, "x" * 300, "tab\there\x00"])
def test_malformed_keys_are_invalid_input_not_weak(bad):
    with pytest.raises(InvalidInput) as exc:
        assess_key(bad)  # type: ignore[arg-type]
    assert not isinstance(exc.value, WeakKey)


def test_weak_key_at_registration_writes_nothing(service):
    with pytest.raises(WeakKey):
        register(service, "dr.weak", key="letmein12345")
    with pytest.raises(InvalidImageSelection):
        register(service, "dr.fewpictures", images=IMAGES[:2])
    with pytest.raises(InvalidInput):
        service.register(RegistrationRequest("dr.role", "surgeon-general", "lothian", KEY, IMAGES))
    assert service.list_users() == []


def test_service_assess_key_uses_account_context(service):
    assert not service.assess_key("nurse.jones is on shift 4B", username="nurse.jones").accepted
    assert service.assess_key(KEY, username="nurse.jones", hospital="lothian").accepted
