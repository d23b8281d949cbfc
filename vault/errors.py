"""Errors of the vault, each with a stable ``type`` slug.

The gateway turns these into RFC 9457 problem+json responses: ``type`` is the stable part a
client may branch on, the message is for humans, ``status`` is the HTTP status the error maps to.
Every refusal to release data is a ``TokenError`` (or ``GrantError``) so that a caller can tell
"you may not" apart from "something broke".
"""

from __future__ import annotations

from dataclasses import dataclass


class VaultError(Exception):
    """Base of every error the vault raises on purpose."""

    type: str = "vault-error"
    status: int = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_problem(self) -> dict[str, object]:
        """RFC 9457 problem details (the gateway prefixes ``type`` with its URI base)."""
        return {"type": self.type, "title": self.type.replace("-", " "), "status": self.status,
                "detail": self.message}


# --------------------------------------------------------------------------- configuration


class VaultConfigError(VaultError):
    """The vault cannot be opened as configured (missing key, wrong KEK, bad URL…)."""

    type = "vault-config"
    status = 500


class FormatError(VaultError):
    """A Smart Patient Record Format definition is invalid; ``problems`` lists every finding."""

    type = "record-format-invalid"
    status = 400

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:50])
        more = f"\n  … and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"record format {source} is invalid:\n  {shown}{more}")


# --------------------------------------------------------------------------- ingest


@dataclass(frozen=True)
class RowProblem:
    """One bad source row: where it is (1-based data row, and a human location) and why."""

    table: str
    row: int
    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


class IngestError(VaultError):
    """A source file cannot be ingested at all (unknown table, missing columns, unreadable)."""

    type = "ingest-invalid"
    status = 400


class IngestRejected(IngestError):
    """Some rows are bad; nothing of the ingest was written. ``problems`` holds every bad row."""

    type = "ingest-rejected"

    def __init__(self, problems: list[RowProblem], rows_read: int):
        self.problems = list(problems)
        self.rows_read = rows_read
        shown = "\n  ".join(str(p) for p in self.problems[:20])
        more = f"\n  … and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(
            f"{len(self.problems)} bad row(s) out of {rows_read}; nothing was written:\n  {shown}{more}"
        )


# --------------------------------------------------------------------------- records and keys


class PatientNotFound(VaultError):
    type = "patient-not-found"
    status = 404


class PatientErased(PatientNotFound):
    """The patient's data key was destroyed: their rows exist only as undecryptable ciphertext."""

    type = "patient-erased"
    status = 410


class UnknownSection(VaultError):
    type = "unknown-section"
    status = 400


class IntegrityError(VaultError):
    """Stored ciphertext or a blob does not authenticate: tampering, corruption or a wrong key."""

    type = "integrity-failure"
    status = 500


class BlobNotFound(VaultError):
    type = "blob-not-found"
    status = 404


class BlobStoreError(VaultError):
    """The blob store (filesystem or IPFS daemon) failed."""

    type = "blob-store-unavailable"
    status = 503


# --------------------------------------------------------------------------- tokens and grants


class LedgerUnavailable(VaultError):
    """The chain could not be reached or refused to record: the vault releases nothing then."""

    type = "ledger-unavailable"
    status = 503


class GrantTokenLimit(VaultError):
    """The chain already binds as many tokens to this grant as it allows: open the record with a
    token minted before, or request access again for a new grant."""

    type = "grant-token-limit"
    status = 409


class TokenError(VaultError):
    """A token was refused. Subclasses name the reason; each refusal is logged on the ledger."""

    type = "token-refused"
    status = 403


class TokenMalformed(TokenError):
    type = "token-malformed"
    status = 400


class TokenSignatureInvalid(TokenError):
    """The signature does not verify: the token was altered or not issued by this vault."""

    type = "token-signature-invalid"
    status = 401


class TokenExpired(TokenError):
    type = "token-expired"
    status = 401


class TokenPresenterMismatch(TokenError):
    """Someone other than the requester the token was minted for presented it."""

    type = "token-presenter-mismatch"
    status = 403


class TokenNotBound(TokenError):
    """The chain does not list this token's hash for the grant (never bound, or bound elsewhere)."""

    type = "token-not-bound"
    status = 403


class GrantError(TokenError):
    """The grant behind a token is not live on the chain."""

    type = "grant-not-live"
    status = 403


class GrantNotFound(GrantError):
    type = "grant-not-found"
    status = 403


class GrantRevoked(GrantError):
    type = "grant-revoked"
    status = 403


class GrantExpired(GrantError):
    type = "grant-expired"
    status = 403


class TokenGrantMismatch(GrantError):
    """The token claims something its grant does not say (another patient, wider sections…)."""

    type = "token-grant-mismatch"
    status = 403


class SectionNotGranted(TokenError):
    """A blob or section was asked for that the token does not release."""

    type = "section-not-granted"
    status = 403
