"""A clinician's "My patients": the patients they treat come from the chain's clinician → patient
index (recorded by the hospital's admin), each with a link to request access."""

from __future__ import annotations

import re

import pytest

from tests.gateway.stack import enrol

from .conftest import shot
from .pages import sign_in

pytestmark = pytest.mark.browser


def test_a_clinician_sees_the_patients_they_treat_and_requests_from_there(site, new_page):
    people = site.people
    gp = new_page()
    sign_in(gp, people.gp)
    table = gp.locator("table", has=gp.get_by_role("columnheader", name="Since"))
    row = table.locator("tr", has_text=people.patient.username)
    assert row.count() == 1 and "lothian" in row.inner_text() and "open" in row.inner_text()
    shot(gp, "clinician-my-patients")
    row.get_by_role("link", name=re.compile("Request access")).click()
    assert gp.get_by_label("Patient (pseudonymous id)").input_value() == people.patient.user_id

    # a clinician nobody recorded as treating anyone is told so
    other = enrol(site.world.services, "lothian", "specialist")
    page = new_page()
    sign_in(page, other)
    page.get_by_text("No treating relationship is recorded for you").wait_for()
