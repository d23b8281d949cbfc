"""Enrolment from an invitation, in the browser: the admin invites a patient, who chooses a
textual key (with live strength feedback through htmx) and pictures, sees the TOTP set-up and the
recovery codes once, then signs in with what they chose."""

from __future__ import annotations

import re

import pyotp
import pytest

from tests.gateway.stack import IMAGES, KEY

from .conftest import shot
from .pages import choose_secret

pytestmark = pytest.mark.browser


def test_an_invited_patient_enrols_and_signs_in(site, new_page):
    from .pages import sign_in

    chi, _ = site.world.patient_ref("lothian", 1)
    admin = new_page()
    sign_in(admin, site.people.admin)
    admin.get_by_role("link", name="Invitations").click()
    admin.get_by_label("Username", exact=True).fill("bob.newpatient")
    admin.get_by_label("Role", exact=True).select_option("patient")
    admin.get_by_label(re.compile("CHI number")).fill(chi)
    admin.get_by_role("button", name="Create the invitation").click()
    code = admin.locator("#invitation-code").inner_text().strip()
    shot(admin, "admin-invitation")

    page = new_page()
    page.goto(f"/enrol?code={code}")
    page.get_by_label(re.compile("^Your textual key")).fill("password")
    page.locator("#strength").filter(has_text="too weak").wait_for()  # htmx asked the server as we typed
    choose_secret(page)
    page.get_by_role("button", name="Create my account").click()
    page.get_by_role("heading", name="Welcome, bob.newpatient").wait_for()
    shot(page, "enrolled")
    assert page.get_by_role("img", name=re.compile("QR code")).count() == 1
    codes = page.locator("ul.codes li").all_inner_texts()
    assert len(codes) == site.world.services.auth.config.recovery_codes
    secret = page.locator("code").nth(1).inner_text().strip()

    # the same page cannot be had again: the invitation is used up
    again = new_page()
    again.goto(f"/enrol?code={code}")
    again.get_by_label(re.compile("^Your textual key")).fill(KEY)
    again.get_by_label("The same sentence again").fill(KEY)
    for image_id in IMAGES:
        again.locator(f"input[name=images][value='{image_id}']").check()
    again.get_by_role("button", name="Create my account").click()
    assert again.get_by_role("alert").is_visible() and "Welcome" not in again.inner_text("main")

    # signing in with the pictures and the app's code
    page.get_by_role("link", name=re.compile("sign in")).click()
    page.get_by_label("Username").fill("bob.newpatient")
    page.get_by_role("button", name="Use my pictures").click()
    for image_id in IMAGES:
        page.locator(f"input[name=selection][value='{image_id}']").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("The 6-digit code from your authenticator app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your health record, in your hands").wait_for()
