"""FHIR R5 export: validated resources, filtered by the same sections as any read."""

from __future__ import annotations

from fhir.resources.bundle import Bundle

from vault import Vault

from .conftest import ALL_SECTIONS, first_patient_id


def _by_type(bundle: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in bundle["entry"]:
        out.setdefault(e["resource"]["resourceType"], []).append(e["resource"])
    return out


def test_full_export_has_every_resource_type_and_validates(loaded: Vault):
    ref = loaded.find_patient(first_patient_id())
    bundle = loaded.export_fhir(ref)
    Bundle.model_validate(bundle)  # round-trips through fhir.resources
    res = _by_type(bundle)
    assert set(res) == {"Patient", "Encounter", "Condition", "Procedure", "MedicationAdministration", "Observation"}
    [patient] = res["Patient"]
    assert patient["name"][0] == {"use": "official", "family": "MacLeod", "given": ["Morag"]}
    assert patient["birthDate"] == "1958-03-14" and patient["gender"] == "female"
    assert patient["address"][0]["postalCode"] == "EH4 2XU"
    assert {"system": "urn:serums:national-id", "value": first_patient_id()} in patient["identifier"]
    encounters = res["Encounter"]
    assert len(encounters) == 2 and all(e["status"] == "completed" for e in encounters)
    assert encounters[0]["actualPeriod"]["start"] == "2020-01-13"
    assert encounters[0]["location"][0]["location"]["display"].startswith("Western General")
    enc_urls = {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"}
    admission_conditions = [c for c in res["Condition"] if "encounter" in c]
    assert admission_conditions and all(c["encounter"]["reference"] in enc_urls for c in admission_conditions)
    registry = [c for c in res["Condition"] if c.get("category", [{}])[0].get("text") == "cancer-registration"]
    assert registry[0]["stage"][0]["summary"]["text"] == "T3 N2 M0"
    assert registry[0]["code"]["coding"][0] == {"system": "http://hl7.org/fhir/sid/icd-10", "code": "C50.9"}
    meds = res["MedicationAdministration"]
    assert {m["medication"]["concept"]["text"] for m in meds} == {"Fluorouracil", "Epirubicin", "Cyclophosphamide"}
    assert all(m["subject"]["reference"] == bundle["entry"][0]["fullUrl"] for m in meds)
    tox = [o for o in res["Observation"] if o["code"]["text"].startswith("Chemotherapy toxicity")]
    assert tox and {c["code"]["text"] for c in tox[0]["component"]} >= {"nausea_grade", "febrile_neutropenia"}
    charlson = [o for o in res["Observation"] if o["code"]["text"].startswith("Charlson")]
    assert charlson[0]["valueInteger"] == 8
    assert "meta" not in bundle  # nothing withheld
    assert loaded.export_fhir(ref) == bundle  # stable for the same record


def test_export_is_filtered_by_sections(loaded: Vault):
    ref = loaded.find_patient(first_patient_id())
    bundle = loaded.export_fhir(ref, sections=["conditions", "oncology.toxicity"])
    res = _by_type(bundle)
    assert set(res) == {"Patient", "Condition", "Observation"}
    assert "name" not in res["Patient"][0] and "birthDate" not in res["Patient"][0]
    assert all("encounter" not in c for c in res["Condition"])  # encounters were withheld: no dangling refs
    assert {t["code"] for t in bundle["meta"]["tag"]} == ALL_SECTIONS - {"conditions", "oncology.toxicity"}
    text = str(bundle)
    assert "MacLeod" not in text and "Fluorouracil" not in text
