"""AuditContract on the embedded node: the trail by patient, by user and by time, paginated with
bookmarks, with time windows; and the ledger holds no personal data."""

from __future__ import annotations

import datetime as dt

from .conftest import Cast, World, refused


def _all(actor, fn, *args, page_size=2):
    out, bookmark = [], ""
    while True:
        page = actor.evaluate("AuditContract", fn, *args, page_size, bookmark)
        assert page["count"] <= page_size
        out += page["records"]
        bookmark = page["bookmark"]
        if not bookmark:
            return out


def test_trail_by_patient_user_and_time(world: World, cast: Cast):
    p = world.patient()
    doc = world.user("lothian", "specialist")
    world.treat(p, doc)
    t0 = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    # five requests an hour apart (the transaction time is the proposal's), one denied
    ids = []
    for i in range(5):
        sections = ["demographics"] if i == 2 else ["conditions"]
        r = doc.submit("TransportContract", "RequestAccess", p.name, sections, "treatment", "",
                       at=t0 + dt.timedelta(hours=i))
        ids.append(r["request_id"])
    decisions = _all(p, "AuditByPatient", p.name, "decision", "", "")
    assert [d["id"] for d in decisions] == ids
    assert [d["outcome"] for d in decisions] == ["granted", "granted", "denied", "granted", "granted"]
    assert decisions[2]["record"]["decision"] == [
        {"section": "demographics", "allowed": False, "reason": "no-rule", "basis": []}]
    assert decisions[2]["record"]["grant_id"] is None and decisions[2]["record"]["status"] == "denied"
    grants = _all(p, "AuditByPatient", p.name, "grant", "", "")
    assert [g["id"] for g in grants] == [ids[0], ids[1], ids[3], ids[4]]
    assert all(g["record"]["requester_id"] == doc.name and "live" in g["record"] for g in grants)
    # a time window [start, end)
    window = _all(p, "AuditByPatient", p.name, "decision", (t0 + dt.timedelta(hours=1)).isoformat(),
                  (t0 + dt.timedelta(hours=3)).isoformat())
    assert [d["id"] for d in window] == ids[1:3]
    # the same by user, and by time for auditors
    mine = _all(doc, "AuditByUser", doc.name, "decision", "", "")
    assert [d["id"] for d in mine] == ids
    by_time = _all(cast.auditor, "AuditByTime", "decision", (t0 + dt.timedelta(hours=4)).isoformat(),
                   (t0 + dt.timedelta(hours=4, seconds=1)).isoformat())
    assert ids[4] in [d["id"] for d in by_time]
    # the grant's entry shows its current status
    p.submit("TransportContract", "Revoke", ids[0], "patient-request", at=t0 + dt.timedelta(hours=5))
    again = p.evaluate("AuditContract", "AuditByPatient", p.name, "grant", "", "", 1, "")
    assert again["records"][0]["record"]["status"] == "revoked" and again["bookmark"]


def test_audit_readers_and_arguments(world: World, cast: Cast):
    p = world.patient()
    refused(403, "only patient", cast.spec.evaluate, "AuditContract", "AuditByPatient", p.name, "decision", "", "",
            10, "")
    refused(403, "only patient", world.admins["zmc"].evaluate, "AuditContract", "AuditByPatient", p.name,
            "decision", "", "", 10, "")
    assert world.admins["lothian"].evaluate("AuditContract", "AuditByPatient", p.name, "decision", "", "", 10,
                                            "")["count"] == 0
    refused(403, "only user", p.evaluate, "AuditContract", "AuditByUser", cast.spec.name, "decision", "", "", 10, "")
    refused(403, "only auditors", world.admins["lothian"].evaluate, "AuditContract", "AuditByTime", "access", "", "",
            10, "")
    refused(400, "kind", cast.auditor.evaluate, "AuditContract", "AuditByTime", "everything", "", "", 10, "")
    refused(400, "start", cast.auditor.evaluate, "AuditContract", "AuditByTime", "access", "last week", "", 10, "")
    refused(400, "end: must be after start", cast.auditor.evaluate, "AuditContract", "AuditByTime", "access",
            "2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z", 10, "")
    refused(400, "page_size", cast.auditor.evaluate, "AuditContract", "AuditByTime", "access", "", "", 1000, "")
    refused(400, "bookmark", cast.auditor.evaluate, "AuditContract", "AuditByTime", "access", "", "", 10, "zzz")


def test_the_ledger_holds_no_personal_data(world: World, cast: Cast):
    """Everything written for a request is pseudonymous ids, codes, times and hashes: scan every
    key and value the chaincode wrote and look for what a person would be identified by."""
    p = world.patient()
    world.treat(p, cast.spec)
    prop = cast.spec.proposal("TransportContract", "RequestAccess", [p.name, ["conditions"], "treatment", "other"],
                              {"justification": b"Mrs Jane Doe, DOB 01/02/1950, CHI 0102501234"})
    tx = prop.endorse()
    assert b"Jane Doe" not in tx.payload and b"0102501234" not in tx.payload
    assert tx.submit().status().successful
    if world.node is None:
        return  # real Fabric: its state database is the peer's own; the write set above is what it stores
    peer = world.node.peers["LothianMSP"]
    with peer.store.snapshot() as reader:
        rows = reader.range("serums", "", "")
    blob = b"".join(k.encode() + v for k, v, _ in rows)
    for needle in (b"Jane", b"Doe", b"01/02/1950", b"0102501234"):  # (hex digests may hold any digits)
        assert needle not in blob
