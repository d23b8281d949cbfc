"""How the domain errors of auth, the vault and the ledger become RFC 9457 problem responses.

- :class:`auth.AuthError` keeps its slug, status and extension members (``Retry-After`` and
  ``WWW-Authenticate`` where they apply);
- :class:`vault.VaultError` keeps its slug and status — except that the vault's own access
  tokens are not HTTP authentication, so its 401s become 403 and its ``token-expired`` is
  ``record-token-expired`` (``token-expired`` is the JWT's);
- :class:`network.GatewayError`, by its ``kind`` (the same for the embedded node and real Fabric,
  whose gateway answers the same case with other gRPC codes than one might guess): a chaincode
  refusal (400/403/404/409) keeps its status with the chaincode's own message (it names the
  field); an identity the ledger refused is 403 ``chain-forbidden``; a malformed request 400
  ``chain-invalid-argument``; a ledger that cannot be reached is 503 ``ledger-unavailable``; a
  channel or chaincode the ledger does not have is 502 ``ledger-not-configured`` (the gateway's
  configuration does not match the network — not a node that is down); anything else 502
  ``ledger-error``;
- :class:`network.CommitError` (ordered but not VALID, e.g. an MVCC conflict) is 409
  ``ledger-commit-failed`` with the transaction id and validation code.
"""

from __future__ import annotations

import logging

import grpc
from flask import Flask, Response

import auth
import vault
from network import CommitError, GatewayError

from . import problems as P
from .app import map_error

log = logging.getLogger("serums.gateway")

CHAIN_INVALID = P.problem_type(
    "chain-invalid-argument", 400, "Refused by the ledger: invalid argument",
    "The chaincode refused an argument; `detail` names the field and why.",
)
CHAIN_FORBIDDEN = P.problem_type(
    "chain-forbidden", 403, "Refused by the ledger: not allowed",
    "The chaincode does not let the caller's identity do this; `detail` says who may.",
)
CHAIN_NOT_FOUND = P.problem_type(
    "chain-not-found", 404, "Not on the ledger", "The ledger holds no such record (user, grant, rule, …).",
)
CHAIN_CONFLICT = P.problem_type(
    "chain-conflict", 409, "Refused by the ledger: conflict",
    "The request conflicts with what the ledger holds (already registered, already revoked, …).",
)
LEDGER_ERROR = P.problem_type(
    "ledger-error", 502, "Ledger error", "The ledger answered with an unexpected error; it was logged.",
)
LEDGER_NOT_CONFIGURED = P.problem_type(
    "ledger-not-configured", 502, "Ledger not configured for this gateway",
    "The ledger node answered but has no such channel or chaincode: the gateway's network configuration "
    "does not match the network; the operator must fix it (retrying will not help).",
)
COMMIT_FAILED = P.problem_type(
    "ledger-commit-failed", 409, "Transaction not committed",
    "The transaction was ordered but the peers did not commit it (`code`, e.g. MVCC_READ_CONFLICT when a "
    "concurrent change touched the same records); retry.",
)
VAULT_UNAVAILABLE = P.problem_type(
    "vault-unavailable", 503, "Vault unavailable", "The hospital's vault cannot be opened right now; try again later.",
)
_CHAIN_TYPES = {400: CHAIN_INVALID, 403: CHAIN_FORBIDDEN, 404: CHAIN_NOT_FOUND, 409: CHAIN_CONFLICT}
_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
                grpc.StatusCode.RESOURCE_EXHAUSTED}
_VAULT_RENAMES = {"token-expired": "record-token-expired"}


def _catalogue_auth_and_vault() -> None:
    """Document every auth and vault slug at ``/problems/<slug>`` (the catalogue is the contract)."""

    def walk(cls):
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    for cls in walk(auth.AuthError):
        if cls.slug not in P.TYPES:
            doc = (cls.__doc__ or cls.title).strip().split("\n\n")[0].replace("\n", " ")
            P.problem_type(cls.slug, cls.status, cls.title, " ".join(doc.split()))
    for cls in walk(vault.VaultError):
        slug = _VAULT_RENAMES.get(cls.type, cls.type)
        if slug not in P.TYPES:
            doc = (cls.__doc__ or slug).strip().split("\n\n")[0]
            P.problem_type(slug, _vault_status(cls.status), slug.replace("-", " ").capitalize(), " ".join(doc.split()))


def _vault_status(status: int) -> int:
    return 403 if status == 401 else status


def auth_problem(err: auth.AuthError) -> Response:
    return auth_as_problem(err).response()


def auth_as_problem(err: auth.AuthError) -> P.Problem:
    body = err.problem()
    extra = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail")}
    headers = {}
    if err.status == 401:
        code = "invalid_token" if err.slug.startswith(("token-", "refresh-")) else None
        headers["WWW-Authenticate"] = f'Bearer error="{code}"' if code else "Bearer"
    if err.retry_after_seconds is not None:
        headers["Retry-After"] = str(err.retry_after_seconds)
    pt = P.TYPES.get(err.slug) or P.problem_type(err.slug, err.status, err.title, err.title)
    return P.Problem(pt, err.detail, status=err.status, extra=extra, headers=headers)


def vault_problem(err: vault.VaultError) -> Response:
    return vault_as_problem(err).response()


def vault_as_problem(err: vault.VaultError) -> P.Problem:
    slug = _VAULT_RENAMES.get(err.type, err.type)
    status = _vault_status(err.status)
    if isinstance(err, vault.VaultConfigError):
        log.error("vault configuration error: %s", err.message)
        return P.Problem(VAULT_UNAVAILABLE, headers={"Retry-After": "30"})
    if status >= 500 and status != 503:
        log.error("vault error %s: %s", err.type, err.message)
    pt = P.TYPES.get(slug) or P.problem_type(slug, status, slug, slug)
    extra = {}
    problems = getattr(err, "problems", None)
    if problems:
        extra["errors"] = [str(p) for p in problems[:100]]
    headers = {"Retry-After": "5"} if status == 503 else {}
    return P.Problem(pt, err.message, status=status, extra=extra, headers=headers)


def gateway_error_problem(err: GatewayError) -> Response:
    return gateway_error_as_problem(err).response()


def gateway_error_as_problem(err: GatewayError) -> P.Problem:
    extra = {"transaction_id": err.transaction_id} if err.transaction_id else {}
    cc = err.chaincode_status
    kind = err.kind
    if kind == GatewayError.CHAINCODE_REFUSAL and cc in _CHAIN_TYPES:
        return P.Problem(_CHAIN_TYPES[cc], err.chaincode_message or "", extra=extra)
    if kind == GatewayError.UNREACHABLE:
        log.warning("ledger unreachable: %s", err.message)
        return P.Problem(P.LEDGER_UNAVAILABLE, "The ledger node could not be reached; try again.",
                         headers={"Retry-After": "5"})
    if kind == GatewayError.ACCESS_DENIED:
        return P.Problem(CHAIN_FORBIDDEN, f"the ledger refused the caller's identity: {err}", extra=extra)
    if kind == GatewayError.INVALID_REQUEST:
        return P.Problem(CHAIN_INVALID, f"the ledger refused the message: {err}", extra=extra)
    if kind in (GatewayError.CHANNEL_NOT_FOUND, GatewayError.CHAINCODE_NOT_FOUND):
        log.error("ledger not configured for this gateway (%s): %s", err.code, err)
        return P.Problem(LEDGER_NOT_CONFIGURED, f"the ledger answered: {err}", extra=extra)
    log.error("ledger error (%s): %s", err.code, err)
    return P.Problem(LEDGER_ERROR, extra=extra)


def commit_problem(err: CommitError) -> Response:
    return commit_as_problem(err).response()


def commit_as_problem(err: CommitError) -> P.Problem:
    return P.Problem(
        COMMIT_FAILED, f"transaction {err.transaction_id} was not committed: {err.code_name}",
        extra={"transaction_id": err.transaction_id, "code": err.code_name, "block": err.block_number},
    )


def rpc_problem(err: grpc.RpcError) -> Response:
    return rpc_as_problem(err).response()


def rpc_as_problem(err: grpc.RpcError) -> P.Problem:
    code = err.code() if hasattr(err, "code") else None  # type: ignore[attr-defined]
    if code in _UNREACHABLE or code is None:
        return P.Problem(P.LEDGER_UNAVAILABLE, headers={"Retry-After": "5"})
    log.error("gRPC error %s", code)
    return P.Problem(LEDGER_ERROR)


_AS_PROBLEM = ((P.Problem, lambda e: e), (auth.AuthError, auth_as_problem), (vault.VaultError, vault_as_problem),
               (GatewayError, gateway_error_as_problem), (CommitError, commit_as_problem),
               (grpc.RpcError, rpc_as_problem))


def problem_of(exc: BaseException) -> P.Problem:
    """Any error of a request as the one :class:`~gateway.problems.Problem` value: what the API
    renders as problem+json and the pages show inline, with the same words. Anything unexpected
    is logged and becomes ``internal-error``."""
    for exc_type, convert in _AS_PROBLEM:
        if isinstance(exc, exc_type):
            return convert(exc)
    log.error("unhandled error", exc_info=exc)
    return P.Problem(P.INTERNAL)


def install_error_mappers(app: Flask) -> None:
    _catalogue_auth_and_vault()
    map_error(app, auth.AuthError, auth_problem)
    map_error(app, vault.VaultError, vault_problem)
    map_error(app, GatewayError, gateway_error_problem)
    map_error(app, CommitError, commit_problem)
    map_error(app, grpc.RpcError, rpc_problem)


__all__ = [
    "problem_of", "CHAIN_CONFLICT", "CHAIN_FORBIDDEN", "CHAIN_INVALID", "CHAIN_NOT_FOUND", "COMMIT_FAILED", "LEDGER_ERROR",
    "LEDGER_NOT_CONFIGURED",
    "VAULT_UNAVAILABLE", "auth_problem", "commit_problem", "gateway_error_problem", "install_error_mappers",
    "vault_problem",
]
