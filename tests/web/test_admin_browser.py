"""A hospital admin's desk in the browser: treating relationships recorded and ended, a user
suspended (their next page sends them to sign in) and reinstated, a person enrolled at the desk
(choosing their own secret there) whose role is then changed."""

from __future__ import annotations

import re

import pyotp
import pytest

from tests.gateway.stack import KEY, enrol

from .conftest import shot
from .pages import choose_secret, sign_in

pytestmark = pytest.mark.browser


def test_treating_relationships_are_recorded_and_ended(site, new_page):
    chi = site.people.patient_chi  # an enrolled patient, found by their CHI number
    gp = enrol(site.world.services, "lothian", "gp")
    admin = new_page()
    sign_in(admin, site.people.admin)
    admin.get_by_role("link", name="Treating relationships").click()
    admin.get_by_label("Patient (CHI number or id)").last.fill(chi)
    admin.get_by_label("Clinician's username").fill(gp.username)
    admin.get_by_role("button", name="Record on the ledger").click()
    admin.get_by_text("Recorded in transaction").wait_for()
    row = admin.locator("tr", has_text=gp.username)
    assert "current" in row.inner_text()
    row.get_by_role("button", name=f"End the relationship with {gp.username}").click()
    admin.get_by_text("Ended: the clinician's grants").wait_for()
    assert "until" in admin.locator("tr", has_text=gp.username).inner_text()


def test_a_suspended_user_is_signed_out_and_can_be_reinstated(site, new_page):
    nurse = enrol(site.world.services, "lothian", "nurse")
    page, admin = new_page(), new_page()
    sign_in(page, nurse)
    sign_in(admin, site.people.admin)
    row = admin.locator("tr", has_text=nurse.username)
    row.get_by_label(f"Reason to suspend {nurse.username}").select_option("investigation")
    row.get_by_role("button", name="Suspend").click()
    admin.get_by_text("Suspended: their sessions ended").wait_for()
    assert "suspended" in admin.locator("tr", has_text=nurse.username).inner_text()
    page.goto("/clinician/")
    assert page.url.split("?")[0].endswith("/sign-in")
    admin.locator("tr", has_text=nurse.username).get_by_role("button", name="Reinstate").click()
    admin.get_by_text("Reinstated.").wait_for()
    assert "active" in admin.locator("tr", has_text=nurse.username).inner_text()


def test_a_person_is_enrolled_at_the_desk_and_later_changes_role(site, new_page):
    svc = site.world.services
    admin = new_page()
    sign_in(admin, site.people.admin)
    admin.get_by_role("link", name="Enrol at the desk").click()
    admin.get_by_label("Username", exact=True).fill("nina.desk")
    admin.get_by_label("Role", exact=True).select_option("nurse")
    # the screen turns to the person: they type their own key and pick their pictures
    choose_secret(admin)
    shot(admin, "admin-desk")
    admin.get_by_role("button", name="Enrol them").click()
    admin.get_by_role("heading", name="Welcome, nina.desk").wait_for()
    assert admin.get_by_role("img", name=re.compile("QR code")).count() == 1
    secret = admin.locator("code").nth(1).inner_text().strip()
    codes = admin.locator("ul.codes li").all_inner_texts()
    nina = svc.auth.find_user("nina.desk")
    assert nina.role == "nurse" and svc.chain_user(nina.user_id)["role"] == "nurse"  # registered on chain
    admin.get_by_role("link", name="back to the users").click()

    # she signs in as a nurse; the admin makes her a GP: her session ends, she signs in again as a GP
    page = new_page()
    _sign_in_with(page, "nina.desk", pyotp.TOTP(secret).now())
    admin.reload()
    row = admin.locator("tr", has_text="nina.desk")
    row.get_by_label("New role of nina.desk").select_option("gp")
    row.get_by_role("button", name="Change role").click()
    admin.get_by_text("nina.desk is now a GP").wait_for()
    shot(admin, "admin-role-changed")
    assert "GP" in admin.locator("tr", has_text="nina.desk").inner_text()
    chain = svc.chain_user(nina.user_id)
    assert chain["role"] == "gp" and chain["fingerprint"] == svc.auth.get_user(nina.user_id).certificate_fingerprint
    page.goto("/clinician/")
    assert page.url.split("?")[0].endswith("/sign-in")
    _sign_in_with(page, "nina.desk", codes[0], recovery=True)
    assert "nina.desk (GP, lothian)" in page.inner_text("header")
    # her new certificate says gp: the chain takes her request as a GP's (not treating: refused, and recorded)
    page.goto(f"/clinician/request?patient={site.people.patient.user_id}&hospital=lothian")
    page.get_by_label("Diagnoses").check()
    page.get_by_role("button", name="Ask the ledger").click()
    page.get_by_text("Decided and recorded on the ledger in transaction").wait_for()
    assert "treating" in page.inner_text("main").lower()

    # a patient's role cannot change; the admin is told why and nothing changed
    r = admin.request.post(f"/hospital-admin/users/{site.people.patient.user_id}/role",
                           form={"role": "gp", "csrf_token": admin.locator("input[name=csrf_token]").first.input_value()})
    assert r.status == 422 and "patient" in r.text()
    assert svc.chain_user(site.people.patient.user_id)["role"] == "patient"


def _sign_in_with(page, username: str, code: str, *, recovery: bool = False) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_role("button", name="Use my textual key").click()
    page.get_by_label("Your textual key").fill(KEY)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("The 6-digit code from your authenticator app").fill(code)
    if recovery:
        page.get_by_label("One of my recovery codes").check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("text=Signed in as")
