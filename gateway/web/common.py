"""What every page module shares: running an action and keeping its problem for the page,
people's names for pseudonymous ids, readable times and labels, the vocabularies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, g, request

from .. import people
from .. import problems as P
from .. import vocab as V
from ..errors import problem_of
from ..security import services
from ..vocab import PURPOSE_LABELS, ROLE_LABELS, SECTION_LABELS

T = TypeVar("T")

REASON_LABELS = {
    "own-record": "your own record", "requester-suspended": "the requester's account is suspended",
    "hospital-rule-deny": "the hospital's rules forbid this", "patient-deny": "the patient does not allow this",
    "patient-consent": "allowed by the patient's consent", "hospital-rule": "allowed by the hospital's rules",
    "break-glass": "emergency access (break-glass)", "consent-required": "needs the patient's consent",
    "not-treating": "not recorded as treating the patient", "other-hospital": "only staff of the patient's hospital",
    "rule-expired": "the rule that allowed this has expired", "rule-not-yet-valid": "the rule is not valid yet",
    "no-rule": "no rule of the hospital allows this",
}


def attempt(action: Callable[[], T]) -> tuple[T | None, P.Problem | None]:
    """Run an action; a refusal becomes the Problem the page shows inline (nothing raised)."""
    try:
        return action(), None
    except Exception as exc:  # noqa: BLE001 - every error becomes a Problem, unexpected ones are logged
        return None, problem_of(exc)


def status_of(problem: P.Problem | None) -> int:
    """The HTTP status a page showing this problem answers with."""
    if problem is None:
        return 400
    return problem.status or problem.type.status


def when(value: Any) -> str:
    """An ISO time or epoch seconds as ``5 Dec 2026, 14:03 UTC``."""
    if value in (None, ""):
        return ""
    try:
        if isinstance(value, int | float):
            t = dt.datetime.fromtimestamp(value, dt.UTC)
        else:
            t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return t.astimezone(dt.UTC).strftime("%-d %b %Y, %H:%M UTC")


def person(user_id: str | None) -> dict[str, str]:
    """A pseudonymous id as a person the page can name: username, role, hospital — the directory's
    entry (:func:`gateway.people.person`), looked up once per request (a trail names the same few
    people many times)."""
    if not user_id:
        return {"name": "", "role": "", "hospital": ""}
    who = people.person(services(), user_id, g.setdefault("web_people", {}))
    role = who["role"] or ""
    return {"name": who["display_name"], "role": ROLE_LABELS.get(role, role), "hospital": who["hospital"] or ""}


def install_filters(bp: Blueprint) -> None:
    @bp.app_template_filter("when")
    def _when(v):
        return when(v)

    @bp.app_template_filter("section")
    def _section(s):
        return SECTION_LABELS.get(s, s)

    @bp.app_template_filter("purpose")
    def _purpose(s):
        return PURPOSE_LABELS.get(s, s)

    @bp.app_template_filter("role")
    def _role(s):
        return ROLE_LABELS.get(s, s)

    @bp.app_template_filter("reason")
    def _reason(s):
        return REASON_LABELS.get(s, str(s).replace("-", " "))

    @bp.app_template_filter("cell")
    def _cell(v):
        if v is None:
            return ""
        if isinstance(v, bool) or v in ("True", "False"):
            return "yes" if v in (True, "True") else "no"
        return v

    @bp.app_template_global("vocab")
    def _vocab():
        return V

    @bp.app_template_global("person")
    def _person(uid):
        return person(uid)


def record_tables(data: dict | None) -> dict[str, dict]:
    """Each released section as tables: one per satellite (kind of entry), a column per attribute."""
    out: dict[str, dict] = {}
    if not data:
        return out
    sections = data["record"].get("sections") or {}
    order = {s: i for i, s in enumerate(V.SECTIONS)}
    for name, sec in sorted(sections.items(), key=lambda kv: order.get(kv[0], len(order))):
        if sec.get("status") == "withheld":
            out[name] = {"withheld": True, "reason": sec.get("reason")}
            continue
        groups: dict[str, dict] = {}
        for e in sec.get("entries", []):
            grp = groups.setdefault(e.get("satellite", ""), {"columns": [], "rows": []})
            for k in e.get("attributes", {}):
                if k not in grp["columns"]:
                    grp["columns"].append(k)
            grp["rows"].append(e.get("attributes", {}))
        out[name] = {"withheld": False, "groups": groups, "blobs": sec.get("blobs", [])}
    return out


def form_list(name: str) -> list[str]:
    return [v for v in request.form.getlist(name) if v]


__all__ = ["PURPOSE_LABELS", "REASON_LABELS", "ROLE_LABELS", "SECTION_LABELS", "attempt", "form_list",
           "install_filters", "person", "record_tables", "status_of", "when"]
