"""A patient's record as the vault releases it: by section, with withheld sections marked.

A released section holds its entries (one a satellite version: the hub it describes, the
attributes, when and from where it was loaded), its links (hub to hub) and its blobs. A section
that was not released is *absent* and carries only a marker saying it was withheld — whether
the patient has data in it or not, so the marker reveals nothing.

``digest()`` is the SHA-256 of the canonical JSON of exactly what is returned: the chain's
access log records it (step 10), so an auditor can later check a disclosed copy against it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .recordformat import utc_iso

WITHHELD_NOT_GRANTED = "not-granted"

_ISO: dict[_dt.datetime, str] = {}  # utc_iso of load times: a record has few distinct ones, a vault not many


def _iso(moment: _dt.datetime) -> str:
    text = _ISO.get(moment)
    if text is None:
        if len(_ISO) >= 4096:
            _ISO.clear()
        text = _ISO[moment] = utc_iso(moment)
    return text


@dataclass(frozen=True)
class HubRef:
    """A hub as a record shows it. ``key`` is the business key when it may be shown."""

    kind: str
    id: str
    type: str = ""
    key: str | None = None
    system: str | None = None
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    instant: str | None = None
    grain: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Built once per hub (a hub shows up in many entries and links), copied on every call.
        cached = self.__dict__.get("_as_dict")
        if cached is None:
            cached = {"kind": self.kind, "id": self.id}
            for k in ("type", "key", "system", "name", "latitude", "longitude", "altitude", "instant", "grain"):
                v = getattr(self, k)
                if v not in (None, ""):
                    cached[k] = v
            object.__setattr__(self, "_as_dict", cached)  # not a field: equality and hash ignore it
        return dict(cached)


@dataclass(frozen=True)
class Entry:
    """One satellite (its version current at the requested time) with its attributes."""

    satellite: str
    hub: HubRef
    attributes: dict[str, Any]
    loaded_at: _dt.datetime
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"satellite": self.satellite, "hub": self.hub.to_dict(), "attributes": self.attributes,
                "loaded_at": _iso(self.loaded_at), "source": self.source}


@dataclass(frozen=True)
class LinkEntry:
    name: str
    from_hub: HubRef
    to_hub: HubRef
    loaded_at: _dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {"link": self.name, "from": self.from_hub.to_dict(), "to": self.to_hub.to_dict(),
                "loaded_at": _iso(self.loaded_at)}


@dataclass(frozen=True)
class BlobRef:
    blob_id: str
    patient: str
    section: str
    media_type: str
    name: str
    size: int
    sha256: str
    store: str
    address: str
    loaded_at: _dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {"blob_id": self.blob_id, "section": self.section, "media_type": self.media_type,
                "name": self.name, "size": self.size, "sha256": self.sha256, "store": self.store,
                "address": self.address, "loaded_at": utc_iso(self.loaded_at)}


@dataclass
class SectionData:
    name: str
    entries: list[Entry] = field(default_factory=list)
    links: list[LinkEntry] = field(default_factory=list)
    blobs: list[BlobRef] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"status": "released", "entries": [e.to_dict() for e in self.entries],
                "links": [link.to_dict() for link in self.links], "blobs": [b.to_dict() for b in self.blobs]}


@dataclass
class PatientRecord:
    """A patient's record assembled from the vault, limited to the released sections."""

    patient: str
    format: str
    as_of: _dt.datetime | None
    read_at: _dt.datetime
    sections: dict[str, SectionData]
    withheld: dict[str, str]

    @property
    def released_sections(self) -> list[str]:
        return sorted(self.sections)

    def entries(self, section: str | None = None) -> list[Entry]:
        if section is not None:
            return list(self.sections[section].entries) if section in self.sections else []
        return [e for s in self.sections.values() for e in s.entries]

    def to_dict(self) -> dict[str, Any]:
        sections: dict[str, Any] = {name: data.to_dict() for name, data in self.sections.items()}
        for name, reason in self.withheld.items():
            sections[name] = {"status": "withheld", "reason": reason}
        return {
            "patient": self.patient,
            "format": self.format,
            "as_of": utc_iso(self.as_of) if self.as_of else None,
            "sections": dict(sorted(sections.items())),
        }

    def canonical_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_json()).hexdigest()
