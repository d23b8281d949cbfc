"""The chain-backed :class:`~vault.ledger.GrantLedger`: the vault's seam on the TransportContract.

The vault signs as its hospital's vault service identity (a user registered on chain with role
``vault``); the chain refuses token bindings and access logs from anyone else.

- ``get_grant`` evaluates ``CheckGrant``: status, scope, expiry and bound token hashes from the
  committed world state, judged by the chain at the moment of the call (revocation, expiry,
  a suspended requester, withdrawn consent). A grant the chain does not consider live is
  reported with that reason as its status, so the vault releases nothing.
- ``release`` submits ``ReleaseAccess``: the chain checks the grant is live, the token bound
  and the sections within the grant, and records the access, in one transaction — the vault's
  redeem uses it, so a revocation can never slip between a check and its log.
- Cohort tokens (:mod:`vault.cohorts`): ``get_cohort`` evaluates ``GetCohort``, ``cohort_members``
  ``CohortMembers`` (active members only), ``bind_cohort_token`` submits ``BindCohortToken`` and
  ``release_cohort`` ``ReleaseCohort`` (checked and logged in one transaction; a refusal is a
  :class:`LedgerRefusal` with the chain's reason).
- ``bind_token``, ``log_access``, ``log_refusal``, ``log_refusal_summary``, ``anchor_blob`` submit
  ``BindToken``, ``LogAccess``, ``LogRefusal``, ``LogRefusalSummary``, ``AnchorBlob`` and wait until the transaction is committed
  VALID. In particular a release happens only after its access log is on the ledger: an access
  that left no trace is impossible, at the price of one commit (a few milliseconds on the
  embedded node) per read.

Every failure raises; the vault turns it into ``LedgerUnavailable`` and releases nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence

from network import Contract, Gateway, GatewayError, Identity, connect

from .cohorts import Cohort
from .ledger import GRANT_ACTIVE, BlobAnchor, Grant, LedgerRefusal, Refusal
from .refusals import RefusalSummary

TRANSPORT = "TransportContract"


def _parse_time(value: str) -> _dt.datetime:
    t = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def grant_from_chain(doc: dict) -> Grant:
    """A ``CheckGrant`` answer as the vault's Grant. ``live`` is the chain's verdict at the time of
    the call; a grant that is not live keeps the chain's reason as its status."""
    status = str(doc.get("status") or "unknown")
    if not doc.get("live") and status == GRANT_ACTIVE:
        status = str(doc.get("not_live_reason") or "not-live")
    expires = doc.get("expires_at")
    return Grant(
        grant_id=str(doc["grant_id"]),
        requester_id=str(doc["requester_id"]),
        patient=str(doc["patient"]),
        sections=frozenset(doc.get("sections") or ()),
        purpose=str(doc.get("purpose") or ""),
        expires_at=_parse_time(expires) if expires else _dt.datetime.min.replace(tzinfo=_dt.UTC),
        status=status,
        token_hashes=frozenset(doc.get("token_hashes") or ()),
    )


class ChainGrantLedger:
    """GrantLedger over the ``serums`` chaincode's TransportContract."""

    def __init__(self, contract: Contract, *, gateway: Gateway | None = None):
        self.contract = contract
        self._gateway = gateway

    @classmethod
    def connect(cls, identity: Identity, signer, endpoint: str, *, channel: str = "serums",
                chaincode: str = "serums") -> ChainGrantLedger:
        """Connect as the vault's service identity (``signer`` signs digests: a network.Signer)."""
        gw = connect(identity, signer, endpoint)
        return cls(gw.network(channel).contract(chaincode, TRANSPORT), gateway=gw)

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()

    # ------------------------------------------------------------------ GrantLedger

    def get_grant(self, grant_id: str) -> Grant | None:
        try:
            doc = self.contract.evaluate_json("CheckGrant", grant_id)
        except GatewayError as exc:
            if exc.chaincode_status == 404:
                return None
            raise
        if not doc or not doc.get("grant_id"):
            return None  # a request that was denied has no grant
        return grant_from_chain(doc)

    def bind_token(self, grant_id: str, token_hash: str) -> None:
        """BindToken, or :class:`LedgerRefusal` when the chain refuses the binding (grant not live,
        or its token limit reached: reason ``grant-token-limit``)."""
        try:
            self.contract.submit_json("BindToken", grant_id, token_hash)
        except GatewayError as exc:
            if exc.chaincode_status == 409:
                message = exc.chaincode_message or str(exc)
                reason = "grant-token-limit" if "tokens bound" in message else "grant-not-live"
                raise LedgerRefusal(reason, message) from None
            raise

    def log_access(self, grant_id: str, token_hash: str, sections_returned: Sequence[str], digest: str) -> None:
        self.contract.submit_json("LogAccess", grant_id, token_hash, json.dumps(sorted(sections_returned)), digest)

    def release(self, grant_id: str, token_hash: str, sections_returned: Sequence[str], digest: str) -> None:
        """ReleaseAccess: the chain checks the grant and the token and logs the access atomically."""
        try:
            self.contract.submit_json("ReleaseAccess", grant_id, token_hash, json.dumps(sorted(sections_returned)),
                                      digest)
        except GatewayError as exc:
            if exc.chaincode_status in (404, 409):
                message = exc.chaincode_message or str(exc)
                reason = "grant-not-found" if exc.chaincode_status == 404 else message.split(":", 1)[0]
                raise LedgerRefusal(reason, message) from None
            raise

    def log_refusal(self, refusal: Refusal) -> None:
        self.contract.submit_json(
            "LogRefusal", refusal.grant_id or "", refusal.token_hash, refusal.presenter_id or "", refusal.reason,
            refusal.detail or "",
        )

    def log_refusal_summary(self, summary: RefusalSummary) -> None:
        self.contract.submit_json("LogRefusalSummary", summary.as_chain_arg())

    def anchor_blob(self, anchor: BlobAnchor) -> None:
        self.contract.submit_json(
            "AnchorBlob", anchor.blob_id, anchor.patient, anchor.section, anchor.sha256, anchor.store,
            anchor.address, anchor.size,
        )

    # ------------------------------------------------------------------ CohortLedger

    def get_cohort(self, cohort_id: str) -> Cohort | None:
        try:
            doc = self.contract.evaluate_json("GetCohort", cohort_id)
        except GatewayError as exc:
            if exc.chaincode_status == 404:
                return None
            raise
        expires = doc.get("expires_at")
        return Cohort(cohort_id=str(doc["cohort_id"]), status=str(doc.get("status") or "unknown"),
                      live=bool(doc.get("live")), purpose=str(doc.get("purpose") or ""),
                      sections=frozenset(doc.get("sections") or ()), expires_at=_parse_time(expires) if expires else None)

    def cohort_members(self, cohort_id: str) -> list[str]:
        members, bookmark = [], ""
        while True:
            page = self.contract.evaluate_json("CohortMembers", cohort_id, 200, bookmark)
            members += [r["patient"] for r in page["records"] if r.get("status") == GRANT_ACTIVE]
            bookmark = page.get("bookmark") or ""
            if not bookmark:
                return members

    def bind_cohort_token(self, cohort_id: str, token_hash: str, presenter_id: str, expires_at: _dt.datetime) -> None:
        try:
            self.contract.submit_json("BindCohortToken", cohort_id, token_hash, presenter_id,
                                      expires_at.astimezone(_dt.UTC).isoformat())
        except GatewayError as exc:
            raise _cohort_refusal(exc) from None

    def release_cohort(self, cohort_id: str, token_hash: str, patients: Sequence[str], sections: Sequence[str],
                       digest: str) -> dict:
        try:
            return self.contract.submit_json("ReleaseCohort", cohort_id, token_hash, list(patients),
                                             sorted(sections), digest)
        except GatewayError as exc:
            raise _cohort_refusal(exc) from None


def _cohort_refusal(exc: GatewayError) -> Exception:
    """The chain's refusal of a cohort transaction as a :class:`LedgerRefusal` (its stable reason is
    the message's prefix); anything else as it came."""
    message = exc.chaincode_message or str(exc)
    if exc.chaincode_status == 404:
        return LedgerRefusal("cohort-not-found", message)
    if exc.chaincode_status == 403 or (exc.chaincode_status == 400 and message.startswith("presenter_id")):
        return LedgerRefusal("token-presenter-mismatch", message)
    if exc.chaincode_status == 409:
        reason = message.split(":", 1)[0]
        return LedgerRefusal(reason if " " not in reason else "cohort-not-live", message)
    return exc
