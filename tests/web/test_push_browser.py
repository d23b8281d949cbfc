"""The push-style second factor with number matching: a new browser asks, the browser where the
user is signed in types the number the new one shows; a wrong number approves nothing."""

from __future__ import annotations

import pytest

from tests.gateway.stack import enrol

from .conftest import shot
from .pages import sign_in

pytestmark = pytest.mark.browser


def start_push(page, account) -> None:
    page.goto("/sign-in")
    page.get_by_label("Username").fill(account.username)
    page.get_by_role("button", name="Use my textual key").click()
    page.get_by_label("Your textual key").fill(account.key)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Approve from my other device").click()


def test_a_sign_in_approved_from_another_device_by_number_matching(site, new_page):
    account = enrol(site.world.services, "lothian", "specialist")
    laptop, phone = new_page(), new_page()
    sign_in(phone, account)

    start_push(laptop, account)
    number = laptop.locator("#match-code").inner_text().strip()
    assert number.isdigit()
    laptop.get_by_role("button", name="I approved it: continue").click()
    shot(laptop, "push-waiting")
    assert "Waiting for approval" in laptop.get_by_role("alert").inner_text()

    phone.get_by_role("link", name="Approve a sign-in").click()
    shot(phone, "push-phone")
    # a wrong number refuses that sign-in (no approving by reflex)
    wrong = str((int(number) + 1) % 10 ** len(number)).zfill(len(number))
    phone.get_by_label("The number on the other device").fill(wrong)
    phone.get_by_role("button", name="Approve", exact=True).click()
    assert phone.get_by_role("alert").is_visible()
    laptop.get_by_role("button", name="I approved it: continue").click()
    assert "denied" in laptop.get_by_role("alert").inner_text()
    # a refused sign-in starts again; this time with the right number
    start_push(laptop, account)
    number = laptop.locator("#match-code").inner_text().strip()
    phone.get_by_role("link", name="Approve a sign-in").click()
    phone.get_by_label("The number on the other device").fill(number)
    phone.get_by_role("button", name="Approve", exact=True).click()
    phone.get_by_text("Approved: the other device is signing in").wait_for()

    laptop.get_by_role("button", name="I approved it: continue").click()
    laptop.get_by_text("Signed in as").wait_for()
    assert laptop.url.endswith("/clinician/")
