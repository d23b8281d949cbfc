"""The Smart Patient Record Format: how source tables map onto the T-P-O-L-E data vault.

A format is a YAML (or JSON) document. It names the record sections, reference data (locations
with coordinates, code systems) and, for each source table, its columns (type and constraints),
the person column, the hubs the row touches (objects, locations, events, times), the links
between them and the satellites that hold the attributes — every link and satellite in exactly
one section, because sections are the unit that grants, preferences and masking speak of.

Validation collects every problem with its path (``tables.ndc_smr01.links.admitted.to: …``)
instead of stopping at the first one, so that a format author fixes a file in one go. Row
conversion is compiled once per table into plain functions: ingest calls it for every row.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import FormatError

FORMAT_TAG = "serums/smart-patient-record@1"

HUB_KINDS = ("person", "object", "location", "event", "time")
OBJECT_TYPES = ("organisation", "drug", "device", "condition", "operation", "regimen", "practitioner")
EVENT_TYPES = (
    "admission", "treatment_cycle", "drug_administration", "scan", "toxicity_observation", "visit",
    "diagnosis", "assessment",
)
COLUMN_TYPES = ("string", "code", "integer", "decimal", "date", "datetime", "boolean")
MASKS = ("keep", "chi", "given_name", "family_name", "shift_date", "postcode", "identifier", "drop")
FHIR_PROFILES: dict[str, tuple[str, ...]] = {
    "patient": ("given_name", "family_name", "birth_date", "gender", "postcode"),
    "encounter": ("start", "end", "class", "service_type", "discharge_disposition", "length_of_stay"),
    "condition": ("codes", "system", "onset", "recorded", "morphology", "laterality", "stage", "category"),
    "procedure": ("code", "system", "performed"),
    "medication-administration": ("medication", "system", "dose", "dose_unit", "route", "occurred"),
    "observation": ("code", "category", "effective", "value", "components"),
}
PERSON = "person"
SECTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    required: bool = False
    pattern: str | None = None
    values: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    not_after_today: bool = False
    mask: str = "keep"


@dataclass(frozen=True)
class HubSpec:
    """A hub a row touches. ``key`` columns form the business key; an empty key means "no hub"."""

    name: str
    kind: str
    key: tuple[str, ...]
    type: str = ""
    system: str | None = None


@dataclass(frozen=True)
class LinkSpec:
    """A link from a person or event hub (the driving key) to another hub, in one section.

    For a given ``from`` hub, the most recently loaded link of the same name is the effective
    one: a later row that points elsewhere (or nowhere) supersedes it without deleting history.
    """

    name: str
    from_hub: str
    to_hub: str
    section: str


@dataclass(frozen=True)
class FhirSpec:
    profile: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class SatelliteSpec:
    name: str
    hub: str
    section: str
    columns: tuple[str, ...]
    skip_if_empty: tuple[str, ...] = ()
    fhir: FhirSpec | None = None


@dataclass(frozen=True)
class CheckSpec:
    """``not_before: [later, earlier]`` — when both are present, ``later`` must not precede ``earlier``."""

    later: str
    earlier: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    person_column: str
    person_section: str | None
    columns: Mapping[str, ColumnSpec]
    hubs: Mapping[str, HubSpec]
    links: Mapping[str, LinkSpec]
    satellites: Mapping[str, SatelliteSpec]
    checks: tuple[CheckSpec, ...] = ()

    def qualified(self, name: str) -> str:
        """Satellite and link names are stored qualified by their table: ``ndc_smr01.episode``."""
        return f"{self.name}.{name}"

    def hub(self, name: str) -> HubSpec | None:
        return None if name == PERSON else self.hubs[name]

    def converter(self) -> RowConverter:
        return RowConverter(self)


@dataclass(frozen=True)
class LocationRef:
    code: str
    name: str
    latitude: float | None
    longitude: float | None
    altitude: float | None


@dataclass(frozen=True)
class RecordFormat:
    """A validated Smart Patient Record Format."""

    name: str
    title: str
    version: int
    sections: Mapping[str, str]
    code_systems: Mapping[str, str]
    locations: Mapping[str, LocationRef]
    tables: Mapping[str, TableSpec]
    source: str = ""
    text: str = field(default="", repr=False, compare=False)  # the definition as loaded (stored in vaults)

    def table(self, name: str) -> TableSpec:
        try:
            return self.tables[name]
        except KeyError:
            raise FormatError(self.source or self.name, [
                f"no table {name!r} in format {self.name!r}{_suggest(name, self.tables)}; "
                f"tables: {', '.join(self.tables)}"
            ]) from None

    def system_uri(self, alias: str | None) -> str | None:
        if alias is None:
            return None
        return self.code_systems.get(alias, alias)

    def satellites_by_name(self) -> dict[str, tuple[TableSpec, SatelliteSpec]]:
        """Qualified satellite name -> (table, satellite): how reads find a payload's meaning."""
        out: dict[str, tuple[TableSpec, SatelliteSpec]] = {}
        for t in self.tables.values():
            for s in t.satellites.values():
                out[t.qualified(s.name)] = (t, s)
        return out

    def person_section(self) -> str:
        """The section that releases the person's national identifier (the person hub's key)."""
        for t in self.tables.values():
            if t.person_section:
                return t.person_section
        return "demographics" if "demographics" in self.sections else next(iter(self.sections))


# --------------------------------------------------------------------------- loading


def shipped_formats() -> list[str]:
    """Names of the formats shipped as package data (``vault/formats/*.yaml``)."""
    pkg = resources.files("vault.formats")
    return sorted(p.name[:-5] for p in pkg.iterdir() if p.name.endswith(".yaml"))


def load_format(name_or_path: str | Path) -> RecordFormat:
    """Load a shipped format by name (``edinburgh``) or a YAML/JSON file by path."""
    text: str
    source: str
    candidate = Path(name_or_path)
    if isinstance(name_or_path, str) and re.fullmatch(r"[a-z0-9_-]+", name_or_path) and not candidate.exists():
        res = resources.files("vault.formats") / f"{name_or_path}.yaml"
        if not res.is_file():
            raise FormatError(name_or_path, [
                f"no shipped format named {name_or_path!r}; shipped: {', '.join(shipped_formats())} "
                "(or give a path to a YAML file)"
            ])
        text, source = res.read_text(encoding="utf-8"), f"{name_or_path} (shipped)"
    else:
        try:
            text, source = candidate.read_text(encoding="utf-8"), str(candidate)
        except OSError as exc:
            raise FormatError(str(candidate), [f"cannot read: {exc.strerror or exc}"]) from exc
    return parse_format_text(text, source)


def parse_format_text(text: str, source: str = "<string>") -> RecordFormat:
    try:
        data = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise FormatError(source, [f"not valid YAML/JSON: {exc}"]) from exc
    return dataclasses.replace(parse_format(data, source), text=text)


def parse_format(data: Any, source: str = "<data>") -> RecordFormat:
    """Validate a format document and build the model; raise FormatError listing every problem."""
    v = _Validator(source)
    fmt = v.format(data)
    if v.problems or fmt is None:
        raise FormatError(source, v.problems or ["empty document"])
    return fmt


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Validator:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []

    def err(self, path: str, msg: str) -> None:
        self.problems.append(f"{path}: {msg}" if path else msg)

    def mapping(self, value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
        if not isinstance(value, dict):
            self.err(path, f"must be a mapping, not {type(value).__name__}")
            return {}
        allowed = list(allowed)
        for k in value:
            if k not in allowed:
                self.err(f"{path}.{k}" if path else str(k),
                         f"unknown key{_suggest(str(k), allowed)}; allowed: {', '.join(allowed)}")
        for k in required:
            if k not in value:
                self.err(path, f"missing required key {k!r}")
        return value

    def str_list(self, value: Any, path: str) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            self.err(path, "must be a list of names")
            return ()
        return tuple(value)

    # -- document
    def format(self, data: Any) -> RecordFormat | None:
        top = self.mapping(data, "", ["format", "name", "title", "version", "description", "sections",
                                      "code_systems", "locations", "tables"],
                           ["format", "name", "version", "sections", "tables"])
        if not top:
            return None
        if top.get("format") != FORMAT_TAG:
            self.err("format", f"must be {FORMAT_TAG!r}, not {top.get('format')!r}")
        name = top.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_-]+", name or ""):
            self.err("name", "must be a lower-case name (letters, digits, _ and -)")
            name = str(name)
        version = top.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            self.err("version", "must be a positive integer")
            version = 1
        sections = self.sections(top.get("sections"))
        systems = self.code_systems(top.get("code_systems", {}))
        locations = self.locations(top.get("locations", {}))
        tables: dict[str, TableSpec] = {}
        raw_tables = top.get("tables")
        if not isinstance(raw_tables, dict) or not raw_tables:
            self.err("tables", "must map at least one source table name to its mapping")
        else:
            for tname, tdata in raw_tables.items():
                t = self.table(str(tname), tdata, sections, systems)
                if t is not None:
                    tables[t.name] = t
        return RecordFormat(name=name, title=str(top.get("title") or name), version=version,
                            sections=sections, code_systems=systems, locations=locations, tables=tables,
                            source=self.source)

    def sections(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not value:
            self.err("sections", "must map each section name to its description")
            return {}
        out = {}
        for k, desc in value.items():
            if not isinstance(k, str) or not SECTION_RE.match(k):
                self.err(f"sections.{k}", "section names are lower-case words joined by dots "
                                          "(e.g. oncology.treatment)")
                continue
            out[k] = str(desc or "")
        return out

    def code_systems(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            self.err("code_systems", "must map aliases to code system URIs")
            return {}
        out = {}
        for k, uri in value.items():
            if not isinstance(uri, str) or ":" not in uri:
                self.err(f"code_systems.{k}", "must be a URI")
                continue
            out[str(k)] = uri
        return out

    def locations(self, value: Any) -> dict[str, LocationRef]:
        if not isinstance(value, dict):
            self.err("locations", "must map location codes to {name, latitude, longitude, altitude}")
            return {}
        out = {}
        for code, data in value.items():
            p = f"locations.{code}"
            d = self.mapping(data, p, ["name", "latitude", "longitude", "altitude"], ["name"])
            coords: dict[str, float | None] = {}
            for axis, lo, hi in (("latitude", -90, 90), ("longitude", -180, 180), ("altitude", -500, 9000)):
                raw = d.get(axis)
                if raw is None:
                    coords[axis] = None
                elif isinstance(raw, int | float) and not isinstance(raw, bool) and lo <= raw <= hi:
                    coords[axis] = float(raw)
                else:
                    self.err(f"{p}.{axis}", f"must be a number in [{lo}, {hi}]")
                    coords[axis] = None
            out[str(code)] = LocationRef(str(code), str(d.get("name", code)), coords["latitude"],
                                         coords["longitude"], coords["altitude"])
        return out

    # -- tables
    def table(self, name: str, data: Any, sections: Mapping[str, str],
              systems: Mapping[str, str]) -> TableSpec | None:
        p = f"tables.{name}"
        if not NAME_RE.match(name):
            self.err(p, "table names are lower-case identifiers")
        d = self.mapping(data, p, ["description", "person", "columns", "hubs", "links", "satellites", "checks"],
                         ["person", "columns", "satellites"])
        if not d:
            return None
        columns = self.columns(d.get("columns"), f"{p}.columns")
        person = self.mapping(d.get("person"), f"{p}.person", ["key", "section"], ["key"])
        person_col = str(person.get("key", ""))
        if person_col and person_col not in columns:
            self.err(f"{p}.person.key", f"{person_col!r} is not a column{_suggest(person_col, columns)}")
        elif person_col and not columns[person_col].required:
            self.err(f"{p}.person.key", f"column {person_col!r} must be required: every row is a patient's")
        person_section = person.get("section")
        if person_section is not None and person_section not in sections:
            self.err(f"{p}.person.section", f"unknown section {person_section!r}{_suggest(str(person_section), sections)}")
        hubs = self.hubs(d.get("hubs", {}), f"{p}.hubs", columns, systems)
        links = self.links(d.get("links", {}), f"{p}.links", hubs, sections)
        sats = self.satellites(d.get("satellites"), f"{p}.satellites", hubs, columns, sections, systems)
        checks = self.checks(d.get("checks", []), f"{p}.checks", columns)
        return TableSpec(name=name, description=str(d.get("description") or ""), person_column=person_col,
                         person_section=person_section, columns=columns, hubs=hubs, links=links,
                         satellites=sats, checks=checks)

    def columns(self, value: Any, path: str) -> dict[str, ColumnSpec]:
        if not isinstance(value, dict) or not value:
            self.err(path, "must map each column name to its type and constraints")
            return {}
        out = {}
        for cname, cdata in value.items():
            cp = f"{path}.{cname}"
            if isinstance(cdata, str):
                cdata = {"type": cdata}
            c = self.mapping(cdata, cp, ["type", "required", "pattern", "values", "aliases", "min", "max",
                                         "max_length", "not_after", "mask"], ["type"])
            ctype = c.get("type")
            if ctype not in COLUMN_TYPES:
                self.err(f"{cp}.type", f"unknown type {ctype!r}{_suggest(str(ctype), COLUMN_TYPES)}; "
                                       f"types: {', '.join(COLUMN_TYPES)}")
                ctype = "string"
            pattern = c.get("pattern")
            if pattern is not None:
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as exc:
                    self.err(f"{cp}.pattern", f"not a regular expression: {exc}")
                    pattern = None
            values = self.str_list(c.get("values", []), f"{cp}.values") if "values" in c else ()
            aliases = c.get("aliases", {})
            if not isinstance(aliases, dict):
                self.err(f"{cp}.aliases", "must map source spellings to values")
                aliases = {}
            aliases = {str(k).lower(): str(v) for k, v in aliases.items()}
            for k, v in aliases.items():
                if values and v not in values:
                    self.err(f"{cp}.aliases.{k}", f"maps to {v!r}, which is not one of the values")
            bounds: dict[str, float | None] = {}
            for b in ("min", "max"):
                raw = c.get(b)
                if raw is not None and (not isinstance(raw, int | float) or isinstance(raw, bool)):
                    self.err(f"{cp}.{b}", "must be a number")
                    raw = None
                bounds[b] = raw
            if (bounds["min"] is not None or bounds["max"] is not None) and ctype not in ("integer", "decimal"):
                self.err(cp, "min/max apply to integer and decimal columns only")
            max_length = c.get("max_length")
            if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
                self.err(f"{cp}.max_length", "must be a positive integer")
                max_length = None
            not_after = c.get("not_after")
            if not_after not in (None, "today"):
                self.err(f"{cp}.not_after", "the only supported bound is 'today'")
            if not_after and ctype not in ("date", "datetime"):
                self.err(f"{cp}.not_after", "applies to date and datetime columns only")
            mask = c.get("mask", "shift_date" if ctype in ("date", "datetime") else "keep")
            if mask not in MASKS:
                self.err(f"{cp}.mask", f"unknown mask {mask!r}{_suggest(str(mask), MASKS)}; masks: {', '.join(MASKS)}")
                mask = "keep"
            out[str(cname)] = ColumnSpec(
                name=str(cname), type=str(ctype), required=bool(c.get("required", False)), pattern=pattern,
                values=values, aliases=aliases, min=bounds["min"], max=bounds["max"], max_length=max_length,
                not_after_today=not_after == "today", mask=str(mask),
            )
        return out

    def hubs(self, value: Any, path: str, columns: Mapping[str, ColumnSpec],
             systems: Mapping[str, str]) -> dict[str, HubSpec]:
        if not isinstance(value, dict):
            self.err(path, "must map hub names to {kind, type, key}")
            return {}
        out = {}
        for hname, hdata in value.items():
            hp = f"{path}.{hname}"
            if hname == PERSON:
                self.err(hp, "'person' is the table's person hub (see 'person'); choose another name")
                continue
            h = self.mapping(hdata, hp, ["kind", "type", "key", "system"], ["kind", "key"])
            kind = h.get("kind")
            if kind not in HUB_KINDS or kind == PERSON:
                self.err(f"{hp}.kind", f"must be one of object, location, event, time, not {kind!r}")
                continue
            htype = h.get("type", "")
            if kind == "object" and htype not in OBJECT_TYPES:
                self.err(f"{hp}.type", f"object type must be one of {', '.join(OBJECT_TYPES)}")
            if kind == "event" and htype not in EVENT_TYPES:
                self.err(f"{hp}.type", f"event type must be one of {', '.join(EVENT_TYPES)}")
            if kind in ("location", "time") and htype:
                self.err(f"{hp}.type", f"{kind} hubs have no type")
            key = self.str_list(h.get("key", []), f"{hp}.key")
            if not key:
                self.err(f"{hp}.key", "must name at least one column")
            for k in key:
                if k not in columns:
                    self.err(f"{hp}.key", f"{k!r} is not a column{_suggest(k, columns)}")
            if kind in ("location", "time") and len(key) != 1:
                self.err(f"{hp}.key", f"a {kind} hub's key is exactly one column")
            if kind == "time" and key and key[0] in columns and columns[key[0]].type not in ("date", "datetime"):
                self.err(f"{hp}.key", f"a time hub's key column must be a date or datetime, "
                                      f"not {columns[key[0]].type}")
            system = h.get("system")
            if system is not None and kind != "object":
                self.err(f"{hp}.system", "only object hubs have a code system")
            if system is not None and system not in systems and ":" not in str(system):
                self.err(f"{hp}.system", f"unknown code system alias {system!r}{_suggest(str(system), systems)}")
            out[str(hname)] = HubSpec(name=str(hname), kind=str(kind), key=key, type=str(htype or ""),
                                      system=system)
        return out

    def links(self, value: Any, path: str, hubs: Mapping[str, HubSpec],
              sections: Mapping[str, str]) -> dict[str, LinkSpec]:
        if not isinstance(value, dict):
            self.err(path, "must map link names to {from, to, section}")
            return {}
        names = [PERSON, *hubs]
        out = {}
        for lname, ldata in value.items():
            lp = f"{path}.{lname}"
            if not NAME_RE.match(str(lname)):
                self.err(lp, "link names are lower-case identifiers")
            ld = self.mapping(ldata, lp, ["from", "to", "section"], ["from", "to", "section"])
            src, dst, sec = ld.get("from"), ld.get("to"), ld.get("section")
            for role, hub in (("from", src), ("to", dst)):
                if hub not in names:
                    self.err(f"{lp}.{role}", f"{hub!r} is not a hub of this table{_suggest(str(hub), names)}")
            if src in hubs and hubs[src].kind != "event":
                self.err(f"{lp}.from", "links start at the person or an event hub (their driving key)")
            if dst == PERSON:
                self.err(f"{lp}.to", "links point away from the person; use from: person")
            if src == dst:
                self.err(lp, "a link joins two different hubs")
            if sec not in sections:
                self.err(f"{lp}.section", f"unknown section {sec!r}{_suggest(str(sec), sections)}")
            out[str(lname)] = LinkSpec(name=str(lname), from_hub=str(src), to_hub=str(dst), section=str(sec))
        return out

    def satellites(self, value: Any, path: str, hubs: Mapping[str, HubSpec], columns: Mapping[str, ColumnSpec],
                   sections: Mapping[str, str], systems: Mapping[str, str]) -> dict[str, SatelliteSpec]:
        if not isinstance(value, dict) or not value:
            self.err(path, "must map satellite names to {hub, section, columns}")
            return {}
        out = {}
        for sname, sdata in value.items():
            sp = f"{path}.{sname}"
            if not NAME_RE.match(str(sname)):
                self.err(sp, "satellite names are lower-case identifiers")
            sd = self.mapping(sdata, sp, ["hub", "section", "columns", "skip_if_empty", "fhir"],
                              ["hub", "section", "columns"])
            hub = sd.get("hub")
            if hub != PERSON and (hub not in hubs or hubs[hub].kind != "event"):
                self.err(f"{sp}.hub", f"satellites hang on the person or an event hub of this table, not {hub!r}"
                                      f"{_suggest(str(hub), [PERSON, *hubs])}: they hold patient data, "
                                      "encrypted under the patient's key")
            sec = sd.get("section")
            if sec not in sections:
                self.err(f"{sp}.section", f"unknown section {sec!r}{_suggest(str(sec), sections)}")
            cols = self.str_list(sd.get("columns", []), f"{sp}.columns")
            if not cols:
                self.err(f"{sp}.columns", "must name at least one column")
            for c in cols:
                if c not in columns:
                    self.err(f"{sp}.columns", f"{c!r} is not a column{_suggest(c, columns)}")
            if len(set(cols)) != len(cols):
                self.err(f"{sp}.columns", "lists a column twice")
            skip = self.str_list(sd.get("skip_if_empty", []), f"{sp}.skip_if_empty")
            for c in skip:
                if c not in cols:
                    self.err(f"{sp}.skip_if_empty", f"{c!r} is not one of the satellite's columns")
            fhir = self.fhir(sd.get("fhir"), f"{sp}.fhir", cols, systems) if "fhir" in sd else None
            out[str(sname)] = SatelliteSpec(name=str(sname), hub=str(hub), section=str(sec), columns=cols,
                                            skip_if_empty=skip, fhir=fhir)
        return out

    def fhir(self, value: Any, path: str, cols: tuple[str, ...], systems: Mapping[str, str]) -> FhirSpec | None:
        d = self.mapping(value, path, ["profile", "fields"], ["profile", "fields"])
        profile = d.get("profile")
        if profile not in FHIR_PROFILES:
            self.err(f"{path}.profile", f"unknown profile {profile!r}{_suggest(str(profile), FHIR_PROFILES)}; "
                                        f"profiles: {', '.join(FHIR_PROFILES)}")
            return None
        fields = self.mapping(d.get("fields"), f"{path}.fields", FHIR_PROFILES[profile])
        for role, col in fields.items():
            if role not in FHIR_PROFILES[profile]:
                continue
            if role == "system":
                if col not in systems and ":" not in str(col):
                    self.err(f"{path}.fields.system", f"unknown code system alias {col!r}")
                continue
            if role == "category" or (role == "code" and profile == "observation"):
                if not isinstance(col, str):
                    self.err(f"{path}.fields.{role}", "must be a text")
                continue
            for c in self.str_list(col, f"{path}.fields.{role}"):
                if c not in cols:
                    self.err(f"{path}.fields.{role}", f"{c!r} is not one of the satellite's columns")
        if profile == "observation" and "code" not in fields:
            self.err(f"{path}.fields", "an observation needs a 'code' text")
        return FhirSpec(profile=str(profile), fields=dict(fields))

    def checks(self, value: Any, path: str, columns: Mapping[str, ColumnSpec]) -> tuple[CheckSpec, ...]:
        if not isinstance(value, list):
            self.err(path, "must be a list of checks")
            return ()
        out = []
        for i, item in enumerate(value):
            cp = f"{path}[{i}]"
            d = self.mapping(item, cp, ["not_before"], ["not_before"])
            pair = self.str_list(d.get("not_before", []), f"{cp}.not_before")
            if len(pair) != 2:
                self.err(f"{cp}.not_before", "must be [later_column, earlier_column]")
                continue
            for c in pair:
                if c not in columns:
                    self.err(f"{cp}.not_before", f"{c!r} is not a column{_suggest(c, columns)}")
                elif columns[c].type not in ("date", "datetime"):
                    self.err(f"{cp}.not_before", f"{c!r} is not a date or datetime column")
            out.append(CheckSpec(later=pair[0], earlier=pair[1]))
        return tuple(out)


# --------------------------------------------------------------------------- row conversion


class RowError(ValueError):
    """A row that cannot be converted; the message lists every problem in it."""


Converter = Callable[[Any], Any]


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)  # pandas/openpyxl empty cells


def _to_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _date_value(value: Any) -> str:
    if isinstance(value, _dt.datetime):
        if value.time() != _dt.time(0):
            raise ValueError(f"{value.isoformat()!r} has a time of day; expected a date (YYYY-MM-DD)")
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    text = str(value).strip()
    if len(text) > 10 and text[10] in "T " and text[11:].strip("0:.Z+") == "":
        text = text[:10]  # "2021-03-04T00:00:00" as written by some exporters
    if not _DATE_RE.match(text):
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        return _dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"{text!r} is not a valid calendar date") from None


def utc_iso(moment: _dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: the one spelling of instants in payloads and tokens."""
    return moment.astimezone(_dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _datetime_value(value: Any) -> str:
    if isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, _dt.date):
        moment = _dt.datetime.combine(value, _dt.time(0))
    else:
        text = str(value).strip()
        try:
            moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)  # documented: naive times are UTC
    return utc_iso(moment)


def _int_value(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(f"{value!r} is not a whole number")
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if f.is_integer():
            return int(f)
        raise ValueError(f"{text!r} is not a whole number") from None


def _decimal_value(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    try:
        f = float(value) if isinstance(value, int | float) else float(str(value).strip())
    except ValueError:
        raise ValueError(f"{str(value).strip()!r} is not a number") from None
    if not math.isfinite(f):
        raise ValueError(f"{value!r} is not a finite number")
    return f


def _bool_value(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{str(value).strip()!r} is not a boolean (true/false/1/0)")


def _bounded(col: ColumnSpec, parse: Converter) -> Converter:
    lo, hi = col.min, col.max
    if lo is None and hi is None:
        return parse

    def conv(raw: Any) -> Any:
        out = parse(raw)
        if lo is not None and out < lo:
            raise ValueError(f"{out} is below the minimum {lo:g}")
        if hi is not None and out > hi:
            raise ValueError(f"{out} is above the maximum {hi:g}")
        return out

    return conv


def _compile_column(col: ColumnSpec) -> Converter:
    """Build one function that turns a raw cell into the stored JSON value or raises ValueError.

    Cells arrive stripped when they are text (RowConverter does that); each type has a fast
    path for text — the CSV case, which is most of every ingest — and a general one.
    """
    if col.type in ("string", "code"):
        pattern = re.compile(col.pattern) if col.pattern else None
        lookup = {v.lower(): v for v in col.values}
        lookup.update(col.aliases)
        restrict = col.type == "code" and bool(lookup)
        max_length = col.max_length

        def conv_text(raw: Any) -> str:
            text = raw if type(raw) is str else _to_text(raw)
            if restrict:
                mapped = lookup.get(text.lower())
                if mapped is None:
                    raise ValueError(f"{text!r} is not one of {', '.join(col.values)}")
                text = mapped
            if max_length is not None and len(text) > max_length:
                raise ValueError(f"is {len(text)} characters long; at most {max_length}")
            if pattern is not None and not pattern.fullmatch(text):
                raise ValueError(f"{text!r} does not match {col.pattern}")
            return text

        return conv_text
    if col.type == "integer":
        def conv_int(raw: Any) -> int:
            if type(raw) is str:
                try:
                    return int(raw)
                except ValueError:
                    pass
            return _int_value(raw)

        return _bounded(col, conv_int)
    if col.type == "decimal":
        def conv_dec(raw: Any) -> float:
            if type(raw) is str:
                try:
                    f = float(raw)
                except ValueError:
                    raise ValueError(f"{raw!r} is not a number") from None
                if f != f or f in (math.inf, -math.inf):
                    raise ValueError(f"{raw!r} is not a finite number")
                return f
            return _decimal_value(raw)

        return _bounded(col, conv_dec)
    if col.type == "boolean":
        def conv_bool(raw: Any) -> bool:
            if type(raw) is str:
                low = raw.lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
            return _bool_value(raw)

        return conv_bool
    cap = col.not_after_today
    if col.type == "date":
        today = _dt.datetime.now(_dt.UTC).date().isoformat()

        def conv_date(raw: Any) -> str:
            if type(raw) is str and len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
                try:
                    _dt.date.fromisoformat(raw)
                except ValueError:
                    raise ValueError(f"{raw!r} is not a valid calendar date") from None
                out = raw
            else:
                out = _date_value(raw)
            if cap and out > today:
                raise ValueError(f"{out} is in the future")
            return out

        return conv_date

    def conv_datetime(raw: Any) -> str:
        out = _datetime_value(raw)
        if cap and out > utc_iso(_dt.datetime.now(_dt.UTC) + _dt.timedelta(minutes=5)):
            raise ValueError(f"{out} is in the future")
        return out

    return conv_datetime


class RowConverter:
    """Converts raw rows of one table (any cell types: CSV text, XLSX values, JSON) to typed rows."""

    def __init__(self, table: TableSpec):
        self.table = table
        self.columns = list(table.columns)
        self._conv = [(c.name, c.required, _compile_column(c)) for c in table.columns.values()]

    def check_header(self, header: Iterable[str]) -> list[str]:
        """Problems with a file's column set: missing columns and columns the format does not map."""
        present = [h.strip() if isinstance(h, str) else h for h in header]
        problems = []
        missing = [c for c in self.columns if c not in present]
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        extra = [str(h) for h in present if h not in self.table.columns]
        if extra:
            problems.append(f"unexpected column(s) {', '.join(extra)} (table {self.table.name} has: "
                            f"{', '.join(self.columns)})")
        return problems

    def convert(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        problems: list[str] = []
        for name, required, conv in self._conv:
            value = raw.get(name)
            if type(value) is str:
                value = value.strip()
                blank = not value
            else:
                blank = _is_blank(value)
            if blank:
                if required:
                    problems.append(f"{name}: required but empty")
                out[name] = None
                continue
            try:
                out[name] = conv(value)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                out[name] = None
        for check in self.table.checks:
            later, earlier = out.get(check.later), out.get(check.earlier)
            if later is not None and earlier is not None and later < earlier:
                problems.append(f"{check.later} ({later}) is before {check.earlier} ({earlier})")
        if problems:
            raise RowError("; ".join(problems))
        return out
