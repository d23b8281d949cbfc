"""The whole 10-step flow by clicking, in Debian's chromium: the admin publishes a rule, the patient
sets a preference and makes a share code, the doctor signs in with the picture grid and TOTP,
redeems the code, requests, reads the masked record; the patient sees the access; a nurse breaks
the glass, the patient is told, the auditor marks it unjustified and the token stops working."""

from __future__ import annotations

import re

import pytest

from .conftest import shot
from .pages import sign_in

pytestmark = pytest.mark.browser


def row_of(page, text: str):
    return page.locator("tr", has_text=text)


def test_the_ten_step_flow_by_clicking(site, new_page):
    people = site.people

    # step 1: the hospital admin publishes a rule — GPs treating the patient may read contact details
    admin = new_page()
    sign_in(admin, people.admin)
    admin.get_by_role("link", name="Access rules").click()
    admin.get_by_label(re.compile("^Rule name")).fill("gp-contact")
    form = admin.locator("form", has=admin.get_by_role("button", name="Publish on the ledger"))
    form.get_by_label("GP", exact=True).check()
    form.get_by_label("Contact details", exact=True).check()
    form.get_by_label("Treatment", exact=True).check()
    form.get_by_label("Only clinicians treating the patient", exact=True).check()
    form.get_by_role("button", name="Publish on the ledger").click()
    admin.get_by_text("Published in transaction").wait_for()
    assert admin.locator("table").first.locator("tr", has_text="gp-contact").count() == 1
    shot(admin, "admin-rules")

    # step 2: the patient refuses nurses their contact details; step 3: a share code
    patient = new_page()
    sign_in(patient, people.patient)
    patient.get_by_role("link", name="Who may see it").click()
    form = patient.locator("form", has=patient.get_by_role("button", name="Save this choice"))
    form.get_by_label("Refuse", exact=True).check()
    form.get_by_label("Everyone with the role", exact=True).check()
    form.get_by_label("Role", exact=True).select_option("nurse")
    form.get_by_label("Contact details", exact=True).check()
    form.get_by_role("button", name="Save this choice").click()
    patient.get_by_text("Saved. Recorded on the ledger").wait_for()
    assert "any nurse" in row_of(patient, "Refuse").first.inner_text()
    shot(patient, "patient-preferences")
    consents = patient.request.get("/patient/preferences.fhir.json").json()
    assert [e["resource"]["decision"] for e in consents["entry"]] == ["deny"]
    patient.get_by_role("link", name="Share with my doctor").click()
    patient.get_by_role("button", name="Make a share code").click()
    code = patient.locator("#share-code").inner_text().strip()
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", code)
    assert patient.locator(".qr svg").count() == 1

    # step 4: the doctor signs in with the picture grid and TOTP; step 3 on their side: the code
    gp = new_page()
    sign_in(gp, people.gp, method="graphical")
    gp.get_by_label("A patient's share code", exact=True).fill(code)
    gp.get_by_role("button", name="Use the code").click()
    gp.get_by_text("The share code was accepted").wait_for()
    # step 5: the request
    for label in ("Personal details", "Contact details", "Diagnoses", "Cancer treatment"):
        gp.get_by_label(label).check()
    gp.get_by_role("button", name="Ask the ledger").click()
    # step 6: the chain's decision per section, with the reason and the transaction id
    gp.get_by_role("heading", name=re.compile("The ledger's decision")).wait_for()
    shot(gp, "gp-decision")
    assert "granted" in row_of(gp, "Contact details").inner_text()
    assert "allowed by the hospital's rules" in row_of(gp, "Diagnoses").inner_text()
    assert "no rule of the hospital allows this" in row_of(gp, "Personal details").inner_text()
    assert re.search(r"transaction [0-9a-f]{64}", gp.locator("caption").inner_text())
    # steps 7-10: the token opens the record, personal details withheld
    gp.get_by_role("button", name="Open the record").click()
    gp.get_by_role("heading", name="Patient record").wait_for()
    shot(gp, "gp-record")
    personal = gp.locator("section", has=gp.get_by_role("heading", name=re.compile("Personal details")))
    assert "withheld" in personal.inner_text()
    diagnoses = gp.locator("section", has=gp.get_by_role("heading", name="Diagnoses"))
    assert "C50.9" in diagnoses.inner_text()

    # the patient sees who read what
    patient.get_by_role("link", name="Who saw what").click()
    line = row_of(patient, people.gp.username)
    assert line.count() >= 1 and "Contact details" in line.first.inner_text()
    assert "GP" in line.first.inner_text()
    shot(patient, "patient-access-log")

    # a nurse breaks the glass (the patient's refusal of contact details is overridden)
    nurse = new_page()
    sign_in(nurse, people.nurse)
    nurse.get_by_role("link", name="Emergency access").click()
    nurse.get_by_label("Patient (pseudonymous id)", exact=True).fill(people.patient.user_id)
    nurse.get_by_label("Contact details", exact=True).check()
    nurse.get_by_label("Diagnoses", exact=True).check()
    nurse.get_by_label("Reason", exact=True).select_option("patient-unconscious")
    nurse.get_by_label(re.compile("This is an emergency")).check()
    shot(nurse, "nurse-break-glass")
    nurse.get_by_role("button", name="Break the glass").click()
    nurse.get_by_text("Emergency access: the patient is told").wait_for()
    token = nurse.locator("input[name=token]").input_value()
    csrf = nurse.locator("input[name=csrf_token]").first.input_value()
    nurse.get_by_role("button", name="Open the record").click()
    contact = nurse.locator("section", has=nurse.get_by_role("heading", name=re.compile("Contact details")))
    assert "withheld" not in contact.inner_text()

    # the patient is told: on their overview, and by a notification (from the chain's events)
    patient.get_by_role("link", name="Overview").click()
    assert patient.get_by_role("alert").filter(has_text="Emergency access to your record").count() == 1
    shot(patient, "patient-home-break-glass")
    for _ in range(50):  # the notification service follows the chain's events in its own thread
        patient.get_by_role("link", name=re.compile("^Notifications")).click()
        if patient.get_by_text("broke the glass").count():
            break
        patient.wait_for_timeout(200)
    notes = patient.locator("ul.notes").inner_text()
    assert f"{people.nurse.username} (nurse, lothian) broke the glass" in notes
    assert f"{people.gp.username} (GP, lothian) opened your record" in notes
    assert "unread" in patient.get_by_role("link", name=re.compile("^Notifications")).inner_text()
    shot(patient, "patient-notifications")
    # one marked read in place (htmx swaps that notification and the count), then all of them
    before = patient.get_by_role("link", name=re.compile("^Notifications")).inner_text()
    url = patient.url
    patient.get_by_role("button", name="Mark as read").first.click()
    patient.wait_for_function("t => !document.querySelector('nav').innerText.includes(t)", arg=before.split()[-2])
    assert patient.url == url  # no page load: a partial update
    patient.get_by_role("button", name="Mark all as read").click()
    assert "unread" not in patient.get_by_role("link", name=re.compile("^Notifications")).inner_text()

    # the auditor marks it unjustified, which revokes the grant
    auditor = new_page()
    sign_in(auditor, people.auditor)
    auditor.get_by_role("link", name="Emergency reviews").click()
    pending = row_of(auditor, people.nurse.username)
    shot(auditor, "auditor-reviews")
    pending.get_by_role("button", name="Unjustified (revoke)").click()
    shot(auditor, "auditor-reviewed")
    auditor.get_by_text("The grant was revoked").wait_for()

    # the trail, filtered by patient and kind, on the page and as CSV
    auditor.goto(f"/auditor/trail?kind=break-glass&patient={people.patient.user_id}")
    assert auditor.locator("tbody tr").count() == 1 and people.nurse.username in auditor.locator("tbody").inner_text()
    csv_text = auditor.request.get(f"/auditor/trail.csv?kind=break-glass&patient={people.patient.user_id}").text()
    header, *rows = csv_text.strip().splitlines()
    assert header.startswith("kind,id,at,patient,requester_id") and len(rows) == 1
    assert people.nurse.user_id in rows[0] and "unjustified" in rows[0]

    # the block explorer shows the review's transaction, endorsed and valid
    auditor.get_by_role("link", name="Blocks").click()
    review = auditor.locator("tr", has_text="TransportContract:ReviewBreakGlass").first
    assert "VALID" in review.inner_text() and "BreakGlassReviewed" in review.inner_text()
    assert "LothianMSP" in review.inner_text()
    shot(auditor, "auditor-blocks")
    auditor.get_by_role("link", name="Ledger check").click()
    auditor.get_by_role("button", name="Verify the ledger now").click()
    assert "Consistent" in auditor.get_by_role("status").inner_text()

    # the nurse's token stops working (presented again from the nurse's browser, with its cookie)
    r = nurse.request.post("/clinician/record", form={"token": token, "csrf_token": csrf})
    assert r.status == 403, r.status
    assert "revoked" in r.text().lower()
