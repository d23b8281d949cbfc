"""The FlexPass authentication service: enrolment, login, second factors, sessions, administration.

This is the layer the gateway calls (framework-free; ``flask_integration`` adds JWTs on top).
A login is two steps:

1. :meth:`AuthService.begin_login` — username + textual key *or* selected pictures. Throttled per
   account and address, verified with Argon2id (unknown usernames against a dummy hash: same
   work, same error), and on success a short-lived :class:`LoginChallenge`.
2. :meth:`AuthService.complete_login` — the challenge + a second factor: a TOTP code, a push
   approval decided from another live session of the same user, or a single-use recovery code.
   Returns a :class:`LoginResult` (a new session), from which tokens are issued.

Every failure is an :class:`~auth.errors.AuthError` with a stable slug; input that is malformed
is refused before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from typing import NoReturn

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from network import CertificateAuthority, Identity, IdentityError, NetworkConfig, Signer

from . import graphical
from .config import Argon2Params, AuthConfig, Clock
from .crypto import KeyHasher, Sealed, keyed, new_id, sha256_hex
from .errors import (
    AccountSuspended,
    ApprovalDenied,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalPending,
    ChallengeInvalid,
    EnrolmentError,
    InvalidCredentials,
    InvalidInput,
    InvitationInvalid,
    LoginThrottled,
    SecondFactorInvalid,
    SecondFactorRequired,
    SecondFactorUnavailable,
    TokenRevoked,
    UserExists,
    UserNotFound,
    WalletNotHeld,
)
from .evaluation import EvaluationRecorder, UsabilityReport, usability_figures
from .factors import Totp, TotpProvisioning, new_recovery_codes, normalise_recovery_code, recovery_code_hash
from .models import (
    ApprovalRow,
    ChallengeRow,
    InvitationRow,
    RecoveryCodeRow,
    SessionRow,
    Sessions,
    UserRow,
    WalletRow,
    WalletWrapRow,
    create_tables,
    make_engine,
)
from .records import (
    CUSTODY,
    METHODS,
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
    check_hospital,
    check_role,
    check_user_id,
    normalise_username,
)
from .sessions import SessionManager, SuspensionCheck, SuspensionGate
from .strength import StrengthReport, assess_key, check_key_strength
from .throttle import Throttle, account_key, address_key
from .wallet import (
    SealedKey,
    Wrap,
    kek_input,
    new_dek,
    open_for_challenge,
    open_private_key,
    seal_for_challenge,
    seal_private_key,
    unwrap_dek,
    wrap_dek,
)

log = logging.getLogger(__name__)

CAProvider = Callable[[str], CertificateAuthority]
"""Hospital (organisation name) → its certificate authority."""

_TEXT = "serums-auth/flexpass-text/v1"
_GRAPHICAL = "serums-auth/flexpass-graphical/v1"
_DUMMY_USER = "u-000000000000000000000000"
_APPROVAL_POLL_S = 2.0


def ca_provider_from_network(config: NetworkConfig, passphrase: str | None = None) -> CAProvider:
    """CAs from the network's crypto material (``serums network init``), loaded once each."""
    cache: dict[str, CertificateAuthority] = {}
    lock = threading.Lock()

    def provider(hospital: str) -> CertificateAuthority:
        with lock:
            if hospital not in cache:
                org = config.org(hospital)
                cache[hospital] = config.load_ca(org.name, passphrase)
            return cache[hospital]

    return provider


def _normalise_key(key: str) -> str:
    return unicodedata.normalize("NFKC", key)


class AuthService:
    """FlexPass authentication over a user directory (SQLAlchemy engine).

    ``ca_provider`` issues users' Fabric identities at enrolment; ``is_suspended(user_id)`` is the
    chain's verdict (wired by the gateway to UserContract); ``clock`` is injectable for tests."""

    def __init__(
        self,
        engine: Engine,
        config: AuthConfig,
        *,
        ca_provider: CAProvider | None = None,
        is_suspended: SuspensionCheck | None = None,
        clock: Clock = time.time,
    ):
        self.engine = engine
        self.config = config
        self.clock = clock
        self.ca_provider = ca_provider
        self._db = Sessions(engine)
        self._pepper = config.pepper
        self.hasher = KeyHasher(config.argon2)
        self.totp = Totp(config.pepper, issuer=config.totp_issuer, interval=config.totp_interval,
                         digits=config.totp_digits, valid_window=config.totp_valid_window)
        self.throttle = Throttle(self._db, clock)
        self.gate = SuspensionGate(is_suspended, clock, config.suspension_cache_ttl, config.suspension_stale_grace)
        self.sessions = SessionManager(self._db, config, clock, self.gate)
        self.evaluation = EvaluationRecorder(self._db, clock, config.evaluation_mode)

    @classmethod
    def from_url(cls, url: str, config: AuthConfig, **kwargs) -> AuthService:
        return cls(make_engine(url), config, **kwargs)

    def create_tables(self) -> None:
        create_tables(self.engine)

    def set_suspension_check(self, is_suspended: SuspensionCheck | None) -> None:
        """Wire (or replace) the chain's suspension check after construction."""
        self.gate.set_check(is_suspended)

    # ================================================================== enrolment

    def image_library(self) -> list[graphical.GridImage]:
        return graphical.library()

    def assess_key(
        self, text_key: str, *, username: str = "", hospital: str = "", role: str = "",
        images: list[str] | tuple[str, ...] = (),
    ) -> StrengthReport:
        """Strength verdict for a candidate key (for live feedback while the user types)."""
        return assess_key(text_key, **self._strength_kwargs(username, hospital, role, images))

    def _strength_kwargs(self, username: str, hospital: str, role: str, images) -> dict:
        labels = [graphical.library_label(i) for i in images if graphical.library_label(i)]
        return {
            "user_inputs": [u for u in (username, hospital) if u],
            "context_words": [role, "serums", "flexpass", "hospital", *labels],
            "min_key_length": self.config.min_key_length,
            "max_key_length": self.config.max_key_length,
            "min_guesses_log10": self.config.min_guesses_log10,
        }

    def invite(self, username: str, role: str, hospital: str, *, ttl: float = 72 * 3600.0) -> Invitation:
        """Issue a single-use enrolment code (the hospital admin hands it to the new user)."""
        uname = normalise_username(username)
        check_role(role)
        check_hospital(hospital)
        if not 60 <= ttl <= 30 * 86400:
            raise InvalidInput("invitation lifetime must be between 1 minute and 30 days")
        with self._db() as s:
            if s.scalar(sa.select(UserRow.id).where(UserRow.username == uname)):
                raise UserExists(f"a user named {uname!r} already exists")
        code = secrets.token_urlsafe(18)
        now = self.clock()
        with self._db.begin() as s:
            s.add(InvitationRow(code_hash=self._invitation_hash(code), username=uname, role=role, hospital=hospital,
                                created_at=now, expires_at=now + ttl))
        return Invitation(code, uname, role, hospital, now + ttl)

    def _invitation_hash(self, code: str) -> str:
        return keyed(self._pepper, "serums-auth/invitation", code).hex()

    def accept_invitation(
        self, code: str, *, text_key: str, images: list[str], custody: str = "wallet",
        public_key_pem: bytes | None = None, export_passphrase: str | None = None, user_id: str | None = None,
    ) -> Registration:
        """The invited user enrols with their own secret (``user_id``: see :class:`RegistrationRequest`;
        the caller — the gateway, which knows whom the invitation was for — chooses it)."""
        if not isinstance(code, str) or not 8 <= len(code) <= 64:
            raise InvitationInvalid("This invitation code is not valid.")
        with self._db() as s:
            inv = s.get(InvitationRow, self._invitation_hash(code))
        if inv is None or inv.used_at is not None or inv.expires_at <= self.clock():
            raise InvitationInvalid("This invitation code is unknown, already used or expired.")
        req = RegistrationRequest(inv.username, inv.role, inv.hospital, text_key, list(images), custody,  # type: ignore[arg-type]
                                  public_key_pem, export_passphrase, user_id)
        return self._enrol(req, invitation_hash=inv.code_hash)

    def register(self, request: RegistrationRequest) -> Registration:
        """Enrol a user directly (an admin at the enrolment desk with the user choosing their secret)."""
        return self._enrol(request, invitation_hash=None)

    def _enrol(self, req: RegistrationRequest, *, invitation_hash: str | None) -> Registration:
        cfg = self.config
        uname = normalise_username(req.username)
        role = check_role(req.role)
        hospital = check_hospital(req.hospital)
        if req.custody not in CUSTODY:
            raise InvalidInput(f"custody must be one of {', '.join(CUSTODY)}")
        if req.public_key_pem is not None and req.custody != "exported":
            raise InvalidInput("a public key can only be given with custody='exported'")
        explicit_id = check_user_id(req.user_id) if req.user_id is not None else None
        chosen = graphical.validate_choice(req.images, minimum=cfg.graphical_min_images,
                                           maximum=cfg.graphical_max_images, grid_size=cfg.grid_size)
        strength = check_key_strength(req.text_key, **self._strength_kwargs(uname, hospital, role, chosen))
        text_key = _normalise_key(req.text_key)
        user_public_key = _load_public_key(req.public_key_pem) if req.public_key_pem is not None else None
        with self._db() as s:
            if s.scalar(sa.select(UserRow.id).where(UserRow.username == uname)):
                raise UserExists(f"a user named {uname!r} already exists")
            if explicit_id is not None and s.get(UserRow, explicit_id) is not None:
                raise UserExists(f"a user with id {explicit_id!r} already exists")

        user_id = explicit_id or "u-" + secrets.token_hex(12)
        identity, signer = self._issue_identity(hospital, user_id, role, user_public_key)
        now = self.clock()
        totp_secret = self.totp.new_secret()
        sealed_totp = self.totp.seal(user_id, totp_secret)
        codes = new_recovery_codes(cfg.recovery_codes)
        grid = graphical.build_grid(chosen, self._grid_seed(user_id), cfg.grid_size)
        user = UserRow(
            id=user_id, username=uname, role=role, hospital=hospital, msp_id=identity.msp_id, status="active",
            created_at=now, secret_changed_at=now,
            text_hash=self.hasher.hash(self._text_input(user_id, text_key)),
            graphical_hash=self.hasher.hash(self._graphical_input(user_id, chosen)),
            graphical_grid=grid, totp_secret_ct=sealed_totp.ciphertext, totp_secret_nonce=sealed_totp.nonce,
            totp_confirmed=False, totp_last_step=0, certificate_pem=identity.pem.decode(),
            certificate_fingerprint=identity.fingerprint, key_custody=req.custody,
        )
        exported = None
        wallet_rows: list = []
        if req.custody == "wallet" and signer is not None:
            wallet_rows = self._wallet_rows(user_id, signer, text_key, chosen, now)
        elif signer is not None:
            exported = signer.private_key_pem(req.export_passphrase or text_key)
        try:
            with self._db.begin() as s:
                if invitation_hash is not None:
                    claimed = s.execute(
                        sa.update(InvitationRow)
                        .where(InvitationRow.code_hash == invitation_hash, InvitationRow.used_at.is_(None))
                        .values(used_at=now).execution_options(synchronize_session=False)
                    ).rowcount
                    if claimed != 1:
                        raise InvitationInvalid("This invitation code has already been used.")
                s.add(user)
                s.flush()
                s.add_all(wallet_rows)
                s.add_all(RecoveryCodeRow(code_hash=recovery_code_hash(self._pepper, user_id, c), user_id=user_id,
                                          created_at=now) for c in codes)
        except IntegrityError as exc:
            raise UserExists(f"a user named {uname!r} (or with id {user_id!r}) already exists") from exc
        log.info("enrolled %s (%s, %s, custody %s)", user_id, role, hospital, req.custody)
        return Registration(
            user=_user(user), certificate_pem=identity.pem,
            totp=self.totp.provisioning(totp_secret, f"{uname}@{hospital}"),
            recovery_codes=codes, grid=grid, strength=strength, exported_key_pem=exported,
        )

    def _issue_identity(
        self, hospital: str, user_id: str, role: str, public_key: ec.EllipticCurvePublicKey | None
    ) -> tuple[Identity, Signer | None]:
        if self.ca_provider is None:
            raise EnrolmentError("no certificate authority is configured for enrolment")
        try:
            ca = self.ca_provider(hospital)
        except Exception as exc:  # noqa: BLE001 - ConfigError, IdentityError, missing files: all "no CA"
            raise EnrolmentError(f"hospital {hospital!r} has no usable certificate authority: {exc}") from exc
        node_role = "admin" if role == "hospital_admin" else "client"
        attrs = {"role": role, "uid": user_id, "hf.EnrollmentID": user_id}
        try:
            return ca.issue(user_id, node_role, attributes=attrs, public_key=public_key)
        except IdentityError as exc:
            raise EnrolmentError(str(exc)) from exc

    def _wallet_rows(self, user_id: str, signer: Signer, text_key: str, chosen: tuple[str, ...], now: float) -> list:
        dek = new_dek()
        sealed = seal_private_key(signer, dek, user_id)
        rows: list = [WalletRow(user_id=user_id, key_nonce=sealed.nonce, key_ct=sealed.ciphertext, created_at=now)]
        materials = {"text": (text_key,)}
        if self.config.graphical_wallet:
            materials["graphical"] = chosen
        for method, material in materials.items():
            w = wrap_dek(dek, user_id=user_id, method=method, kek_secret=kek_input(self._pepper, user_id, method, material),
                         params=self.config.wallet_kdf)
            rows.append(WalletWrapRow(user_id=user_id, method=method, salt=w.salt, kdf=w.kdf.to_json(),
                                      nonce=w.nonce, wrapped_dek=w.wrapped_dek))
        return rows

    def _text_input(self, user_id: str, text_key: str) -> bytes:
        return keyed(self._pepper, _TEXT, user_id, text_key)

    def _graphical_input(self, user_id: str, selection: tuple[str, ...]) -> bytes:
        return keyed(self._pepper, _GRAPHICAL, user_id, *sorted(selection))

    def _grid_seed(self, user_id: str) -> bytes:
        return keyed(self._pepper, "serums-auth/grid-seed", user_id)

    # ================================================================== login, step 1

    def start_attempt(self) -> str:
        """Call when a login page is shown: evaluation mode measures login time from here."""
        return self.evaluation.start()

    def login_grid(self, username: str, *, attempt_id: str | None = None) -> LoginGrid:
        """The pictures for a graphical login. Unknown usernames get a stable simulated grid."""
        uname = normalise_username(username)
        with self._db() as s:
            grid = s.scalar(sa.select(UserRow.graphical_grid).where(UserRow.username == uname))
        if grid is None:
            grid = graphical.simulated_grid(
                keyed(self._pepper, "serums-auth/unknown-grid", uname), self.config.grid_size,
                minimum=self.config.graphical_min_images, maximum=self.config.graphical_max_images,
            )
        return LoginGrid(graphical.display_order(grid), self.evaluation.start(attempt_id))

    def begin_login(self, request: LoginRequest) -> LoginChallenge:
        """Verify the key; on success return a challenge awaiting the second factor."""
        cfg = self.config
        if request.method not in METHODS:
            raise InvalidInput(f"method must be one of {', '.join(METHODS)}")
        uname = normalise_username(request.username)
        selection: tuple[str, ...] | None = None
        key: str | None = None
        if request.method == "text":
            raw = request.text_key
            if not isinstance(raw, str) or not raw or len(raw) > cfg.max_key_length:
                raise InvalidInput(f"the textual key must be 1 to {cfg.max_key_length} characters")
            key = _normalise_key(raw)
        else:
            selection = graphical.parse_selection(request.selection, cfg.grid_size)
        user, secret, stored, attempt = self._verify_key(
            uname, request.method, key, selection,
            client_addr=request.client_addr, attempt_id=request.attempt_id,
        )
        if user.status != "active" or self.gate.is_suspended(user.id):
            self.evaluation.completed(attempt, second_factor="none", success=False, outcome=AccountSuspended.slug)
            raise AccountSuspended("This account is suspended. Please contact your hospital's administrator.")
        if self.hasher.needs_rehash(stored):
            self._rehash(user.id, request.method, secret)
        dek = self._unwrap_for_login(user, request.method, key if request.method == "text" else selection)
        return self._new_challenge(user, request.method, request.client_addr, dek, attempt)

    def _verify_key(
        self, uname: str, method: str, key: str | None, selection: tuple[str, ...] | None, *,
        client_addr: str | None, attempt_id: str | None,
    ) -> tuple[UserRow, bytes, str, str | None]:
        """Throttle, then verify a key. Unknown users, wrong keys and impossible selections all do
        one Argon2id verification and raise the same :class:`InvalidCredentials`."""
        cfg = self.config
        addr = address_key(client_addr)
        acct = account_key(self._pepper, uname)
        # The account is charged before the check (parallel guesses at one account cannot outrun its
        # lock); the address only gates here and is charged for failures once they are known, so a
        # burst of right logins from one NAT address (a shift change) never locks the hospital out.
        # Parallel wrong guesses across accounts from one address overshoot its lock by at most the
        # server's concurrency.
        if addr is not None and self.throttle.retry_after(addr) > 0:
            raise LoginThrottled(self.throttle.retry_after(addr))
        charges = self.throttle.reserve([(acct, cfg.account_throttle)])
        with self._db() as s:
            user = s.scalar(sa.select(UserRow).where(UserRow.username == uname))
        uid = user.id if user else _DUMMY_USER
        stored: str | None = None
        if method == "text" and key is not None:
            secret = self._text_input(uid, key)
            stored = user.text_hash if user else None
            ok = self.hasher.verify(stored, secret)
        elif selection is not None:
            secret = self._graphical_input(uid, selection)
            stored = user.graphical_hash if user else None
            ok = self.hasher.verify(stored, secret)
        else:  # a selection that cannot be a key: spend the same work, then refuse
            self.hasher.verify_dummy()
            ok, secret = False, b""
        if not ok or user is None or stored is None:
            self.evaluation.key_submitted(attempt_id, user_id=user.id if user else None, method=method, ok=False,
                                          outcome=InvalidCredentials.slug)
            self.throttle.charge(addr, cfg.address_throttle)
            raise InvalidCredentials(retry_after=self.throttle.retry_after(acct, addr) or None)
        # A right key was not a guess: take its reserved charges back (a wrong second factor will
        # charge the account on its own; a completed login clears it).
        for charge in charges:
            self.throttle.refund(charge)
        attempt = self.evaluation.key_submitted(attempt_id, user_id=user.id, method=method, ok=True,
                                                outcome="key-accepted")
        return user, secret, stored, attempt

    def _rehash(self, user_id: str, method: str, secret: bytes) -> None:
        column = UserRow.text_hash if method == "text" else UserRow.graphical_hash
        with self._db.begin() as s:
            s.execute(sa.update(UserRow).where(UserRow.id == user_id).values({column: self.hasher.hash(secret)})
                      .execution_options(synchronize_session=False))
        log.info("re-hashed the %s key of %s with %s", method, user_id, self.config.argon2.describe())

    def _unwrap_for_login(self, user: UserRow, method: str, material) -> bytes | None:
        if user.key_custody != "wallet":
            return None
        with self._db() as s:
            wrap = s.get(WalletWrapRow, (user.id, method))
        if wrap is None:
            return None  # e.g. graphical_wallet disabled: this login cannot sign
        parts = (material,) if method == "text" else tuple(material)
        dek = unwrap_dek(
            Wrap(method, wrap.salt, _params(wrap.kdf), wrap.nonce, wrap.wrapped_dek),
            user_id=user.id, kek_secret=kek_input(self._pepper, user.id, method, parts),
        )
        if dek is None:  # the key verified, so the wrap is damaged: log it, let the login proceed
            log.error("wallet wrap %s/%s does not open with a verified key", user.id, method)
        return dek

    def _new_challenge(self, user: UserRow, method: str, client_addr: str | None, dek: bytes | None,
                       attempt: str | None) -> LoginChallenge:
        now = self.clock()
        cid = new_id(12)
        secret = secrets.token_bytes(32)
        sealed = seal_for_challenge(dek, _challenge_key(secret), cid) if dek is not None else None
        expires = now + self.config.challenge_ttl
        with self._db.begin() as s:
            s.add(ChallengeRow(
                id=cid, user_id=user.id, secret_hash=sha256_hex(secret), method=method,
                client_addr=(client_addr or None) and client_addr[:64], created_at=now, expires_at=expires,
                dek_nonce=sealed.nonce if sealed else None, dek_ct=sealed.ciphertext if sealed else None,
                attempt_id=attempt,
            ))
            has_codes = s.scalar(sa.select(sa.func.count()).select_from(RecoveryCodeRow).where(
                RecoveryCodeRow.user_id == user.id, RecoveryCodeRow.used_at.is_(None))) or 0
        factors = ["totp"]
        if self.sessions.active_for_user(user.id):
            factors.append("push")
        if has_codes:
            factors.append("recovery")
        token = f"{cid}.{_b64(secret)}"
        return LoginChallenge(token=token, method=method, factors=tuple(factors), expires_at=expires)

    # ================================================================== login, step 2

    def _challenge(self, token: object) -> tuple[ChallengeRow, bytes]:
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 128:
            raise ChallengeInvalid("The login has expired or is not valid; please start again.")
        cid, secret_b64 = token.split(".")
        secret = _unb64(secret_b64)
        with self._db() as s:
            ch = s.get(ChallengeRow, cid)
        if ch is None or secret is None or not hmac.compare_digest(ch.secret_hash, sha256_hex(secret)):
            raise ChallengeInvalid("The login has expired or is not valid; please start again.")
        if ch.state == "denied":
            raise ApprovalDenied("The login was denied from another session. If this was not you, change your secret.")
        if ch.state != "pending" or ch.expires_at <= self.clock():
            raise ChallengeInvalid("The login has expired or is not valid; please start again.")
        return ch, secret

    def complete_login(
        self, challenge_token: str, *, totp_code: str | None = None, recovery_code: str | None = None,
        approval_id: str | None = None,
    ) -> LoginResult:
        """Check the second factor and open the session."""
        given = [f for f, v in (("totp", totp_code), ("recovery", recovery_code), ("push", approval_id)) if v]
        if not given:
            raise SecondFactorRequired(
                "Confirm the login with a code from your authenticator app, an approval from another "
                "logged-in device, or a recovery code."
            )
        if len(given) > 1:
            raise InvalidInput("give exactly one second factor")
        factor = given[0]
        # validate the shape before touching anything
        if factor == "totp":
            code = self.totp.normalise(totp_code)
        elif factor == "recovery":
            normalise_recovery_code(recovery_code)
        elif not isinstance(approval_id, str) or len(approval_id) > 32:
            raise InvalidInput("approval_id must be a short string")

        ch, secret = self._challenge(challenge_token)
        with self._db() as s:
            user = s.get(UserRow, ch.user_id)
        if user is None:
            raise ChallengeInvalid("The login has expired or is not valid; please start again.")
        if user.status != "active" or self.gate.is_suspended(user.id):  # suspended since the key step
            raise AccountSuspended("This account is suspended. Please contact your hospital's administrator.")

        if factor in ("totp", "recovery"):
            # Count the try before checking it: parallel guesses on one challenge cannot exceed the cap.
            with self._db.begin() as s:
                reserved = s.execute(
                    sa.update(ChallengeRow)
                    .where(ChallengeRow.id == ch.id, ChallengeRow.state == "pending",
                           ChallengeRow.attempts < self.config.challenge_max_attempts)
                    .values(attempts=ChallengeRow.attempts + 1).execution_options(synchronize_session=False)
                ).rowcount
            if reserved != 1:
                raise ChallengeInvalid("This login has had too many tries or has ended; please start again.")
        if factor == "totp":
            ok = self._check_totp(user, code)
        elif factor == "recovery":
            ok = self._use_recovery_code(user.id, recovery_code)  # type: ignore[arg-type]
        else:
            ok = self._check_approval(ch, approval_id)  # type: ignore[arg-type]
        if not ok:
            self._second_factor_failed(ch, user, factor)

        with self._db.begin() as s:
            consumed = s.execute(
                sa.update(ChallengeRow).where(ChallengeRow.id == ch.id, ChallengeRow.state == "pending")
                .values(state="consumed", dek_ct=None, dek_nonce=None).execution_options(synchronize_session=False)
            ).rowcount
            if consumed == 1 and factor == "totp" and not user.totp_confirmed:
                s.execute(sa.update(UserRow).where(UserRow.id == user.id).values(totp_confirmed=True)
                          .execution_options(synchronize_session=False))
        if consumed != 1:
            raise ChallengeInvalid("This login was already completed or cancelled; please start again.")
        self.throttle.clear(account_key(self._pepper, user.username))
        dek = None
        if ch.dek_ct is not None and ch.dek_nonce is not None:
            dek = open_for_challenge(Sealed(ch.dek_nonce, ch.dek_ct), _challenge_key(secret), ch.id)
        info, wallet_key = self.sessions.create(user_id=user.id, method=ch.method, second_factor=factor,
                                                client_addr=ch.client_addr, dek=dek)
        self.evaluation.completed(ch.attempt_id, second_factor=factor, success=True, outcome="success")
        with self._db() as s:
            fresh = s.get(UserRow, user.id)
        return LoginResult(user=_user(fresh or user), session_id=info.session_id, method=ch.method,
                           second_factor=factor, session_expires_at=info.expires_at, wallet_session_key=wallet_key)

    def _second_factor_failed(self, ch: ChallengeRow, user: UserRow, factor: str) -> NoReturn:
        cfg = self.config
        with self._db.begin() as s:  # the try was already counted when it was reserved
            attempts = s.scalar(sa.select(ChallengeRow.attempts).where(ChallengeRow.id == ch.id)) or 0
            final = attempts >= cfg.challenge_max_attempts
            if final:
                s.execute(sa.update(ChallengeRow).where(ChallengeRow.id == ch.id)
                          .values(state="failed", dek_ct=None, dek_nonce=None)
                          .execution_options(synchronize_session=False))
        self.throttle.charge(account_key(self._pepper, user.username), cfg.account_throttle)
        self.evaluation.completed(ch.attempt_id, second_factor=factor, success=False,
                                  outcome=SecondFactorInvalid.slug, final=final)
        left = max(0, cfg.challenge_max_attempts - attempts)
        if final:
            raise SecondFactorInvalid("The code is not correct, and this login has had too many tries: please start again.")
        raise SecondFactorInvalid(f"The code is not correct or was already used ({left} tr{'y' if left == 1 else 'ies'} left).",
                                  attempts_left=left)

    def _check_totp(self, user: UserRow, code: str) -> bool:
        now = self.clock()
        secret = self.totp.unseal(user.id, Sealed(user.totp_secret_nonce, user.totp_secret_ct))
        step = self.totp.matching_step(secret, code, now, user.totp_last_step)
        if step is None:
            return False
        with self._db.begin() as s:  # replay protection: only one login may use this step
            return s.execute(
                sa.update(UserRow).where(UserRow.id == user.id, UserRow.totp_last_step < step)
                .values(totp_last_step=step).execution_options(synchronize_session=False)
            ).rowcount == 1

    def _use_recovery_code(self, user_id: str, code: str) -> bool:
        digest = recovery_code_hash(self._pepper, user_id, code)
        with self._db.begin() as s:
            return s.execute(
                sa.update(RecoveryCodeRow)
                .where(RecoveryCodeRow.code_hash == digest, RecoveryCodeRow.user_id == user_id,
                       RecoveryCodeRow.used_at.is_(None))
                .values(used_at=self.clock()).execution_options(synchronize_session=False)
            ).rowcount == 1

    def _check_approval(self, ch: ChallengeRow, approval_id: str) -> bool:
        with self._db() as s:
            ap = s.get(ApprovalRow, approval_id)
        if ap is None or ap.challenge_id != ch.id:
            raise ApprovalNotFound("No approval with this id belongs to this login.")
        if ap.status == "approved":
            return True
        if ap.expires_at <= self.clock():
            raise ApprovalExpired("Nobody approved the login in time; request a new approval or use another factor.")
        raise ApprovalPending("Waiting for approval from your other session.", retry_after=_APPROVAL_POLL_S)

    def _username(self, user_id: str) -> str:
        with self._db() as s:
            return s.scalar(sa.select(UserRow.username).where(UserRow.id == user_id)) or ""

    # ================================================================== push approvals

    def request_approval(self, challenge_token: str) -> PushRequest:
        """Ask the user's other sessions to approve this login; show ``match_code`` on this device."""
        ch, _ = self._challenge(challenge_token)
        if not self.sessions.active_for_user(ch.user_id):
            raise SecondFactorUnavailable("There is no other logged-in session to approve from; use another factor.")
        now = self.clock()
        with self._db.begin() as s:
            existing = s.scalar(sa.select(ApprovalRow).where(
                ApprovalRow.challenge_id == ch.id, ApprovalRow.status == "pending", ApprovalRow.expires_at > now))
            if existing is not None:
                return PushRequest(existing.id, existing.match_code, existing.expires_at)
            ap = ApprovalRow(id=new_id(12), challenge_id=ch.id, user_id=ch.user_id,
                             match_code=f"{secrets.randbelow(100):02d}", client_addr=ch.client_addr, method=ch.method,
                             created_at=now, expires_at=min(now + self.config.approval_ttl, ch.expires_at))
            s.add(ap)
        return PushRequest(ap.id, ap.match_code, ap.expires_at)

    def pending_approvals(self, session_id: str) -> list[PendingApproval]:
        """Approvals the user of this (live) session is asked to decide."""
        sess = self._live_session(session_id)
        now = self.clock()
        with self._db() as s:
            rows = s.scalars(sa.select(ApprovalRow).where(
                ApprovalRow.user_id == sess.user_id, ApprovalRow.status == "pending", ApprovalRow.expires_at > now
            ).order_by(ApprovalRow.created_at))
            return [PendingApproval(r.id, r.created_at, r.expires_at, r.client_addr, r.method) for r in rows]

    def decide_approval(self, session_id: str, approval_id: str, *, approve: bool, match_code: str | None = None) -> None:
        """Approve (with the number shown on the new device) or deny a pending login."""
        sess = self._live_session(session_id)
        if not isinstance(approval_id, str) or len(approval_id) > 32:
            raise InvalidInput("approval_id must be a short string")
        if approve and (not isinstance(match_code, str) or not match_code.strip().isdigit()):
            raise InvalidInput("approving needs the two-digit number shown on the device that is logging in")
        now = self.clock()
        with self._db() as s:
            ap = s.get(ApprovalRow, approval_id)
        if ap is None or ap.user_id != sess.user_id or ap.status != "pending":
            raise ApprovalNotFound("No pending approval with this id.")
        if ap.expires_at <= now:
            raise ApprovalExpired("This approval request has expired.")
        matched = approve and hmac.compare_digest(ap.match_code, match_code.strip().zfill(2))  # type: ignore[union-attr]
        status = "approved" if matched else "denied"
        with self._db.begin() as s:
            done = s.execute(
                sa.update(ApprovalRow).where(ApprovalRow.id == approval_id, ApprovalRow.status == "pending")
                .values(status=status, decided_at=now, decided_by=session_id)
                .execution_options(synchronize_session=False)
            ).rowcount
        if done != 1:
            raise ApprovalNotFound("This approval was already decided.")
        if status == "denied":
            # A denied login is over, whatever factor it tries next; the attempt counts as a failure.
            with self._db.begin() as s:
                s.execute(sa.update(ChallengeRow).where(ChallengeRow.id == ap.challenge_id,
                                                        ChallengeRow.state == "pending")
                          .values(state="denied", dek_ct=None, dek_nonce=None)
                          .execution_options(synchronize_session=False))
                attempt_id = s.scalar(sa.select(ChallengeRow.attempt_id).where(ChallengeRow.id == ap.challenge_id))
            self.throttle.charge(account_key(self._pepper, self._username(ap.user_id)), self.config.account_throttle)
            self.evaluation.completed(attempt_id, second_factor="push", success=False, outcome=ApprovalDenied.slug)
        if approve and not matched:
            raise ApprovalDenied("The number did not match, so the login was denied.")

    def _live_session(self, session_id: str) -> SessionInfo:
        info = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if info is None or not info.active or info.expires_at <= self.clock():
            raise TokenRevoked("This session has ended; please log in again.")
        return info

    # ================================================================== sessions and wallets

    def logout(self, session_id: str) -> None:
        """End the session: every access and refresh token of it stops working at once."""
        self.sessions.revoke(session_id, "logout")

    def signer_for_session(self, session_id: str, wallet_session_key: bytes) -> Signer:
        """The user's Fabric signer, opened for a live session that presented its wallet key (one
        read of the session and wallet rows: every signed request of the gateway comes here)."""
        with self._db() as s:
            row = s.get(SessionRow, session_id) if isinstance(session_id, str) else None
            if row is None or row.revoked_at is not None or row.expires_at <= self.clock():
                raise TokenRevoked("This session has ended; please log in again.")
            dek = self.sessions.wallet_dek(row, wallet_session_key)
            w = s.get(WalletRow, row.user_id)
            user_id = row.user_id
        if w is None:
            raise WalletNotHeld("The user holds their own key.")
        return open_private_key(SealedKey(w.key_nonce, w.key_ct), dek, user_id)

    def open_wallet_with_key(self, username: str, text_key: str, *, client_addr: str | None = None) -> Signer:
        """Open a wallet directly with the textual key (CLI tools, key export). Throttled like a login;
        a suspended user cannot open it."""
        if not isinstance(text_key, str) or not text_key or len(text_key) > self.config.max_key_length:
            raise InvalidInput(f"the textual key must be 1 to {self.config.max_key_length} characters")
        key = _normalise_key(text_key)
        user, _, _, _ = self._verify_key(normalise_username(username), "text", key, None,
                                         client_addr=client_addr, attempt_id=None)
        if user.status != "active" or self.gate.is_suspended(user.id):
            raise AccountSuspended("This account is suspended.")
        self.throttle.clear(account_key(self._pepper, user.username))
        return self._open_wallet_text(user.id, key)

    def _open_wallet_text(self, user_id: str, key: str) -> Signer:
        with self._db() as s:
            wrap = s.get(WalletWrapRow, (user_id, "text"))
            w = s.get(WalletRow, user_id)
        if wrap is None or w is None:
            raise WalletNotHeld("The user holds their own key.")
        dek = unwrap_dek(Wrap("text", wrap.salt, _params(wrap.kdf), wrap.nonce, wrap.wrapped_dek), user_id=user_id,
                         kek_secret=kek_input(self._pepper, user_id, "text", (key,)))
        if dek is None:
            raise InvalidCredentials()
        return open_private_key(SealedKey(w.key_nonce, w.key_ct), dek, user_id)

    def identity_of(self, user_id: str) -> Identity:
        with self._db() as s:
            u = s.get(UserRow, user_id)
        if u is None:
            raise UserNotFound(f"no user {user_id!r}")
        return Identity.from_pem(u.msp_id, u.certificate_pem.encode())

    # ================================================================== directory and administration

    def get_user(self, user_id: str) -> AuthUser | None:
        with self._db() as s:
            u = s.get(UserRow, user_id)
            return _user(u) if u else None

    def find_user(self, username: str) -> AuthUser | None:
        with self._db() as s:
            u = s.scalar(sa.select(UserRow).where(UserRow.username == normalise_username(username)))
            return _user(u) if u else None

    def list_users(self, hospital: str | None = None) -> list[AuthUser]:
        with self._db() as s:
            q = sa.select(UserRow).order_by(UserRow.username)
            if hospital:
                q = q.where(UserRow.hospital == hospital)
            return [_user(u) for u in s.scalars(q)]

    def _user_row(self, username: str) -> UserRow:
        with self._db() as s:
            u = s.scalar(sa.select(UserRow).where(UserRow.username == username))
        if u is None:
            raise UserNotFound(f"no user named {username!r}")
        return u

    def lockout_status(self, username: str) -> float:
        """Seconds until this username may try again (0 when not throttled)."""
        return self.throttle.retry_after(account_key(self._pepper, normalise_username(username)))

    def unlock(self, username: str) -> None:
        """Administrator: clear an account's failure counter (works for any username)."""
        self.throttle.clear(account_key(self._pepper, normalise_username(username)))

    def unlock_address(self, client_addr: str) -> None:
        self.throttle.clear(address_key(client_addr))

    def suspend(self, user_id: str) -> int:
        """Suspend locally (the chain's suspension is seen through ``is_suspended``); ends all sessions."""
        self._set_status(user_id, "suspended")
        return self.sessions.revoke_user(user_id, "suspended")

    def reinstate(self, user_id: str) -> None:
        self._set_status(user_id, "active")
        self.gate.forget(user_id)

    def notify_suspended(self, user_id: str) -> int:
        """The chain reported a suspension (event): end the user's sessions now, not at the next check."""
        self.gate.forget(user_id)
        return self.sessions.revoke_user(user_id, "suspended")

    def change_role(self, user_id: str, role: str, register: Callable[[Identity], object]) -> AuthUser:
        """Give a user another role (a hospital admin's decision). Their certificate carries the role
        (attribute ``role``, node role ``admin`` for a hospital admin), so a new one is issued for
        the same key — the wallet, or the key the user holds, stays as it is; ``register`` records it
        elsewhere first (the chain: ``UserContract:UpdateUser``) and may refuse, leaving nothing
        changed; then the directory, and every session of the user ends (they sign in again, in
        their new role). A patient's role never changes, nor anyone's into a patient."""
        user = self.get_user(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id!r}")
        role = check_role(role)
        if role == user.role:
            raise InvalidInput(f"{user.username} is already {role.replace('_', ' ')}")
        if "patient" in (role, user.role):
            raise InvalidInput("a patient's role cannot change, nor anyone's into a patient (enrol them as a patient)")
        identity, _ = self._issue_identity(user.hospital, user_id, role, self.identity_of(user_id).public_key)
        register(identity)
        with self._db.begin() as s:
            s.execute(sa.update(UserRow).where(UserRow.id == user_id).values(
                role=role, certificate_pem=identity.pem.decode(), certificate_fingerprint=identity.fingerprint,
            ).execution_options(synchronize_session=False))
        self.sessions.revoke_user(user_id, "role-changed")
        log.info("%s is now %s (was %s)", user_id, role, user.role)
        changed = self.get_user(user_id)
        assert changed is not None
        return changed

    def discard_enrolment(self, user_id: str) -> None:
        """Undo an enrolment whose other half failed (the gateway registers the user on chain right
        after :meth:`register`; if the chain refuses, the directory entry must not stay behind).
        Removes the user with their wallet, factors and sessions; refuses a user who ever logged in."""
        with self._db.begin() as s:
            u = s.get(UserRow, user_id)
            if u is None:
                raise UserNotFound(f"no user {user_id!r}")
            if s.scalar(sa.select(sa.func.count()).select_from(SessionRow).where(SessionRow.user_id == user_id)):
                raise InvalidInput(f"user {user_id!r} has logged in: suspend them instead of discarding")
            for table in (RecoveryCodeRow, WalletWrapRow, WalletRow, ApprovalRow, ChallengeRow):
                s.execute(sa.delete(table).where(table.user_id == user_id))
            s.execute(sa.delete(UserRow).where(UserRow.id == user_id))
        self.gate.forget(user_id)
        log.info("discarded the enrolment of %s", user_id)

    def _set_status(self, user_id: str, status: str) -> None:
        with self._db.begin() as s:
            n = s.execute(sa.update(UserRow).where(UserRow.id == user_id).values(status=status)
                          .execution_options(synchronize_session=False)).rowcount
        if n != 1:
            raise UserNotFound(f"no user {user_id!r}")

    def revoke_sessions(self, user_id: str, *, except_session: str | None = None) -> int:
        return self.sessions.revoke_user(user_id, "admin", except_session=except_session)

    def regenerate_recovery_codes(self, user_id: str) -> list[str]:
        """Replace all recovery codes (the old ones stop working)."""
        if self.get_user(user_id) is None:
            raise UserNotFound(f"no user {user_id!r}")
        codes = new_recovery_codes(self.config.recovery_codes)
        now = self.clock()
        with self._db.begin() as s:
            s.execute(sa.delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            s.add_all(RecoveryCodeRow(code_hash=recovery_code_hash(self._pepper, user_id, c), user_id=user_id,
                                      created_at=now) for c in codes)
        return codes

    def reset_totp(self, user_id: str) -> TotpProvisioning:
        """A new TOTP secret (lost phone): the old authenticator entry stops working."""
        user = self.get_user(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id!r}")
        secret = self.totp.new_secret()
        sealed = self.totp.seal(user_id, secret)
        with self._db.begin() as s:
            s.execute(sa.update(UserRow).where(UserRow.id == user_id).values(
                totp_secret_ct=sealed.ciphertext, totp_secret_nonce=sealed.nonce, totp_confirmed=False, totp_last_step=0,
            ).execution_options(synchronize_session=False))
        return self.totp.provisioning(secret, f"{user.username}@{user.hospital}")

    def change_secret(
        self, user_id: str, *, current_text_key: str, new_text_key: str, new_images: list[str],
        keep_session: str | None = None,
    ) -> list[str]:
        """Replace the FlexPass secret (both keys), re-wrap the wallet, end the other sessions.
        Returns the new grid. The current textual key is required (it opens the wallet)."""
        cfg = self.config
        with self._db() as s:
            user = s.get(UserRow, user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id!r}")
        if not isinstance(current_text_key, str) or not current_text_key:
            raise InvalidInput("the current textual key is required")
        chosen = graphical.validate_choice(new_images, minimum=cfg.graphical_min_images,
                                           maximum=cfg.graphical_max_images, grid_size=cfg.grid_size)
        check_key_strength(new_text_key, **self._strength_kwargs(user.username, user.hospital, user.role, chosen))
        current = _normalise_key(current_text_key)
        self._verify_key(user.username, "text", current, None, client_addr=None, attempt_id=None)  # throttled
        new_key = _normalise_key(new_text_key)
        signer = self._open_wallet_text(user.id, current) if user.key_custody == "wallet" else None
        grid = graphical.build_grid(chosen, keyed(self._pepper, "serums-auth/grid-seed", user.id, new_id(8)), cfg.grid_size)
        now = self.clock()
        with self._db.begin() as s:
            s.execute(sa.update(UserRow).where(UserRow.id == user.id).values(
                text_hash=self.hasher.hash(self._text_input(user.id, new_key)),
                graphical_hash=self.hasher.hash(self._graphical_input(user.id, chosen)),
                graphical_grid=grid, secret_changed_at=now,
            ).execution_options(synchronize_session=False))
            if signer is not None:
                s.execute(sa.delete(WalletWrapRow).where(WalletWrapRow.user_id == user.id))
                s.execute(sa.delete(WalletRow).where(WalletRow.user_id == user.id))
                s.flush()
                s.add_all(self._wallet_rows(user.id, signer, new_key, chosen, now))
        self.sessions.revoke_user(user.id, "secret-changed", except_session=keep_session)
        if keep_session:  # its session wallet holds the old DEK: it can no longer sign
            self.sessions.revoke(keep_session, "secret-changed")
        return grid

    # ================================================================== evaluation

    def usability_report(self, since: float | None = None) -> UsabilityReport:
        return usability_figures(self.evaluation.events(since))


# ---------------------------------------------------------------------- helpers


def _user(u: UserRow) -> AuthUser:
    return AuthUser(
        user_id=u.id, username=u.username, role=u.role, hospital=u.hospital, msp_id=u.msp_id, status=u.status,
        key_custody=u.key_custody, certificate_fingerprint=u.certificate_fingerprint,
        totp_confirmed=bool(u.totp_confirmed), created_at=u.created_at,
    )


def _params(kdf: dict) -> Argon2Params:
    return Argon2Params.from_json(kdf)


def _challenge_key(secret: bytes) -> bytes:
    return hashlib.sha256(b"serums-auth/challenge-key/v1|" + secret).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("public_key_pem is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidInput("the public key must be an ECDSA P-256 key (Fabric identities use P-256)")
    return key


__all__ = ["AuthService", "CAProvider", "ca_provider_from_network"]
