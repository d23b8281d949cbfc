"""A patient's preferences as FHIR R5 ``Consent`` resources (one per preference, in a collection
``Bundle``), validated with ``fhir.resources``: ``decision`` permit/deny, and one ``provision``
with the validity ``period``, the ``actor`` (a person, a role or a hospital; none for anyone), the
``purpose`` (HL7 v3 ActReason) and the record sections as ``code`` (``urn:serums:section``)."""

from __future__ import annotations

from typing import Any

from fhir.resources.bundle import Bundle

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PURPOSES = {"treatment": ("TREAT", "treatment"), "emergency": ("ETREAT", "emergency treatment"),
            "research": ("HRESCH", "healthcare research"), "insurance": ("COVERAGE", "coverage under policy or program"),
            "audit": ("HOPERAT", "healthcare operations")}
SECTION_SYSTEM = "urn:serums:section"


def _actor(pref: dict[str, Any]) -> list[dict[str, Any]]:
    kind, who = pref.get("grantee_kind"), pref.get("grantee")
    if kind == "user":
        return [{"reference": {"identifier": {"system": "urn:serums:user", "value": who}}}]
    if kind == "role":
        return [{"role": {"coding": [{"system": "urn:serums:role", "code": who}]}}]
    if kind == "hospital":
        return [{"reference": {"type": "Organization", "identifier": {"system": "urn:serums:hospital", "value": who}}}]
    return []  # anyone


def consent(patient_id: str, pref: dict[str, Any]) -> dict[str, Any]:
    """One preference (as ``PreferenceContract`` stores it) as a FHIR R5 Consent."""
    provision: dict[str, Any] = {
        "purpose": [{"system": ACT_REASON, "code": PURPOSES[p][0], "display": PURPOSES[p][1]}
                    if p in PURPOSES else {"system": "urn:serums:purpose", "code": p} for p in pref.get("purposes", [])],
        "code": [{"coding": [{"system": SECTION_SYSTEM, "code": s}]} for s in pref.get("sections", [])],
    }
    actor = _actor(pref)
    if actor:
        provision["actor"] = actor
    period = {k: pref[f"valid_{k2}"] for k, k2 in (("start", "from"), ("end", "until")) if pref.get(f"valid_{k2}")}
    if period:
        provision["period"] = period
    return {
        "resourceType": "Consent", "id": pref["pref_id"], "status": "active",
        "identifier": [{"system": "urn:serums:preference", "value": pref["pref_id"]}],
        "subject": {"identifier": {"system": "urn:serums:patient", "value": patient_id}},
        "date": (pref.get("created_at") or "")[:10] or None,
        "decision": "permit" if pref.get("effect") == "allow" else "deny",
        "provision": [provision],
    }


def preferences_bundle(patient_id: str, rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """All current preferences as a validated FHIR R5 collection Bundle of Consents (JSON-ready)."""
    entries = [{"fullUrl": f"urn:serums:preference:{pid}", "resource": consent(patient_id, pref)}
               for pid, pref in rules.items()]
    bundle = Bundle.model_validate({"resourceType": "Bundle", "type": "collection", "entry": entries})
    return bundle.model_dump(mode="json", exclude_none=True)


__all__ = ["preferences_bundle", "consent"]
