"""The application layer: the flow's actions as functions that return data.

The JSON API (``gateway/api``) and the web pages (``gateway/web``) both call these; neither holds
flow logic of its own. Each action takes the :class:`~gateway.services.Services` and the
:class:`Actor` (who is acting, and how to sign as them) and returns plain data; a refusal is
raised as a domain error (``auth.AuthError``, ``vault.VaultError``, ``network.GatewayError``,
``network.CommitError``) or a :class:`gateway.problems.Problem`, which
:func:`gateway.errors.problem_of` turns into one :class:`~gateway.problems.Problem` value — the
API renders it as problem+json, the pages inline, with the same words.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auth import WalletNotHeld
from network import CommitError, Contract, Signer
from vault import Release, VaultError

from . import ledger as L
from . import problems as P

OWN_RECORD = P.problem_type(
    "own-record-refused", 403, "Own record refused",
    "The chain did not grant the patient their own record (a suspended account is refused everything).",
)


@dataclass(frozen=True)
class Actor:
    """Who acts: pseudonymous user id, role, hospital (name), MSP id, session id — and how to sign
    as them (their wallet, opened for this session only when a transaction needs it)."""

    user_id: str
    role: str
    hospital: str
    msp: str
    session_id: str
    signer: Callable[[], Signer]

    def contract(self, services, name: str) -> Contract:
        """A contract of the ``serums`` chaincode as this actor (their certificate and signer)."""
        return services.user_contract(self.user_id, self.signer(), name, self.role)

    def reader(self, services, name: str) -> Contract:
        """A contract to *read* (evaluate) what this actor may read: as themselves when their session
        can sign; for a patient who holds their own key (the server cannot sign for them), as their
        hospital's admin identity, which the chain lets read that hospital's patients. Evaluations
        are not transactions: nothing is written in anyone's name."""
        try:
            return self.contract(services, name)
        except WalletNotHeld:
            if self.role != "patient":
                raise
            return services.admin_contract(self.hospital, name)


def release_data(services, release: Release, hospital: str, record_format: str, request_id: str | None = None,
                 evidence: dict | None = None) -> dict[str, Any]:
    """A vault release as data: the granted sections, those withheld, the record, the digest."""
    v = services.vault(hospital)
    return {
        "grant_id": release.grant_id, "request_id": request_id or release.grant_id, "patient_id": release.patient,
        "hospital": hospital, "sections": list(release.sections),
        "withheld": [s for s in v.sections if s not in release.sections], "digest": release.digest,
        "format": record_format, "record": release.body(), "evidence": evidence or {},
    }


#: Who may redeem a patient's share code (step 3): the clinicians a patient meets in person.
#: Insurers and researchers reach records only through the chain's rules and the patient's
#: preferences, with ids they were given otherwise (a cohort, a pseudonymous id).
SHARE_CODE_ROLES = ("gp", "specialist", "nurse")


def redeem_share_code(services, actor: Actor, code: str, client_addr: str | None = None) -> tuple[str, str]:
    """Step 3: a patient's share code → (patient id, hospital); the code is used up. Clinicians
    only; wrong codes are throttled per user and per client address."""
    if actor.role not in SHARE_CODE_ROLES:
        raise P.Problem(P.FORBIDDEN, f"share codes are redeemed by {', '.join(SHARE_CODE_ROLES)} users; you are "
                                     f"logged in as {P.article(actor.role)} {actor.role}")
    return services.store.redeem_share_code(code, actor.user_id, client_addr)


def request_access(services, actor: Actor, patient_id: str, hospital: str | None, *, sections: list[str],
                   purpose: str, justification: str, justification_text: str | None = None,
                   break_glass: bool = False) -> dict[str, Any]:
    """Steps 5–8: the request (or break-glass) signed by the actor; the chain decides per section
    and records the decision, denials included; when something is granted the patient's vault
    mints the token. A token that cannot be minted now leaves the decision standing
    (``token_error``; a token can be minted for the grant later)."""
    transport = actor.contract(services, "TransportContract")
    transient = {"justification": justification_text.encode("utf-8")} if justification_text else None
    if break_glass:
        tx = L.submit(transport, "BreakGlass", patient_id, sections, justification, transient=transient)
    else:
        tx = L.submit(transport, "RequestAccess", patient_id, sections, purpose, justification, transient=transient)
    d = tx.result
    out = {**d, "patient_id": patient_id, "transaction_id": tx.transaction_id, "block": tx.block_number,
           "token": None}
    if d.get("grant_id"):
        try:
            hospital = hospital or services.patient_hospital(patient_id, transport, d["request_id"])
            out["token"] = mint_token_data(services, hospital, d["grant_id"])
        except (VaultError, P.Problem) as exc:
            detail = exc.message if isinstance(exc, VaultError) else exc.detail
            slug = exc.type if isinstance(exc, VaultError) else exc.type.slug
            out["token_error"] = {"type": f"/problems/{slug}", "detail": detail}
    return out


def my_patients(services, actor: Actor, *, current_only: bool = True, page_size: int = 100,
                bookmark: str = "") -> dict[str, Any]:
    """The patients a clinician treats (``UserContract:ListPatientsOfClinician``, a range over the
    chain's clinician → patient index), one page, each with its hospital's name (``hospital``)."""
    page = L.page(L.evaluate(actor.contract(services, "UserContract"), "ListPatientsOfClinician", actor.user_id,
                             current_only, page_size, bookmark))
    for r in page["records"]:
        r["hospital"] = services.hospital_of(r["patient_hospital"]) if r.get("patient_hospital") else ""
    return page


def index_treatments(services, actor: Actor, page_size: int = 200) -> dict[str, int]:
    """A hospital admin adds its patients' treating relationships recorded before the chain indexed
    them by clinician to that index (``UserContract:IndexTreatments``, one transaction per page)."""
    users = actor.contract(services, "UserContract")
    indexed = read = 0
    bookmark = ""
    while True:
        r = L.submit(users, "IndexTreatments", page_size, bookmark).result
        indexed, read, bookmark = indexed + r["indexed"], read + r["read"], r["bookmark"]
        if not bookmark:
            return {"indexed": indexed, "read": read}


def mint_token_data(services, hospital: str, grant_id: str) -> dict[str, Any]:
    minted = services.vault(hospital).mint_token(grant_id)
    return {"token": minted.token, "token_hash": minted.token_hash,
            "expires_at": minted.claims.expires_at.isoformat(), "hospital": hospital}


def mint_token(services, actor: Actor, grant_id: str) -> dict[str, Any]:
    """A fresh token for one of the actor's live grants."""
    g = L.evaluate(actor.contract(services, "TransportContract"), "GetGrant", grant_id)
    if g.get("requester_id") != actor.user_id:
        raise P.Problem(P.FORBIDDEN, "tokens are minted for the grant's requester only")
    return mint_token_data(services, services.hospital_of(g["patient_hospital"]), grant_id)


def fetch_record(services, actor: Actor, token: str, record_format: str = "json") -> dict[str, Any]:
    """Steps 9–10: the vault checks the token (signature, expiry, presenter, live grant, binding),
    returns the granted sections only and logs the access on chain before answering."""
    hospital, v = services.vault_for_token(token, actor.hospital)
    release = v.redeem(token, actor.user_id, fhir=record_format == "fhir")
    return release_data(services, release, hospital, record_format,
                        evidence={"token_hash": release.token_hash, "access_digest": release.digest})


#: what a patient's own-record request asks (the same whether the server or the patient's device signs)
OWN_RECORD_REQUEST = ("treatment", "patient-request")


def own_record(services, actor: Actor, sections: list[str], record_format: str = "json") -> dict[str, Any]:
    """A patient's own record, through the same gate as everyone (grant ``own-record``, token,
    release, access logged on chain)."""
    tx = L.submit(actor.contract(services, "TransportContract"), "RequestAccess", actor.user_id, sections,
                  *OWN_RECORD_REQUEST)
    decision = tx.result
    if not decision.get("grant_id"):
        raise P.Problem(OWN_RECORD, f"the chain refused: {decision.get('reasons')}")
    return _release_own(services, actor, decision["grant_id"], record_format, decision["request_id"],
                        {"request": tx.evidence()})


def own_record_release(services, actor: Actor, grant_id: str, record_format: str = "json") -> dict[str, Any]:
    """The release of a patient's own record for a grant the chain made them — the second half of
    :func:`own_record` when the patient's device signed the request (offline signing): the grant
    must be the patient's own, on their own record and live; then the token, the release and the
    access logged on chain as for everyone."""
    g = L.evaluate(actor.reader(services, "TransportContract"), "GetGrant", grant_id)
    if g.get("requester_id") != actor.user_id or g.get("patient") != actor.user_id:
        raise P.Problem(P.FORBIDDEN, "this grant is not one of your own-record grants")
    if not g.get("live"):
        raise P.Problem(OWN_RECORD, f"grant {grant_id} is no longer live ({g.get('not_live_reason') or g.get('status')}):"
                                    " open your record again")
    return _release_own(services, actor, grant_id, record_format, grant_id, {})


def _release_own(services, actor: Actor, grant_id: str, record_format: str, request_id: str,
                 evidence: dict[str, Any]) -> dict[str, Any]:
    v = services.vault(actor.hospital)
    minted = v.mint_token(grant_id)
    release = v.redeem(minted.token, actor.user_id, fhir=record_format == "fhir")
    return release_data(services, release, actor.hospital, record_format, request_id,
                        {**evidence, "token_hash": minted.token_hash, "access_digest": release.digest})


# ----------------------------------------------------------------------------- the patient's own actions


def add_preference(services, actor: Actor, preference: dict[str, Any]) -> L.TxResult:
    """Step 2: add (or, with ``pref_id``, replace) a preference, signed with the patient's key
    (``preference`` as ``PreferenceContract:AddPreference`` takes it)."""
    return L.submit(actor.contract(services, "PreferenceContract"), "AddPreference", actor.user_id, preference)


def withdraw_preference(services, actor: Actor, pref_id: str) -> L.TxResult:
    return L.submit(actor.contract(services, "PreferenceContract"), "WithdrawPreference", actor.user_id, pref_id)


def preview_preferences(services, actor: Actor, requester: dict[str, Any], sections: list[str],
                        purpose: str) -> dict[str, Any]:
    """What a requester would get of the patient's record for ``purpose``, under their hospital's
    rules and the patient's current preferences (``PreferenceContract:Preview``, an evaluation:
    nothing is written). ``requester``: ``{"user": user id}``, or ``{"role", "hospital": name,
    "treating": bool}`` for anyone of that role at that hospital; ``sections`` ``["*"]``: all."""
    chain = dict(requester)
    if "hospital" in chain:
        chain["hospital"] = services.msp_of(chain["hospital"])
    out = L.evaluate(actor.reader(services, "PreferenceContract"), "Preview", actor.user_id, chain, sections, purpose)
    who = out["requester"]
    who["hospital"] = services.hospital_of(who["hospital"])
    return out


def consent_bundle(services, actor: Actor) -> dict[str, Any]:
    """The patient's current preferences as FHIR R5 ``Consent`` resources (a collection Bundle)."""
    from .consent import preferences_bundle

    prefs = L.evaluate(actor.reader(services, "PreferenceContract"), "ListPreferences", actor.user_id)
    return preferences_bundle(actor.user_id, prefs.get("rules") or {})


def revoke_grant(services, actor: Actor, grant_id: str, reason: str) -> L.TxResult:
    """Revoke a grant (the patient on their record, a requester relinquishing): tokens stop at once."""
    return L.submit(actor.contract(services, "TransportContract"), "Revoke", grant_id, reason)


def patient_trail(services, actor: Actor, patient_id: str, kind: str, page_size: int = 50,
                  bookmark: str = "", start: str = "", end: str = "") -> dict[str, Any]:
    """One page of a patient's trail (``kind``: access, decision, grant, refusal, revocation, break-glass, cohort)."""
    return L.page(L.evaluate(actor.reader(services, "AuditContract"), "AuditByPatient", patient_id, kind, start, end,
                             page_size, bookmark))


# ----------------------------------------------------------------------------- offline signing (own key)

#: What a patient who holds their own key signs on their device (the server cannot sign for them):
#: an action → (contract, function, its arguments from the action's parameters). Every one is the
#: patient acting on themself; the chain checks the rest (a revocation: only on their own grants).
OFFLINE_ACTIONS: dict[str, tuple[str, str, Callable[..., list]]] = {
    "add": ("PreferenceContract", "AddPreference", lambda me, preference=None, **_: [me, preference]),
    "withdraw": ("PreferenceContract", "WithdrawPreference", lambda me, pref_id=None, **_: [me, pref_id or ""]),
    "own-record": ("TransportContract", "RequestAccess",
                   lambda me, sections=None, **_: [me, sections or ["*"], *OWN_RECORD_REQUEST]),
    "revoke": ("TransportContract", "Revoke",
               lambda me, grant_id=None, reason="patient-request", **_: [grant_id or "", reason]),
}
OFFLINE_FUNCTIONS = tuple(dict.fromkeys(f"{c}:{f}" for c, f, _ in OFFLINE_ACTIONS.values()))
#: the functions whose first argument must be the patient themself
_ABOUT_ME = ("PreferenceContract:AddPreference", "PreferenceContract:WithdrawPreference",
             "TransportContract:RequestAccess")


def prepare_offline(services, actor: Actor, action: str, **params: Any) -> dict[str, Any]:
    """Offline signing, 1/3: the proposal of one of :data:`OFFLINE_ACTIONS` (a preference added or
    withdrawn, the own-record request, a revocation) for the patient's device to sign — the server
    never needs their key. ``params``: ``preference``, ``pref_id``, ``sections``, ``grant_id``, ``reason``."""
    if action not in OFFLINE_ACTIONS:
        raise P.Problem(P.VALIDATION, f"action: one of {', '.join(OFFLINE_ACTIONS)}")
    contract_name, fn, arguments = OFFLINE_ACTIONS[action]
    contract = services.user_contract(actor.user_id, None, contract_name, actor.role)
    proposal = contract.new_proposal(fn, [L.encode_arg(a) for a in arguments(actor.user_id, **params)])
    # ``message``: the bytes whose SHA-256 is ``digest`` (a signer that hashes itself, as WebCrypto
    # does, signs these; one that signs digests signs ``digest``)
    return {"transaction_id": proposal.transaction_id, "proposal": L.b64(proposal.bytes()),
            "digest": L.b64(proposal.digest()), "message": L.b64(proposal.proposal_bytes)}


def _check_proposal(services, actor: Actor, proposal_bytes: bytes):
    ident = services.user_identity(actor.user_id, actor.role)
    info = L.inspect_proposal(proposal_bytes)
    if info.creator != ident.serialize():
        raise P.Problem(L.OFFLINE_INVALID, "proposal: it was not made for your identity")
    if (info.chaincode != L.CHAINCODE or info.channel != services.network.channel
            or info.function not in OFFLINE_FUNCTIONS):
        raise P.Problem(L.OFFLINE_INVALID, f"proposal: only {', '.join(OFFLINE_FUNCTIONS)} are signed offline here")
    if info.function in _ABOUT_ME and (not info.args or info.args[0] != actor.user_id.encode()):
        raise P.Problem(L.OFFLINE_INVALID, "proposal: it is not about yourself")
    return ident


def endorse_offline(services, actor: Actor, proposal_bytes: bytes, signature: bytes) -> dict[str, Any]:
    """Offline signing, 2/3: the signed proposal is endorsed by the peers; the device signs the
    transaction's ``digest`` next."""
    ident = _check_proposal(services, actor, proposal_bytes)
    proposal = services.gateway(ident, None).new_proposal(proposal_bytes)
    L.check_signature(ident, proposal.proposal_bytes, signature, "signature")
    proposal.set_signature(signature)
    tx = proposal.endorse()
    return {"transaction_id": tx.transaction_id, "transaction": L.b64(tx.bytes()), "digest": L.b64(tx.digest()),
            "message": L.b64(tx.payload), "result": L.decode_result(tx.result)}


def submit_offline(services, actor: Actor, tx_bytes: bytes, signature: bytes) -> dict[str, Any]:
    """Offline signing, 3/3: the signed transaction is ordered; answers once it is committed."""
    ident = services.user_identity(actor.user_id, actor.role)
    creator, tx_id, payload = L.transaction_creator(tx_bytes)
    if creator != ident.serialize():
        raise P.Problem(L.OFFLINE_INVALID, "transaction: it was not made for your identity")
    L.check_signature(ident, payload, signature, "signature")
    tx = services.gateway(ident, None).new_transaction(tx_bytes, signature)
    result = L.decode_result(tx.result)
    tx.submit()
    status = L.wait_for_commit(services.service_gateway(actor.hospital), services.network.channel, tx_id)
    if not status.successful:
        raise CommitError(status.transaction_id, status.code, status.block_number)
    return {"transaction_id": tx_id, "block": status.block_number, "result": result}


# ----------------------------------------------------------------------------- a hospital admin's actions


def suspend_user(services, actor: Actor, user_id: str, reason: str) -> tuple[dict, Any]:
    """Suspend a user on chain (every decision denies them; their grants stop being live) and in
    the directory (their sessions end now). Returns the chain's user and the directory entry."""
    doc = L.submit(actor.contract(services, "UserContract"), "SuspendUser", user_id, reason).result
    if services.auth.get_user(user_id) is not None:
        services.auth.suspend(user_id)
    return doc, services.auth.get_user(user_id)


def change_role(services, actor: Actor, user_id: str, role: str) -> tuple[dict, Any]:
    """Give a user of the admin's hospital another role, on chain (``UserContract:UpdateUser``,
    signed by the admin, with the new certificate the role needs) and in the directory; their
    sessions end, and they sign in again in the new role. Returns the chain's user and the entry."""
    user = services.auth.get_user(user_id)
    if user is None or user.hospital != actor.hospital:
        raise P.Problem(P.NOT_FOUND, f"no user {user_id!r} in the directory of {actor.hospital}")
    return services.change_role(actor.contract(services, "UserContract"), user_id, role)


def reinstate_user(services, actor: Actor, user_id: str) -> tuple[dict, Any]:
    """Reinstate a suspended user (grants made before the suspension stay dead)."""
    doc = L.submit(actor.contract(services, "UserContract"), "ReinstateUser", user_id).result
    if services.auth.get_user(user_id) is not None:
        services.auth.reinstate(user_id)
    return doc, services.auth.get_user(user_id)


# ----------------------------------------------------------------------------- the auditors' trail

TRAIL_FIRST_COLUMNS = ("kind", "id", "at", "patient", "requester_id", "requester_role", "requester_hospital",
                       "purpose", "outcome", "sections", "status", "break_glass", "grant_id", "presenter_id", "reason",
                       "digest", "anomalies")


def audit_page(services, actor: Actor, query: dict[str, Any], page_size: int, bookmark: str) -> dict[str, Any]:
    """One page of the trail: of ``query["patient"]``, of ``query["user"]``, or of everyone by time,
    of one ``kind``, in ``[start, end)`` (datetimes or absent); ``bookmark`` as the chain gave it."""
    contract = actor.contract(services, "AuditContract")
    window = (query["kind"], _iso(query.get("start")), _iso(query.get("end")), page_size, bookmark)
    if query.get("patient"):
        return L.evaluate(contract, "AuditByPatient", query["patient"], *window)
    if query.get("user"):
        return L.evaluate(contract, "AuditByUser", query["user"], *window)
    return L.evaluate(contract, "AuditByTime", *window)


def _iso(value) -> str:
    return value.isoformat() if value is not None else ""


def _flatten(item: dict[str, Any]) -> dict[str, str]:
    row: dict[str, Any] = {k: v for k, v in item.items() if k != "record"}
    for k, v in (item.get("record") or {}).items():
        row.setdefault(k, v)
    return {k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for k, v in row.items()}


def trail_csv(items: list[dict[str, Any]]) -> str:
    """Trail records as CSV: the usual columns first, then every other field (JSON for structures)."""
    rows = [_flatten(i) for i in items]
    keys = [k for k in TRAIL_FIRST_COLUMNS if any(k in r for r in rows)]
    keys += sorted({k for r in rows for k in r} - set(keys))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# ----------------------------------------------------------------------------- the block explorer


def _msp(serialized_identity: bytes) -> str:
    from fabric_protos.msp import identities_pb2

    ident = identities_pb2.SerializedIdentity()
    try:
        ident.ParseFromString(serialized_identity)
    except Exception:  # noqa: BLE001 - an unreadable identity is shown as unknown
        return "?"
    return ident.mspid


def block_view(block) -> dict[str, Any]:
    """A committed block as an auditor reads it: header hashes, and per transaction its id, time,
    creator, function, endorsers, validation code and chaincode event."""
    from network import protocol

    codes = protocol.transactions_filter(block)
    txs = []
    for i, tx in enumerate(protocol.parse_block_transactions(block)):
        code = protocol.validation_code_name(codes[i]) if i < len(codes) else "?"
        if tx is None:
            txs.append({"index": i, "tx_id": "", "kind": "config or other", "validation": code})
            continue
        event = tx.event
        txs.append({
            "index": i, "tx_id": tx.tx_id, "at": tx.timestamp.isoformat(), "creator": _msp(tx.creator),
            "function": tx.args[0].decode("utf-8", "replace") if tx.args else "", "validation": code,
            "endorsers": [_msp(e.endorser) for e in tx.endorsements], "event": event.event_name if event else "",
        })
    return {"number": block.header.number, "data_hash": block.header.data_hash.hex(),
            "previous_hash": block.header.previous_hash.hex(), "transactions": txs}


def recent_blocks(services, actor: Actor, count: int = 10, before: int | None = None) -> dict[str, Any]:
    """The ``count`` blocks below ``before`` (default: the newest), read over Deliver as the actor."""
    network = actor.contract(services, "AuditContract").network
    with network.block_events() as stream:  # from the newest block: the height
        height = next(iter(stream)).header.number + 1
    top = min(height, before if before is not None else height)
    start = max(0, top - count)
    blocks = []
    if top > start:
        with network.block_events(start_block=start, stop_block=top - 1) as stream:
            blocks = [block_view(b) for b in stream]
    return {"height": height, "blocks": list(reversed(blocks)), "next_before": start if start > 0 else None}


__all__ = ["OFFLINE_ACTIONS", "OFFLINE_FUNCTIONS", "OWN_RECORD", "SHARE_CODE_ROLES", "Actor", "add_preference", "consent_bundle", "fetch_record", "mint_token", "mint_token_data", "my_patients", "index_treatments", "own_record", "own_record_release",
           "prepare_offline", "endorse_offline", "submit_offline", "change_role",
           "patient_trail", "redeem_share_code", "reinstate_user", "suspend_user", "release_data", "request_access", "revoke_grant",
           "trail_csv", "withdraw_preference"]
