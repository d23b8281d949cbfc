"""The researcher's pages in the browser, with the admins' budgets and the auditors' releases.

A hospital admin sets a dataset's privacy budget; a researcher defines a study over Zmc's patients
(the cohort page shows how many the ledger allows and only the number excluded), runs a training
job and follows it to its release (the dataset's remaining ε is then lower, the release record on
chain matches, the plots are drawn); the same study run again would overspend and is refused
before it starts, with the reason; the auditor sees the release and the refused job. Without
JavaScript, an encrypted-statistics job is followed by the page reloading itself.
"""

from __future__ import annotations

import itertools

import pytest

from gateway import flow
from gateway import ledger as L
from gateway import research as research_layer
from serums.bootstrap import DEFAULT_RULES
from tests.gateway.stack import enrol

from .conftest import actor_of, shot
from .pages import sign_in

pytestmark = pytest.mark.browser
RESEARCH_RULE = next(r for r in DEFAULT_RULES if r["rule_id"] == "research-with-consent")
CONSENT = {"effect": "allow", "grantee": {"kind": "role", "id": "researcher"}, "sections": ["*"],
           "purposes": ["research"]}
_n = itertools.count(1)


STUDY_SECTIONS = ["oncology.treatment", "oncology.toxicity", "comorbidities"]  # what the form ticks by default


@pytest.fixture(scope="module")
def research(site):
    """Zmc publishes the research rule ``serums up`` publishes; its fixture patients not yet on
    chain are enrolled, all but one consenting to research. Other test modules enrol Zmc patients
    too (the oncology tests' consent to research), so the expected cohort is not counted here but
    asked of the chain, candidate by candidate (``PreferenceContract:Preview``, which records
    nothing): the page must show the chain's numbers. Returns (researcher, consenting, excluded)."""
    svc = site.world.services
    L.submit(svc.admin_contract("zmc", "PolicyContract"), "PutRule", RESEARCH_RULE)
    refs = sorted(ref for h, ref in site.world.patients.values() if h == "zmc")
    added = 0
    for i, ref in enumerate(refs):
        if svc.chain_user(ref) is None:
            patient = enrol(svc, "zmc", "patient", user_id=ref, prefix="zmc-patient")
            if i:
                flow.add_preference(svc, actor_of(svc, patient), CONSENT)
                added += 1
    assert added, "the fixture's own consents are part of what the page must count"
    researcher = enrol(svc, "lothian", "researcher", prefix="dr.research")
    preview = svc.admin_contract("zmc", "PreferenceContract")
    candidates = research_layer.candidates(svc, ["zmc"])
    allowed = sum(
        1 for pid in candidates
        if set(L.evaluate(preview, "Preview", pid, {"user": researcher.reg.user.user_id}, STUDY_SECTIONS,
                          "research")["granted"]) == set(STUDY_SECTIONS))
    assert 0 < allowed < len(candidates)
    return researcher, allowed, len(candidates) - allowed


def _budget(page, dataset: str, epsilon: str, delta: str) -> None:
    page.get_by_role("link", name="Privacy budgets").click()
    page.get_by_label("Dataset").fill(dataset)
    page.get_by_label("Total ε").fill(epsilon)
    page.get_by_label("Total δ").fill(delta)
    page.get_by_role("button", name="Create the budget").click()
    page.get_by_text(f"Dataset {dataset} may spend").wait_for()


def _define(page, name: str, dataset: str, method: str, epsilon: str, delta: str) -> None:
    page.get_by_role("link", name="Define a study").first.click()
    page.get_by_label("Study name").fill(name)
    for h in ("lothian", "fcrb"):
        page.get_by_label(h, exact=True).uncheck()
    page.get_by_label("Dataset (its privacy budget pays)").select_option(dataset)
    page.get_by_label("ε per run").fill(epsilon)
    page.get_by_label("δ per run").fill(delta)
    page.get_by_label(method).check()
    page.get_by_label("Federated rounds (training)").fill("2")
    shot(page, f"research-define-{name}")
    page.get_by_role("button", name="Define the study and ask for its cohort").click()
    page.get_by_role("heading", name="Cohort the ledger allows").wait_for()


def _plots_drawn(page) -> list[int]:
    return page.eval_on_selector_all("img.plot", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")


def test_a_researchers_job_spends_the_budget_and_an_overspending_one_is_refused(site, new_page, research):
    researcher, consenting, excluded = research
    dataset = f"tox-web-{next(_n)}"
    admin = new_page()
    sign_in(admin, site.people.admin)
    _budget(admin, dataset, "1.5", "0.0001")
    assert "1.5" in admin.locator("tr", has_text=dataset).inner_text()
    shot(admin, "research-admin-budgets")

    page = new_page()
    sign_in(page, researcher)
    assert page.url.rstrip("/").endswith("/researcher")  # a researcher's start page
    _define(page, "tox-regimens", dataset, "DP-SGD (Opacus)", "1", "0.00001")
    cohort = page.locator(".cohort-size").inner_text()
    assert f"{consenting} patients in the cohort; {excluded} excluded" in cohort, cohort
    assert page.locator(".eps-remaining").inner_text() == "1.5"
    shot(page, "research-study")

    page.get_by_role("button", name="Run the job").click()
    page.get_by_role("heading", name="Progress").wait_for()
    job_id = page.url.rsplit("/", 1)[-1]
    page.get_by_role("heading", name="Release record on the ledger").wait_for(timeout=180_000)  # htmx, then reload
    assert page.locator(".job-status").inner_text().strip() == "released"
    assert page.locator(".eps-remaining").inner_text() == "0.5"  # the remaining budget, now lower
    record = page.get_by_role("region", name="Release record on the ledger").inner_text()
    assert "the ledger's digest and transaction match" in record and "its SHA-256 is the one recorded" in record
    for _ in range(240):  # drawn in the background (the utility curve trains on a public table), then shown
        if len(_plots_drawn(page)) == 2 and all(w > 300 for w in _plots_drawn(page)):
            break
        page.wait_for_timeout(500)
    assert len(_plots_drawn(page)) == 2 and all(w > 300 for w in _plots_drawn(page)), _plots_drawn(page)
    shot(page, "research-job-released")

    # the same study again: ε = 1 with 0.5 left — refused before anything runs, with the reason
    page.get_by_role("link", name="Studies and jobs", exact=True).click()
    page.get_by_role("link", name="tox-regimens").first.click()
    assert "more than the dataset has left" in page.locator(".warning").inner_text()
    with page.expect_response(lambda r: r.request.method == "POST" and "/jobs" in r.url) as answer:
        page.get_by_role("button", name="Run the job").click()
    assert answer.value.status == 409
    alert = page.get_by_role("alert").inner_text()
    assert "Privacy budget exceeded" in alert and "job needs ε=1" in alert and "has ε=0.5" in alert, alert
    assert page.locator(".eps-remaining").inner_text() == "0.5"
    refused = page.locator("tbody tr", has_text="refused")
    assert refused.count() == 1 and "0 of 2" in refused.inner_text()  # not a single round ran
    shot(page, "research-refused")

    auditor = new_page()
    sign_in(auditor, site.people.auditor)
    auditor.get_by_role("link", name="Releases and spend").click()
    section = auditor.get_by_role("region", name=dataset)
    assert "0.5 left" in section.inner_text().replace("\n", " ") and "rel-" in section.inner_text()
    assert auditor.locator("tbody tr", has_text="refused").filter(has_text=dataset).count() >= 1
    shot(auditor, "research-auditor-releases")
    # each of these pages is its role's only
    assert auditor.goto("/researcher/").status == 403 and page.goto("/hospital-admin/budgets").status == 403
    assert page.goto("/auditor/releases").status == 403 and admin.goto(f"/researcher/jobs/{job_id}").status == 403


def test_without_javascript_a_statistics_job_is_followed_by_reloading(site, browser, new_page, research):
    researcher, consenting, _ = research
    dataset = f"tox-web-{next(_n)}"
    admin = new_page()
    sign_in(admin, site.people.admin)
    _budget(admin, dataset, "3", "0")
    ctx = browser.new_context(base_url=site.url, java_script_enabled=False, viewport={"width": 1280, "height": 900})
    try:
        ctx.set_default_timeout(20_000)
        page = ctx.new_page()
        sign_in(page, researcher)
        _define(page, "tox-stats", dataset, "encrypted statistics (TenSEAL CKKS)", "1", "0")
        assert f"{consenting} patients in the cohort" in page.locator(".cohort-size").inner_text()
        page.get_by_role("button", name="Run the job").click()
        page.get_by_role("heading", name="Release record on the ledger").wait_for(timeout=180_000)  # meta refresh
        assert "of the summed ciphertext" in page.get_by_role("region", name="Release record on the ledger").inner_text()
        assert page.get_by_role("heading", name="Worst toxicity grade per regimen (rows)").is_visible()
        strata = page.locator("#strata")  # the same histogram per stratum (Charlson × performance status), folded
        assert "6 strata: charlson_index in 0 / 1–2 / ≥3 × performance_status in 0–1 / ≥2" in strata.inner_text()
        assert strata.locator("table").count() == 6
        assert page.locator(".eps-remaining").inner_text() == "2.0"
        page.locator("img.plot").nth(1).wait_for(timeout=120_000)  # the page reloads until they are drawn
        for src in [page.locator("img.plot").nth(i).get_attribute("src") for i in range(2)]:
            png = ctx.request.get(src, timeout=120_000)
            assert png.status == 200 and png.headers["content-type"] == "image/png" and png.body()[:4] == b"\x89PNG"
        page.reload()
        shot(page, "research-stats-nojs")
    finally:
        ctx.close()


def test_axe_finds_no_serious_or_critical_violation_on_the_research_pages(site, browser, research):
    from .test_security_browser import AXE, _axe

    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (scripts/setup.sh runs npm ci in tests/web/node)")
    source = AXE.read_text()
    ctx = browser.new_context(base_url=site.url, bypass_csp=True)  # axe is injected by the test only
    try:
        page, found = ctx.new_page(), []
        sign_in(page, research[0])
        paths = ["/researcher/", "/researcher/studies/new"]
        page.goto("/researcher/")
        for link in ("a[href*='/researcher/studies/study-']", "a[href*='/researcher/jobs/job-']"):
            paths += [page.locator(link).first.get_attribute("href")] if page.locator(link).count() else []
        for path in paths:
            page.goto(path)
            found += _axe(page, source)
        shot(page, "research-axe-last")
        for who, path in ((site.people.admin, "/hospital-admin/budgets"), (site.people.auditor, "/auditor/releases")):
            other = ctx.browser.new_context(base_url=site.url, bypass_csp=True).new_page()
            sign_in(other, who)
            other.goto(path)
            found += _axe(other, source)
            other.context.close()
        assert not found, found
        assert len(paths) >= 2
    finally:
        ctx.close()
