"""TransportContract (steps 5-7 and 10): access requests and their decisions, grants, token
binding, the access log, revocation, break-glass and research cohorts.

The vault that holds a patient's record is the vault of the patient's hospital: only that
hospital's vault service identity binds tokens to the patient's grants and logs accesses to them
(any active vault identity may log a refused presentation, whose claimed grant may be forged).
"""

from __future__ import annotations

import datetime as _dt
import json

from chaincode import Conflict, InvalidArgument, NotFound, evaluate, transaction

from . import keys
from .common import ACTIVE, SerumsContext, SerumsContract, a_role, load_patient, sha256_hex
from .records import (
    GRANT_ACTIVE,
    GRANT_REVOKED,
    Evaluation,
    grant_status,
    grant_view,
    load_request,
    revoke_grant,
    save_request,
)
from .records import evaluate as evaluate_access
from .vocab import (
    ADDRESS_RE,
    BREAK_GLASS_JUSTIFICATIONS,
    CLINICIAN_ROLES,
    JUSTIFICATIONS,
    MAX_COHORT,
    MAX_TOKENS_PER_GRANT,
    REVIEW_OUTCOMES,
    REVOKE_REASONS,
    SECTIONS,
    WILDCARD,
    check_choice,
    check_hex64,
    check_id,
    check_int,
    check_object,
    check_optional_id,
    check_page,
    check_purpose,
    check_sections,
    check_slug,
    fmt_time,
    parse_stored_time,
    parse_time,
    require_str,
)

TRANSIENT_JUSTIFICATION = "justification"


def _sections(value, field: str = "sections") -> list[str]:
    """Requested sections: a list of sections, or ``["*"]`` for all of them."""
    got = check_sections(value, field, wildcard=True)
    return list(SECTIONS) if got == [WILDCARD] else got


class TransportContract(SerumsContract):
    name = "TransportContract"
    info = {"title": "SERUMS data transport: requests, grants, tokens, access log (steps 5-7, 10)", "version": "1.0"}

    # ------------------------------------------------------------------ helpers

    def _justification(self, ctx: SerumsContext, code: str, *, break_glass: bool) -> tuple[str, str | None]:
        """The coded justification and the SHA-256 of the free text in the transient field
        ``justification`` (the text itself never reaches the ledger)."""
        code = require_str(code, "justification")
        text = ctx.stub.get_transient().get(TRANSIENT_JUSTIFICATION)
        digest = sha256_hex(text) if text else None
        if break_glass:
            if not code:
                raise InvalidArgument(
                    f"justification: break-glass needs a justification, one of {', '.join(BREAK_GLASS_JUSTIFICATIONS)}"
                )
            check_choice(code, "justification", BREAK_GLASS_JUSTIFICATIONS)
            if code == "other" and digest is None:
                raise InvalidArgument(
                    "justification: 'other' needs the explanation in the transient field 'justification'"
                )
        elif code:
            check_choice(code, "justification", JUSTIFICATIONS)
        return code, digest

    def _grant_or_404(self, ctx: SerumsContext, grant_id: str) -> dict:
        gid = check_id(grant_id, "grant_id")
        g = load_request(ctx, gid)
        if g is None or g["grant_id"] is None:
            raise NotFound(f"grant_id: no grant {gid!r}")
        return g

    def _patient_vault(self, ctx: SerumsContext, grant: dict) -> dict:
        u = ctx.caller.require_user("vault")
        if u["hospital"] != grant["patient_hospital"]:
            raise ctx.caller.forbid(
                f"only the vault of {grant['patient_hospital']} (the patient's hospital) may do this; "
                f"the caller is the vault of {u['hospital']}"
            )
        return u

    def _may_read_grant(self, ctx: SerumsContext, g: dict) -> None:
        c = ctx.caller
        u = c.active_user()
        if u is not None:
            if u["id"] in (g["patient"], g["requester_id"]) or u["role"] == "auditor":
                return
            if u["role"] == "vault" and u["hospital"] == g["patient_hospital"]:
                return
        if c.is_admin_of(g["patient_hospital"]) or c.is_admin_of(g["requester_hospital"]):
            return
        raise ctx.caller.forbid(
            "only the patient, the requester, the vault of the patient's hospital, auditors and the admins "
            "of both hospitals may read this grant"
        )

    # ------------------------------------------------------------------ requests (steps 5-6)

    def _request(self, ctx: SerumsContext, patient: str, sections, purpose: str, justification: str,
                 *, break_glass: bool) -> dict:
        pid = check_id(patient, "patient")
        secs = _sections(sections)
        purpose = check_purpose(purpose)
        code, digest = self._justification(ctx, justification, break_glass=break_glass)
        requester = ctx.caller.require_user(allow_suspended=True)
        if break_glass and requester["role"] not in CLINICIAN_ROLES:
            raise ctx.caller.forbid(f"break-glass is for clinicians ({', '.join(CLINICIAN_ROLES)}); "
                                    f"user {requester['id']} is {a_role(requester['role'])}")
        p = load_patient(ctx, pid)
        ev = evaluate_access(ctx, requester, p, secs, purpose, break_glass=break_glass)
        return self._record(ctx, requester, p, secs, purpose, code, digest, ev, break_glass=break_glass)

    def _record(self, ctx: SerumsContext, requester: dict, p: dict, secs: list[str], purpose: str, code: str,
                digest: str | None, ev: Evaluation, *, break_glass: bool) -> dict:
        """Write the request's one record (the decision, and the grant when something was
        allowed) and its audit index entries: three keys, all new."""
        d = ev.decision
        rid = ctx.rid
        granted = d.granted
        denied = [{"section": s.section, "reason": s.reason} for s in d.sections if not s.allowed]
        expires = None
        relies = False
        if granted:
            end = ctx.now + _dt.timedelta(seconds=ev.grant_seconds())
            relies = ev.relies_on_treating()
            if relies and ev.treatment and ev.treatment.get("end"):
                end = min(end, parse_stored_time(ev.treatment["end"]))
            expires = fmt_time(end)
        outcome = "denied" if not granted else ("granted" if not denied else "partial")
        rec = {
            "request_id": rid, "grant_id": rid if granted else None,
            "requester_id": requester["id"], "requester_role": requester["role"],
            "requester_hospital": requester["hospital"], "patient": p["id"], "patient_hospital": p["hospital"],
            "purpose": purpose, "break_glass": break_glass, "justification": code or None,
            "justification_digest": digest, "outcome": outcome, "decision": d.to_json(), "sections": granted,
            "created_at": ctx.now_s, "expires_at": expires, "status": GRANT_ACTIVE if granted else "denied",
            "treating": ev.treating, "relies_on_treating": relies, "policy_version": ev.policy["version"],
            "preferences_version": ev.prefs["version"], "token_hashes": [],
        }
        save_request(ctx, rec)
        ctx.index("decision", rid, patient=p["id"], user=requester["id"],
                  extra={"outcome": outcome, "expires_at": expires, "break_glass": break_glass})
        payload = {
            "request_id": rid, "grant_id": rec["grant_id"], **{k: rec[k] for k in (
                "requester_id", "requester_role", "requester_hospital", "patient", "patient_hospital", "purpose",
                "break_glass", "justification")},
            "sections": granted, "denied": denied, "expires_at": expires, "at": ctx.now_s,
        }
        if break_glass:
            ctx.event("BreakGlass", payload)
        else:
            ctx.event("AccessGranted" if granted else "AccessDenied", payload)
        return {
            "request_id": rid, "grant_id": rec["grant_id"], "outcome": outcome, "granted": granted, "denied": denied,
            "reasons": {s.section: s.reason for s in d.sections}, "expires_at": expires, "break_glass": break_glass,
        }

    @transaction
    def RequestAccess(self, ctx: SerumsContext, patient: str, sections: list, purpose: str,
                      justification: str) -> dict:
        """Step 5-6: ask for sections of a patient's record for a purpose. The decision (per
        section, with reasons) is recorded whatever it is; when some section is allowed a grant is
        made (its id is the request id). ``justification`` is a code (or empty); free text goes
        in the transient field ``justification`` and only its SHA-256 is recorded."""
        return self._request(ctx, patient, sections, purpose, justification, break_glass=False)

    @transaction
    def BreakGlass(self, ctx: SerumsContext, patient: str, sections: list, justification: str) -> dict:
        """Emergency access by a clinician without the patient's consent: purpose ``emergency``, a
        coded justification (``other`` needs transient free text), a short grant (the hospital's
        break-glass duration), flagged and indexed for the patient and auditors. A hospital's
        deny rules still apply."""
        return self._request(ctx, patient, sections, "emergency", justification, break_glass=True)

    @evaluate
    def GetRequest(self, ctx: SerumsContext, request_id: str) -> dict:
        rid = check_id(request_id, "request_id")
        req = load_request(ctx, rid)
        if req is None:
            raise NotFound(f"request_id: no request {rid!r}")
        self._may_read_grant(ctx, req)
        return grant_view(ctx, req) if req["grant_id"] else req

    # ------------------------------------------------------------------ grants (steps 7, 9, 10)

    @evaluate
    def GetGrant(self, ctx: SerumsContext, grant_id: str) -> dict:
        """The grant with its current status and ``live`` (step 9: the vault checks it)."""
        g = self._grant_or_404(ctx, grant_id)
        self._may_read_grant(ctx, g)
        return grant_view(ctx, g)

    @evaluate
    def CheckGrant(self, ctx: SerumsContext, grant_id: str) -> dict:
        """What the vault needs at step 9: live or not (and why), sections, purpose, expiry,
        requester, patient and the bound token hashes."""
        g = self._grant_or_404(ctx, grant_id)
        self._may_read_grant(ctx, g)
        v = grant_view(ctx, g)
        return {k: v[k] for k in (
            "grant_id", "live", "not_live_reason", "status", "sections", "purpose", "created_at", "expires_at",
            "requester_id", "requester_role", "requester_hospital", "patient", "patient_hospital", "break_glass",
            "token_hashes", "checked_at")}

    @transaction
    def BindToken(self, ctx: SerumsContext, grant_id: str, token_hash: str) -> dict:
        """Step 7: the vault of the patient's hospital binds the SHA-256 of the token it minted
        for a live grant."""
        g = self._grant_or_404(ctx, grant_id)
        vault = self._patient_vault(ctx, g)
        th = check_hex64(token_hash, "token_hash")
        status, live, why = grant_status(ctx, g)
        if not live:
            raise Conflict(f"grant {g['grant_id']} is not live ({why}): no token can be bound to it")
        if th in g["token_hashes"]:
            raise Conflict(f"token_hash: already bound to grant {g['grant_id']}")
        if len(g["token_hashes"]) >= MAX_TOKENS_PER_GRANT:
            raise Conflict(f"grant {g['grant_id']} already has {MAX_TOKENS_PER_GRANT} tokens bound")
        g["token_hashes"] = [*g["token_hashes"], th]
        g["token_bound_at"] = ctx.now_s
        save_request(ctx, g)
        ctx.event("TokenBound", {
            "grant_id": g["grant_id"], "token_hash": th, "vault_id": vault["id"], "patient": g["patient"],
            "patient_hospital": g["patient_hospital"], "requester_id": g["requester_id"], "sections": g["sections"],
            "purpose": g["purpose"], "expires_at": g["expires_at"], "at": ctx.now_s,
        })
        return grant_view(ctx, g)

    @transaction
    def LogAccess(self, ctx: SerumsContext, grant_id: str, token_hash: str, sections_returned: list,
                  digest: str) -> dict:
        """Step 10: the vault of the patient's hospital logs what it returned: the sections and
        the SHA-256 of the response. The entry is always recorded; anything the chain would not
        have allowed (token not bound, grant not live, sections outside the grant) is flagged in
        ``anomalies`` and in the AccessLogged event."""
        return self._access(ctx, grant_id, token_hash, sections_returned, digest, strict=False)

    @transaction
    def ReleaseAccess(self, ctx: SerumsContext, grant_id: str, token_hash: str, sections_returned: list,
                      digest: str) -> dict:
        """Steps 9–10 in one transaction: the vault of the patient's hospital asks to release
        ``sections_returned`` (digest of the response) against a bound token, and the chain checks
        and logs atomically. Refused — nothing recorded, the vault releases nothing — when the
        token is not bound, the grant is not live or the sections exceed it; the refusal's message
        starts with a stable reason (``grant-revoked``, ``grant-expired``, ``grant-not-live``,
        ``token-not-bound``, ``token-grant-mismatch``). A revocation committed concurrently makes one
        of the two transactions fail MVCC validation: no release can slip between a revocation and
        its log."""
        return self._access(ctx, grant_id, token_hash, sections_returned, digest, strict=True)

    def _access(self, ctx: SerumsContext, grant_id: str, token_hash: str, sections_returned: list, digest: str,
                *, strict: bool) -> dict:
        g = self._grant_or_404(ctx, grant_id)
        vault = self._patient_vault(ctx, g)
        th = check_hex64(token_hash, "token_hash")
        if not isinstance(sections_returned, list):
            raise InvalidArgument("sections_returned: expected a list of record sections")
        secs = check_sections(sections_returned, "sections_returned") if sections_returned else []
        dg = check_hex64(digest, "digest")
        status, live, why = grant_status(ctx, g)
        anomalies = []
        if th not in g["token_hashes"]:
            anomalies.append("token-not-bound")
        if not live:
            anomalies.append(f"grant-not-live:{why}")
        outside = sorted(set(secs) - set(g["sections"]))
        if outside:
            anomalies.append("sections-outside-grant:" + ",".join(outside))
        if strict and anomalies:
            if not live:
                reason = {"revoked": "grant-revoked", "expired": "grant-expired"}.get(why or "", "grant-not-live")
                raise Conflict(f"{reason}: grant {g['grant_id']} is not live ({why})")
            if th not in g["token_hashes"]:
                raise Conflict(f"token-not-bound: the token is not bound to grant {g['grant_id']}")
            raise Conflict(f"token-grant-mismatch: sections {', '.join(outside)} are outside grant {g['grant_id']}")
        aid = ctx.rid
        doc = {
            "access_id": aid, "grant_id": g["grant_id"], "token_hash": th, "sections_returned": secs, "digest": dg,
            "vault_id": vault["id"], "requester_id": g["requester_id"], "patient": g["patient"],
            "patient_hospital": g["patient_hospital"], "purpose": g["purpose"], "break_glass": g["break_glass"],
            "at": ctx.now_s, "anomalies": anomalies,
        }
        ctx.put(keys.access(aid), doc)
        ctx.index("access", aid, patient=g["patient"], user=g["requester_id"])
        ctx.event("AccessLogged", {k: doc[k] for k in (
            "access_id", "grant_id", "token_hash", "sections_returned", "digest", "vault_id", "requester_id",
            "patient", "patient_hospital", "purpose", "break_glass", "anomalies", "at")})
        return doc

    @transaction
    def LogRefusal(self, ctx: SerumsContext, grant_id: str, token_hash: str, presenter_id: str, reason: str,
                   detail: str) -> dict:
        """A vault logs a refused token presentation (tampered, expired, wrong presenter, grant
        not live…). ``grant_id`` is the one the token claimed (may be empty or unknown);
        ``reason`` a slug; of ``detail`` only the SHA-256 is kept (free text stays off the ledger)."""
        vault = ctx.caller.require_user("vault")
        gid = check_optional_id(grant_id, "grant_id")
        th = check_hex64(token_hash, "token_hash")
        presenter = check_optional_id(presenter_id, "presenter_id")
        reason = check_slug(reason, "reason")
        detail = require_str(detail, "detail")
        g = load_request(ctx, gid) if gid else None
        g = g if g is not None and g["grant_id"] else None
        rid = ctx.rid
        doc = {
            "refusal_id": rid, "grant_id": gid or None, "grant_known": g is not None, "token_hash": th,
            "presenter_id": presenter or None, "reason": reason,
            "detail_digest": sha256_hex(detail.encode()) if detail else None, "vault_id": vault["id"],
            "vault_hospital": vault["hospital"], "patient": g["patient"] if g else None, "at": ctx.now_s,
        }
        ctx.put(keys.refusal(rid), doc)
        ctx.index("refusal", rid, patient=g["patient"] if g else None, user=presenter or None)
        ctx.event("AccessRefused", {k: doc[k] for k in (
            "refusal_id", "grant_id", "token_hash", "presenter_id", "reason", "vault_id", "patient", "at")})
        return doc

    @transaction
    def LogRefusalSummary(self, ctx: SerumsContext, summary: dict) -> dict:
        """A vault logs, as one entry, the refusals of one presenter in one interval beyond those it
        logged one by one with :meth:`LogRefusal` (so one presenter posting garbage tokens cannot
        grow the ledger without bound). ``summary``: ``presenter_id``, ``window_start`` and
        ``window_end`` (ISO 8601), ``count``, ``reasons`` (slug → count, summing to ``count``),
        ``grant_ids`` (the distinct grants the tokens claimed, at most 20), ``tokens`` (distinct
        token hashes) and ``token_hashes_digest`` (SHA-256 of the sorted distinct hashes)."""
        vault = ctx.caller.require_user("vault")
        fields = ("presenter_id", "window_start", "window_end", "count", "reasons", "grant_ids", "tokens",
                  "token_hashes_digest")
        sm = check_object(summary, "summary", fields, fields)
        presenter = check_optional_id(sm["presenter_id"], "summary.presenter_id")
        start = parse_time(sm["window_start"], "summary.window_start", optional=False)
        end = parse_time(sm["window_end"], "summary.window_end", optional=False)
        if end <= start:
            raise InvalidArgument("summary.window_end: must be after window_start")
        count = check_int(sm["count"], "summary.count", 1, 10**9)
        reasons = sm["reasons"]
        if not isinstance(reasons, dict) or not 1 <= len(reasons) <= 20:
            raise InvalidArgument("summary.reasons: expected an object of 1-20 reason slugs to counts")
        reasons = {check_slug(k, "summary.reasons"): check_int(v, f"summary.reasons.{k}", 1, count)
                   for k, v in sorted(reasons.items())}
        if sum(reasons.values()) != count:
            raise InvalidArgument(f"summary.reasons: the counts sum to {sum(reasons.values())}, not count {count}")
        gids = sm["grant_ids"]
        if not isinstance(gids, list) or len(gids) > 20:
            raise InvalidArgument("summary.grant_ids: expected a list of at most 20 grant ids")
        gids = sorted({check_id(g, "summary.grant_ids") for g in gids})
        tokens = check_int(sm["tokens"], "summary.tokens", 1, count)
        digest = check_hex64(sm["token_hashes_digest"], "summary.token_hashes_digest")
        grants = [g for g in (load_request(ctx, gid) for gid in gids) if g is not None and g["grant_id"]]
        patients = sorted({g["patient"] for g in grants})
        rid = ctx.rid
        doc = {
            "refusal_id": rid, "summary": True, "presenter_id": presenter or None, "count": count,
            "reasons": reasons, "grant_ids": gids, "tokens": tokens, "token_hashes_digest": digest,
            "window_start": fmt_time(start), "window_end": fmt_time(end), "vault_id": vault["id"],
            "vault_hospital": vault["hospital"], "patients": patients, "at": ctx.now_s,
        }
        ctx.put(keys.refusal(rid), doc)
        ctx.index("refusal", rid, patients=patients, user=presenter or None)
        ctx.event("AccessRefusedSummary", {k: doc[k] for k in (
            "refusal_id", "presenter_id", "count", "reasons", "window_start", "window_end", "vault_id", "at")})
        return doc

    @transaction
    def AnchorBlob(self, ctx: SerumsContext, blob_id: str, patient: str, section: str, sha256: str, store: str,
                   address: str, size: int) -> dict:
        """A vault anchors the digest of an encrypted blob (scan, document) it stored: its id, the
        vault's pseudonymous patient reference, section, SHA-256, store and address."""
        vault = ctx.caller.require_user("vault")
        bid = check_id(blob_id, "blob_id")
        doc = {
            "blob_id": bid, "patient": check_id(patient, "patient"),
            "section": check_choice(section, "section", SECTIONS), "sha256": check_hex64(sha256, "sha256"),
            "store": check_slug(store, "store"), "address": require_str(address, "address"),
            "size": check_int(size, "size", 0, 2**53), "vault_id": vault["id"], "vault_hospital": vault["hospital"],
            "at": ctx.now_s,
        }
        if not ADDRESS_RE.match(doc["address"]):
            raise InvalidArgument("address: 1-200 letters, digits and . _ : / = + - only")
        old = ctx.get(keys.blob(bid))
        if old is not None:
            raise Conflict(f"blob_id: blob {bid} is already anchored (sha256 {old['sha256']})")
        ctx.put(keys.blob(bid), doc)
        ctx.event("BlobAnchored", {k: doc[k] for k in ("blob_id", "section", "sha256", "store", "vault_hospital", "at")})
        return doc

    @evaluate
    def GetBlobAnchor(self, ctx: SerumsContext, blob_id: str) -> dict:
        bid = check_id(blob_id, "blob_id")
        c = ctx.caller
        if not (c.has_role("vault", "auditor") or c.is_admin):
            raise ctx.caller.forbid("only vaults, auditors and hospital admins read blob anchors")
        doc = ctx.get(keys.blob(bid))
        if doc is None:
            raise NotFound(f"blob_id: no blob {bid!r} is anchored")
        return doc

    # ------------------------------------------------------------------ revocation and review

    @transaction
    def Revoke(self, ctx: SerumsContext, grant_id: str, reason: str) -> dict:
        """Revoke a grant: by its patient, by an admin of the patient's or the requester's hospital,
        or by the requester (``relinquished``). Takes effect at the next check."""
        g = self._grant_or_404(ctx, grant_id)
        reason = check_choice(reason, "reason", REVOKE_REASONS)
        c = ctx.caller
        u = c.active_user()
        allowed = (u is not None and u["id"] in (g["patient"], g["requester_id"])) or c.is_admin_of(
            g["patient_hospital"]) or c.is_admin_of(g["requester_hospital"])
        if not allowed:
            raise ctx.caller.forbid("only the patient, the requester or an admin of either hospital may revoke this grant")
        status, _, _ = grant_status(ctx, g)
        if status != GRANT_ACTIVE:
            raise Conflict(f"grant {g['grant_id']} is already {status}")
        revoke_grant(ctx, g, reason, c.label)
        ctx.event("GrantRevoked", {
            "grant_id": g["grant_id"], "patient": g["patient"], "patient_hospital": g["patient_hospital"],
            "requester_id": g["requester_id"], "requester_hospital": g["requester_hospital"], "reason": reason,
            "revoked_by": c.label, "token_hashes": g["token_hashes"], "at": ctx.now_s,
        })
        return grant_view(ctx, g)

    @transaction
    def ReviewBreakGlass(self, ctx: SerumsContext, grant_id: str, outcome: str) -> dict:
        """An auditor's retrospective review of a break-glass grant; ``unjustified`` also revokes it
        while it is still active."""
        g = self._grant_or_404(ctx, grant_id)
        outcome = check_choice(outcome, "outcome", REVIEW_OUTCOMES)
        auditor = ctx.caller.require_user("auditor")
        if not g["break_glass"]:
            raise InvalidArgument(f"grant_id: grant {g['grant_id']} is not a break-glass grant")
        g["review"] = {"outcome": outcome, "reviewer": auditor["id"], "at": ctx.now_s}
        status, _, _ = grant_status(ctx, g)
        if outcome == "unjustified" and status == GRANT_ACTIVE:
            revoke_grant(ctx, g, "break-glass-unjustified", auditor["id"])
        else:
            save_request(ctx, g)
        ctx.event("BreakGlassReviewed", {
            "grant_id": g["grant_id"], "patient": g["patient"], "requester_id": g["requester_id"],
            "requester_hospital": g["requester_hospital"], "outcome": outcome, "reviewer": auditor["id"],
            "revoked": g["status"] == GRANT_REVOKED, "at": ctx.now_s,
        })
        return grant_view(ctx, g)

    # ------------------------------------------------------------------ research cohorts

    @transaction
    def RequestCohort(self, ctx: SerumsContext, patients: list, sections: list, purpose: str,
                      justification: str) -> dict:
        """A research cohort: of the candidate patients, those whose hospital rules and own
        preferences allow every requested section for ``research``. Returns the included patients
        and only the number of the excluded ones."""
        if not isinstance(patients, list) or not patients:
            raise InvalidArgument("patients: expected a non-empty list of patient ids")
        if len(patients) > MAX_COHORT:
            raise InvalidArgument(f"patients: at most {MAX_COHORT} per cohort request")
        pids = [check_id(p, f"patients[{i}]") for i, p in enumerate(patients)]
        if len(set(pids)) != len(pids):
            raise InvalidArgument("patients: duplicate patient ids")
        secs = _sections(sections)
        purpose = check_purpose(purpose)
        if purpose != "research":
            raise InvalidArgument("purpose: cohort grants are for 'research' only")
        code, digest = self._justification(ctx, justification, break_glass=False)
        requester = ctx.caller.require_user("researcher", "analytics")
        policies: dict = {}
        included, excluded, seconds = [], 0, []
        for i, pid in enumerate(pids):
            p = load_patient(ctx, pid, f"patients[{i}]")
            ev = evaluate_access(ctx, requester, p, secs, purpose, policies=policies)
            if ev.decision.all_allowed:
                included.append(pid)
                seconds.append(ev.grant_seconds())
            else:
                excluded += 1
        cid = ctx.rid
        expires = fmt_time(ctx.now + _dt.timedelta(seconds=min(seconds))) if included else None
        doc = {
            "cohort_id": cid, "requester_id": requester["id"], "requester_role": requester["role"],
            "requester_hospital": requester["hospital"], "purpose": purpose, "sections": secs,
            "justification": code or None, "justification_digest": digest, "created_at": ctx.now_s,
            "expires_at": expires, "status": ACTIVE if included else "empty", "size": len(included),
            "excluded": excluded, "revoked_at": None, "revoked_by": None, "revoke_reason": None,
        }
        ctx.put(keys.cohort(cid), doc)
        member = {"status": ACTIVE, "added_at": ctx.now_s}
        for pid in included:
            ctx.put(keys.cohort_member(cid, pid), member)
        ctx.index("cohort", cid, patients=included, user=requester["id"],
                  extra={"expires_at": expires, "size": len(included)})
        ctx.event("CohortGranted", {k: doc[k] for k in (
            "cohort_id", "requester_id", "requester_hospital", "purpose", "sections", "size", "excluded",
            "expires_at", "created_at")})
        return {**doc, "included": included}

    def _cohort_or_404(self, ctx: SerumsContext, cohort_id: str) -> dict:
        cid = check_id(cohort_id, "cohort_id")
        doc = ctx.get(keys.cohort(cid))
        if doc is None:
            raise NotFound(f"cohort_id: no cohort {cid!r}")
        return doc

    def _cohort_status(self, ctx: SerumsContext, doc: dict) -> tuple[str, bool]:
        if doc["status"] != ACTIVE:
            return doc["status"], False
        if doc["expires_at"] is None or ctx.now_s >= doc["expires_at"]:
            return "expired", False
        r = ctx.get(keys.user(doc["requester_id"]))
        live = r is not None and r["status"] == ACTIVE and (r.get("suspended_at") or "") <= doc["created_at"]
        return ACTIVE, live

    def _may_read_cohort(self, ctx: SerumsContext, doc: dict) -> None:
        c = ctx.caller
        u = c.active_user()
        if u is not None and (u["id"] == doc["requester_id"] or u["role"] in ("auditor", "vault", "analytics")):
            return
        if c.is_admin:
            return
        raise ctx.caller.forbid("only the requester, vaults, analytics services, auditors and hospital admins read cohorts")

    @evaluate
    def GetCohort(self, ctx: SerumsContext, cohort_id: str) -> dict:
        doc = self._cohort_or_404(ctx, cohort_id)
        self._may_read_cohort(ctx, doc)
        status, live = self._cohort_status(ctx, doc)
        return {**doc, "status": status, "live": live, "checked_at": ctx.now_s}

    @evaluate
    def CohortMembers(self, ctx: SerumsContext, cohort_id: str, page_size: int, bookmark: str) -> dict:
        """The cohort's patients with their membership status (withdrawn when consent was)."""
        doc = self._cohort_or_404(ctx, cohort_id)
        self._may_read_cohort(ctx, doc)
        size, bm = check_page(page_size, bookmark)
        page = ctx.stub.get_state_by_partial_composite_key_with_pagination("cm", [doc["cohort_id"]], size, bm)
        records = []
        for kv in page.records:
            _, (_, pid) = ctx.stub.split_composite_key(kv.key)
            records.append({"patient": pid, **json.loads(kv.value)})
        return {"records": records, "count": len(records), "bookmark": page.bookmark}

    @evaluate
    def CheckCohortMember(self, ctx: SerumsContext, cohort_id: str, patient: str) -> dict:
        """Whether a patient's data may be released for this cohort now."""
        doc = self._cohort_or_404(ctx, cohort_id)
        self._may_read_cohort(ctx, doc)
        pid = check_id(patient, "patient")
        status, live = self._cohort_status(ctx, doc)
        m = ctx.get(keys.cohort_member(doc["cohort_id"], pid))
        member_status = m["status"] if m else "not-member"
        return {"cohort_id": doc["cohort_id"], "patient": pid, "cohort_status": status, "member_status": member_status,
                "live": live and member_status == ACTIVE, "sections": doc["sections"], "purpose": doc["purpose"],
                "expires_at": doc["expires_at"], "requester_id": doc["requester_id"], "checked_at": ctx.now_s}

    @transaction
    def RevokeCohort(self, ctx: SerumsContext, cohort_id: str, reason: str) -> dict:
        doc = self._cohort_or_404(ctx, cohort_id)
        reason = check_choice(reason, "reason", REVOKE_REASONS)
        c = ctx.caller
        u = c.active_user()
        if not ((u is not None and u["id"] == doc["requester_id"]) or c.is_admin_of(doc["requester_hospital"])
                or c.is_auditor):
            raise ctx.caller.forbid("only the requester, an admin of the requester's hospital or an auditor may revoke a cohort")
        status, _ = self._cohort_status(ctx, doc)
        if status != ACTIVE:
            raise Conflict(f"cohort {doc['cohort_id']} is already {status}")
        doc.update(status=GRANT_REVOKED, revoked_at=ctx.now_s, revoked_by=c.label, revoke_reason=reason)
        ctx.put(keys.cohort(doc["cohort_id"]), doc)
        ctx.index("revocation", doc["cohort_id"], user=doc["requester_id"], extra={"reason": reason, "cohort": True},
                  by_time=True)
        ctx.event("GrantRevoked", {"cohort_id": doc["cohort_id"], "grant_id": None, "requester_id": doc["requester_id"],
                                   "requester_hospital": doc["requester_hospital"], "reason": reason,
                                   "revoked_by": c.label, "at": ctx.now_s})
        return doc

    # ------------------------------------------------------------------ cohort tokens (research releases)

    def _live_cohort(self, ctx: SerumsContext, doc: dict) -> None:
        status, live = self._cohort_status(ctx, doc)
        if not live:
            reason = {GRANT_REVOKED: "cohort-revoked", "expired": "cohort-expired"}.get(status, "cohort-not-live")
            raise Conflict(f"{reason}: cohort {doc['cohort_id']} is not live ({status})")

    @transaction
    def BindCohortToken(self, ctx: SerumsContext, cohort_id: str, token_hash: str, presenter_id: str,
                        expires_at: str) -> dict:
        """Step 7 for a research cohort: a hospital's vault binds the SHA-256 of the cohort token it
        minted for its own site's ``analytics`` service identity ``presenter_id``, valid until
        ``expires_at`` (never past the cohort's expiry). Refused while the cohort is not live."""
        vault = ctx.caller.require_user("vault")
        doc = self._cohort_or_404(ctx, cohort_id)
        th = check_hex64(token_hash, "token_hash")
        presenter = ctx.get(keys.user(check_id(presenter_id, "presenter_id")))
        if presenter is None or presenter["role"] != "analytics" or presenter["status"] != ACTIVE:
            raise InvalidArgument(f"presenter_id: {presenter_id!r} is not an active analytics service identity")
        if presenter["hospital"] != vault["hospital"]:
            raise ctx.caller.forbid(f"a vault of {vault['hospital']} binds cohort tokens only for its own analytics "
                                    f"service, not for one of {presenter['hospital']}")
        expires = parse_time(expires_at, "expires_at", optional=False)
        self._live_cohort(ctx, doc)
        if expires <= ctx.now or fmt_time(expires) > doc["expires_at"]:
            raise InvalidArgument(f"expires_at: must lie after now and not after the cohort's expiry {doc['expires_at']}")
        key = keys.cohort_token(doc["cohort_id"], th)
        if ctx.get_raw(key) is not None:
            raise Conflict(f"token_hash: already bound to cohort {doc['cohort_id']}")
        token = {"cohort_id": doc["cohort_id"], "token_hash": th, "presenter_id": presenter_id,
                 "vault_id": vault["id"], "hospital": vault["hospital"], "expires_at": fmt_time(expires),
                 "bound_at": ctx.now_s}
        ctx.put(key, token)
        ctx.event("CohortTokenBound", token)
        return token

    @evaluate
    def GetCohortToken(self, ctx: SerumsContext, cohort_id: str, token_hash: str) -> dict:
        """A bound cohort token and whether it may be used now (cohort live, token unexpired)."""
        doc = self._cohort_or_404(ctx, cohort_id)
        self._may_read_cohort(ctx, doc)
        token = ctx.get(keys.cohort_token(doc["cohort_id"], check_hex64(token_hash, "token_hash")))
        if token is None:
            raise NotFound(f"token_hash: no such token bound to cohort {doc['cohort_id']}")
        status, live = self._cohort_status(ctx, doc)
        return {**token, "cohort_status": status, "live": live and ctx.now_s < token["expires_at"],
                "sections": doc["sections"], "purpose": doc["purpose"], "checked_at": ctx.now_s}

    @transaction
    def ReleaseCohort(self, ctx: SerumsContext, cohort_id: str, token_hash: str, patients: list,
                      sections_returned: list, digest: str) -> dict:
        """Steps 9–10 for a research cohort, in one transaction: the vault asks to release
        ``sections_returned`` of ``patients`` (its own hospital's patients; digest of the rows)
        against a cohort token it bound. Refused — nothing recorded, the vault releases nothing —
        when the token is not bound by this hospital's vault or expired, the cohort is not live, a
        patient is not an active member (withdrawn) or the sections exceed the cohort's; the message
        starts with a stable reason (``token-not-bound``, ``token-expired``, ``cohort-revoked``,
        ``cohort-expired``, ``cohort-not-live``, ``member-not-active``, ``token-grant-mismatch``).
        Only the number of patients and the SHA-256 of their sorted ids are recorded."""
        vault = ctx.caller.require_user("vault")
        doc = self._cohort_or_404(ctx, cohort_id)
        th = check_hex64(token_hash, "token_hash")
        if not isinstance(patients, list) or len(patients) > MAX_COHORT:
            raise InvalidArgument(f"patients: expected a list of at most {MAX_COHORT} patient ids")
        pids = sorted({check_id(p, f"patients[{i}]") for i, p in enumerate(patients)})
        if not isinstance(sections_returned, list):
            raise InvalidArgument("sections_returned: expected a list of record sections")
        secs = check_sections(sections_returned, "sections_returned") if sections_returned else []
        dg = check_hex64(digest, "digest")
        token = ctx.get(keys.cohort_token(doc["cohort_id"], th))
        if token is None or token["hospital"] != vault["hospital"]:
            raise Conflict(f"token-not-bound: the token is not bound to cohort {doc['cohort_id']} by a vault of "
                           f"{vault['hospital']}")
        self._live_cohort(ctx, doc)
        if ctx.now_s >= token["expires_at"]:
            raise Conflict(f"token-expired: the cohort token expired at {token['expires_at']}")
        outside = sorted(set(secs) - set(doc["sections"]))
        if outside:
            raise Conflict(f"token-grant-mismatch: sections {', '.join(outside)} are outside cohort {doc['cohort_id']}")
        for pid in pids:
            m = ctx.get(keys.cohort_member(doc["cohort_id"], pid))
            u = ctx.get(keys.user(pid))
            if m is None or m["status"] != ACTIVE or u is None or u["hospital"] != vault["hospital"]:
                raise Conflict(f"member-not-active: patient {pid} is not an active member of cohort "
                               f"{doc['cohort_id']} at {vault['hospital']}")
        rec = {"release_id": ctx.rid, "cohort_id": doc["cohort_id"], "token_hash": th,
               "presenter_id": token["presenter_id"], "vault_id": vault["id"], "hospital": vault["hospital"],
               "patients": len(pids), "patients_digest": sha256_hex(json.dumps(pids).encode()),
               "sections_returned": secs, "digest": dg, "at": ctx.now_s}
        ctx.put(keys.cohort_release(doc["cohort_id"], ctx.now_s, ctx.tx_id), rec)
        ctx.event("CohortReleased", rec)
        return rec

    @evaluate
    def CohortReleases(self, ctx: SerumsContext, cohort_id: str, page_size: int, bookmark: str) -> dict:
        """Every release of the cohort's rows by the vaults, oldest first."""
        doc = self._cohort_or_404(ctx, cohort_id)
        self._may_read_cohort(ctx, doc)
        size, bm = check_page(page_size, bookmark)
        page = ctx.stub.get_state_by_partial_composite_key_with_pagination("crel", [doc["cohort_id"]], size, bm)
        records = [json.loads(kv.value) for kv in page.records]
        return {"records": records, "count": len(records), "bookmark": page.bookmark}
