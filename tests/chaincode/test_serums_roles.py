"""Each role's allowed and forbidden operations, through the Gateway client on the embedded node.

One Lothian patient, a live grant on their record (requested by the treating specialist) and a
Lothian dataset; every role of Lothian (plus an unregistered certificate) tries every operation:
an allowed one commits, a forbidden one is refused with 403 before anything is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

from network.client import GatewayError

from .conftest import Actor, Cast, World, uid

ROLES = ["admin", "hospital_admin", "patient", "gp", "specialist", "nurse", "insurer", "researcher", "auditor",
         "vault", "analytics", "unregistered"]
REGISTERED = set(ROLES) - {"admin", "unregistered"}


@dataclass
class Crew:
    world: World
    cast: Cast
    patient: Actor
    actors: dict[str, Actor]
    dataset: str
    grant: str
    token: str

    def fresh_grant(self) -> str:
        r = self.cast.spec.submit("TransportContract", "RequestAccess", self.patient.name, ["oncology.treatment"],
                                  "treatment", "")
        assert r["grant_id"], r
        return r["grant_id"]


def h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@pytest.fixture(scope="module")
def crew(world: World, cast: Cast) -> Crew:
    p = world.patient("lothian")
    world.treat(p, cast.spec)
    actors = {
        "admin": world.admins["lothian"],
        "hospital_admin": world.user("lothian", "hospital_admin"),
        "patient": p,
        "gp": world.user("lothian", "gp"),
        "specialist": cast.spec,
        "nurse": world.user("lothian", "nurse"),
        "insurer": world.user("lothian", "insurer"),
        "researcher": world.user("lothian", "researcher"),
        "auditor": cast.auditor,
        "vault": cast.vault,
        "analytics": cast.analytics,
        "unregistered": world.unregistered("lothian", "specialist"),
    }
    ds = uid("ds")
    world.admins["lothian"].submit("BudgetContract", "CreateDataset", ds, 100.0, 0.5)
    c = Crew(world, cast, p, actors, ds, "", h("token-0"))
    c.grant = c.fresh_grant()
    cast.vault.submit("TransportContract", "BindToken", c.grant, c.token)
    return c


def _register(c: Crew, a: Actor):
    ident, _ = c.world.identity("lothian", "nurse")
    return a.submit("UserContract", "RegisterUser", uid("n"), "nurse", ident.fingerprint)


OPS = {
    "RegisterUser": (_register, {"admin", "hospital_admin"}),
    "PutRule": (lambda c, a: a.submit("PolicyContract", "PutRule", {
        "rule_id": "roles-test", "roles": ["auditor"], "sections": ["documents"], "purposes": ["audit"]}),
        {"admin", "hospital_admin"}),
    "AddTreatment": (lambda c, a: a.submit("UserContract", "AddTreatment", c.patient.name, c.actors["gp"].name,
                                           "", ""), {"admin", "hospital_admin"}),
    "AddPreference": (lambda c, a: a.submit("PreferenceContract", "AddPreference", c.patient.name, {
        "effect": "allow", "grantee": {"kind": "role", "id": "nurse"}, "sections": ["contact"],
        "purposes": ["treatment"]}), {"patient"}),
    "ListPreferences": (lambda c, a: a.evaluate("PreferenceContract", "ListPreferences", c.patient.name),
                        {"patient", "auditor", "admin", "hospital_admin"}),
    "RequestAccess": (lambda c, a: a.submit("TransportContract", "RequestAccess", c.patient.name, ["conditions"],
                                            "treatment", ""), REGISTERED),
    "BreakGlass": (lambda c, a: a.submit("TransportContract", "BreakGlass", c.patient.name, ["conditions"],
                                         "clinical-emergency"), {"gp", "specialist", "nurse"}),
    "BindToken": (lambda c, a: a.submit("TransportContract", "BindToken", c.fresh_grant(), h(uid())), {"vault"}),
    "LogAccess": (lambda c, a: a.submit("TransportContract", "LogAccess", c.grant, c.token, ["oncology.treatment"],
                                        h("response")), {"vault"}),
    "Revoke": (lambda c, a: a.submit("TransportContract", "Revoke", c.fresh_grant(), "administrative"),
               {"patient", "specialist", "admin", "hospital_admin"}),
    "GetGrant": (lambda c, a: a.evaluate("TransportContract", "GetGrant", c.grant),
                 {"patient", "specialist", "vault", "auditor", "admin", "hospital_admin"}),
    "CreateDataset": (lambda c, a: a.submit("BudgetContract", "CreateDataset", uid("ds"), 1.0, 0.0),
                      {"admin", "hospital_admin"}),
    "Spend": (lambda c, a: a.submit("BudgetContract", "Spend", c.dataset, 0.01, 0.0, uid("rel")), {"analytics"}),
    "AuditByPatient": (lambda c, a: a.evaluate("AuditContract", "AuditByPatient", c.patient.name, "decision", "", "",
                                               5, ""), {"patient", "auditor", "admin", "hospital_admin"}),
    "AuditByTime": (lambda c, a: a.evaluate("AuditContract", "AuditByTime", "decision", "", "", 5, ""), {"auditor"}),
    "ListUsers": (lambda c, a: a.evaluate("UserContract", "ListUsers", "LothianMSP", 5, ""),
                  {"admin", "hospital_admin", "auditor"}),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_each_role_may_do_only_what_it_should(crew: Crew, op: str):
    fn, allowed = OPS[op]
    wrong = []
    for role in ROLES:
        actor = crew.actors[role]
        try:
            fn(crew, actor)
            ok, why = True, ""
        except GatewayError as exc:
            ok, why = False, f"{exc.chaincode_status} {exc.chaincode_message}"
            if role in allowed or exc.chaincode_status != 403:
                wrong.append((role, "refused", why))
                continue
        if ok != (role in allowed):
            wrong.append((role, "allowed" if ok else "refused", why))
    assert not wrong, f"{op}: {wrong}"


def test_forbidden_calls_leave_no_trace(crew: Crew):
    """A refused call writes nothing: the patient's trail holds only what allowed callers did."""
    before = crew.patient.evaluate("AuditContract", "AuditByPatient", crew.patient.name, "grant", "", "", 200, "")
    for role in ("nurse", "insurer", "unregistered", "admin"):
        with pytest.raises(GatewayError) as e:
            crew.actors[role].submit("TransportContract", "BindToken", crew.grant, h("x"))
        assert e.value.chaincode_status == 403
    after = crew.patient.evaluate("AuditContract", "AuditByPatient", crew.patient.name, "grant", "", "", 200, "")
    assert after["count"] == before["count"]
    g = crew.patient.evaluate("TransportContract", "GetGrant", crew.grant)
    assert h("x") not in g["token_hashes"]
