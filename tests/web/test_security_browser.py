"""The pages' defences and manners, in the browser: forms without a valid CSRF token are refused,
an ended session sends the browser back to sign-in with the reason, a refused request is
explained, no role opens another role's pages, and axe-core finds no serious or critical
accessibility violation on the main pages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.gateway.stack import enrol

from .conftest import shot
from .pages import sign_in

pytestmark = pytest.mark.browser
AXE = Path(__file__).parent / "node" / "node_modules" / "axe-core" / "axe.min.js"


def test_a_form_without_a_valid_csrf_token_is_refused_and_changes_nothing(site, new_page):
    page = new_page()
    sign_in(page, site.people.patient)
    page.goto("/patient/preferences")
    before = page.locator("table").first.inner_text() if page.locator("table").count() else ""
    # the real form, its token tampered with (what a forged cross-site form amounts to)
    page.locator("form", has=page.get_by_role("button", name="Save this choice")).locator(
        "input[name=csrf_token]").evaluate("e => e.value = 'forged'")
    page.get_by_label("Diagnoses", exact=True).check()
    page.get_by_role("button", name="Save this choice").click()
    assert page.get_by_role("heading", name="Form refused").is_visible()
    assert "reload the page" in page.get_by_role("alert").inner_text()
    shot(page, "csrf-refused")
    # and without any token, straight from the browser's own cookie jar
    r = page.request.post("/patient/share", form={"minutes": "5"})
    assert r.status == 400 and "Form refused" in r.text()
    page.goto("/patient/preferences")
    after = page.locator("table").first.inner_text() if page.locator("table").count() else ""
    assert after == before


def test_an_expired_session_goes_back_to_sign_in_with_the_reason(site, new_page):
    page = new_page()
    account = enrol(site.world.services, "lothian", "gp")
    sign_in(page, account)
    page.goto("/clinician/")
    assert page.get_by_role("heading", name="My patients").is_visible()
    idle = site.world.services.auth.config.refresh_ttl
    site.clock.offset += idle + 60
    try:
        page.goto("/clinician/requests")
        assert page.url.split("?")[0].endswith("/sign-in")
        assert "Your session has ended" in page.get_by_role("status").inner_text()
        shot(page, "session-ended")
    finally:
        site.clock.offset -= idle + 60
    # signing in again brings the user back where they were going
    sign_in(page, account, path=page.url)
    assert page.url.endswith("/clinician/requests")


def test_sign_out_everywhere_ends_the_other_browsers_sessions(site, new_page):
    account = enrol(site.world.services, "lothian", "nurse")
    first, second = new_page(), new_page()
    sign_in(first, account)
    sign_in(second, account)
    second.get_by_role("button", name="Sign out everywhere").click()
    assert second.get_by_role("heading", name="You are signed out").is_visible()
    first.goto("/clinician/")
    assert first.url.split("?")[0].endswith("/sign-in")


def test_a_refused_request_is_explained(site, new_page):
    """A researcher asks for contact details for research: no rule of the hospital allows it, and
    the page says so per section, with nothing to open."""
    people = site.people
    page = new_page()
    researcher = enrol(site.world.services, "lothian", "researcher")
    sign_in(page, researcher)
    page.goto(f"/clinician/request?patient={people.patient.user_id}")
    page.get_by_label("Contact details", exact=True).check()
    page.get_by_label("Purpose").select_option("research")
    page.get_by_label("Justification").select_option("research-protocol")
    page.get_by_role("button", name="Ask the ledger").click()
    assert page.get_by_role("heading", name="The ledger's decision: refused").is_visible()
    assert "no rule of the hospital allows this" in page.locator("tr", has_text="Contact details").inner_text()
    assert "Nothing was granted" in page.inner_text("main")
    assert page.get_by_role("button", name="Open the record").count() == 0
    shot(page, "request-refused")


def test_a_mistyped_share_code_is_explained_inline(site, new_page):
    page = new_page()
    sign_in(page, site.people.gp)
    page.get_by_label("A patient's share code").fill("AAAA-BBBB-CCCC")
    page.get_by_role("button", name="Use the code").click()
    alert = page.get_by_role("alert")
    assert alert.is_visible() and "share code" in alert.inner_text().lower()


AREAS = {"patient": "/patient/", "gp": "/clinician/", "auditor": "/auditor/", "admin": "/hospital-admin/"}


@pytest.mark.parametrize("who", list(AREAS))
def test_each_role_cannot_open_another_roles_pages(site, new_page, who):
    account = getattr(site.people, who)
    page = new_page()
    sign_in(page, account)
    for other, path in AREAS.items():
        response = page.goto(path)
        if other == who:
            assert response.status == 200, path
            continue
        assert response.status == 403, (who, path)
        assert page.get_by_role("heading", name="Forbidden").is_visible()
        assert re.search(r"you are signed in as an? ", page.inner_text("main"))
        # and its forms refuse too (with a valid CSRF token of this session)
    csrf = page.goto(AREAS[who]) and page.locator("input[name=csrf_token]").first.input_value()
    for other, path in AREAS.items():
        if other != who:
            r = page.request.post(path.rstrip("/") + "/anything", form={"csrf_token": csrf})
            assert r.status in (403, 404, 405), (who, path, r.status)
            assert r.status != 200


def test_pages_send_a_strict_csp_and_a_hardened_cookie(site, new_page):
    page = new_page()
    response = page.goto("/sign-in")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    sign_in(page, site.people.auditor)
    cookie = next(c for c in page.context.cookies() if c["name"] == "serums_web")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert not cookie["secure"]  # plain HTTP on loopback here; over TLS it is Secure (test_pages.py)


MAIN_PAGES = {
    "patient": ["/patient/", "/patient/record", "/patient/preferences", "/patient/share", "/patient/access-log",
                "/patient/grants"],
    "gp": ["/clinician/", "/clinician/request", "/clinician/requests", "/clinician/break-glass", "/notifications"],
    "auditor": ["/auditor/trail", "/auditor/break-glass", "/auditor/ledger", "/auditor/blocks"],
    "admin": ["/hospital-admin/users", "/hospital-admin/rules", "/hospital-admin/invitations",
              "/hospital-admin/treatments", "/hospital-admin/desk"],
}


@pytest.mark.parametrize("who", list(MAIN_PAGES))
def test_axe_finds_no_serious_or_critical_violation(site, browser, who):
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (scripts/setup.sh runs npm ci in tests/web/node)")
    source = AXE.read_text()
    # axe is injected by the test; the pages' own CSP (no inline script) is bypassed for it only
    ctx = browser.new_context(base_url=site.url, bypass_csp=True)
    try:
        page = ctx.new_page()
        page.set_content("<!doctype html><html lang=en><title>t</title><body><main><input></main></body></html>")
        assert any(v["id"] == "label" for v in _axe(page, source)), "axe must flag an unlabelled field"
        paths = ["/sign-in", "/enrol"] + MAIN_PAGES[who]
        found = []
        for path in ("/sign-in", "/enrol"):
            page.goto(path)
            found += _axe(page, source)
        sign_in(page, getattr(site.people, who))
        for path in MAIN_PAGES[who]:
            page.goto(path)
            found += _axe(page, source)
        assert not found, json.dumps(found, indent=1)[:3000]
        assert len(paths) >= 3
    finally:
        ctx.close()


def _axe(page, source: str) -> list[dict]:
    page.add_script_tag(content=source)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"page": page.url, "id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]
