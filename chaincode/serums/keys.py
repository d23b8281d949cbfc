"""Key design: every record lives under a composite key named after what it belongs to.

Writers of different patients or users never write the same key: a request writes only keys
that did not exist before (named by its time and transaction id), and reads the few records the
decision needs (the requester, the patient, the treating relationship, the hospital's rules, the
patient's preferences). Two concurrent requests — even for the same patient — therefore never
conflict; a request conflicts only with a concurrent change of what it read (a preference change
for the same patient, a rule change of the same hospital), which is exactly when it must not
commit. There are no counters and no per-hospital or global documents that every request writes.

Records created by requests, accesses, refusals and cohorts have time-ordered ids
(``20260131T093000123456Z-<32 hex of the tx id>``): their own keys are the time index.

==========  ================================  ==============================================
type        attributes                        value
==========  ================================  ==============================================
hospital    msp                               hospital (name, registered at/by)
user        user id                           user (role, hospital, fingerprint, status, …)
fp          msp, certificate fingerprint      the user id bound to that certificate
uh          msp, user id                      index: users of a hospital
treat       patient, clinician                treating relationship (start, end)
tc          clinician, patient                index: the patients a clinician treats (or treated)
policy      msp                               the hospital's rules and settings (versioned)
prefs       patient                           the patient's preferences (versioned)
preflog     patient, time, tx id              one preference change (history, paginated)
req         request id (time-ordered)         a decision with its per-section reasons and, when
                                              something was allowed, the grant (its id is the
                                              request id): expiry, status, tokens (compact form)
access      access id (time-ordered)          an access logged by the vault (step 10)
refusal     refusal id (time-ordered)         a refused token presentation logged by a vault
cohort      cohort id (time-ordered)          a research cohort grant
cm          cohort id, patient                a cohort member (active / withdrawn)
ctok        cohort id, token hash             a cohort token a vault bound for its analytics service
crel        cohort id, time, tx id            one release of cohort rows by a vault (paginated)
blob        blob id                           a blob's anchored digest
dataset     dataset id                        privacy budget: totals and spent so far
release     dataset id, release id            marks a release id as used (idempotency)
spend       dataset id, time, tx id           one spend (history, paginated)
a.p         patient, kind, time, id           audit index by patient
a.u         user, kind, time, id              audit index by user
a.t         kind, time, id                    audit index by time (revocations only)
==========  ================================  ==============================================

Times in keys are the ledger's fixed-width UTC strings, so a range over a time prefix is a time
range. An audit index entry's key says kind, time and id; its value holds only what filters
need (a decision's outcome, expiry and break-glass flag); the record is read when the entry is,
so a grant's entry always shows its current status. A request writes three keys: its record and
one entry in each of the patient's and the requester's indexes.
"""

from __future__ import annotations

from chaincode import MAX_RUNE, create_composite_key

#: What the audit index holds (``decision`` entries carry the outcome, whether a grant was made,
#: its expiry and the break-glass flag) ...
INDEX_KINDS = ("decision", "access", "refusal", "revocation", "cohort")
#: ... and what the audit queries offer: ``grant`` and ``break-glass`` are views of ``decision``.
AUDIT_KINDS = ("decision", "grant", "break-glass", "access", "refusal", "revocation", "cohort")


def ck(object_type: str, *attrs: str) -> str:
    return create_composite_key(object_type, list(attrs))


def hospital(msp: str) -> str:
    return ck("hospital", msp)


def user(uid: str) -> str:
    return ck("user", uid)


def fingerprint(msp: str, fp: str) -> str:
    return ck("fp", msp, fp)


def user_of_hospital(msp: str, uid: str) -> str:
    return ck("uh", msp, uid)


def treatment(patient: str, clinician: str) -> str:
    return ck("treat", patient, clinician)


def treated_by(clinician: str, patient: str) -> str:
    return ck("tc", clinician, patient)


def policy(msp: str) -> str:
    return ck("policy", msp)


def prefs(patient: str) -> str:
    return ck("prefs", patient)


def pref_log(patient: str, ts: str, tx_id: str) -> str:
    return ck("preflog", patient, ts, tx_id)


def request(rid: str) -> str:
    return ck("req", rid)


def access(aid: str) -> str:
    return ck("access", aid)


def refusal(rid: str) -> str:
    return ck("refusal", rid)


def cohort(cid: str) -> str:
    return ck("cohort", cid)


def cohort_member(cid: str, patient: str) -> str:
    return ck("cm", cid, patient)


def cohort_token(cid: str, token_hash: str) -> str:
    return ck("ctok", cid, token_hash)


def cohort_release(cid: str, ts: str, tx_id: str) -> str:
    return ck("crel", cid, ts, tx_id)


def blob(blob_id: str) -> str:
    return ck("blob", blob_id)


def dataset(ds: str) -> str:
    return ck("dataset", ds)


def release(ds: str, release_id: str) -> str:
    return ck("release", ds, release_id)


def spend(ds: str, ts: str, tx_id: str) -> str:
    return ck("spend", ds, ts, tx_id)


def audit_patient(patient: str, kind: str, ts: str, rid: str) -> str:
    return ck("a.p", patient, kind, ts, rid)


def audit_user(uid: str, kind: str, ts: str, rid: str) -> str:
    return ck("a.u", uid, kind, ts, rid)


def audit_time(kind: str, ts: str, rid: str) -> str:
    return ck("a.t", kind, ts, rid)


def prefix_range(object_type: str, *attrs: str, start: str = "", end: str = "") -> tuple[str, str]:
    """``[first, last)`` over the keys ``object_type/attrs.../<t>...`` with ``start <= t < end``
    (open bounds when empty): the range for a time window under a composite prefix."""
    base = ck(object_type, *attrs)
    return base + start, (base + end) if end else base + MAX_RUNE
