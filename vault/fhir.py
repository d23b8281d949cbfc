"""FHIR R5 export of a released record, validated with ``fhir.resources``.

The bundle is built *from a PatientRecord* — the result of a read that already applied the
section filter — so a FHIR export can never carry more than the same read would. Which
satellite becomes which resource is declared in the record format (``fhir: {profile, fields}``);
this module knows how to build each profile: Patient, Encounter, Condition, Procedure,
MedicationAdministration, Observation. Withheld sections are listed as ``Bundle.meta.tag``
entries (system ``urn:serums:withheld-section``), the FHIR form of the withheld marker.

Resource ids are UUIDv5 of (satellite, hub, index) so an export is stable for the same record.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources import get_fhir_model_class
from pydantic import ValidationError

from .errors import VaultError
from .record import Entry, HubRef, PatientRecord
from .recordformat import RecordFormat, utc_iso

_NS = uuid.UUID("6f1b7f62-4a8e-5b1c-9d3e-2f6a1c0e5d47")
WITHHELD_SYSTEM = "urn:serums:withheld-section"
PATIENT_REF_SYSTEM = "urn:serums:patient-ref"
NATIONAL_ID_SYSTEM = "urn:serums:national-id"
_GENDER = {"M": "male", "F": "female", "U": "unknown"}
_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


class FhirExportError(VaultError):
    """A resource built from the record does not validate (a format mapping problem)."""

    type = "fhir-export-invalid"
    status = 500


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "|".join(parts)))


def _value(prefix: str, v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {f"{prefix}Boolean": v}
    if isinstance(v, int):
        return {f"{prefix}Integer": v}
    if isinstance(v, float):
        return {f"{prefix}Quantity": {"value": v}}
    return {f"{prefix}String": str(v)}


def _cc(code: str | None, system: str | None = None, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if code is not None:
        coding: dict[str, Any] = {"code": str(code)}
        if system:
            coding["system"] = system
        out["coding"] = [coding]
    if text:
        out["text"] = text
    return out


class _Builder:
    def __init__(self, record: PatientRecord, fmt: RecordFormat):
        self.record = record
        self.fmt = fmt
        self.sats = fmt.satellites_by_name()
        self.patient_url = f"urn:uuid:{_uid('patient', record.patient)}"
        self.resources: list[tuple[str, dict[str, Any]]] = []
        self.encounters: dict[str, str] = {}  # event hub id -> Encounter fullUrl
        self.locations: dict[str, list[HubRef]] = {}
        for section in record.sections.values():
            for link in section.links:
                if link.to_hub.kind == "location":
                    self.locations.setdefault(link.from_hub.id, []).append(link.to_hub)

    def subject(self) -> dict[str, str]:
        return {"reference": self.patient_url}

    def add(self, resource: dict[str, Any], *parts: str) -> str:
        rid = _uid(resource["resourceType"], *parts)
        resource["id"] = rid
        url = f"urn:uuid:{rid}"
        self.resources.append((url, resource))
        return url

    def build(self) -> dict[str, Any]:
        patient: dict[str, Any] = {
            "resourceType": "Patient", "id": _uid("patient", self.record.patient),
            "identifier": [{"system": PATIENT_REF_SYSTEM, "value": self.record.patient}],
        }
        entries = [(e, self.sats.get(e.satellite)) for e in self.record.entries()]
        entries = [(e, spec[1].fhir) for e, spec in entries if spec is not None and spec[1].fhir is not None]
        # Encounters first, so that conditions and procedures can point at them.
        entries.sort(key=lambda pair: pair[1].profile != "encounter")
        for entry, fhir in entries:
            f, a = fhir.fields, entry.attributes
            if fhir.profile == "patient":
                self.patient(patient, entry, f, a)
            elif fhir.profile == "encounter":
                self.encounter(entry, f, a)
            elif fhir.profile == "condition":
                self.condition(entry, f, a)
            elif fhir.profile == "procedure":
                self.procedure(entry, f, a)
            elif fhir.profile == "medication-administration":
                self.medication(entry, f, a)
            elif fhir.profile == "observation":
                self.observation(entry, f, a)
        self.resources.insert(0, (self.patient_url, patient))
        bundle: dict[str, Any] = {
            "resourceType": "Bundle", "id": _uid("bundle", self.record.patient, str(self.record.as_of)),
            "type": "collection", "timestamp": utc_iso(self.record.read_at),
            "entry": [{"fullUrl": url, "resource": _validated(res)} for url, res in self.resources],
        }
        tags = [{"system": WITHHELD_SYSTEM, "code": s} for s in sorted(self.record.withheld)]
        if tags:
            bundle["meta"] = {"tag": tags}
        return _validated(bundle)

    # -- profiles
    def patient(self, patient: dict[str, Any], entry: Entry, f: dict, a: dict) -> None:
        if entry.hub.key and not any(i["system"] == NATIONAL_ID_SYSTEM for i in patient["identifier"]):
            patient["identifier"].append({"system": NATIONAL_ID_SYSTEM, "value": entry.hub.key})
        given, family = a.get(f.get("given_name", "")), a.get(f.get("family_name", ""))
        if given or family:
            name: dict[str, Any] = {"use": "official"}
            if family:
                name["family"] = family
            if given:
                name["given"] = [given]
            patient["name"] = [name]
        if a.get(f.get("birth_date", "")):
            patient["birthDate"] = a[f["birth_date"]]
        if a.get(f.get("gender", "")):
            patient["gender"] = _GENDER.get(a[f["gender"]], "unknown")
        if a.get(f.get("postcode", "")):
            patient["address"] = [{"use": "home", "postalCode": a[f["postcode"]]}]

    def _identifier(self, entry: Entry) -> list[dict[str, str]]:
        if entry.hub.kind == "event" and entry.hub.key:
            return [{"system": f"urn:serums:{self.fmt.name}:{entry.hub.type}", "value": entry.hub.key}]
        return []

    def encounter(self, entry: Entry, f: dict, a: dict) -> None:
        start, end = a.get(f.get("start", "")), a.get(f.get("end", ""))
        res: dict[str, Any] = {"resourceType": "Encounter", "status": "completed" if end else "in-progress",
                               "subject": self.subject()}
        ident = self._identifier(entry)
        if ident:
            res["identifier"] = ident
        if a.get(f.get("class", "")):
            res["class"] = [_cc(None, text=str(a[f["class"]]))]
        period = {k: v for k, v in (("start", start), ("end", end)) if v}
        if period:
            res["actualPeriod"] = period
        if a.get(f.get("service_type", "")):
            res["serviceType"] = [{"concept": _cc(None, text=str(a[f["service_type"]]))}]
        if a.get(f.get("discharge_disposition", "")):
            res["admission"] = {"dischargeDisposition": _cc(None, text=str(a[f["discharge_disposition"]]))}
        los = a.get(f.get("length_of_stay", ""))
        if los is not None:
            res["length"] = {"value": los, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}
        places = self.locations.get(entry.hub.id, [])
        if places:
            res["location"] = [{"location": {"display": p.name or p.key or p.id,
                                             "identifier": {"value": p.key or p.id}}} for p in places]
        self.encounters[entry.hub.id] = self.add(res, entry.satellite, entry.hub.id)

    def condition(self, entry: Entry, f: dict, a: dict) -> None:
        system = self.fmt.system_uri(f.get("system"))
        codes = f.get("codes", [])
        for i, col in enumerate([codes] if isinstance(codes, str) else codes):
            code = a.get(col)
            if code is None:
                continue
            res: dict[str, Any] = {
                "resourceType": "Condition", "subject": self.subject(),
                "clinicalStatus": _cc("active", _CONDITION_CLINICAL), "code": _cc(code, system),
            }
            if f.get("category"):
                res["category"] = [_cc(None, text=f["category"])]
            if entry.hub.id in self.encounters:
                res["encounter"] = {"reference": self.encounters[entry.hub.id]}
            if a.get(f.get("onset", "")):
                res["onsetDateTime"] = a[f["onset"]]
            if a.get(f.get("recorded", "")):
                res["recordedDate"] = a[f["recorded"]]
            if a.get(f.get("laterality", "")):
                res["bodySite"] = [_cc(None, text=str(a[f["laterality"]]))]
            stage = [str(a[c]) for c in f.get("stage", []) if a.get(c)]
            if stage:
                res["stage"] = [{"summary": _cc(None, text=" ".join(stage)), "type": _cc(None, text="TNM")}]
            if a.get(f.get("morphology", "")):
                res["evidence"] = [{"concept": _cc(str(a[f["morphology"]]), self.fmt.system_uri("icdo3"))}]
            ident = self._identifier(entry)
            if ident:
                res["identifier"] = ident
            self.add(res, entry.satellite, entry.hub.id, str(i))

    def procedure(self, entry: Entry, f: dict, a: dict) -> None:
        code = a.get(f.get("code", ""))
        if code is None:
            return
        res: dict[str, Any] = {"resourceType": "Procedure", "status": "completed", "subject": self.subject(),
                               "code": _cc(code, self.fmt.system_uri(f.get("system")))}
        if entry.hub.id in self.encounters:
            res["encounter"] = {"reference": self.encounters[entry.hub.id]}
        if a.get(f.get("performed", "")):
            res["occurrenceDateTime"] = a[f["performed"]]
        self.add(res, entry.satellite, entry.hub.id)

    def medication(self, entry: Entry, f: dict, a: dict) -> None:
        drug = a.get(f.get("medication", ""))
        when = a.get(f.get("occurred", ""))
        if drug is None or when is None:
            return
        res: dict[str, Any] = {
            "resourceType": "MedicationAdministration", "status": "completed", "subject": self.subject(),
            "medication": {"concept": _cc(drug, self.fmt.system_uri(f.get("system")), text=str(drug))},
            "occurenceDateTime": when,  # sic: R5 spells it so
        }
        dosage: dict[str, Any] = {}
        if a.get(f.get("dose", "")) is not None:
            dose: dict[str, Any] = {"value": a[f["dose"]]}
            if a.get(f.get("dose_unit", "")):
                dose["unit"] = str(a[f["dose_unit"]])
            dosage["dose"] = dose
        if a.get(f.get("route", "")):
            dosage["route"] = _cc(None, text=str(a[f["route"]]))
        if dosage:
            res["dosage"] = dosage
        ident = self._identifier(entry)
        if ident:
            res["identifier"] = ident
        self.add(res, entry.satellite, entry.hub.id)

    def observation(self, entry: Entry, f: dict, a: dict) -> None:
        res: dict[str, Any] = {"resourceType": "Observation", "status": "final", "subject": self.subject(),
                               "code": _cc(None, text=str(f["code"]))}
        if f.get("category"):
            res["category"] = [_cc(str(f["category"]), _OBS_CATEGORY)]
        if a.get(f.get("effective", "")):
            res["effectiveDateTime"] = a[f["effective"]]
        if f.get("value") and a.get(f["value"]) is not None:
            res.update(_value("value", a[f["value"]]))
        components = [{"code": _cc(None, text=c), **_value("value", a[c])}
                      for c in f.get("components", []) if a.get(c) is not None]
        if components:
            res["component"] = components
        ident = self._identifier(entry)
        if ident:
            res["identifier"] = ident
        self.add(res, entry.satellite, entry.hub.id)


def _validated(resource: dict[str, Any]) -> dict[str, Any]:
    cls = get_fhir_model_class(resource["resourceType"])
    try:
        model = cls.model_validate(resource)
    except ValidationError as exc:
        raise FhirExportError(f"{resource['resourceType']} does not validate: {exc}") from exc
    return model.model_dump(mode="json", exclude_none=True)


def record_to_bundle(record: PatientRecord, fmt: RecordFormat) -> dict[str, Any]:
    """A FHIR R5 ``Bundle`` (type collection) of the released record, every resource validated."""
    return _Builder(record, fmt).build()
