"""The data vault: T-P-O-L-E Smart Patient Records, encrypted at rest, released only against tokens.

Public API (what the gateway, analytics and ``serums`` use):

- ``open_vault(settings, hospital, ledger=...)`` (the one way to open a hospital's vault) /
  ``Vault.open(VaultConfig(...))`` — open or create.
- ``Vault.ingest_file`` / ``ingest_rows`` / ``ingest_tables`` — load source data through the
  record format (all or nothing; ``IngestRejected`` lists every bad row).
- ``Vault.find_patient(chi)`` -> patient reference; ``Vault.read_record``, ``history``,
  ``export_fhir`` — operator reads by section, current or as of a time.
- ``Vault.mint_token(grant_id)`` (step 7) and ``Vault.redeem(token, presenter_id)`` (steps 9–10),
  ``Vault.put_blob`` / ``redeem_blob`` — all through the ``GrantLedger`` seam to the chain.
- ``mint_cohort_token(vault, cohort_id, analytics_id)`` / ``redeem_cohort(vault, token, analytics_id)``
  — a research cohort's active members, only the cohort's sections, against a cohort token
  (``vault.cohorts``), the release checked and logged on chain.
- ``Vault.erase_patient`` (cryptographic erasure with proof), ``Vault.rotate_kek``.
- ``Masker`` / ``mask_file`` — format-preserving masking for test copies.
"""

from .blobs import BlobStore, FilesystemBlobStore, IpfsBlobStore
from .cohorts import (
    Cohort,
    CohortClaims,
    CohortExpired,
    CohortLedger,
    CohortNotFound,
    CohortNotLive,
    CohortRelease,
    CohortRevoked,
    MemberNotActive,
    MintedCohortToken,
    mint_cohort_token,
    redeem_cohort,
)
from .config import SettingsLike, VaultConfig
from .core import (
    BlobRelease,
    ErasureReport,
    IngestReport,
    Release,
    RotationReport,
    Vault,
    VaultStats,
    Version,
    open_vault,
)
from .errors import (
    BlobNotFound,
    BlobStoreError,
    FormatError,
    GrantError,
    GrantExpired,
    GrantNotFound,
    GrantRevoked,
    GrantTokenLimit,
    IngestError,
    IngestRejected,
    IntegrityError,
    LedgerUnavailable,
    PatientErased,
    PatientNotFound,
    RowProblem,
    SectionNotGranted,
    TokenError,
    TokenExpired,
    TokenGrantMismatch,
    TokenMalformed,
    TokenNotBound,
    TokenPresenterMismatch,
    TokenSignatureInvalid,
    UnknownSection,
    VaultConfigError,
    VaultError,
)
from .fhir import FhirExportError, record_to_bundle
from .ledger import (
    GRANT_ACTIVE,
    GRANT_EXPIRED,
    GRANT_REVOKED,
    AtomicGrantLedger,
    BlobAnchor,
    Grant,
    GrantLedger,
    LedgerRefusal,
    Refusal,
)
from .masking import Masker, chi_is_valid, load_mask_key, mask_file
from .record import BlobRef, Entry, HubRef, LinkEntry, PatientRecord, SectionData
from .recordformat import RecordFormat, load_format, parse_format, shipped_formats
from .tokens import MintedToken, TokenClaims, TokenIssuer, token_hash

__all__ = [
    "Cohort", "CohortClaims", "CohortExpired", "CohortLedger", "CohortNotFound", "CohortNotLive", "CohortRelease",
    "CohortRevoked", "MemberNotActive", "MintedCohortToken", "mint_cohort_token", "redeem_cohort",
    "GRANT_ACTIVE", "GRANT_EXPIRED", "GRANT_REVOKED",
    "BlobAnchor", "BlobNotFound", "BlobRef", "BlobRelease", "BlobStore", "BlobStoreError", "Entry", "ErasureReport",
    "FhirExportError", "FilesystemBlobStore", "FormatError", "Grant", "GrantError", "GrantExpired", "GrantLedger", "AtomicGrantLedger", "LedgerRefusal",
    "GrantNotFound", "GrantRevoked", "GrantTokenLimit", "HubRef", "IngestError", "IngestRejected", "IngestReport", "IntegrityError",
    "IpfsBlobStore", "LedgerUnavailable", "LinkEntry", "Masker", "MintedToken", "PatientErased", "PatientNotFound",
    "PatientRecord", "RecordFormat", "Refusal", "Release", "RotationReport", "RowProblem", "SectionData",
    "SectionNotGranted", "SettingsLike", "TokenClaims", "TokenError", "TokenExpired", "TokenGrantMismatch",
    "TokenIssuer", "TokenMalformed", "TokenNotBound", "TokenPresenterMismatch", "TokenSignatureInvalid",
    "UnknownSection", "Vault", "VaultConfig", "VaultConfigError", "VaultError", "VaultStats", "Version",
    "chi_is_valid", "load_format", "load_mask_key", "mask_file", "open_vault", "parse_format", "record_to_bundle",
    "shipped_formats", "token_hash",
]
