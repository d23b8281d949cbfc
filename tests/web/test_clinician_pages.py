"""A clinician's own pages read their whole recent trail, newest first (without a browser)."""

from __future__ import annotations

from gateway import flow
from gateway.web import clinician
from tests.gateway.stack import enrol
from tests.web.conftest import actor_of


def test_a_busy_clinicians_newest_grant_is_listed_first(site):
    svc = site.world.services
    _chi, ref = site.world.patient_ref("lothian")
    busy = actor_of(svc, enrol(svc, "lothian", "gp", treating=(ref,), prefix="dr.busy"))
    grants = []
    for _ in range(clinician.MAX_PAGE_SIZE + 5):  # more than one page of the chain's index
        d = flow.request_access(svc, busy, ref, "lothian", sections=["conditions"], purpose="treatment",
                                justification="direct-care")
        grants.append(d["grant_id"])
    assert all(grants)
    with site.app.test_request_context():
        trail = clinician._recent_trail(busy, "grant")
    listed = [r["record"]["grant_id"] for r in trail["records"]]
    assert listed[0] == grants[-1] and listed[-1] == grants[0]  # newest first, the oldest still there
    assert len(listed) == len(grants) and not trail["truncated"] and trail["days"] == 90
