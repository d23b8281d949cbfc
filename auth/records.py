"""The dataclasses that cross the auth package's boundary (what the gateway sends and receives)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from .errors import InvalidInput
from .factors import TotpProvisioning
from .graphical import GridImage
from .strength import StrengthReport

# The chain's person roles (chaincode.serums.vocab.PERSON_ROLES): the certificate's ``role`` attribute
# must be one the UserContract registers, or the chain refuses the user (tests/auth check they match).
ROLES = ("patient", "gp", "specialist", "nurse", "insurer", "researcher", "auditor", "hospital_admin")
METHODS = ("text", "graphical")
SECOND_FACTORS = ("totp", "push", "recovery")
CUSTODY = ("wallet", "exported")

Method = Literal["text", "graphical"]
Custody = Literal["wallet", "exported"]

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,63}$")
_HOSPITAL = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# A chain user id (chaincode.serums.vocab.ID_RE), at most 40 characters (the directory's column).
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{1,39}$")


def normalise_username(username: object) -> str:
    """NFKC + casefold + trim: "Dr.Smith" and "dr.smith" are the same account."""
    if not isinstance(username, str):
        raise InvalidInput("the username must be a string")
    name = unicodedata.normalize("NFKC", username).strip().casefold()
    if not _USERNAME.match(name):
        raise InvalidInput(
            "a username has 3 to 64 characters: letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return name


def check_role(role: object) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    return str(role)


def check_user_id(user_id: object) -> str:
    """An explicit pseudonymous user id (e.g. the vault's patient reference): 2-40 letters, digits,
    '.', '_', ':' or '-', starting with a letter or digit (what the chain accepts as a user id)."""
    if not isinstance(user_id, str) or not _USER_ID.match(user_id):
        raise InvalidInput(
            "user_id must be 2 to 40 characters: letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
        )
    return user_id


def check_hospital(hospital: object) -> str:
    if not isinstance(hospital, str) or not _HOSPITAL.match(hospital):
        raise InvalidInput("hospital must be an organisation name (lowercase letters, digits, '-')")
    return hospital


@dataclass(frozen=True)
class AuthUser:
    """A user as the gateway sees them. ``user_id`` is pseudonymous (chain, certificates)."""

    user_id: str
    username: str
    role: str
    hospital: str
    msp_id: str
    status: str
    key_custody: str
    certificate_fingerprint: str
    totp_confirmed: bool
    created_at: float


@dataclass(frozen=True)
class RegistrationRequest:
    """Enrol a user: their FlexPass secret as a textual key and as chosen pictures.

    ``custody="wallet"``: the server keeps the Fabric key, encrypted under the user's keys.
    ``custody="exported"``: the user keeps it. With ``public_key_pem`` the server certifies the
    user's own key and never sees a private key; without, it generates one and hands it over once
    (PKCS#8 PEM encrypted with ``export_passphrase``, by default the textual key).

    ``user_id``: the pseudonymous id to enrol under (on chain, in the certificate's CN and ``uid``
    attribute); a patient's is the vault's patient reference. Default: a generated ``u-…``."""

    username: str
    role: str
    hospital: str
    text_key: str
    images: list[str]
    custody: Custody = "wallet"
    public_key_pem: bytes | None = None
    export_passphrase: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class Registration:
    user: AuthUser
    certificate_pem: bytes
    totp: TotpProvisioning
    recovery_codes: list[str]
    grid: list[str]
    strength: StrengthReport
    exported_key_pem: bytes | None = None


@dataclass(frozen=True)
class Invitation:
    """A single-use enrolment code a hospital admin hands to a new user."""

    code: str
    username: str
    role: str
    hospital: str
    expires_at: float


@dataclass(frozen=True)
class LoginGrid:
    """The pictures to show for a graphical login (this user's fixed set, freshly shuffled)."""

    images: list[GridImage]
    attempt_id: str


@dataclass(frozen=True)
class LoginRequest:
    """First step of a login: the username and either the textual key or the selected pictures."""

    username: str
    method: Method
    text_key: str | None = None
    selection: list[str] | None = None
    client_addr: str | None = None
    attempt_id: str | None = None


@dataclass(frozen=True)
class LoginChallenge:
    """The key was right: present ``token`` with a second factor to :meth:`complete_login`."""

    token: str
    method: str
    factors: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True)
class PushRequest:
    """A push approval waiting on another session. The new device shows ``match_code``; the
    approving session must type it (number matching stops approve-by-reflex fatigue attacks)."""

    approval_id: str
    match_code: str
    expires_at: float


@dataclass(frozen=True)
class PendingApproval:
    """What an already logged-in session is asked to approve (without the match code)."""

    approval_id: str
    created_at: float
    expires_at: float
    client_addr: str | None
    method: str


@dataclass(frozen=True)
class LoginResult:
    """A completed login. ``wallet_session_key`` (None without a server wallet) must travel with
    the session's tokens: it is what lets the server sign for this session, and only this one."""

    user: AuthUser
    session_id: str
    method: str
    second_factor: str
    session_expires_at: float
    wallet_session_key: bytes | None = field(default=None, repr=False)

    @property
    def amr(self) -> list[str]:
        """RFC 8176 authentication method references."""
        second = {"totp": "otp", "push": "mca", "recovery": "otp"}[self.second_factor]
        return ["pwd", second, "mfa"]


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    user_id: str
    method: str
    second_factor: str
    client_addr: str | None
    created_at: float
    last_refresh_at: float
    expires_at: float
    revoked_at: float | None
    revoked_reason: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class RefreshGrant:
    """A newly recorded refresh token id and its expiry (idle timeout, capped by the session)."""

    jti: str
    expires_at: float


__all__ = [
    "CUSTODY",
    "METHODS",
    "ROLES",
    "SECOND_FACTORS",
    "AuthUser",
    "Invitation",
    "LoginChallenge",
    "LoginGrid",
    "LoginRequest",
    "LoginResult",
    "PendingApproval",
    "PushRequest",
    "RefreshGrant",
    "Registration",
    "RegistrationRequest",
    "SessionInfo",
    "check_hospital",
    "check_role",
    "check_user_id",
    "normalise_username",
]
