"""UserContract: a clinician's patients are a partial-key range over the ``tc`` index (clinician,
patient) that AddTreatment writes beside the relationship itself — no scan of every relationship."""

from __future__ import annotations

import datetime as dt

import pytest

from chaincode.serums import keys

from .conftest import Cast, World, refused


def test_a_clinicians_patients_are_listed_from_the_index(world: World, cast: Cast):
    doc = world.user("zmc", "specialist")
    p1, p2, p3 = world.patient(), world.patient(), world.patient("zmc")
    other = world.patient()
    world.treat(p1, doc)
    world.treat(p3, doc)
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ended = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    world.treat(p2, doc, past, ended)
    world.treat(other, cast.spec)  # someone else's patient is not in this clinician's list

    mine = doc.evaluate("UserContract", "ListPatientsOfClinician", doc.name, False, 50, "")
    by_patient = {r["patient"]: r for r in mine["records"]}
    assert set(by_patient) == {p1.name, p2.name, p3.name}
    assert by_patient[p1.name]["current"] and by_patient[p1.name]["patient_hospital"] == "LothianMSP"
    assert by_patient[p3.name]["patient_hospital"] == "ZmcMSP"
    assert not by_patient[p2.name]["current"] and by_patient[p2.name]["end"] is not None
    current = doc.evaluate("UserContract", "ListPatientsOfClinician", doc.name, True, 50, "")
    assert {r["patient"] for r in current["records"]} == {p1.name, p3.name}

    # ending a relationship keeps it in the index, no longer current
    world.admins["lothian"].submit("UserContract", "EndTreatment", p1.name, doc.name)
    current = doc.evaluate("UserContract", "ListPatientsOfClinician", doc.name, True, 50, "")
    assert {r["patient"] for r in current["records"]} == {p3.name}
    # recording it again (a new version) does not duplicate the entry
    world.treat(p1, doc)
    again = doc.evaluate("UserContract", "ListPatientsOfClinician", doc.name, False, 50, "")
    assert sorted(r["patient"] for r in again["records"]) == sorted({p1.name, p2.name, p3.name})

    # paginated by the index's keys
    first = doc.evaluate("UserContract", "ListPatientsOfClinician", doc.name, False, 2, "")
    assert first["count"] == 2 and first["bookmark"]
    rest = doc.evaluate("UserContract", "ListPatientsOfClinician", doc.name, False, 2, first["bookmark"])
    assert {r["patient"] for r in first["records"] + rest["records"]} == {p1.name, p2.name, p3.name}
    assert first["bookmark"].startswith(keys.ck("tc", doc.name))


def test_only_the_clinician_their_hospitals_admin_or_an_auditor_list_their_patients(world: World, cast: Cast):
    doc = world.user("zmc", "gp")
    p = world.patient()
    world.treat(p, doc)
    assert cast.auditor.evaluate("UserContract", "ListPatientsOfClinician", doc.name, True, 10, "")["count"] == 1
    assert world.admins["zmc"].evaluate("UserContract", "ListPatientsOfClinician", doc.name, True, 10, "")["count"] == 1
    refused(403, "may list these patients", cast.spec.evaluate, "UserContract", "ListPatientsOfClinician", doc.name,
            True, 10, "")
    refused(403, "may list these patients", world.admins["lothian"].evaluate, "UserContract",
            "ListPatientsOfClinician", doc.name, True, 10, "")
    refused(403, "may list these patients", p.evaluate, "UserContract", "ListPatientsOfClinician", doc.name, True,
            10, "")
    refused(404, "clinician", cast.auditor.evaluate, "UserContract", "ListPatientsOfClinician", "nobody-here", True,
            10, "")
    refused(400, "page_size", doc.evaluate, "UserContract", "ListPatientsOfClinician", doc.name, True, 0, "")


# Embedded only: it simulates the chaincode as it was before the index by patching it in this
# process, where the embedded engine runs it (Fabric's chaincode servers are other processes).
@pytest.mark.parametrize("world", ["embedded"], indirect=True)
def test_relationships_recorded_before_the_index_are_indexed_by_their_hospitals_admin(world: World, monkeypatch):
    doc = world.user("lothian", "gp")
    p, z = world.patient(), world.patient("zmc")
    with monkeypatch.context() as m:  # the chaincode before the index: AddTreatment wrote no tc entry
        m.setattr(keys, "treated_by", lambda clinician, patient: keys.ck("old", clinician, patient))
        world.treat(p, doc)
        world.treat(z, doc)
    assert doc.evaluate("UserContract", "ListPatientsOfClinician", doc.name, False, 50, "")["records"] == []
    refused(403, "hospital admin", doc.submit, "UserContract", "IndexTreatments", 50, "")

    def index(admin) -> int:
        added, bookmark = 0, ""
        while True:
            r = admin.submit("UserContract", "IndexTreatments", 3, bookmark)
            added, bookmark = added + r["indexed"], r["bookmark"]
            if not bookmark:
                return added

    assert index(world.admins["lothian"]) == 1  # its own patients only
    listed = doc.evaluate("UserContract", "ListPatientsOfClinician", doc.name, False, 50, "")["records"]
    assert [r["patient"] for r in listed] == [p.name]
    assert index(world.admins["zmc"]) == 1
    listed = doc.evaluate("UserContract", "ListPatientsOfClinician", doc.name, False, 50, "")["records"]
    assert sorted(r["patient"] for r in listed) == sorted([p.name, z.name])
    assert index(world.admins["lothian"]) == 0  # nothing twice
