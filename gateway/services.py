"""Everything the gateway composes, built once per process from plain settings: :class:`Services`.

- the user directory (:class:`auth.AuthService`, with the chain's suspension check wired in),
- the network (:class:`network.NetworkConfig`) and the node's address; one gRPC channel per
  process, shared by every identity's :class:`network.Gateway`,
- one vault per hospital (its own database, KEK and key directory under
  ``<data dir>/vaults/<hospital>/``; or ``SERUMS_DATABASE_URL`` with schema ``vault_<hospital>``),
  each with its :class:`vault.chain.ChainGrantLedger` signing as that hospital's vault service
  identity ``vault-<hospital>`` (role ``vault`` on chain; certificate and key under
  ``<data dir>/network/orgs/<hospital>/users/vault/``),
- enrolment (auth registration + ``UserContract:RegisterUser`` signed by a hospital admin +
  treating relationships), used by the admin endpoints and by ``serums up``,
- the gateway's own store (share codes, pending invitations).

``serums up`` and the gunicorn workers open it the same way::

    services = Services.open(GatewaySettings(data_dir, node_address="127.0.0.1:7051"))
    services.ensure_hospital("lothian", "NHS Lothian")     # idempotent
    services.ensure_vault_identity("lothian")              # idempotent
    reg = services.enrol(*services.hospital_admin("lothian"), "lothian", "dr.smith", "specialist",
                         text_key, images)

The gateway imports nothing of ``serums``: settings are plain values (see :class:`GatewaySettings`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

import auth
from auth import AuthConfig, AuthService, Registration, RegistrationRequest, ca_provider_from_network
from network import (
    Contract,
    Gateway,
    GatewayError,
    Identity,
    IdentityError,
    NetworkConfig,
    Signer,
    channel_credentials,
    client_tls_options,
    load_credentials,
    save_credentials,
)
from vault import Vault, VaultConfig, open_vault
from vault.chain import ChainGrantLedger

from . import ledger as L
from . import problems as P
from .store import GatewayStore

log = logging.getLogger("serums.gateway")

VAULT_ROLE = "vault"
CLINICIAN_ROLES = ("gp", "specialist", "nurse")
UNKNOWN_HOSPITAL = P.problem_type("unknown-hospital", 404, "Unknown hospital", "No hospital of that name on this network.")
VAULT_NOT_SET_UP = P.problem_type(
    "vault-not-set-up", 503, "Vault not set up",
    "The hospital's vault service identity does not exist yet (`serums up` creates it).",
)
ENROLMENT_REFUSED = P.problem_type(
    "enrolment-refused", 409, "Enrolment refused",
    "The enrolment could not be completed (the ledger refused the registration or a treating relationship); "
    "nothing was kept.",
)


@dataclass(frozen=True)
class GatewaySettings:
    """Plain settings, built by ``serums.config.Settings.gateway_settings`` (the gateway never reads
    the environment).

    - ``data_dir``: all state of the embedded default;
    - ``database_url``: a PostgreSQL URL for the vaults (schema ``vault_<hospital>`` each) and, unless
      ``auth_database_url`` says otherwise, the user directory; None (or a SQLite URL) gives
      per-hospital SQLite files ``<data dir>/vaults/<hospital>/vault.db`` and ``<data dir>/auth.db``;
    - ``node_address``: the node's gRPC endpoint; None: the network's configured endpoint
      (``serums`` passes the running node's, from ``<data dir>/node.json`` when it is not stale);
    - ``key_passphrase``: decrypts the network's private keys, derives the vaults' KEKs;
    - ``node_tls_ca``: PEM file of the CA of the endpoint's TLS certificate (a Fabric peer); None:
      plaintext, unless ``node_tls`` says otherwise;
    - ``node_tls``: ``off``, ``on`` (TLS, trusting ``node_tls_ca`` or else the embedded node's own
      TLS CA) or ``mutual`` (also the first hospital admin's TLS client certificate);
    - ``engine``: ``embedded`` or ``fabric`` (what the ledger verification reads).
    """

    data_dir: Path
    database_url: str | None = None
    node_address: str | None = None
    key_passphrase: str | None = None
    ipfs_api: str | None = None
    auth_database_url: str | None = None
    node_tls_ca: str | None = None
    engine: str = "embedded"
    node_tls: str = "off"

    @property
    def postgres_url(self) -> str | None:
        url = self.database_url
        return url if url and url.startswith("postgresql") else None

    @property
    def network_dir(self) -> Path:
        return self.data_dir / "network"


def resolve_node_address(settings: GatewaySettings, network: NetworkConfig) -> str:
    return settings.node_address or network.endpoint


class Services:
    """The gateway's composition root (one per process). Thread-safe."""

    def __init__(self, settings: GatewaySettings, network: NetworkConfig, auth_service: AuthService,
                 store: GatewayStore, address: str):
        self.settings = settings
        self.network = network
        self.auth = auth_service
        self.store = store
        self.address = address
        self._lock = threading.RLock()
        self._channel: grpc.Channel | None = None
        self._channel_pid: int | None = None
        self._vaults: dict[str, Vault] = {}
        self._ledgers: dict[str, ChainGrantLedger] = {}
        self._identities: dict[str, Identity] = {}
        self._admins: dict[str, tuple[Identity, Signer]] = {}
        self._service_ids: dict[str, tuple[Identity, Signer]] = {}
        self._patient_hospital: dict[str, str] = {}

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, settings: GatewaySettings, *, auth_config: AuthConfig | None = None, **auth_kwargs: Any) -> Services:
        """Open everything lazily: nothing connects to the node or a vault database until needed.
        ``auth_config`` defaults to auth's defaults with secrets in ``<data dir>/auth/``."""
        network = NetworkConfig.load(settings.network_dir)
        url = settings.auth_database_url or settings.postgres_url or f"sqlite:///{settings.data_dir / 'auth.db'}"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        config = auth_config or AuthConfig.from_env(settings.data_dir, env={})
        svc: Services | None = None

        def is_suspended(user_id: str) -> bool:
            assert svc is not None
            return svc.is_suspended(user_id)

        auth_service = AuthService.from_url(
            url, config, ca_provider=ca_provider_from_network(network, settings.key_passphrase),
            is_suspended=is_suspended, **auth_kwargs,
        )
        auth_service.create_tables()
        store = GatewayStore(auth_service.engine, config.pepper)
        store.create_tables()
        svc = cls(settings, network, auth_service, store, resolve_node_address(settings, network))
        return svc

    def close(self) -> None:
        with self._lock:
            for v in self._vaults.values():
                v.close()
            self._vaults.clear()
            self._ledgers.clear()
            if self._channel is not None:
                self._channel.close()
                self._channel = None
        self.auth.engine.dispose()

    # ------------------------------------------------------------------ hospitals

    @property
    def hospitals(self) -> list[str]:
        return [h.name for h in self.network.hospitals]

    def msp_of(self, hospital: str) -> str:
        for h in self.network.hospitals:
            if hospital in (h.name, h.msp_id):
                return h.msp_id
        raise P.Problem(UNKNOWN_HOSPITAL, f"no hospital {hospital!r} on this network ({', '.join(self.hospitals)})")

    def hospital_of(self, name_or_msp: str) -> str:
        for h in self.network.hospitals:
            if name_or_msp in (h.name, h.msp_id):
                return h.name
        raise P.Problem(UNKNOWN_HOSPITAL, f"no hospital {name_or_msp!r} on this network")

    # ------------------------------------------------------------------ ledger access

    def verify_ledger(self):
        """Re-check the ledger of whichever engine runs: the embedded node's block stores, or every
        Fabric peer's chain read through Deliver. ``ledger-unverifiable`` when there is none."""
        from network import verify_ledger

        if self.settings.engine == "fabric":
            from network.fabric import FabricError, FabricNetwork, verify_fabric

            try:
                return verify_fabric(FabricNetwork(self.network), self.settings.key_passphrase)
            except FabricError as exc:
                raise P.Problem(P.TYPES["ledger-unverifiable"], exc.detail) from None
        if not self.network.ledger_dir().exists():
            raise P.Problem(P.TYPES["ledger-unverifiable"], f"no block store at {self.network.ledger_dir()}")
        return verify_ledger(self.network)

    def channel(self) -> grpc.Channel:
        """One gRPC channel per process (re-created after a fork: channels do not survive one)."""
        with self._lock:
            if self._channel is None or self._channel_pid != os.getpid():
                make: Any = grpc.insecure_channel
                # a Fabric peer (serums up --engine fabric), or the embedded node under SERUMS_NODE_TLS
                mode = self.settings.node_tls if self.settings.engine == "embedded" else "off"
                creds = channel_credentials(client_tls_options(self.network, mode, self.settings.node_tls_ca))
                if creds is not None:
                    make = functools.partial(grpc.secure_channel, credentials=creds)
                self._channel = make(self.address, options=[
                    ("grpc.max_receive_message_length", 100 * 1024 * 1024),
                    ("grpc.max_send_message_length", 100 * 1024 * 1024),
                    # a node restarted by its supervisor is reached again within 2 s (gRPC's default
                    # back-off grows to 2 min); meanwhile calls fail fast: 503 ledger-unavailable
                    ("grpc.initial_reconnect_backoff_ms", 250),
                    ("grpc.min_reconnect_backoff_ms", 250),
                    ("grpc.max_reconnect_backoff_ms", 2000),
                ])
                self._channel_pid = os.getpid()
            return self._channel

    def gateway(self, identity: Identity, signer: Signer | None) -> Gateway:
        return Gateway(identity, signer, self.channel(), timeouts={"evaluate": 15.0, "endorse": 15.0, "submit": 15.0,
                                                                   "commit": 30.0})

    def contract(self, identity: Identity, signer: Signer | None, contract_name: str) -> Contract:
        return self.gateway(identity, signer).network(self.network.channel).contract(L.CHAINCODE, contract_name)

    def user_identity(self, user_id: str, role: str | None = None) -> Identity:
        """A user's certificate (cached). With ``role`` (the role their session was opened in), a
        cached certificate for another role is read again: after a role change (a new certificate)
        every process sees the new one from the user's next session on."""
        with self._lock:
            ident = self._identities.get(user_id)
        if ident is None or (role is not None and ident.attributes.get("role", role) != role):
            ident = self.auth.identity_of(user_id)
            with self._lock:
                if len(self._identities) > 10_000:
                    self._identities.clear()
                self._identities[user_id] = ident
        return ident

    def user_contract(self, user_id: str, signer: Signer | None, contract_name: str, role: str | None = None) -> Contract:
        """A contract as the logged-in user: their certificate, their session's wallet signer."""
        return self.contract(self.user_identity(user_id, role), signer, contract_name)

    def change_role(self, admin: Contract, user_id: str, role: str) -> tuple[dict, auth.AuthUser]:
        """A user's new role: a new certificate for the same key (auth), recorded on chain by the
        admin (``UserContract:UpdateUser`` with the role and the new certificate's fingerprint, in one
        transaction; a refusal changes nothing), then the directory; the user's sessions end."""
        done: dict = {}

        def register(identity: Identity) -> None:
            done["chain"] = L.submit(admin, "UpdateUser", user_id, {"role": role, "fingerprint": identity.fingerprint}).result

        entry = self.auth.change_role(user_id, role, register)
        with self._lock:
            self._identities.pop(user_id, None)
        return done["chain"], entry

    def hospital_admin(self, hospital: str) -> tuple[Identity, Signer]:
        """The hospital's bootstrap admin (``network init``'s ``users/admin``), for enrolment desks
        without a logged-in admin (``serums up``, invitations)."""
        name = self.hospital_of(hospital)
        with self._lock:
            if name not in self._admins:
                self._admins[name] = self.network.load_user(name, "admin", self.settings.key_passphrase)
            return self._admins[name]

    def admin_contract(self, hospital: str, contract_name: str) -> Contract:
        return self.contract(*self.hospital_admin(hospital), contract_name)

    def ensure_hospital(self, hospital: str, name: str) -> dict:
        """Register the hospital on chain (idempotent: an existing registration is returned)."""
        msp = self.msp_of(hospital)
        users = self.admin_contract(hospital, "UserContract")
        try:
            doc = L.submit(users, "RegisterHospital", name).result
        except GatewayError as exc:
            if exc.chaincode_status != 409:
                raise
            doc = L.evaluate(users, "GetHospital", msp)
        # the hospital's next transactions (its rules) may be endorsed by any hospital's peer
        L.await_every_peer(users, [h.msp_id for h in self.network.hospitals], "GetHospital", msp)
        return doc

    # ------------------------------------------------------------------ vault service identities

    def vault_user_id(self, hospital: str) -> str:
        return f"vault-{self.hospital_of(hospital)}"

    def vault_identity_dir(self, hospital: str) -> Path:
        return self.network.user_dir(self.hospital_of(hospital), "vault")

    def vault_identity(self, hospital: str) -> tuple[Identity, Signer]:
        """The vault service identity's credentials (503 ``vault-not-set-up`` when missing)."""
        name = self.hospital_of(hospital)
        with self._lock:
            cached = self._service_ids.get(name)
        if cached is not None:
            return cached
        try:
            creds = load_credentials(self.vault_identity_dir(name), self.settings.key_passphrase)
        except (IdentityError, OSError) as exc:
            raise P.Problem(VAULT_NOT_SET_UP, f"the vault of {name} has no service identity yet: {exc}") from exc
        with self._lock:
            self._service_ids[name] = creds
        return creds

    @contextlib.contextmanager
    def _file_lock(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def ensure_vault_identity(self, hospital: str) -> tuple[Identity, Signer]:
        """Create (once) the hospital's vault service identity: a certificate from the hospital's
        CA (CN ``vault-<hospital>``, attributes role=vault and uid), saved under
        ``users/vault/``, and registered on chain by the hospital's admin. Idempotent; repairs a
        registration whose certificate changed (the files were replaced)."""
        name = self.hospital_of(hospital)
        uid = self.vault_user_id(name)
        directory = self.vault_identity_dir(name)
        with self._file_lock(self.network.org_dir(name) / ".vault-identity.lock"):
            try:
                ident, signer = load_credentials(directory, self.settings.key_passphrase)
            except IdentityError:
                ca = self.network.load_ca(name, self.settings.key_passphrase)
                ident, new_signer = ca.issue(uid, "client", attributes={"role": VAULT_ROLE, "uid": uid,
                                                                         "hf.EnrollmentID": uid})
                assert new_signer is not None
                signer = new_signer
                save_credentials(directory, ident, signer, self.settings.key_passphrase)
                log.info("created the vault service identity %s", uid)
            users = self.admin_contract(name, "UserContract")
            try:
                L.submit(users, "RegisterUser", uid, VAULT_ROLE, ident.fingerprint)
            except GatewayError as exc:
                if exc.chaincode_status != 409:
                    raise
                doc = L.evaluate(users, "GetUser", uid)
                if doc.get("fingerprint") != ident.fingerprint:
                    L.submit(users, "UpdateUser", uid, {"fingerprint": ident.fingerprint})
                    log.warning("re-bound %s to its current certificate", uid)
                if doc.get("status") != "active":
                    log.warning("the vault service identity %s is suspended on chain", uid)
        with self._lock:
            self._service_ids[name] = (ident, signer)
        return ident, signer

    def service_gateway(self, hospital: str | None = None) -> Gateway:
        """A gateway as a vault service identity (reads every user: suspension checks, lookups).
        The given hospital's if it is set up, else any that is."""
        names = ([self.hospital_of(hospital)] if hospital else []) + self.hospitals
        last: Exception | None = None
        for name in names:
            try:
                return self.gateway(*self.vault_identity(name))
            except P.Problem as exc:
                last = exc
        raise last or P.Problem(VAULT_NOT_SET_UP, "no vault service identity is set up")

    def service_contract(self, contract_name: str, hospital: str | None = None) -> Contract:
        return self.service_gateway(hospital).network(self.network.channel).contract(L.CHAINCODE, contract_name)

    def chain_user(self, user_id: str) -> dict | None:
        """The user as the chain records them (read by a service identity), or None."""
        try:
            return L.evaluate(self.service_contract("UserContract"), "GetUser", user_id)
        except GatewayError as exc:
            if exc.chaincode_status in (404, 400):
                return None
            raise

    def is_suspended(self, user_id: str) -> bool:
        """Auth's ``is_suspended``: the chain's status of the user (a user the chain does not
        know is not suspended there; the chain refuses them anyway)."""
        doc = self.chain_user(user_id)
        return doc is not None and doc.get("status") != "active"

    # ------------------------------------------------------------------ vaults

    def vault_dir(self, hospital: str) -> Path:
        return self.vault_config(hospital).key_dir

    def vault_config(self, hospital: str) -> VaultConfig:
        """The hospital's vault as every command opens it (:meth:`vault.VaultConfig.for_hospital`)."""
        return VaultConfig.for_hospital(self.settings, self.hospital_of(hospital))

    def ledger(self, hospital: str) -> ChainGrantLedger:
        name = self.hospital_of(hospital)
        with self._lock:
            led = self._ledgers.get(name)
            if led is None:
                ident, signer = self.vault_identity(name)
                led = ChainGrantLedger(self.contract(ident, signer, "TransportContract"))
                self._ledgers[name] = led
            return led

    def vault(self, hospital: str, *, create: bool = False) -> Vault:
        """The hospital's vault, opened once per process, its ledger signing as its vault identity.
        A vault that was never set up (:meth:`ensure_vault`) is 503 ``vault-not-set-up``: requests
        never create one."""
        name = self.hospital_of(hospital)
        with self._lock:
            v = self._vaults.get(name)
            if v is None:
                if not create and not self.vault_dir(name).exists():
                    raise P.Problem(VAULT_NOT_SET_UP, f"the vault of {name} is not set up")
                v = open_vault(self.settings, name, ledger=self.ledger(name))
                self._vaults[name] = v
            return v

    def ensure_vault(self, hospital: str) -> Vault:
        """Service identity (registered on chain) + vault database and keys: what ``serums up``
        calls (idempotent)."""
        self.ensure_vault_identity(hospital)
        return self.vault(hospital, create=True)

    def vault_for_token(self, token: str, fallback_hospital: str) -> tuple[str, Vault]:
        """The vault that minted a token (by the signing key id in its claims); a token no vault
        knows goes to ``fallback_hospital``'s vault (or any vault that is set up), which refuses it
        and logs the refusal on chain."""
        from vault import TokenIssuer

        claims = TokenIssuer.peek(token) if isinstance(token, str) else None
        ready = [n for n in self.hospitals if n in self._vaults or self.vault_dir(n).exists()]
        if claims is not None:
            for name in ready:
                v = self.vault(name)
                if v.issuer.key_id == claims.key_id:
                    return name, v
        fallback = self.hospital_of(fallback_hospital)
        for name in ([fallback] if fallback in ready else []) + ready:
            return name, self.vault(name)
        raise P.Problem(VAULT_NOT_SET_UP, "no vault is set up on this gateway")

    def patient_hospital(self, patient_id: str, requester: Contract | None = None,
                         request_id: str | None = None) -> str:
        """The hospital holding a patient's record: the directory knows its patients; otherwise
        the chain's grant says (``patient_hospital``)."""
        with self._lock:
            known = self._patient_hospital.get(patient_id)
        if known:
            return known
        user = self.auth.get_user(patient_id)
        if user is not None and user.role == "patient":
            name = user.hospital
        else:
            doc = self.chain_user(patient_id)
            if doc is None and requester is not None and request_id:
                doc = {"hospital": L.evaluate(requester, "GetRequest", request_id)["patient_hospital"]}
            if doc is None:
                raise P.Problem(P.NOT_FOUND, f"no patient {patient_id!r} on this network")
            name = self.hospital_of(doc["hospital"])
        with self._lock:
            self._patient_hospital[patient_id] = name
        return name

    # ------------------------------------------------------------------ enrolment

    def enrol(
        self, admin_identity: Identity, admin_signer: Signer, hospital: str, username: str, role: str,
        text_key: str, images: Sequence[str], user_id: str | None = None, treating: Sequence[str] = (), *,
        custody: str = "wallet", public_key_pem: bytes | None = None,
    ) -> Registration:
        """Enrol a user of ``hospital``: the directory entry and Fabric identity (auth), then
        ``UserContract:RegisterUser`` signed by the hospital admin (``admin_identity`` /
        ``admin_signer``: a logged-in hospital_admin's wallet, or :meth:`hospital_admin`), then the
        treating relationships (``treating``: for a clinician the patients they treat, for a
        patient their clinicians; recorded by the same admin). A patient's ``user_id`` must be
        their vault patient reference. If the chain refuses, the directory entry is discarded:
        nothing half-enrolled remains."""
        name = self.hospital_of(hospital)
        msp = self.msp_of(name)
        if admin_identity.msp_id != msp:
            raise P.Problem(P.FORBIDDEN, f"only an admin of {name} enrols its users")
        pairs = self._check_enrolment(name, role, user_id, treating)
        reg = self.auth.register(RegistrationRequest(username, role, name, text_key, list(images), custody,  # type: ignore[arg-type]
                                                     public_key_pem, None, user_id))
        self._register_on_chain(reg, admin_identity, admin_signer, pairs)
        return reg

    def invite(self, hospital: str, username: str, role: str, user_id: str | None = None,
               treating: Sequence[str] = (), ttl: float = 72 * 3600.0) -> auth.Invitation:
        """An invitation code; the invited user enrols later with :meth:`accept_invitation`."""
        name = self.hospital_of(hospital)
        self._check_enrolment(name, role, user_id, treating)
        if user_id is not None:
            auth.check_user_id(user_id)
            if self.auth.get_user(user_id) is not None:
                raise auth.UserExists(f"a user with id {user_id!r} already exists")
        inv = self.auth.invite(username, role, name, ttl=ttl)
        self.store.remember_invitation(inv.code, name, user_id, list(treating), inv.expires_at)
        return inv

    def accept_invitation(self, code: str, text_key: str, images: Sequence[str], *, custody: str = "wallet",
                          public_key_pem: bytes | None = None) -> Registration:
        """The invited user enrols with their own secret; the chain registration is signed by the
        hospital's bootstrap admin (the admin who invited is not logged in now)."""
        pending = self.store.pending_invitation(code) if isinstance(code, str) else None
        reg = self.auth.accept_invitation(code, text_key=text_key, images=list(images), custody=custody,
                                          public_key_pem=public_key_pem,
                                          user_id=pending.user_id if pending else None)
        hospital = reg.user.hospital
        treating = pending.treating if pending else []
        try:
            pairs = self._check_enrolment(hospital, reg.user.role, reg.user.user_id, treating, new_user=reg.user.user_id)
        except Exception:
            self.auth.discard_enrolment(reg.user.user_id)
            raise
        self._register_on_chain(reg, *self.hospital_admin(hospital), pairs)
        self.store.forget_invitation(code)
        return reg

    def _check_enrolment(self, hospital: str, role: str, user_id: str | None, treating: Sequence[str],
                         new_user: str | None = None) -> list[tuple[str, str]]:
        """Refuse before writing anything: a patient needs their vault reference as user id (and
        must be in the hospital's vault); treating relationships must name existing users of the
        right kind. Returns the (patient, clinician) pairs to record, with ``"$new"`` for the new user."""
        if role not in auth.ROLES:
            raise auth.InvalidInput(f"role must be one of {', '.join(auth.ROLES)}")
        me = new_user or "$new"
        if role == "patient":
            if user_id is None:
                raise auth.InvalidInput("a patient is enrolled under their vault patient reference (user_id)")
            self.vault(hospital).read_record(user_id, sections=[])  # PatientNotFound (404) when not there
        pairs: list[tuple[str, str]] = []
        if treating and role not in ("patient", *CLINICIAN_ROLES):
            raise auth.InvalidInput("treating relationships are for patients and clinicians (gp, specialist, nurse)")
        for other in dict.fromkeys(treating):
            doc = self.chain_user(other)
            if doc is None:
                raise P.Problem(P.NOT_FOUND, f"treating: no user {other!r} on the ledger")
            if role == "patient":
                if doc["role"] not in CLINICIAN_ROLES:
                    raise auth.InvalidInput(f"treating: {other} is {P.article(doc['role'])} {doc['role']}, not a clinician")
                pairs.append((me, other))
            else:
                if doc["role"] != "patient":
                    raise auth.InvalidInput(f"treating: {other} is {P.article(doc['role'])} {doc['role']}, not a patient")
                if self.hospital_of(doc["hospital"]) != hospital:
                    raise auth.InvalidInput(f"treating: patient {other} belongs to another hospital, whose admin "
                                            "records their treating relationships")
                pairs.append((other, me))
        return pairs

    def _register_on_chain(self, reg: Registration, admin_identity: Identity, admin_signer: Signer,
                           pairs: list[tuple[str, str]]) -> None:
        uid = reg.user.user_id
        users = self.contract(admin_identity, admin_signer, "UserContract")
        try:
            L.submit(users, "RegisterUser", uid, reg.user.role, reg.user.certificate_fingerprint)
        except Exception as exc:
            self.auth.discard_enrolment(uid)
            if isinstance(exc, GatewayError) and exc.chaincode_status in (400, 403, 409):
                raise P.Problem(ENROLMENT_REFUSED, f"the ledger refused to register {uid}: {exc}") from exc
            raise
        for patient, clinician in pairs:
            patient = uid if patient == "$new" else patient
            clinician = uid if clinician == "$new" else clinician
            try:
                L.submit(users, "AddTreatment", patient, clinician, "", "")
            except Exception:
                log.exception("enrolled %s but could not record treating %s by %s", uid, patient, clinician)
                raise


__all__ = ["ENROLMENT_REFUSED", "UNKNOWN_HOSPITAL", "VAULT_NOT_SET_UP", "GatewaySettings", "Services",
           "resolve_node_address"]
