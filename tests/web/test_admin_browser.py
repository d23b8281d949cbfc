"""A hospital admin's desk in the browser: treating relationships recorded and ended, a user
suspended (their next page sends them to sign in) and reinstated."""

from __future__ import annotations

import pytest

from tests.gateway.stack import enrol

from .pages import sign_in

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
