"""UserContract: hospitals, users (pseudonymous ids bound to certificates) and treating
relationships."""

from __future__ import annotations

import json

from chaincode import Conflict, InvalidArgument, NotFound, evaluate, transaction

from . import keys
from .common import (
    ACTIVE,
    SUSPENDED,
    SerumsContext,
    SerumsContract,
    a_role,
    load_hospital,
    load_patient,
    load_user,
    public_user,
    require_patient_reader,
)
from .records import GRANT_ACTIVE, active_grants_of_patient, revoke_grant
from .vocab import (
    CLINICIAN_ROLES,
    SUSPEND_REASONS,
    check_choice,
    check_hex64,
    check_id,
    check_msp,
    check_name,
    check_object,
    check_page,
    check_role,
    fmt_time,
    parse_time,
)


class UserContract(SerumsContract):
    name = "UserContract"
    info = {"title": "SERUMS users, hospitals and treating relationships", "version": "1.0"}

    # ------------------------------------------------------------------ hospitals

    @transaction
    def RegisterHospital(self, ctx: SerumsContext, name: str) -> dict:
        """A hospital admin registers its own hospital; the MSP id is the caller's."""
        c = ctx.caller
        if not c.is_admin:
            raise ctx.caller.forbid("only a hospital admin (node role admin or role=hospital_admin) registers its hospital")
        name = check_name(name, "name")
        if ctx.get(keys.hospital(c.msp)) is not None:
            raise Conflict(f"hospital {c.msp} is already registered")
        doc = {"msp": c.msp, "name": name, "registered_at": ctx.now_s, "registered_by": c.label}
        ctx.put(keys.hospital(c.msp), doc)
        ctx.event("HospitalRegistered", {"hospital": c.msp, "name": name, "at": ctx.now_s})
        return doc

    @evaluate
    def GetHospital(self, ctx: SerumsContext, hospital: str) -> dict:
        return load_hospital(ctx, check_msp(hospital, "hospital"))

    @evaluate
    def ListHospitals(self, ctx: SerumsContext) -> list:
        return [
            json.loads(kv.value)
            for kv in ctx.stub.get_state_by_partial_composite_key("hospital", [])
        ]

    # ------------------------------------------------------------------ users

    @transaction
    def RegisterUser(self, ctx: SerumsContext, user_id: str, role: str, fingerprint: str) -> dict:
        """An admin registers a user of its own hospital: a pseudonymous id, a role and the
        SHA-256 fingerprint of the user's certificate."""
        c = ctx.caller
        c.require_admin_of(c.msp)
        load_hospital(ctx, c.msp)
        uid = check_id(user_id, "user_id")
        role = check_role(role)
        fp = check_hex64(fingerprint, "fingerprint")
        if ctx.get(keys.user(uid)) is not None:
            raise Conflict(f"user_id: {uid} is already registered")
        if ctx.get_raw(keys.fingerprint(c.msp, fp)) is not None:
            raise Conflict("fingerprint: this certificate is already bound to another user")
        doc = {
            "id": uid, "role": role, "hospital": c.msp, "fingerprint": fp, "status": ACTIVE,
            "registered_at": ctx.now_s, "registered_by": c.label, "updated_at": ctx.now_s, "version": 1,
            "suspended_at": None, "suspend_reason": None,
        }
        ctx.put(keys.user(uid), doc)
        ctx.put_raw(keys.fingerprint(c.msp, fp), uid.encode())
        ctx.put_raw(keys.user_of_hospital(c.msp, uid), b"1")
        ctx.event("UserRegistered", {"user_id": uid, "role": role, "hospital": c.msp, "at": ctx.now_s})
        return public_user(doc)

    def _admin_user(self, ctx: SerumsContext, user_id: str) -> dict:
        uid = check_id(user_id, "user_id")
        doc = load_user(ctx, uid)
        ctx.caller.require_admin_of(doc["hospital"])
        return doc

    @transaction
    def UpdateUser(self, ctx: SerumsContext, user_id: str, changes: dict) -> dict:
        """Change a user's role and/or certificate fingerprint (certificate renewal)."""
        doc = self._admin_user(ctx, user_id)
        check_object(changes, "changes", ("role", "fingerprint"))
        if not changes:
            raise InvalidArgument("changes: give role and/or fingerprint")
        if "role" in changes:
            role = check_role(changes["role"], "changes.role")
            if role != doc["role"] and "patient" in (role, doc["role"]):
                raise InvalidArgument("changes.role: a patient's role cannot change (register a new user instead)")
            doc["role"] = role
        if "fingerprint" in changes:
            fp = check_hex64(changes["fingerprint"], "changes.fingerprint")
            if fp != doc["fingerprint"]:
                msp = doc["hospital"]
                if ctx.get_raw(keys.fingerprint(msp, fp)) is not None:
                    raise Conflict("changes.fingerprint: this certificate is already bound to another user")
                ctx.stub.del_state(keys.fingerprint(msp, doc["fingerprint"]))
                ctx.put_raw(keys.fingerprint(msp, fp), doc["id"].encode())
                doc["fingerprint"] = fp
        doc["updated_at"] = ctx.now_s
        doc["version"] += 1
        ctx.put(keys.user(doc["id"]), doc)
        ctx.event("UserUpdated", {"user_id": doc["id"], "role": doc["role"], "hospital": doc["hospital"],
                                  "changed": sorted(changes), "at": ctx.now_s})
        return public_user(doc)

    @transaction
    def SuspendUser(self, ctx: SerumsContext, user_id: str, reason: str) -> dict:
        """Suspend a user: every decision denies them, and their grants stop being live (even after
        reinstatement: grants made before a suspension never come back)."""
        doc = self._admin_user(ctx, user_id)
        reason = check_choice(reason, "reason", SUSPEND_REASONS)
        if doc["status"] == SUSPENDED:
            raise Conflict(f"user {doc['id']} is already suspended")
        doc.update(status=SUSPENDED, suspended_at=ctx.now_s, suspend_reason=reason, updated_at=ctx.now_s,
                   version=doc["version"] + 1)
        ctx.put(keys.user(doc["id"]), doc)
        ctx.event("UserSuspended", {"user_id": doc["id"], "role": doc["role"], "hospital": doc["hospital"],
                                    "reason": reason, "at": ctx.now_s})
        return public_user(doc)

    @transaction
    def ReinstateUser(self, ctx: SerumsContext, user_id: str) -> dict:
        doc = self._admin_user(ctx, user_id)
        if doc["status"] == ACTIVE:
            raise Conflict(f"user {doc['id']} is not suspended")
        doc.update(status=ACTIVE, updated_at=ctx.now_s, version=doc["version"] + 1)
        ctx.put(keys.user(doc["id"]), doc)
        ctx.event("UserReinstated", {"user_id": doc["id"], "role": doc["role"], "hospital": doc["hospital"],
                                     "at": ctx.now_s})
        return public_user(doc)

    @evaluate
    def GetUser(self, ctx: SerumsContext, user_id: str) -> dict:
        """The user themself, an admin of the user's hospital, auditors and service identities."""
        doc = load_user(ctx, check_id(user_id, "user_id"))
        c = ctx.caller
        u = c.active_user()
        if not (c.is_admin_of(doc["hospital"]) or (u is not None and (
                u["id"] == doc["id"] or u["role"] in ("auditor", "vault", "analytics")))):
            raise ctx.caller.forbid(f"only {doc['id']}, an admin of {doc['hospital']}, auditors or services may read this user")
        return public_user(doc)

    @evaluate
    def WhoAmI(self, ctx: SerumsContext) -> dict:
        """How the chain sees the caller's certificate."""
        c = ctx.caller
        u = c.user
        return {
            "msp": c.msp, "fingerprint": c.fingerprint, "node_role": c.node_role, "is_admin": c.is_admin,
            "user": public_user(u) if u else None, "mismatch": c.mismatch,
        }

    @evaluate
    def ListUsers(self, ctx: SerumsContext, hospital: str, page_size: int, bookmark: str) -> dict:
        """A hospital's users (its admins and auditors), paginated."""
        msp = check_msp(hospital, "hospital")
        size, bm = check_page(page_size, bookmark)
        if not (ctx.caller.is_admin_of(msp) or ctx.caller.is_auditor):
            raise ctx.caller.forbid(f"only an admin of {msp} or an auditor may list its users")
        page = ctx.stub.get_state_by_partial_composite_key_with_pagination("uh", [msp], size, bm)
        users = []
        for kv in page.records:
            _, (_, uid) = ctx.stub.split_composite_key(kv.key)
            doc = ctx.get(keys.user(uid))
            if doc is not None:
                users.append(public_user(doc))
        return {"records": users, "count": len(users), "bookmark": page.bookmark}

    # ------------------------------------------------------------------ treating relationships

    @transaction
    def AddTreatment(self, ctx: SerumsContext, patient: str, clinician: str, start: str, end: str) -> dict:
        """Record that a clinician treats a patient from ``start`` (default now) until ``end``
        (open when empty). Recorded by an admin of the patient's hospital (the data controller)."""
        p = load_patient(ctx, check_id(patient, "patient"))
        ctx.caller.require_admin_of(p["hospital"])
        cl = load_user(ctx, check_id(clinician, "clinician"), "clinician")
        if cl["role"] not in CLINICIAN_ROLES:
            raise InvalidArgument(f"clinician: {cl['id']} is {a_role(cl['role'])}, not a clinician "
                                  f"({', '.join(CLINICIAN_ROLES)})")
        if cl["status"] != ACTIVE:
            raise Conflict(f"clinician: {cl['id']} is suspended")
        t0 = parse_time(start, "start") or ctx.now
        t1 = parse_time(end, "end")
        if t1 is not None and t1 <= t0:
            raise InvalidArgument("end: must be after start")
        key = keys.treatment(p["id"], cl["id"])
        old = ctx.get(key)
        doc = {
            "patient": p["id"], "clinician": cl["id"], "clinician_hospital": cl["hospital"],
            "start": fmt_time(t0), "end": fmt_time(t1) if t1 else None, "recorded_at": ctx.now_s,
            "recorded_by": ctx.caller.label, "version": (old["version"] + 1) if old else 1,
        }
        ctx.put(key, doc)
        if old is None:
            ctx.put_raw(keys.treated_by(cl["id"], p["id"]), b"1")
        ctx.event("TreatmentRecorded", {k: doc[k] for k in ("patient", "clinician", "clinician_hospital", "start", "end")})
        return doc

    @transaction
    def EndTreatment(self, ctx: SerumsContext, patient: str, clinician: str) -> dict:
        """End a treating relationship now (an admin of the patient's hospital, or the clinician).
        The clinician's live grants on this patient that rested on the relationship are revoked."""
        pid = check_id(patient, "patient")
        cid = check_id(clinician, "clinician")
        p = load_patient(ctx, pid)
        c = ctx.caller
        u = c.active_user()
        if not (c.is_admin_of(p["hospital"]) or (u is not None and u["id"] == cid)):
            raise ctx.caller.forbid(f"only an admin of {p['hospital']} or clinician {cid} may end this relationship")
        key = keys.treatment(pid, cid)
        doc = ctx.get(key)
        if doc is None:
            raise NotFound(f"no treating relationship between patient {pid} and clinician {cid}")
        if doc["end"] is not None and doc["end"] <= ctx.now_s:
            raise Conflict(f"the treating relationship ended at {doc['end']}")
        doc.update(end=ctx.now_s, recorded_at=ctx.now_s, recorded_by=c.label, version=doc["version"] + 1)
        ctx.put(key, doc)
        revoked = []
        for g in active_grants_of_patient(ctx, pid):
            if g["requester_id"] == cid and g.get("relies_on_treating") and g["status"] == GRANT_ACTIVE:
                revoke_grant(ctx, g, "no-longer-treating", c.label)
                revoked.append(g["grant_id"])
        ctx.event("TreatmentEnded", {"patient": pid, "clinician": cid, "end": doc["end"], "revoked_grants": revoked})
        return {**doc, "revoked_grants": revoked}

    @evaluate
    def GetTreatment(self, ctx: SerumsContext, patient: str, clinician: str) -> dict:
        pid, cid = check_id(patient, "patient"), check_id(clinician, "clinician")
        p = load_patient(ctx, pid)
        u = ctx.caller.active_user()
        if not (u is not None and u["id"] == cid):
            require_patient_reader(ctx, p)
        doc = ctx.get(keys.treatment(pid, cid))
        if doc is None:
            raise NotFound(f"no treating relationship between patient {pid} and clinician {cid}")
        return doc

    @transaction
    def IndexTreatments(self, ctx: SerumsContext, page_size: int, bookmark: str) -> dict:
        """Upgrade path: add to the clinician → patient index (``tc``) the relationships of the
        caller's hospital's patients recorded before the index existed — one page of the ``treat``
        records at a time (pass ``bookmark`` back until it is empty). An admin of that hospital."""
        c = ctx.caller
        c.require_admin_of(c.msp)
        size, bm = check_page(page_size, bookmark)
        first, last = keys.prefix_range("treat")
        if bm and not bm.startswith(first):
            raise InvalidArgument("bookmark: not one this function returned")
        # a range, not a paginated query: Fabric allows those in evaluations only
        records, next_key = [], ""
        for kv in ctx.stub.get_state_by_range(bm or first, last):
            if len(records) == size:
                next_key = kv.key
                break
            records.append(kv)
        added = 0
        hospital_of: dict[str, str | None] = {}
        for kv in records:
            doc = json.loads(kv.value)
            pid, cid = doc["patient"], doc["clinician"]
            if pid not in hospital_of:
                hospital_of[pid] = (ctx.get(keys.user(pid)) or {}).get("hospital")
            if hospital_of[pid] == c.msp and ctx.get_raw(keys.treated_by(cid, pid)) is None:
                ctx.put_raw(keys.treated_by(cid, pid), b"1")
                added += 1
        return {"indexed": added, "read": len(records), "bookmark": next_key}

    @evaluate
    def ListPatientsOfClinician(self, ctx: SerumsContext, clinician: str, current_only: bool, page_size: int,
                                bookmark: str) -> dict:
        """The treating relationships of a clinician, by patient (a partial-key range over the ``tc``
        index, paginated): the clinician themself, an admin of the clinician's hospital, or an
        auditor. ``current_only``: only those that have not ended. Each record is the relationship
        with the patient's hospital and ``current``."""
        cl = load_user(ctx, check_id(clinician, "clinician"), "clinician")
        c = ctx.caller
        u = c.active_user()
        if not ((u is not None and (u["id"] == cl["id"] or u["role"] == "auditor")) or c.is_admin_of(cl["hospital"])):
            raise c.forbid(f"only {cl['id']}, an admin of {cl['hospital']} or an auditor may list these patients")
        size, bm = check_page(page_size, bookmark)
        page = ctx.stub.get_state_by_partial_composite_key_with_pagination("tc", [cl["id"]], size, bm)
        records = []
        for kv in page.records:
            _, (_, pid) = ctx.stub.split_composite_key(kv.key)
            doc = ctx.get(keys.treatment(pid, cl["id"]))
            if doc is None:
                continue
            current = doc["end"] is None or doc["end"] > ctx.now_s
            if current_only and not current:
                continue
            patient = ctx.get(keys.user(pid)) or {}
            records.append({**doc, "patient_hospital": patient.get("hospital"), "current": current})
        return {"records": records, "count": len(records), "bookmark": page.bookmark}

    @evaluate
    def ListTreatments(self, ctx: SerumsContext, patient: str) -> list:
        p = load_patient(ctx, check_id(patient, "patient"))
        require_patient_reader(ctx, p)
        return [json.loads(kv.value) for kv in ctx.stub.get_state_by_partial_composite_key("treat", [p["id"]])]
