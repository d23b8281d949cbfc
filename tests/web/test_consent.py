"""Preferences as FHIR R5 Consent resources: decision, actor, purpose, period and sections."""

from __future__ import annotations

from fhir.resources.bundle import Bundle

from gateway.consent import preferences_bundle

RULES = {
    "p-1": {"pref_id": "p-1", "effect": "deny", "grantee_kind": "role", "grantee": "nurse", "sections": ["contact"],
            "purposes": ["treatment"], "valid_from": None, "valid_until": None, "created_at": "2026-12-05T00:00:00Z"},
    "p-2": {"pref_id": "p-2", "effect": "allow", "grantee_kind": "user", "grantee": "u-42",
            "sections": ["conditions", "comorbidities"], "purposes": ["research"],
            "valid_from": "2026-01-01T00:00:00+00:00", "valid_until": "2027-01-01T00:00:00+00:00",
            "created_at": "2026-12-05T00:00:00Z"},
    "p-3": {"pref_id": "p-3", "effect": "deny", "grantee_kind": "anyone", "grantee": None, "sections": ["documents"],
            "purposes": ["insurance"], "created_at": "2026-12-05T00:00:00Z"},
}


def test_each_preference_is_one_valid_r5_consent():
    bundle = preferences_bundle("patient-7", RULES)
    Bundle.model_validate(bundle)  # valid FHIR R5 (fhir.resources 8)
    consents = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    deny = consents["p-1"]
    assert deny["decision"] == "deny" and deny["subject"]["identifier"]["value"] == "patient-7"
    assert deny["provision"][0]["actor"][0]["role"]["coding"][0]["code"] == "nurse"
    assert deny["provision"][0]["purpose"][0]["code"] == "TREAT"
    assert deny["provision"][0]["code"][0]["coding"][0] == {"system": "urn:serums:section", "code": "contact"}
    allow = consents["p-2"]
    assert allow["decision"] == "permit"
    assert allow["provision"][0]["period"]["start"].startswith("2026-01-01")
    assert allow["provision"][0]["actor"][0]["reference"]["identifier"]["value"] == "u-42"
    assert [c["coding"][0]["code"] for c in allow["provision"][0]["code"]] == ["conditions", "comorbidities"]
    assert "actor" not in consents["p-3"]["provision"][0]  # anyone
