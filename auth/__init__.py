"""FlexPass authentication, second factors, lockout, JWT sessions, user directory and wallets.

The gateway's entry points::

    from auth import AuthService, AuthConfig, configure_flask, ca_provider_from_network

    service = AuthService.from_url(url, AuthConfig.from_env(data_dir, env=settings.auth_vars),
                                   ca_provider=ca_provider_from_network(network_config),
                                   is_suspended=chain_user_is_suspended)
    service.create_tables()
    flask_auth = configure_flask(app, service)

See ``docs/readme/auth.md`` for the flows and the parameters.
"""

from .config import Argon2Params, AuthConfig, Clock, FakeClock, ThrottlePolicy, database_url_from_env
from .errors import (
    PROBLEM_BASE,
    AccountSuspended,
    ApprovalDenied,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalPending,
    AuthenticationRequired,
    AuthError,
    ChallengeInvalid,
    EnrolmentError,
    InvalidCredentials,
    InvalidImageSelection,
    InvalidInput,
    InvitationInvalid,
    LoginThrottled,
    RefreshTokenReused,
    SecondFactorInvalid,
    SecondFactorRequired,
    SecondFactorUnavailable,
    SuspensionCheckUnavailable,
    TokenError,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    UserExists,
    UserNotFound,
    WalletError,
    WalletLocked,
    WalletNotHeld,
    WeakKey,
)
from .evaluation import LoginEvent, MethodFigures, UsabilityReport, usability_figures
from .factors import TotpProvisioning
from .flask_integration import PROBLEM_JSON, FlaskAuth, TokenPair, configure_flask, problem_response
from .graphical import GridImage, key_space, themed_key_space
from .models import Base as AuthBase
from .models import create_tables, drop_tables, make_engine
from .records import (
    ROLES,
    AuthUser,
    Invitation,
    LoginChallenge,
    LoginGrid,
    LoginRequest,
    LoginResult,
    PendingApproval,
    PushRequest,
    Registration,
    RegistrationRequest,
    SessionInfo,
    check_user_id,
)
from .service import AuthService, CAProvider, ca_provider_from_network
from .strength import StrengthReport, assess_key, check_key_strength
from .throttle import Throttle, address_key

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_JSON",
    "ROLES",
    "AccountSuspended",
    "ApprovalDenied",
    "ApprovalExpired",
    "ApprovalNotFound",
    "ApprovalPending",
    "Argon2Params",
    "AuthBase",
    "AuthConfig",
    "AuthError",
    "AuthService",
    "AuthUser",
    "AuthenticationRequired",
    "CAProvider",
    "ChallengeInvalid",
    "Clock",
    "EnrolmentError",
    "FakeClock",
    "FlaskAuth",
    "GridImage",
    "InvalidCredentials",
    "InvalidImageSelection",
    "InvalidInput",
    "Invitation",
    "InvitationInvalid",
    "LoginChallenge",
    "LoginEvent",
    "LoginGrid",
    "LoginRequest",
    "LoginResult",
    "LoginThrottled",
    "MethodFigures",
    "PendingApproval",
    "PushRequest",
    "RefreshTokenReused",
    "Registration",
    "RegistrationRequest",
    "SecondFactorInvalid",
    "SecondFactorRequired",
    "SecondFactorUnavailable",
    "SessionInfo",
    "StrengthReport",
    "SuspensionCheckUnavailable",
    "Throttle",
    "ThrottlePolicy",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "TokenPair",
    "TokenRevoked",
    "TotpProvisioning",
    "UsabilityReport",
    "UserExists",
    "UserNotFound",
    "WalletError",
    "WalletLocked",
    "WalletNotHeld",
    "WeakKey",
    "address_key",
    "assess_key",
    "ca_provider_from_network",
    "check_key_strength",
    "check_user_id",
    "configure_flask",
    "create_tables",
    "database_url_from_env",
    "drop_tables",
    "key_space",
    "make_engine",
    "problem_response",
    "themed_key_space",
    "usability_figures",
]
