"""AuditContract: the trail, read by patient, by user or by time (evaluate only, paginated).

Kinds: ``decision`` (every request and its outcome, denials included), ``grant`` (the requests
that made a grant) and ``break-glass`` (break-glass requests, granted or not) — both views of the
decisions —, ``access`` (the vault's access log), ``refusal`` (refused token presentations),
``revocation`` and ``cohort``. Each query takes an optional time window ``[start, end)`` (ISO
8601 with a time zone, empty for open) and pages through it with the stub's bookmarks.

Who may read: by patient — the patient, auditors and admins of the patient's hospital; by user —
the user, auditors and admins of the user's hospital; by time — auditors.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from chaincode import InvalidArgument, evaluate

from . import keys
from .common import (
    SerumsContext,
    SerumsContract,
    index_entry,
    load_patient,
    load_user,
    require_auditor,
    require_patient_reader,
    require_user_reader,
)
from .keys import AUDIT_KINDS
from .records import expand_request, grant_view, load_request
from .vocab import check_choice, check_id, check_page, compact_time, fmt_time, parse_time


def _window(start: str, end: str, *, compact: bool = False) -> tuple[str, str]:
    t0 = parse_time(start, "start")
    t1 = parse_time(end, "end")
    if t0 is not None and t1 is not None and t1 <= t0:
        raise InvalidArgument("end: must be after start")
    f = compact_time if compact else fmt_time
    return (f(t0) if t0 else ""), (f(t1) if t1 else "")


_AFTER = "\x00"  # key + _AFTER: the first key after key

#: Query kinds that are views of another: (stored kind, filter on the index entry / record).
VIEWS = {
    "grant": ("decision", lambda e: bool(e.get("expires_at") or e.get("grant_id"))),
    "break-glass": ("decision", lambda e: bool(e.get("break_glass"))),
}
#: Kinds whose records are keyed by time-ordered ids: a time query ranges over the records themselves.
PRIMARY = {"decision": "req", "access": "access", "refusal": "refusal", "cohort": "cohort"}


def _record(ctx: SerumsContext, kind: str, rid: str, patient: str | None, cohort: bool = False) -> dict | None:
    """The record an index entry points to (a grant with its current status)."""
    if kind == "decision" or (kind == "revocation" and not cohort):
        rec = load_request(ctx, rid)
        return grant_view(ctx, rec) if rec is not None and rec["grant_id"] else rec
    if kind == "access":
        return ctx.get(keys.access(rid))
    if kind == "refusal":
        return ctx.get(keys.refusal(rid))
    rec = ctx.get(keys.cohort(rid))
    if rec is not None and patient and kind == "cohort":
        m = ctx.get(keys.cohort_member(rid, patient))
        rec = {**rec, "member_status": m["status"] if m else None}
    return rec


def _scan(ctx: SerumsContext, start_key: str, end_key: str, page_size: int, bookmark: str,
          item: Callable[[str, bytes], dict | None]) -> dict:
    """One page of up to ``page_size`` items of ``[start_key, end_key)``; ``item`` turns a key and
    value into the item, or None to skip it. When items are skipped the scan goes on, page after
    page, until the page is full; the bookmark then resumes right after the last item returned."""
    size, bm = check_page(page_size, bookmark)
    found: list[dict] = []
    while True:
        page = ctx.stub.get_state_by_range_with_pagination(start_key, end_key, size, bm)
        for i, kv in enumerate(page.records):
            it = item(kv.key, kv.value)
            if it is None:
                continue
            found.append(it)
            if len(found) == size:
                last = i == len(page.records) - 1
                return {"records": found, "count": size,
                        "bookmark": page.bookmark if last else kv.key + _AFTER}
        if not page.bookmark:
            return {"records": found, "count": len(found), "bookmark": ""}
        bm = page.bookmark


def _index_page(ctx: SerumsContext, prefix: str, subject: str | None, kind: str, start: str, end: str,
                page_size: int, bookmark: str, patient: str | None = None) -> dict:
    stored, keep = VIEWS.get(kind, (kind, None))
    t0, t1 = _window(start, end)
    attrs = (subject, stored) if subject is not None else (stored,)
    a, b = keys.prefix_range(prefix, *attrs, start=t0, end=t1)

    def item(key: str, value: bytes) -> dict | None:
        e = index_entry(ctx.stub, key, value)
        if keep is not None and not keep(e):
            return None
        return {**e, "record": _record(ctx, e["kind"], e["id"], patient, bool(e.get("cohort")))}

    return _scan(ctx, a, b, page_size, bookmark, item)


def _time_page(ctx: SerumsContext, kind: str, start: str, end: str, page_size: int, bookmark: str) -> dict:
    stored, keep = VIEWS.get(kind, (kind, None))
    if stored not in PRIMARY:  # revocations: the time index
        return _index_page(ctx, "a.t", None, kind, start, end, page_size, bookmark)
    t0, t1 = _window(start, end, compact=True)
    a, b = keys.prefix_range(PRIMARY[stored], start=t0, end=t1)

    def item(key: str, value: bytes) -> dict | None:
        rec = json.loads(value)
        if stored == "decision":
            rec = expand_request(rec)
        if keep is not None and not keep(rec):
            return None
        _, (rid,) = ctx.stub.split_composite_key(key)
        if stored == "decision" and rec["grant_id"]:
            rec = grant_view(ctx, rec)
        return {"kind": stored, "id": rid, "at": rec.get("created_at") or rec.get("at"), "record": rec}

    return _scan(ctx, a, b, page_size, bookmark, item)


class AuditContract(SerumsContract):
    name = "AuditContract"
    info = {"title": "SERUMS audit trail queries", "version": "1.0"}

    @evaluate
    def AuditByPatient(self, ctx: SerumsContext, patient: str, kind: str, start: str, end: str, page_size: int,
                       bookmark: str) -> dict:
        p = load_patient(ctx, check_id(patient, "patient"))
        require_patient_reader(ctx, p)
        kind = check_choice(kind, "kind", AUDIT_KINDS)
        return _index_page(ctx, "a.p", p["id"], kind, start, end, page_size, bookmark, p["id"])

    @evaluate
    def AuditByUser(self, ctx: SerumsContext, user_id: str, kind: str, start: str, end: str, page_size: int,
                    bookmark: str) -> dict:
        u = load_user(ctx, check_id(user_id, "user_id"))
        require_user_reader(ctx, u)
        kind = check_choice(kind, "kind", AUDIT_KINDS)
        return _index_page(ctx, "a.u", u["id"], kind, start, end, page_size, bookmark)

    @evaluate
    def AuditByTime(self, ctx: SerumsContext, kind: str, start: str, end: str, page_size: int,
                    bookmark: str) -> dict:
        require_auditor(ctx)
        kind = check_choice(kind, "kind", AUDIT_KINDS)
        return _time_page(ctx, kind, start, end, page_size, bookmark)
