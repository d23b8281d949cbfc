"""The fabrication studio in a browser (Debian's chromium through Playwright): a researcher copies
the packaged project, edits a rule in the form and sees the text follow (and back), zooms into a
nested sub-expression, fabricates samples straight from the editor, profiles an uploaded table and
runs a fabrication to its report; bad input is answered inline; other roles are refused."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tests.gateway.stack import enrol
from tests.web.conftest import shot
from tests.web.pages import sign_in
from tests.web.test_studio import table_csv

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def researcher(site):
    if "researcher" not in site.people.extra:
        site.people.extra["researcher"] = enrol(site.app.extensions["serums_services"], "lothian", "researcher",
                                                prefix="researcher")
    return site.people.extra["researcher"]


def copy_packaged(page, name: str) -> None:
    page.goto("/studio/")
    page.get_by_label("Project name").first.fill(name)
    page.get_by_role("button", name="Copy into my studio").click()
    page.wait_for_selector(f"h1:has-text('Data project {name}')")


def text_of(page) -> str:
    return page.locator("#rule-text").input_value()


def wait_text(page, expected: str) -> None:
    page.wait_for_function("t => document.querySelector('#rule-text').value === t", arg=expected)


def round_trip(page, action) -> None:
    """Do something in the editor and wait until the server's answer has replaced it."""
    with page.expect_response(lambda r: "/rules/edit" in r.url):
        action()
    page.wait_for_selector("#rule-editor:not(.htmx-request)")
    page.wait_for_timeout(100)  # htmx settles the swapped content


def type_text(page, text: str) -> None:
    round_trip(page, lambda: (page.locator("#rule-text").fill(text), page.locator("#rule-text").blur()))


def test_a_rule_edited_in_the_form_shows_in_the_text_and_back(site, new_page, researcher):
    page = new_page()
    sign_in(page, researcher)
    page.get_by_role("link", name="Fabrication studio").click()
    copy_packaged(page, "ecc")
    shot(page, "studio-01-project")
    page.locator("#table-ndc_smr01").get_by_role("link", name="discharge_not_before_admission").first.click()
    assert text_of(page) == "discharge_date >= admission_date"
    assert page.locator("#op").input_value() == ">="
    # the form changes, the text follows (a round trip through the parser and printer)
    round_trip(page, lambda: page.locator("#op").select_option(">"))
    wait_text(page, "discharge_date > admission_date")
    round_trip(page, lambda: page.locator("#arg-1").select_option("operation_date"))  # the columns the metadata knows
    wait_text(page, "discharge_date > operation_date")
    # the text changes, the form follows
    type_text(page, "length_of_stay >= 0 and (discharge_date >= admission_date or length_of_stay == 0)")
    assert page.locator("#op").input_value() == "and"
    assert page.locator("#kind-0").input_value() == "expression" and page.locator("#kind-1").input_value() == "expression"
    shot(page, "studio-02-editor-from-text")
    # zoom into the nested "or" and change one of its operands in the form
    round_trip(page, lambda: page.get_by_role("button", name="Zoom in: operand 2").click())
    assert page.locator("#op").input_value() == "or"
    round_trip(page, lambda: page.get_by_role("button", name="Zoom in: operand 2").click())
    assert page.locator("#op").input_value() == "=="
    assert page.locator("#arg-0").input_value() == "length_of_stay"
    round_trip(page, lambda: (page.locator("#arg-1").fill("1"), page.locator("#arg-1").blur()))
    wait_text(page, "length_of_stay >= 0 and (discharge_date >= admission_date or length_of_stay == 1)")
    assert page.get_by_text("Zoomed into").is_visible()
    shot(page, "studio-03-editor-zoomed")
    round_trip(page, lambda: page.get_by_role("button", name="the whole rule").click())
    assert page.locator("#op").input_value() == "and"
    # a broken rule is shown inline, never saved
    type_text(page, "length_of_stay >= ")
    assert "syntax error" in page.locator("#rule-problem").inner_text()
    type_text(page, "no_such_column > 1")
    assert "no_such_column" in page.locator("#rule-problem").inner_text()
    shot(page, "studio-04-editor-problem")
    round_trip(page, lambda: page.get_by_role("button", name="Save rule").click())
    assert "Rule not valid" in page.locator("#rule-problem").inner_text()
    page.locator("#rule-text").fill("length_of_stay >= 0 and discharge_date >= admission_date")
    round_trip(page, lambda: page.get_by_role("button", name="Apply the text").click())
    wait_text(page, "length_of_stay >= 0 and discharge_date >= admission_date")
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_selector("text=Rule saved")
    assert page.locator("#table-ndc_smr01").get_by_text(
        "length_of_stay >= 0 and discharge_date >= admission_date").first.is_visible()
    # the saved rule is fabricated and checked like every other (a project of rules: no distinguisher)
    page.get_by_label("Rows of each root table").fill("40")
    page.get_by_role("button", name="Run the fabrication").click()
    page.wait_for_selector("text=rule validity", timeout=300_000)
    page.get_by_text("The table of rules").click()
    row = page.locator("table.studio-report tr", has_text="discharge_not_before_admission")
    assert "length_of_stay >= 0 and discharge_date >= admission_date" in row.inner_text()
    assert "100.00 %" in row.inner_text()
    assert page.get_by_text("No distinguisher or privacy report").is_visible()
    shot(page, "studio-09-rules-report")


def test_a_new_rule_starts_from_its_column_and_samples_differ(site, new_page, researcher):
    page = new_page()
    sign_in(page, researcher, path="/studio/")
    copy_packaged(page, "ecc2")
    page.get_by_role("link", name="New rule on ndc_smr01.length_of_stay").click()
    page.wait_for_selector("#rule-text")
    assert text_of(page).startswith("length_of_stay >= ")  # from the column's type and range
    samples = []
    for _ in range(2):
        old = page.locator("#rule-sample").inner_text()
        page.get_by_role("button", name="Fabricate sample").click()
        page.wait_for_function("o => document.querySelector('#rule-sample').innerText !== o && "
                               "document.querySelector('#rule-sample table')", arg=old)
        samples.append(page.locator("#rule-sample").inner_text())
    shot(page, "studio-05-sample")
    seeds = [re.search(r"seed (\d+)", s)[1] for s in samples]
    rows = [s.split("\n", 1)[1] for s in samples]
    assert seeds[0] != seeds[1] and rows[0] != rows[1]


def test_a_studio_fabrication_runs_to_its_report(site, new_page, researcher, tmp_path):
    page = new_page()
    sign_in(page, researcher, path="/studio/")
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage\x00\x01")
    form = page.locator("form:has(input[name=from][value=table])")
    form.get_by_label("Project name").fill("broken")
    form.get_by_label("Table (CSV").set_input_files(str(bad))
    form.get_by_role("button", name="Profile the table").click()
    page.wait_for_selector(".problem:has-text('Upload not usable')")
    shot(page, "studio-00-home-bad-upload")
    good = tmp_path / "tumours.csv"
    good.write_bytes(table_csv())
    form = page.locator("form:has(input[name=from][value=table])")
    form.get_by_label("Project name").fill("tumours")
    form.get_by_label("Table (CSV").set_input_files(str(good))
    form.get_by_role("button", name="Profile the table").click()
    page.wait_for_selector("h1:has-text('Data project tumours')", timeout=120_000)
    assert page.locator("#table-tumours").get_by_text("tumour_size").first.is_visible()
    shot(page, "studio-06a-profiled-project")
    page.get_by_label("Rows of each root table").fill("300")
    page.get_by_role("button", name="Run the fabrication").click()
    page.wait_for_selector("#run-progress, .success", timeout=30_000)
    shot(page, "studio-06-progress")
    page.wait_for_selector("text=rule validity", timeout=300_000)
    assert page.locator(".success").inner_text().count("100.00 %") == 1
    for heading in ("Every rule on the output", "Do the fabricated rows pass for real?", "Privacy"):
        assert page.get_by_role("heading", name=heading).is_visible()
    assert page.locator("table.studio-verify tbody tr").count() == 4
    assert page.get_by_text("The features that give fabricated rows away").is_visible()
    assert page.locator("table.studio-privacy").get_by_text("Membership inference AUC").is_visible()
    page.wait_for_function("() => [...document.querySelectorAll('img.studio-plot')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("img.studio-plot").count() == 5
    shot(page, "studio-07-report")
    with page.expect_download() as dl:
        page.get_by_role("link", name="tumours.csv").click()
    data = pd.read_csv(dl.value.path())
    assert len(data) == 300 and "tumour_size" in data.columns


def test_a_table_over_the_upload_limit_is_refused_with_the_limit_named(site, new_page, researcher, tmp_path):
    page = new_page()
    sign_in(page, researcher, path="/studio/")
    big = tmp_path / "huge.csv"
    big.write_bytes(table_csv() * 1200)  # ~3 MiB, over the gateway's 2 MiB
    form = page.locator("form:has(input[name=from][value=table])")
    form.get_by_label("Project name").fill("huge")
    form.get_by_label("Table (CSV").set_input_files(str(big))
    with page.expect_response(lambda r: r.url.endswith("/studio/projects")) as answer:
        form.get_by_role("button", name="Profile the table").click()
    assert answer.value.status == 413
    assert page.get_by_role("heading", name="Payload too large").is_visible()
    assert "larger than the 2 MiB a form accepts" in page.locator(".problem").inner_text()
    shot(page, "studio-00b-home-upload-too-large")
    page.goto("/studio/")
    assert page.get_by_role("link", name="huge").count() == 0  # nothing was created


def test_a_running_studio_fabrication_is_cancelled_from_its_page(site, new_page, researcher):
    page = new_page()
    sign_in(page, researcher, path="/studio/")
    copy_packaged(page, "to-cancel")
    page.get_by_label("Rows of each root table").fill("200000")  # minutes of work: it is still running
    page.get_by_role("button", name="Run the fabrication").click()
    page.locator("#run-progress", has_text="Running").wait_for(timeout=60_000)
    shot(page, "studio-10-running")
    page.get_by_role("button", name="Cancel this fabrication").click()
    page.locator("#cancelled").wait_for()
    assert "Cancelled" in page.locator("#cancelled").inner_text()
    assert page.locator("#run-progress").count() == 0 and page.get_by_text("rule validity").count() == 0
    shot(page, "studio-11-cancelled")
    page.wait_for_timeout(1500)  # the stopped child writes nothing more: the outcome holds
    page.reload()
    assert page.locator("#cancelled").is_visible()
    page.get_by_role("link", name="to-cancel").click()
    assert "cancelled" in page.locator("table", has_text="cancelled").inner_text()


def test_only_researchers_and_hospital_admins_open_the_studio(site, new_page):
    for who in (site.people.gp, site.people.auditor):
        page = new_page()
        sign_in(page, who, path="/studio/")
        assert page.get_by_role("heading", name="Forbidden").is_visible()
        assert page.get_by_role("link", name="Fabrication studio").count() == 0
        csrf = page.locator("input[name=csrf_token]").first.input_value()  # the sign-out form's
        for path in ("/studio/projects", "/studio/projects/ecc/runs", "/studio/projects/ecc/tables/t/rules/edit"):
            assert page.request.post(path, form={"csrf_token": csrf, "name": "x", "from": "packaged",
                                                 "packaged": "edinburgh"}).status == 403, path
        assert page.request.get("/studio/projects/ecc").status == 403
    admin = new_page()
    sign_in(admin, site.people.admin, path="/studio/")
    assert admin.get_by_role("heading", name="Fabrication studio").is_visible()


def test_the_editor_works_without_javascript(site, browser, researcher):
    ctx = browser.new_context(base_url=site.url, java_script_enabled=False)
    ctx.set_default_timeout(20_000)
    try:
        page = ctx.new_page()
        sign_in(page, researcher, path="/studio/")
        copy_packaged(page, "nojs")
        page.locator("#table-ndc_smr01").get_by_role("link", name="discharge_not_before_admission").first.click()
        page.locator("#op").select_option("<=")
        page.get_by_role("button", name="Apply the form").click()
        assert text_of(page) == "discharge_date <= admission_date"
        page.locator("#rule-text").fill("discharge_date >= admission_date or length_of_stay == 0")
        page.get_by_role("button", name="Apply the text").click()
        assert page.locator("#op").input_value() == "or" and page.locator("#arg-1").input_value() == "length_of_stay == 0"
        page.locator("#rule-text").fill("discharge_date >=")
        with page.expect_response(lambda r: "/rules/edit" in r.url) as answer:
            page.get_by_role("button", name="Apply the text").click()
        assert answer.value.status == 422 and "syntax error" in page.locator("#rule-problem").inner_text()
        page.locator("#rule-text").fill("length_of_stay <= 2")
        page.get_by_role("button", name="Fabricate sample").click()  # a pending text is applied first
        assert page.locator("table.studio-sample tbody tr").count() == 6
        values = [int(v) for v in page.locator("table.studio-sample tbody td").all_inner_texts()]
        assert values and all(v <= 2 for v in values)
        shot(page, "studio-08-no-javascript")
    finally:
        ctx.close()


def test_the_studio_pages_pass_axe(site, browser, researcher):
    from .test_security_browser import AXE, _axe

    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE}")
    ctx = browser.new_context(base_url=site.url, bypass_csp=True)
    ctx.set_default_timeout(20_000)
    try:
        page = ctx.new_page()
        sign_in(page, researcher, path="/studio/")
        found = _axe(page, AXE.read_text())
        copy_packaged(page, "axe")
        found += _axe(page, AXE.read_text())
        page.get_by_role("link", name="New rule on patients.date_of_birth").click()
        page.get_by_role("button", name="Fabricate sample").click()
        page.wait_for_selector("table.studio-sample")
        found += _axe(page, AXE.read_text())
        assert not found, json.dumps(found, indent=1)[:3000]
    finally:
        ctx.close()
