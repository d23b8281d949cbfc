"""The fixed vocabularies of the SERUMS contracts and the argument checks built on them.

Every check raises :class:`~chaincode.InvalidArgument` whose message starts with the name of the
offending field (``"sections: unknown section 'xray'; one of ..."``), so that the gateway can
turn it into a problem+json response that points at the field.

Times on the ledger are UTC strings of one fixed width (``2026-01-31T09:30:00.000000Z``), so that
their lexicographic order is their chronological order and composite keys built from them sort
in time.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterable
from typing import Any

from chaincode import InvalidArgument

# --------------------------------------------------------------------------- vocabularies

#: People. ``hospital_admin`` users are registered like everyone else; a hospital's bootstrap
#: admin (node role ``admin`` in its certificate) needs no registration.
PERSON_ROLES = ("patient", "gp", "specialist", "nurse", "insurer", "researcher", "auditor", "hospital_admin")
#: Service identities a hospital admin registers for its own services.
SERVICE_ROLES = ("vault", "analytics")
ROLES = PERSON_ROLES + SERVICE_ROLES
#: Roles that may break the glass in an emergency.
CLINICIAN_ROLES = ("gp", "specialist", "nurse")

#: Record sections: what grants, preferences and the vault's masking speak of.
SECTIONS = (
    "demographics",
    "contact",
    "admissions",
    "conditions",
    "procedures",
    "oncology.diagnosis",
    "oncology.treatment",
    "oncology.toxicity",
    "comorbidities",
    "imaging",
    "documents",
)
PURPOSES = ("treatment", "emergency", "research", "insurance", "audit")

#: Coded justifications (never free text on the ledger: it would carry clinical details that
#: could never be erased). Free text, when a caller has some, travels in the transient field
#: ``justification`` and only its SHA-256 is recorded.
JUSTIFICATIONS = (
    "direct-care",
    "referral",
    "continuing-care",
    "clinical-emergency",
    "patient-unconscious",
    "patient-incapacitated",
    "safeguarding",
    "research-protocol",
    "claim-assessment",
    "audit-review",
    "patient-request",
    "other",
)
BREAK_GLASS_JUSTIFICATIONS = (
    "clinical-emergency",
    "patient-unconscious",
    "patient-incapacitated",
    "safeguarding",
    "other",
)
REVOKE_REASONS = (
    "patient-request",
    "consent-withdrawn",
    "no-longer-treating",
    "misuse-suspected",
    "administrative",
    "relinquished",
    "break-glass-unjustified",
    "other",
)
SUSPEND_REASONS = ("left-organisation", "investigation", "credential-compromise", "leave", "administrative", "other")
REVIEW_OUTCOMES = ("justified", "unjustified", "referred")
GRANTEE_KINDS = ("user", "role", "hospital", "anyone")
EFFECTS = ("allow", "deny")
WILDCARD = "*"

#: Bounds on durations (seconds).
MAX_GRANT_SECONDS_CEILING = 90 * 24 * 3600
DEFAULT_MAX_GRANT_SECONDS = 24 * 3600
DEFAULT_BREAK_GLASS_SECONDS = 4 * 3600
MAX_BREAK_GLASS_SECONDS = 24 * 3600
#: How far ahead of its creation a grant may be checked (clock skew between the requester's and
#: the vault's machines); a grant is not live before ``created_at - CLOCK_SKEW_SECONDS``.
CLOCK_SKEW_SECONDS = 300

MAX_PAGE_SIZE = 200
MAX_COHORT = 500
MAX_TOKENS_PER_GRANT = 16

# --------------------------------------------------------------------------- patterns

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{1,127}$")
MSP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
ADDRESS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/=+-]{0,199}$")
NAME_RE = re.compile(r"^[\w][\w .,'&()/-]{0,99}$")


# --------------------------------------------------------------------------- times

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def fmt_time(t: _dt.datetime) -> str:
    """The ledger's fixed-width UTC form of an aware datetime."""
    return t.astimezone(_dt.UTC).strftime(TIME_FORMAT)


def compact_time(t: _dt.datetime) -> str:
    """The time prefix of record ids (``20260131T093000000000Z``): sorts like the time."""
    return t.astimezone(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


def parse_stored_time(text: str) -> _dt.datetime:
    """The inverse of :func:`fmt_time` (``fromisoformat`` reads the fixed-width form fast)."""
    return _dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=_dt.UTC)


def parse_time(value: Any, field: str, *, optional: bool = True) -> _dt.datetime | None:
    """An ISO 8601 timestamp with a time zone (``Z`` or an offset); ``""``/None when optional."""
    if value in (None, ""):
        if optional:
            return None
        raise InvalidArgument(f"{field}: required (an ISO 8601 timestamp with a time zone)")
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: expected an ISO 8601 timestamp string, got {type(value).__name__}")
    try:
        t = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"{field}: {value[:40]!r} is not an ISO 8601 timestamp") from None
    if t.tzinfo is None:
        raise InvalidArgument(f"{field}: {value[:40]!r} has no time zone (add Z or an offset such as +00:00)")
    t = t.astimezone(_dt.UTC)
    if not (2000 <= t.year <= 2199):
        raise InvalidArgument(f"{field}: {value[:40]!r} is outside the years 2000-2199")
    return t


def seconds_between(a: _dt.datetime, b: _dt.datetime) -> int:
    return int((b - a).total_seconds())


# --------------------------------------------------------------------------- checks


def require_str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: expected a string, got {type(value).__name__}")
    return value


def check_id(value: Any, field: str) -> str:
    """A pseudonymous identifier: 2-128 characters of letters, digits, '.', '_', ':' or '-'."""
    value = require_str(value, field)
    if not ID_RE.match(value):
        raise InvalidArgument(
            f"{field}: {value[:40]!r} is not a valid identifier (2-128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit)"
        )
    return value


def check_optional_id(value: Any, field: str) -> str:
    return "" if value in (None, "") else check_id(value, field)


def check_msp(value: Any, field: str) -> str:
    value = require_str(value, field)
    if not MSP_RE.match(value):
        raise InvalidArgument(f"{field}: {value[:40]!r} is not an MSP id")
    return value


def check_hex64(value: Any, field: str) -> str:
    value = require_str(value, field)
    if not HEX64_RE.match(value):
        raise InvalidArgument(f"{field}: expected a SHA-256 digest as 64 lowercase hex characters")
    return value


def check_slug(value: Any, field: str) -> str:
    value = require_str(value, field)
    if not SLUG_RE.match(value):
        raise InvalidArgument(f"{field}: {value[:40]!r} is not a reason slug (lowercase letters, digits, '-')")
    return value


def check_name(value: Any, field: str) -> str:
    value = require_str(value, field).strip()
    if not NAME_RE.match(value):
        raise InvalidArgument(f"{field}: 1-100 letters, digits, spaces and . , ' & ( ) / - only")
    return value


def check_choice(value: Any, field: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        shown = value[:40] if isinstance(value, str) else value
        raise InvalidArgument(f"{field}: {shown!r} is not one of {', '.join(choices)}")
    return value


def check_role(value: Any, field: str = "role") -> str:
    return check_choice(value, field, ROLES)


def check_purpose(value: Any, field: str = "purpose") -> str:
    return check_choice(value, field, PURPOSES)


def _check_list(value: Any, field: str, choices: tuple[str, ...], *, wildcard: bool, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidArgument(f"{field}: expected a non-empty list of {what}")
    out: list[str] = []
    for i, v in enumerate(value):
        if wildcard and v == WILDCARD:
            if len(value) != 1:
                raise InvalidArgument(f"{field}: '*' (all {what}) must be the only entry")
            return [WILDCARD]
        out.append(check_choice(v, f"{field}[{i}]", choices))
    return sorted(set(out))


def check_sections(value: Any, field: str = "sections", *, wildcard: bool = False) -> list[str]:
    """A non-empty list of record sections (sorted, without duplicates); ``["*"]`` when allowed."""
    return _check_list(value, field, SECTIONS, wildcard=wildcard, what="record sections")


def check_purposes(value: Any, field: str = "purposes", *, wildcard: bool = True) -> list[str]:
    return _check_list(value, field, PURPOSES, wildcard=wildcard, what="purposes")


def check_roles(value: Any, field: str = "roles", *, wildcard: bool = True) -> list[str]:
    return _check_list(value, field, ROLES, wildcard=wildcard, what="roles")


def check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{field}: expected true or false")
    return value


def check_int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{field}: expected an integer")
    if not lo <= value <= hi:
        raise InvalidArgument(f"{field}: {value} is outside {lo}..{hi}")
    return value


def check_number(value: Any, field: str, *, positive: bool, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{field}: expected a number")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidArgument(f"{field}: must be finite")
    if value < 0 or (positive and value == 0):
        raise InvalidArgument(f"{field}: must be {'> 0' if positive else '>= 0'}")
    if value > maximum:
        raise InvalidArgument(f"{field}: {value} exceeds {maximum}")
    return value


def check_object(value: Any, field: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: expected a JSON object")
    allowed = set(allowed)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InvalidArgument(f"{field}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    missing = [r for r in required if r not in value]
    if missing:
        raise InvalidArgument(f"{field}.{missing[0]}: required")
    return value


def check_page(page_size: Any, bookmark: Any) -> tuple[int, str]:
    size = check_int(page_size, "page_size", 1, MAX_PAGE_SIZE)
    return size, require_str(bookmark, "bookmark")
