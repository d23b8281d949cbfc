"""The preferences page's preview, in the browser: what a role at a hospital (treating or not) or a
named person would get of my record, per part with the reason — and nothing is recorded."""

from __future__ import annotations

import pytest

from gateway import flow
from gateway import vocab as V

from .conftest import actor_of, shot
from .pages import sign_in

pytestmark = pytest.mark.browser


def _rows(page) -> dict[str, str]:
    rows = page.locator("#preview tbody tr")
    return {rows.nth(i).locator("td").nth(0).inner_text(): rows.nth(i).locator("td").nth(1).inner_text()
            + " / " + rows.nth(i).locator("td").nth(2).inner_text() for i in range(rows.count())}


def test_preview_a_role_and_a_person(site, new_page):
    svc = site.world.services
    patient = site.people.patient
    decisions = lambda: flow.patient_trail(svc, actor_of(svc, patient), patient.user_id, "decision", 200)["count"]  # noqa: E731
    before = decisions()
    page = new_page()
    sign_in(page, patient)
    page.goto("/patient/preferences")
    page.get_by_label("Their role", exact=True).select_option("gp")
    page.get_by_label("Their hospital", exact=True).select_option("lothian")
    page.get_by_label("Part of my record", exact=True).select_option("conditions")
    page.get_by_label("Asking for", exact=True).select_option("treatment")
    page.get_by_role("button", name="Preview", exact=True).click()
    assert _rows(page) == {"Diagnoses": "refused / not recorded as treating the patient"}, _rows(page)
    assert "Any GP at lothian, asking for" in page.locator("#preview h3").inner_text()
    page.get_by_label("Treating me", exact=True).check()
    page.get_by_role("button", name="Preview", exact=True).click()
    assert _rows(page) == {"Diagnoses": "given / allowed by the hospital's rules"}, _rows(page)
    assert "treating you" in page.locator("#preview h3").inner_text()
    shot(page, "patient-preferences-preview")
    # a named person: the GP who treats this patient; all parts
    page.get_by_label("A named person", exact=True).check()
    page.get_by_label("Their username", exact=True).fill(site.people.gp.username)
    page.get_by_label("Part of my record", exact=True).select_option("")
    page.get_by_role("button", name="Preview", exact=True).click()
    rows = _rows(page)
    assert rows["Diagnoses"].startswith("given") and rows["Personal details"].startswith("refused"), rows
    assert len(rows) == len(V.SECTIONS)
    page.get_by_label("Their username", exact=True).fill("nobody.here")
    page.get_by_role("button", name="Preview", exact=True).click()
    assert "nobody is called 'nobody.here'" in page.get_by_role("alert").inner_text()
    assert decisions() == before  # a preview records nothing
