import pytest

from .conftest import shot
from .pages import sign_in

pytestmark = pytest.mark.browser


def test_patient_pages_render(site, new_page):
    page = new_page()
    sign_in(page, site.people.patient)
    shot(page, "patient-home")
    for path, name in (("/patient/record", "record"), ("/patient/preferences", "prefs"), ("/patient/access-log", "log"),
                       ("/patient/grants", "grants")):
        page.goto(path)
        shot(page, f"patient-{name}")
    page.goto("/patient/share")
    page.get_by_role("button", name="Make a share code").click()
    shot(page, "patient-share")
