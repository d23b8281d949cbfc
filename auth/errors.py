"""Errors of the auth package, each with a stable problem type for RFC 9457 problem+json.

Every exception carries a ``slug`` (stable, never reworded: clients and the gateway match on it),
an HTTP ``status`` and a human ``detail``. ``problem()`` renders the problem+json body; the gateway
maps any :class:`AuthError` straight to a response with it.

Wording matters for security: :class:`InvalidCredentials` is the *only* error a wrong key, a wrong
image selection, an unknown username or a malformed graphical selection produce, with the same
message, so that an attacker cannot learn which usernames exist.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "/problems/"


class AuthError(Exception):
    """Base of every expected auth failure (bad input, wrong key, throttling, revoked token…)."""

    slug: ClassVar[str] = "auth-error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Authentication error"

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None, **extra: Any):
        self.detail = detail or self.title
        self.retry_after = None if retry_after is None else max(0.0, float(retry_after))
        self.extra = extra
        super().__init__(self.detail)

    @property
    def retry_after_seconds(self) -> int | None:
        """Whole seconds for a ``Retry-After`` header (rounded up, at least 1 when set)."""
        if self.retry_after is None:
            return None
        return max(1, int(-(-self.retry_after // 1)))

    def problem(self, *, base: str = PROBLEM_BASE, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem details object (``application/problem+json``)."""
        body: dict[str, Any] = {
            "type": f"{base}{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after_seconds
        for key, value in self.extra.items():
            body.setdefault(key, value)
        return body


# --------------------------------------------------------------------------- input


class InvalidInput(AuthError):
    """A request that is malformed (wrong type, empty, too long, unknown role…). Nothing changed."""

    slug = "invalid-input"
    status = 422
    title = "Invalid input"


class WeakKey(InvalidInput):
    """The textual key is predictable; ``reasons`` lists why, ``suggestions`` how to do better."""

    slug = "weak-key"
    title = "Textual key too predictable"

    def __init__(self, detail: str, *, reasons: list[str], suggestions: list[str] | None = None):
        super().__init__(detail, reasons=list(reasons), suggestions=list(suggestions or []))
        self.reasons = list(reasons)
        self.suggestions = list(suggestions or [])


class InvalidImageSelection(InvalidInput):
    """The images chosen at registration cannot form a graphical key (count, duplicates, unknown ids)."""

    slug = "invalid-image-selection"
    title = "Invalid graphical key"


class UserExists(AuthError):
    """Registration of a username that is already taken (only admins register, so no enumeration)."""

    slug = "user-exists"
    status = 409
    title = "User already exists"


class UserNotFound(AuthError):
    """An administrative operation named a user that does not exist (never raised by login)."""

    slug = "user-not-found"
    status = 404
    title = "User not found"


class InvitationInvalid(AuthError):
    """An enrolment invitation code that is unknown, used or expired."""

    slug = "invitation-invalid"
    status = 400
    title = "Invitation invalid or expired"


class EnrolmentError(AuthError):
    """The hospital's CA could not issue the user's identity (unknown hospital, CA unavailable)."""

    slug = "enrolment-failed"
    status = 422
    title = "Enrolment failed"


# --------------------------------------------------------------------------- login


class InvalidCredentials(AuthError):
    """Unknown username, wrong textual key or wrong image selection: deliberately indistinguishable."""

    slug = "invalid-credentials"
    status = 401
    title = "Invalid credentials"

    def __init__(self, *, retry_after: float | None = None):
        detail = "The username or key is not correct."
        if retry_after:
            detail += f" You can try again in {_human_seconds(retry_after)}."
        super().__init__(detail, retry_after=retry_after or None)


class LoginThrottled(AuthError):
    """Too many recent failures for this account or client address: wait ``retry_after`` seconds."""

    slug = "login-throttled"
    status = 429
    title = "Too many failed attempts"

    def __init__(self, retry_after: float):
        super().__init__(
            f"Too many failed attempts. Please wait {_human_seconds(retry_after)} before trying again.",
            retry_after=retry_after,
        )


class AccountSuspended(AuthError):
    """The account is suspended (locally or on chain). Only said after the key was verified."""

    slug = "account-suspended"
    status = 403
    title = "Account suspended"


class SecondFactorRequired(AuthError):
    """The login challenge was presented without a second factor (TOTP, approval or recovery code)."""

    slug = "second-factor-required"
    status = 401
    title = "Second factor required"


class SecondFactorInvalid(AuthError):
    """Wrong, reused or expired TOTP code or recovery code."""

    slug = "second-factor-invalid"
    status = 401
    title = "Second factor not accepted"


class SecondFactorUnavailable(AuthError):
    """The chosen second factor cannot be used by this user (e.g. push with no other session)."""

    slug = "second-factor-unavailable"
    status = 409
    title = "Second factor unavailable"


class ChallengeInvalid(AuthError):
    """The login challenge is unknown, already used, expired or exhausted: start the login again."""

    slug = "login-challenge-invalid"
    status = 401
    title = "Login challenge invalid"


class ApprovalPending(AuthError):
    """The push approval has not been decided yet: poll again after ``retry_after`` seconds."""

    slug = "approval-pending"
    status = 202
    title = "Approval pending"


class ApprovalDenied(AuthError):
    """The push approval was denied (or confirmed with the wrong number) from the other session."""

    slug = "approval-denied"
    status = 403
    title = "Login denied from another session"


class ApprovalExpired(AuthError):
    """The push approval was not decided in time."""

    slug = "approval-expired"
    status = 410
    title = "Approval expired"


class ApprovalNotFound(AuthError):
    """No pending approval with that id for this user (also for another user's approval)."""

    slug = "approval-not-found"
    status = 404
    title = "Approval not found"


# --------------------------------------------------------------------------- sessions and tokens


class TokenError(AuthError):
    """Base of token problems; all are 401 and ask the client to log in again (or refresh)."""

    slug = "token-invalid"
    status = 401
    title = "Invalid token"


class TokenInvalid(TokenError):
    slug = "token-invalid"
    title = "Invalid token"


class TokenExpired(TokenError):
    slug = "token-expired"
    title = "Token expired"


class TokenRevoked(TokenError):
    """The token's session was ended (logout, admin action, suspension, secret change)."""

    slug = "token-revoked"
    title = "Token revoked"


class RefreshTokenReused(TokenError):
    """A refresh token was presented after it had been rotated: the whole session is now revoked."""

    slug = "refresh-token-reused"
    title = "Refresh token reused"


class AuthenticationRequired(TokenError):
    slug = "authentication-required"
    title = "Authentication required"


class SuspensionCheckUnavailable(AuthError):
    """The chain could not say whether the user is suspended and no recent answer is cached."""

    slug = "suspension-check-unavailable"
    status = 503
    title = "Account status unavailable"


# --------------------------------------------------------------------------- wallets


class WalletError(AuthError):
    """The wallet cannot be opened (wrong key material, tampered ciphertext)."""

    slug = "wallet-error"
    status = 403
    title = "Wallet cannot be opened"


class WalletLocked(WalletError):
    """No unlocked wallet for this session: the user's secret is needed (log in again)."""

    slug = "wallet-locked"
    title = "Wallet locked"


class WalletNotHeld(WalletError):
    """The user holds their own key (offline signing); the server has no wallet for them."""

    slug = "wallet-not-held"
    status = 409
    title = "Key held by the user"


def _human_seconds(seconds: float) -> str:
    s = max(1, int(-(-seconds // 1)))
    if s < 60:
        return f"{s} second{'s' if s != 1 else ''}"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s} s" if s else f"{m} min"
    h, m = divmod(m, 60)
    return f"{h} h {m} min" if m else f"{h} h"


__all__ = [
    "PROBLEM_BASE",
    "AccountSuspended",
    "ApprovalDenied",
    "ApprovalExpired",
    "ApprovalNotFound",
    "ApprovalPending",
    "AuthError",
    "AuthenticationRequired",
    "ChallengeInvalid",
    "EnrolmentError",
    "InvalidCredentials",
    "InvalidImageSelection",
    "InvalidInput",
    "InvitationInvalid",
    "LoginThrottled",
    "RefreshTokenReused",
    "SecondFactorInvalid",
    "SecondFactorRequired",
    "SecondFactorUnavailable",
    "SuspensionCheckUnavailable",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "TokenRevoked",
    "UserExists",
    "UserNotFound",
    "WalletError",
    "WalletLocked",
    "WalletNotHeld",
    "WeakKey",
]
