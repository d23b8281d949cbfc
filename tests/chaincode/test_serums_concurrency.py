"""Key design under load: 50 concurrent RequestAccess for different patients all commit VALID
(no MVCC or phantom conflicts), and so do concurrent requests for the same patient."""

from __future__ import annotations

from network.protocol import VALID

from .conftest import Actor, Cast, World, concurrently, uid

N = 50


def _request(doc: Actor, patient: str):
    def job():
        tx = doc.proposal("TransportContract", "RequestAccess", [patient, ["conditions", "oncology.treatment"],
                                                                 "treatment", "direct-care"]).endorse()
        return tx.submit().status()
    return job


def test_fifty_concurrent_requests_for_different_patients_all_commit(world: World, cast: Cast):
    admin = world.admins["lothian"]
    # registration of 50 patients, concurrently too: disjoint keys
    certs = [world.identity("lothian", "patient", uid("pat")) for _ in range(N)]
    ids = [uid("pat") for _ in range(N)]
    regs = concurrently([
        (lambda i=i: admin.proposal("UserContract", "RegisterUser", [ids[i], "patient", certs[i][0].fingerprint])
         .endorse().submit().status()) for i in range(N)])
    assert [s.code for s in regs] == [VALID] * N
    doctors = [cast.spec, cast.gp, world.user("lothian", "specialist"), world.user("zmc", "specialist")]
    treats = concurrently([
        (lambda i=i: admin.proposal("UserContract", "AddTreatment", [ids[i], doctors[i % 4].name, "", ""])
         .endorse().submit().status()) for i in range(N)])
    assert [s.code for s in treats] == [VALID] * N
    world.synced(max(s.block_number for s in treats))
    statuses = concurrently([_request(doctors[i % 4], ids[i]) for i in range(N)])
    assert [s.code_name for s in statuses] == ["VALID"] * N
    assert len({s.block_number for s in statuses}) < N  # they really were batched together
    world.synced(max(s.block_number for s in statuses))
    for i in (0, N - 1):
        page = cast.auditor.evaluate("AuditContract", "AuditByPatient", ids[i], "grant", "", "", 10, "")
        assert page["count"] == 1 and page["records"][0]["record"]["live"]


def test_concurrent_requests_for_the_same_patient_also_commit(world: World, cast: Cast):
    p = world.patient()
    doctors = [cast.spec, cast.gp, cast.zspec]
    for d in doctors:
        world.treat(p, d)
    statuses = concurrently([_request(doctors[i % 3], p.name) for i in range(12)])
    assert [s.code_name for s in statuses] == ["VALID"] * 12
