"""The vault: ingest, read, release against tokens, blobs, erasure and key rotation.

``Vault.open(config)`` (or ``open_vault(settings, hospital)``) connects to the database, creates the
tables, and unlocks the key hierarchy: KEK (file or passphrase) -> index key and per-patient
data keys. All writes of one operation happen in one transaction; writers serialise on the
KEK id row (``FOR SHARE``/``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) so that
a KEK rotation never races an ingest that wraps new data keys.

Patients are known outside the vault only by their *patient reference*: the person hub's hash
key (a keyed HMAC of the national identifier, 32 hex characters). Tokens, grants and the chain
speak of that reference, never of the CHI.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from network import Signer

from . import schema as S
from .blobs import BlobStore, FilesystemBlobStore, IpfsBlobStore
from .config import SettingsLike, VaultConfig
from .errors import (
    BlobNotFound,
    FormatError,
    GrantExpired,
    GrantNotFound,
    GrantRevoked,
    GrantTokenLimit,
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
    TokenNotBound,
    TokenPresenterMismatch,
    UnknownSection,
    VaultConfigError,
    VaultError,
)
from .ingest import BatchWriter, driving_key_is_target
from .keys import (
    DataKey,
    HashKeys,
    Kek,
    KekFile,
    bk_aad,
    blob_aad,
    dek_aad,
    fingerprint,
    sat_aad,
    system_key_aad,
    try_open,
)
from .ledger import GRANT_REVOKED, AtomicGrantLedger, BlobAnchor, Grant, GrantLedger, LedgerRefusal, Refusal
from .record import WITHHELD_NOT_GRANTED, BlobRef, Entry, HubRef, LinkEntry, PatientRecord, SectionData
from .recordformat import RecordFormat, RowError, load_format, parse_format_text, utc_iso
from .refusals import RefusalLog
from .sources import TableInput, close_inputs, read_source, rows_input
from .tokens import MintedToken, TokenClaims, TokenIssuer, token_hash

log = logging.getLogger(__name__)

_REF_RE = re.compile(r"^[0-9a-f]{32}$")
_PROTECTION = {True: "aes-256-gcm", False: "none (benchmark baseline)"}
DEFAULT_CHUNK = 2000
_DEK_CACHE = 4096  # unwrapped data keys held at most (LRU) ...
DEK_CACHE_SECONDS = 300.0  # ... and for at most this long; each use re-checks the key's row (erasure)
_REF_HUB_CACHE = 100_000  # reference hubs (codes, places, days: immutable, no patient data) held for reads


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


# json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False), byte for byte, with the C
# encoder built once (json.dumps builds a new one on every call).
_C_CANONICAL = json.encoder.c_make_encoder(
    None, json.JSONEncoder().default, json.encoder.c_encode_basestring, None, ":", ",", True, False, True,
) if json.encoder.c_make_encoder else None


def _canonical(doc: Any) -> bytes:
    if _C_CANONICAL is None or not isinstance(doc, dict):
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return "".join(_C_CANONICAL(doc, 0)).encode()


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class IngestReport:
    batch_id: str
    load_ts: _dt.datetime
    format: str
    tables: dict[str, int]
    rows: int
    satellites_written: int
    satellites_unchanged: int
    links_written: int
    hubs_written: int
    patients_new: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["load_ts"] = utc_iso(self.load_ts)
        return d


@dataclass(frozen=True)
class Release:
    """What a redeemed token released: the record (or FHIR bundle) and the digest logged on chain."""

    grant_id: str
    token_hash: str
    presenter_id: str
    patient: str
    sections: tuple[str, ...]
    record: PatientRecord
    fhir: dict[str, Any] | None
    digest: str
    #: the document that was digested, as it was digested (built once, not again for the answer)
    document: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def body(self) -> dict[str, Any]:
        """Exactly what was digested: the record as JSON, or the FHIR bundle."""
        if self.document is not None:
            return self.document
        return self.fhir if self.fhir is not None else self.record.to_dict()


@dataclass(frozen=True)
class BlobRelease:
    grant_id: str
    token_hash: str
    blob: BlobRef
    data: bytes
    digest: str


@dataclass(frozen=True)
class ErasureReport:
    """Evidence that a patient's rows no longer decrypt.

    ``key_absent``: no data key the vault still holds has the destroyed key's fingerprint
    (every held key was unwrapped and fingerprinted). ``satellites_decrypted`` and
    ``blobs_decrypted``: how many of the patient's remaining ciphertexts opened under any of
    the ``trial_keys`` tried (all held keys, or a random sample of them on large vaults) — must
    be 0. ``verified`` is true when both hold.
    """

    patient: str
    dek_id: str
    key_fingerprint: str
    erased_at: _dt.datetime
    reason: str
    satellites: int
    blobs: int
    links_removed: int
    hubs_removed: int
    keys_checked: int
    key_absent: bool
    trial_keys: int
    satellites_decrypted: int
    blobs_decrypted: int
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["erased_at"] = utc_iso(self.erased_at)
        return d

    def digest(self) -> str:
        return hashlib.sha256(_canonical(self.to_dict())).hexdigest()


@dataclass(frozen=True)
class RotationReport:
    old_kek_id: str
    new_kek_id: str
    kind: str
    data_keys_rewrapped: int
    system_keys_rewrapped: int
    payloads_untouched: int
    seconds: float


@dataclass(frozen=True)
class Version:
    """A point in a patient's history: one ingest that changed something of theirs."""

    load_ts: _dt.datetime
    batch_id: str
    satellites: int
    sections: tuple[str, ...]


@dataclass(frozen=True)
class VaultStats:
    format: str
    protection: str
    kek_id: str
    kek_kind: str
    patients: int
    erased: int
    satellites: int
    links: int
    hubs: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    batches: int = 0


# --------------------------------------------------------------------------- engine


def _pg_binary_type(t: sa.types.TypeEngine) -> str:
    """The PostgreSQL type whose binary wire format a column takes in COPY … (FORMAT BINARY)."""
    if isinstance(t, S.UTCDateTime):
        return "timestamptz"
    if isinstance(t, sa.LargeBinary):
        return "bytea"
    if isinstance(t, sa.Float):
        return "float8"
    if isinstance(t, sa.BigInteger):
        return "int8"
    if isinstance(t, sa.Integer):
        return "int4"
    return "text"


def _make_engine(config: VaultConfig) -> sa.Engine:
    try:
        url = sa.engine.make_url(config.database_url)
    except sa.exc.ArgumentError as exc:
        raise VaultConfigError(f"not a database URL: {config.database_url!r}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise VaultConfigError("the vault needs a SQLite file (sqlite:///path/vault.db), not an in-memory database")
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:
            # Let SQLAlchemy's "begin" event emit BEGIN, so that writers can ask for IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("vault_write") else "BEGIN")

        return engine
    if backend == "postgresql":
        if url.get_driver_name() != "psycopg":
            raise VaultConfigError("use the psycopg driver: postgresql+psycopg://user@host/db")
        connect_args: dict[str, Any] = {}
        if config.schema:
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", config.schema):
                raise VaultConfigError(f"invalid schema name {config.schema!r}")
            boot = sa.create_engine(url)
            try:
                with boot.begin() as conn:
                    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{config.schema}"')
            except sa.exc.IntegrityError:
                pass  # IF NOT EXISTS is not atomic in PostgreSQL: another process created it just now
            except sa.exc.OperationalError as exc:
                raise VaultConfigError(f"cannot reach PostgreSQL at {url.render_as_string()}: {exc.orig}") from exc
            finally:
                boot.dispose()
            connect_args["options"] = f"-csearch_path={config.schema}"
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    raise VaultConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


# --------------------------------------------------------------------------- the vault


class Vault:
    """A hospital's data vault. Thread-safe for reads and writes; open once per process."""

    def __init__(self, *, engine: sa.Engine, config: VaultConfig, record_format: RecordFormat, kek: Kek,
                 index_key: bytes, issuer: TokenIssuer, blob_store: BlobStore, ledger: GrantLedger | None,
                 clock: Callable[[], _dt.datetime], protection: str):
        self.engine = engine
        self.config = config
        self.format = record_format
        self._kek = kek
        self.hash_keys = HashKeys(index_key)
        self._index_key = index_key
        self.issuer = issuer
        self.blob_store = blob_store
        self.ledger = ledger
        self.clock = clock
        # refusals go on the ledger one by one up to 10 a minute per presenter, the rest as one summary
        self.refusals = RefusalLog(lambda r: self._require_ledger().log_refusal(r),
                                   lambda sm: self._require_ledger().log_refusal_summary(sm), clock=clock)
        self.protection = protection
        self.encrypts_payloads = protection == _PROTECTION[True]
        self.dialect = engine.dialect.name
        self._lock = threading.RLock()
        # person hk -> (data key, monotonic deadline): LRU, bounded in size and lifetime. A cached key
        # is used only after its row was found in the same read (see _patient_key): erasure — here
        # or in another process sharing the database — takes effect on the next read.
        self._keys: OrderedDict[str, tuple[DataKey, float]] = OrderedDict()
        self._ref_hubs: dict[tuple[str, str], HubRef] = {}  # (kind, hk) -> reference hub, immutable
        self._raw = _RawReads(self.dialect)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, config: VaultConfig, *, ledger: GrantLedger | None = None, clock: Callable[[], _dt.datetime] | None = None,
             blob_store: BlobStore | None = None) -> Vault:
        engine = _make_engine(config)
        try:
            return cls._open(engine, config, ledger, clock or _now, blob_store)
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def _open(cls, engine: sa.Engine, config: VaultConfig, ledger: GrantLedger | None,
              clock: Callable[[], _dt.datetime], blob_store: BlobStore | None) -> Vault:
        writer = engine.execution_options(vault_write=True)  # SQLite: BEGIN IMMEDIATE, so DDL waits its turn
        try:
            with writer.begin() as conn:
                S.metadata.create_all(conn)
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            with writer.begin() as conn:  # another process created the tables at the same time
                S.metadata.create_all(conn)
        except sa.exc.OperationalError as exc:
            raise VaultConfigError(f"cannot open the vault database: {exc.orig}") from exc
        key_dir = Path(config.key_dir)
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for attempt in (1, 2):
            try:
                with engine.execution_options(vault_write=True).begin() as conn:
                    meta = {r.key: r.value for r in conn.execute(sa.select(S.meta.c.key, S.meta.c.value))}
                    if not meta:
                        meta = cls._initialise(conn, config, clock)
                    break
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
        if meta.get("schema.version") != S.SCHEMA_VERSION:
            raise VaultConfigError(f"vault schema version {meta.get('schema.version')!r} is not supported")
        protection = meta["payload.protection"]
        if protection != _PROTECTION[config.encrypt_payloads]:
            raise VaultConfigError(f"this vault stores payloads as {protection!r}; it cannot be opened as "
                                   f"{_PROTECTION[config.encrypt_payloads]!r}")
        kek = _resolve_kek(meta, config)
        with engine.connect() as conn:
            wrapped = {r.name: r for r in conn.execute(sa.select(S.system_keys))}
        for name in ("index", "token-signing"):
            if wrapped[name].kek_id != kek.kek_id:
                raise VaultConfigError(f"the {name} key is wrapped by another KEK than the vault records "
                                       "(damaged keyring)")
        index_key = kek.unwrap(wrapped["index"].wrapped, system_key_aad("index"))
        signer = Signer.from_pem(kek.unwrap(wrapped["token-signing"].wrapped, system_key_aad("token-signing")))
        fmt = parse_format_text(meta["format.definition"], f"{meta['format.name']} (stored in the vault)")
        issuer = TokenIssuer(signer)
        if blob_store is None:
            blob_store = IpfsBlobStore(config.ipfs_api) if config.ipfs_api else FilesystemBlobStore(key_dir / "blobs")
        return cls(engine=engine, config=config, record_format=fmt, kek=kek, index_key=index_key, issuer=issuer,
                   blob_store=blob_store, ledger=ledger, clock=clock, protection=protection)

    @staticmethod
    def _initialise(conn: sa.Connection, config: VaultConfig, clock: Callable[[], _dt.datetime]) -> dict[str, str]:
        fmt = load_format(config.format)
        meta = {
            "schema.version": S.SCHEMA_VERSION,
            "created_at": utc_iso(clock()),
            "payload.protection": _PROTECTION[config.encrypt_payloads],
            "format.name": fmt.name,
            "format.definition": fmt.text,
        }
        if config.passphrase:
            salt = os.urandom(16)
            kek = Kek.from_passphrase(config.passphrase, salt, config.scrypt_n)
            meta.update({"kek.kind": "passphrase", "kek.salt": salt.hex(), "kek.scrypt_n": str(config.scrypt_n)})
        else:
            kf = KekFile(Path(config.key_dir) / "kek.key")
            kek = kf.current() or kf.create()
            meta["kek.kind"] = "file"
        meta["kek.id"] = kek.kek_id
        conn.execute(S.meta.insert(), [{"key": k, "value": v} for k, v in meta.items()])
        # The index key (hash keys) and the token-signing key live in the database, wrapped by the
        # KEK like the data keys: every server of one vault shares them, and rotation re-wraps them.
        signing_pem = Signer.generate().private_key_pem()
        conn.execute(S.system_keys.insert(), [
            {"name": "index", "kek_id": kek.kek_id, "wrapped": kek.wrap(os.urandom(32), system_key_aad("index"))},
            {"name": "token-signing", "kek_id": kek.kek_id,
             "wrapped": kek.wrap(signing_pem, system_key_aad("token-signing"))},
        ])
        log.info("created a new vault (%s, KEK %s from %s)", fmt.name, kek.kek_id, meta["kek.kind"])
        return meta

    def close(self) -> None:
        if self.ledger is not None:
            self.refusals.close()  # the pending summaries of refusals
        self.engine.dispose()
        closer = getattr(self.blob_store, "close", None)
        if closer:
            closer()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing used by the writer
    @property
    def kek(self) -> Kek:
        return self._kek

    @staticmethod
    def iso(moment: _dt.datetime) -> str:
        return utc_iso(moment)

    def db_timestamp(self, moment: _dt.datetime) -> Any:
        """A timestamp as the driver takes it on the bulk path (what UTCDateTime would bind)."""
        moment = moment.astimezone(_dt.UTC)
        if self.dialect == "sqlite":
            return moment.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DATETIME storage format
        return moment

    def bulk_insert(self, conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple],
                    *, ignore_conflicts: bool = False) -> None:
        """Insert many tuples on the driver connection of ``conn`` (same transaction).

        The bulk of an ingest goes here: SQLAlchemy's per-parameter processing would cost more
        than the encryption. PostgreSQL takes plain inserts through COPY; conflict-tolerant
        inserts (reference hubs) use executemany with ON CONFLICT DO NOTHING.
        """
        if not rows:
            return
        cols = ", ".join(columns)
        raw = conn.connection.driver_connection
        if self.dialect == "postgresql":
            with raw.cursor() as cur:
                if ignore_conflicts:
                    marks = ", ".join(["%s"] * len(columns))
                    cur.executemany(f"INSERT INTO {table.name} ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows)
                else:
                    # Binary COPY: no hex-escaping of ciphertexts, no text parsing on the server.
                    with cur.copy(f"COPY {table.name} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types([_pg_binary_type(table.c[c].type) for c in columns])
                        for r in rows:
                            copy.write_row(r)
            return
        marks = ", ".join(["?"] * len(columns))
        tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
        cur = raw.cursor()
        try:
            cur.executemany(f"INSERT INTO {table.name} ({cols}) VALUES ({marks}){tail}", rows)
        finally:
            cur.close()

    def remember_key(self, person_hk: str, dek: DataKey) -> None:
        with self._lock:
            self._keys[person_hk] = (dek, time.monotonic() + DEK_CACHE_SECONDS)
            self._keys.move_to_end(person_hk)
            while len(self._keys) > _DEK_CACHE:
                self._keys.popitem(last=False)

    def _forget_key(self, person_hk: str) -> None:
        with self._lock:
            self._keys.pop(person_hk, None)

    def unwrap_data_key(self, dek_id: str, person_hk: str, wrapped: bytes, kek_id: str) -> DataKey:
        if kek_id != self._kek.kek_id:
            self._refresh_kek()
            if kek_id != self._kek.kek_id:
                raise IntegrityError(f"data key {dek_id} is wrapped by unknown KEK {kek_id}")
        return DataKey(dek_id, self._kek.unwrap(wrapped, dek_aad(dek_id, person_hk)))

    def _meta(self, conn: sa.Connection) -> dict[str, str]:
        return {r.key: r.value for r in conn.execute(sa.select(S.meta.c.key, S.meta.c.value))}

    def _refresh_kek(self) -> None:
        """Another process rotated the KEK: pick up the new one (file mode) or say what to do."""
        with self.engine.connect() as conn:
            meta = self._meta(conn)
        if meta["kek.id"] != self._kek.kek_id:
            self._kek = _resolve_kek(meta, self.config)
            log.info("KEK changed under this process; now using %s", self._kek.kek_id)

    @contextmanager
    def _write(self, *, exclusive: bool = False) -> Iterator[sa.Connection]:
        """A write transaction, serialised against KEK rotation (see module docstring)."""
        with self.engine.execution_options(vault_write=True).begin() as conn:
            q = sa.select(S.meta.c.value).where(S.meta.c.key == "kek.id")
            if self.dialect == "postgresql":
                q = q.with_for_update(read=not exclusive)
            current = conn.execute(q).scalar_one()
            if current != self._kek.kek_id:
                self._kek = _resolve_kek(self._meta(conn), self.config)
            yield conn

    # ------------------------------------------------------------------ sections and patients
    @property
    def sections(self) -> list[str]:
        return list(self.format.sections)

    def _sections(self, sections: Iterable[str] | None) -> list[str]:
        if sections is None:
            return list(self.format.sections)
        chosen = sorted(set(sections))
        unknown = [s for s in chosen if s not in self.format.sections]
        if unknown:
            raise UnknownSection(f"unknown section(s) {', '.join(unknown)}; this vault's sections: "
                                 f"{', '.join(self.format.sections)}")
        return chosen

    def patient_ref(self, national_id: str) -> str:
        """The patient reference for a national identifier (CHI), without checking it exists."""
        return self.hash_keys("person", str(national_id).strip())

    def find_patient(self, national_id: str) -> str:
        ref = self.patient_ref(national_id)
        with self.engine.connect() as conn:
            if conn.execute(sa.select(S.hub_person.c.hk).where(S.hub_person.c.hk == ref)).first() is None:
                raise PatientNotFound("no patient with that identifier in this vault")
        return ref

    def patients(self) -> list[str]:
        """All patient references (pseudonymous), sorted."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(S.data_keys.c.person_hk).order_by(S.data_keys.c.person_hk)).scalars())

    def _patient_key(self, conn: sa.Connection, patient: str) -> DataKey:
        """The patient's data key, read from its row on ``conn`` on every call.

        The unwrapped key may come from the cache, but only when the row still holds that very key
        (same key id) and the cached copy is younger than DEK_CACHE_SECONDS: a key destroyed by an
        erasure — in this process or another one — is never used again, cached or not.
        """
        if not isinstance(patient, str) or not _REF_RE.match(patient):
            raise PatientNotFound("not a patient reference (32 hex characters)")
        raw = self._raw
        row = raw.one(conn, raw.data_key, (patient,))
        if row is None:
            self._forget_key(patient)
            if raw.one(conn, raw.person_exists, (patient,)) is not None:
                raise PatientErased("this patient's data key is gone: their record was erased")
            raise PatientNotFound(f"no patient {patient} in this vault")
        dek_id, wrapped, kek_id = row
        with self._lock:
            cached = self._keys.get(patient)
            if cached is not None:
                if cached[0].dek_id == dek_id and time.monotonic() < cached[1]:
                    self._keys.move_to_end(patient)
                    return cached[0]
                del self._keys[patient]
        dek = self.unwrap_data_key(dek_id, patient, bytes(wrapped), kek_id)
        self.remember_key(patient, dek)
        return dek

    # ------------------------------------------------------------------ ingest
    def ingest_file(self, path: str | Path, *, table: str | None = None, record_format: RecordFormat | None = None,
                    chunk_size: int = DEFAULT_CHUNK, progress: Callable[[int], None] | None = None) -> IngestReport:
        """Ingest a CSV, XLSX or JSON file (one transaction for all the tables it holds)."""
        fmt = self._ingest_format(record_format)
        inputs = read_source(path, fmt, table)
        try:
            return self._ingest(inputs, fmt, str(Path(path).name), chunk_size, progress)
        finally:
            close_inputs(inputs)

    def ingest_rows(self, table: str, rows: Iterable[Mapping[str, Any]], *, source: str = "rows",
                    record_format: RecordFormat | None = None, chunk_size: int = DEFAULT_CHUNK,
                    progress: Callable[[int], None] | None = None) -> IngestReport:
        """Ingest rows given in memory (dicts of column -> raw value)."""
        fmt = self._ingest_format(record_format)
        fmt.table(table)
        return self._ingest([rows_input(table, rows, source)], fmt, source, chunk_size, progress)

    def ingest(self, table_name: str, rows: Iterable[Mapping[str, Any]]) -> IngestReport:
        """``fabrication``'s VaultSink protocol: one table of fabricated rows, one transaction."""
        return self.ingest_rows(table_name, rows, source=f"fabrication:{table_name}")

    def ingest_tables(self, tables: Mapping[str, Iterable[Mapping[str, Any]]], *, source: str = "rows",
                      record_format: RecordFormat | None = None, chunk_size: int = DEFAULT_CHUNK,
                      progress: Callable[[int], None] | None = None) -> IngestReport:
        """Ingest several tables in one transaction (all or nothing)."""
        fmt = self._ingest_format(record_format)
        for t in tables:
            fmt.table(t)
        inputs = [rows_input(t, rows, f"{source}:{t}") for t, rows in tables.items()]
        return self._ingest(inputs, fmt, source, chunk_size, progress)

    def _ingest_format(self, record_format: RecordFormat | None) -> RecordFormat:
        if record_format is None or record_format is self.format or (
                record_format.text and record_format.text == self.format.text):
            return self.format
        if record_format.name != self.format.name:
            raise FormatError(record_format.source or record_format.name, [
                f"this vault holds records in format {self.format.name!r}; a vault keeps one format "
                f"(its sections are what grants speak of), so ingest with --format {self.format.name}"
            ])
        problems = _compatibility(self.format, record_format)
        if not record_format.text:
            problems.append("a new version of the vault's format must be loaded from its YAML text")
        if problems:
            raise FormatError(record_format.source or record_format.name, problems)
        return record_format

    def _ingest(self, inputs: list[TableInput], fmt: RecordFormat, source: str, chunk_size: int,
                progress: Callable[[int], None] | None) -> IngestReport:
        started = time.perf_counter()
        problems: list[RowProblem] = []
        for ti in inputs:
            bad_header = fmt.table(ti.table).converter().check_header(ti.header)
            if bad_header:
                problems.append(RowProblem(ti.table, 0, f"{ti.source} header", "; ".join(bad_header)))
        if problems:
            raise IngestRejected(problems, 0)
        load_ts = self.clock()
        batch_id = uuid.uuid4().hex
        with self._write() as conn, self.engine.connect() as reader:
            writer = BatchWriter(self, conn, fmt, batch_id, load_ts, reader=reader)
            try:
                self._feed(writer, inputs, fmt, chunk_size, progress, problems)
            finally:
                writer.close()
            rows_total = writer.rows_read
            per_table = writer.rows_per_table
            if problems:
                raise IngestRejected(problems, rows_total)  # rolls the transaction back
            if fmt is not self.format:
                self._store_format(conn, fmt)
            conn.execute(S.batches.insert(), {
                "batch_id": batch_id, "load_ts": load_ts, "format": fmt.name, "tables": ",".join(per_table),
                "source": source[:500], "rows": rows_total, "satellites": writer.satellites_written,
                "links": writer.links_written, "hubs": writer.hubs_written,
            })
        if fmt is not self.format:
            self.format = fmt
        report = IngestReport(
            batch_id=batch_id, load_ts=load_ts, format=fmt.name, tables=per_table, rows=rows_total,
            satellites_written=writer.satellites_written, satellites_unchanged=writer.satellites_unchanged,
            links_written=writer.links_written, hubs_written=writer.hubs_written, patients_new=writer.patients_new,
            seconds=time.perf_counter() - started,
        )
        log.info("ingested %d rows from %s: %d satellites (%d unchanged), %d links, %d new patients",
                 report.rows, source, report.satellites_written, report.satellites_unchanged,
                 report.links_written, report.patients_new)
        return report

    @staticmethod
    def _feed(writer: BatchWriter, inputs: list[TableInput], fmt: RecordFormat, chunk_size: int,
              progress: Callable[[int], None] | None, problems: list[RowProblem]) -> None:
        """Convert rows chunk by chunk and hand them to the writer; after the first bad row keep
        converting (to report every bad row) but write nothing more."""
        for ti in inputs:
            spec = fmt.table(ti.table)
            convert = spec.converter().convert
            chunk: list[dict[str, Any]] = []
            n = 0
            for where, raw in ti.rows:
                n += 1
                writer.rows_read += 1
                try:
                    if "__error__" in raw:
                        raise RowError(raw["__error__"])
                    row = convert(raw)
                except RowError as exc:
                    problems.append(RowProblem(ti.table, n, where, str(exc)))
                    continue
                if problems:
                    continue
                chunk.append(row)
                if len(chunk) >= chunk_size:
                    writer.write(spec, chunk)
                    chunk = []
                    if progress:
                        progress(writer.rows_read)
            if chunk and not problems:
                writer.write(spec, chunk)
                if progress:
                    progress(writer.rows_read)
            writer.rows_per_table[ti.table] = writer.rows_per_table.get(ti.table, 0) + n

    def _store_format(self, conn: sa.Connection, fmt: RecordFormat) -> None:
        conn.execute(S.meta.update().where(S.meta.c.key == "format.definition").values(value=fmt.text))

    # ------------------------------------------------------------------ reading
    def read_record(self, patient: str, *, sections: Iterable[str] | None = None,
                    as_of: _dt.datetime | None = None) -> PatientRecord:
        """Assemble a patient's record from the vault: the given sections (all by default),
        current or as it was at ``as_of``. Other sections are marked withheld."""
        chosen = self._sections(sections)
        if as_of is not None and as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        with self.engine.connect() as conn, conn.begin():  # one transaction: one snapshot on SQLite
            dek = self._patient_key(conn, patient)
            return self._assemble(conn, patient, dek, chosen, as_of)

    def _assemble(self, conn: sa.Connection, patient: str, dek: DataKey, chosen: list[str],
                  as_of: _dt.datetime | None) -> PatientRecord:
        """Read the chosen sections of one patient: one query each for satellites, links, events and
        blobs (reference hubs mostly from the in-process cache), on the driver connection."""
        withheld = {s: WITHHELD_NOT_GRANTED for s in self.format.sections if s not in chosen}
        out = {s: SectionData(s) for s in chosen}
        if not chosen:
            return PatientRecord(patient, self.format.name, as_of, self.clock(), out, withheld)
        raw = self._raw
        bound_as_of = None if as_of is None else self.db_timestamp(as_of)
        latest: dict[tuple[str, str], tuple] = {}
        # hub_kind, hub_hk, satellite, section, load_ts, record_source, hash_diff, sealed
        for r in raw.rows(conn, raw.satellites, dek.dek_id, chosen, bound_as_of):
            latest[(r[1], r[2])] = r
        effective: dict[tuple[str, str], tuple] = {}
        # name, section, from_kind, from_hk, to_kind, to_hk, load_ts
        for r in raw.rows(conn, raw.links, patient, chosen, bound_as_of):
            drive = r[5] if driving_key_is_target(r[2], r[4]) else r[3]
            effective[(drive, r[0])] = r
        links = [r for r in effective.values() if r[5] is not None]
        hubs = _HubResolver(self, conn, patient, dek, chosen)
        want = hubs.want
        for r in links:
            want(r[2], r[3])
            want(r[4], r[5])
        for r in latest.values():
            want(r[0], r[1])
        hubs.resolve()
        ts = raw.timestamps()
        ref = hubs.ref
        dek_id, encrypted, loads = dek.dek_id, self.encrypts_payloads, json.loads
        for hub_kind, hub_hk, satellite, section, load_ts, source, hash_diff, sealed in latest.values():
            loaded_at, load_iso = ts(load_ts)
            if encrypted:
                data = dek.open(sealed, sat_aad(satellite, hub_kind, hub_hk, section, dek_id, load_iso, source,
                                                hash_diff))
            else:
                data = sealed
            out[section].entries.append(Entry(satellite, ref(hub_kind, hub_hk, section), loads(data), loaded_at,
                                              source))
        for name, section, from_kind, from_hk, to_kind, to_hk, load_ts in links:
            out[section].links.append(LinkEntry(name, ref(from_kind, from_hk, section), ref(to_kind, to_hk, section),
                                                ts(load_ts)[0]))
        for blob in self._blob_refs(conn, patient, dek, chosen, as_of):
            out[blob.section].blobs.append(blob)
        for data in out.values():
            data.entries.sort(key=lambda e: (e.satellite, e.hub.key or "", e.hub.id))
            data.links.sort(key=lambda link: (link.name, link.from_hub.id, link.to_hub.id))
            data.blobs.sort(key=lambda b: (b.loaded_at, b.blob_id))
        return PatientRecord(patient, self.format.name, as_of, self.clock(), out, withheld)

    def history(self, patient: str) -> list[Version]:
        """The ingests that changed this patient's record: the points worth reading "as of"."""
        with self.engine.connect() as conn:
            dek = self._patient_key(conn, patient)
            sat = S.satellites.c
            rows = conn.execute(
                sa.select(sat.load_ts, sat.batch_id, sat.section, sa.func.count())
                .where(sat.dek_id == dek.dek_id).group_by(sat.load_ts, sat.batch_id, sat.section)
                .order_by(sat.load_ts)
            ).all()
        versions: dict[tuple[_dt.datetime, str], list] = {}
        for load_ts, batch_id, section, n in rows:
            v = versions.setdefault((load_ts, batch_id), [0, set()])
            v[0] += n
            v[1].add(section)
        return [Version(ts, b, n, tuple(sorted(secs))) for (ts, b), (n, secs) in versions.items()]

    def export_fhir(self, patient: str, *, sections: Iterable[str] | None = None,
                    as_of: _dt.datetime | None = None) -> dict[str, Any]:
        """The record as a FHIR R5 Bundle (validated), limited to the same sections as a read."""
        from .fhir import record_to_bundle

        return record_to_bundle(self.read_record(patient, sections=sections, as_of=as_of), self.format)

    # ------------------------------------------------------------------ tokens (steps 7 and 9)
    def _require_ledger(self) -> GrantLedger:
        if self.ledger is None:
            raise LedgerUnavailable("this vault was opened without a grant ledger; tokens need the chain")
        return self.ledger

    def _get_grant(self, grant_id: str) -> Grant | None:
        ledger = self._require_ledger()
        try:
            return ledger.get_grant(grant_id)
        except VaultError:
            raise
        except Exception as exc:  # noqa: BLE001 - any ledger failure means: release nothing
            raise LedgerUnavailable(f"cannot read grant {grant_id} from the ledger: {exc}") from exc

    def mint_token(self, grant_id: str, *, ttl: _dt.timedelta | None = None) -> MintedToken:
        """Step 7: mint a token for a live grant and bind its hash on chain.

        The grant's scope comes from the chain, not from the caller: the vault only restates it.
        """
        ledger = self._require_ledger()
        grant = self._get_grant(grant_id)
        now = self.clock()
        if grant is None:
            raise GrantNotFound(f"the ledger has no grant {grant_id}")
        if grant.status == GRANT_REVOKED:
            raise GrantRevoked(f"grant {grant_id} was revoked")
        if not grant.is_live(now):
            raise GrantExpired(f"grant {grant_id} is not live (status {grant.status}, expires "
                               f"{utc_iso(grant.expires_at)})")
        sections = tuple(sorted(s for s in grant.sections if s in self.format.sections))
        if not sections:
            raise TokenGrantMismatch(f"grant {grant_id} names no section this vault holds")
        with self.engine.connect() as conn:
            self._patient_key(conn, grant.patient)
        ttl = ttl or _dt.timedelta(seconds=self.config.token_ttl_seconds)
        minted = self.issuer.mint(grant_id=grant.grant_id, requester_id=grant.requester_id, patient=grant.patient,
                                  sections=sections, purpose=grant.purpose, issued_at=now,
                                  expires_at=min(grant.expires_at, now + ttl))
        try:
            ledger.bind_token(grant_id, minted.token_hash)
        except VaultError:
            raise
        except LedgerRefusal as refusal:  # the chain said no: a conflict to explain, not an outage
            if refusal.reason == "grant-token-limit":
                raise GrantTokenLimit(f"grant {grant_id}: {refusal.detail}") from None
            raise GrantExpired(f"grant {grant_id} is not live on the chain: {refusal.detail}") from None
        except Exception as exc:  # noqa: BLE001
            raise LedgerUnavailable(f"cannot bind the token on the ledger: {exc}") from exc
        return minted

    def check_token(self, token: str, presenter_id: str) -> tuple[TokenClaims, Grant]:
        """Step 9's checks, in order: form and signature, expiry, presenter, live grant, binding,
        scope. Each refusal is logged on the ledger and raised as a TokenError with its slug."""
        th = token_hash(token) if isinstance(token, str) else ""
        claims: TokenClaims | None = None
        try:
            claims = self.issuer.verify(token)
            now = self.clock()
            if now >= claims.expires_at:
                raise TokenExpired(f"token expired at {utc_iso(claims.expires_at)}")
            if presenter_id != claims.requester_id:
                raise TokenPresenterMismatch("this token was issued to another user")
            grant = self._get_grant(claims.grant_id)
            if grant is None:
                raise GrantNotFound(f"the ledger has no grant {claims.grant_id}")
            if grant.status == GRANT_REVOKED:
                raise GrantRevoked(f"grant {claims.grant_id} was revoked")
            if not grant.is_live(now):
                raise GrantExpired(f"grant {claims.grant_id} is no longer live (status {grant.status})")
            if th not in grant.token_hashes:
                raise TokenNotBound("the ledger has not bound this token to its grant")
            if (grant.patient != claims.patient or grant.requester_id != claims.requester_id
                    or not set(claims.sections) <= set(grant.sections)):
                raise TokenGrantMismatch("the token's claims do not match its grant on the ledger")
            return claims, grant
        except TokenError as exc:
            peeked = claims or (TokenIssuer.peek(token) if isinstance(token, str) else None)
            self._log_refusal(exc, th, presenter_id, peeked)
            raise

    def _log_refusal(self, exc: TokenError, th: str, presenter_id: str, claims: TokenClaims | None) -> None:
        refusal = Refusal(reason=exc.type, detail=exc.message, presenter_id=str(presenter_id), token_hash=th,
                          grant_id=claims.grant_id if claims else None, at=self.clock())
        try:
            self.refusals.record(refusal)
        except Exception:  # noqa: BLE001 - the refusal stands even if it cannot be logged
            log.exception("could not log a token refusal (%s) on the ledger", exc.type)

    def _log_access(self, grant_id: str, th: str, sections: Sequence[str], digest: str) -> None:
        try:
            self._require_ledger().log_access(grant_id, th, list(sections), digest)
        except VaultError:
            raise
        except Exception as exc:  # noqa: BLE001 - no access log, no release
            raise LedgerUnavailable(f"cannot log the access on the ledger; nothing released: {exc}") from exc

    def redeem(self, token: str, presenter_id: str, *, as_of: _dt.datetime | None = None,
               fhir: bool = False) -> Release:
        """Step 9–10: check the token, release only its granted sections (the rest withheld),
        log the access with the digest of what is returned, then return it.

        With a ledger that releases atomically (the chain's ReleaseAccess), the liveness of the
        grant, the binding of the token and the scope are checked by the chain in the same
        transaction that records the access: the token's own checks (signature, expiry, presenter)
        run here, the record is read and digested, and it leaves only if the chain accepted."""
        ledger = self._require_ledger()
        if isinstance(ledger, AtomicGrantLedger):
            return self._redeem_atomic(ledger, token, presenter_id, as_of=as_of, fhir=fhir)
        claims, grant = self.check_token(token, presenter_id)
        sections = sorted(set(claims.sections) & set(grant.sections) & set(self.format.sections))
        record, bundle, document, digest = self._release_body(claims.patient, sections, as_of, fhir)
        th = token_hash(token)
        self._log_access(grant.grant_id, th, sections, digest)
        return Release(grant_id=grant.grant_id, token_hash=th, presenter_id=presenter_id, patient=claims.patient,
                       sections=tuple(sections), record=record, fhir=bundle, digest=digest,
                       document=document)

    def _release_body(self, patient: str, sections: list[str], as_of: _dt.datetime | None, fhir: bool):
        record = self.read_record(patient, sections=sections, as_of=as_of)
        bundle = None
        if fhir:
            from .fhir import record_to_bundle

            bundle = record_to_bundle(record, self.format)
        document = bundle if bundle is not None else record.to_dict()
        return record, bundle, document, hashlib.sha256(_canonical(document)).hexdigest()

    def _redeem_atomic(self, ledger: AtomicGrantLedger, token: str, presenter_id: str, *,
                       as_of: _dt.datetime | None, fhir: bool) -> Release:
        th = token_hash(token) if isinstance(token, str) else ""
        claims: TokenClaims | None = None
        try:
            claims = self.issuer.verify(token)
            if self.clock() >= claims.expires_at:
                raise TokenExpired(f"token expired at {utc_iso(claims.expires_at)}")
            if presenter_id != claims.requester_id:
                raise TokenPresenterMismatch("this token was issued to another user")
        except TokenError as exc:
            self._log_refusal(exc, th, presenter_id, claims or (TokenIssuer.peek(token)
                                                                 if isinstance(token, str) else None))
            raise
        sections = sorted(set(claims.sections) & set(self.format.sections))
        record, bundle, document, digest = self._release_body(claims.patient, sections, as_of, fhir)
        try:
            ledger.release(claims.grant_id, th, sections, digest)
        except LedgerRefusal as refusal:
            exc = _REFUSAL_ERRORS.get(refusal.reason, GrantExpired)(refusal.detail)
            self._log_refusal(exc, th, presenter_id, claims)
            raise exc from None
        except VaultError:
            raise
        except Exception as e:  # noqa: BLE001 - no access log, no release
            raise LedgerUnavailable(f"cannot log the access on the ledger; nothing released: {e}") from e
        return Release(grant_id=claims.grant_id, token_hash=th, presenter_id=presenter_id, patient=claims.patient,
                       sections=tuple(sections), record=record, fhir=bundle, digest=digest,
                       document=document)

    # ------------------------------------------------------------------ blobs
    def put_blob(self, patient: str, data: bytes, *, section: str, media_type: str = "application/octet-stream",
                 name: str = "") -> BlobRef:
        """Store a blob for a patient: sealed under their data key, then content-addressed in the
        blob store, its digest anchored on chain in the same transaction as its metadata row."""
        self._sections([section])
        ledger = self._require_ledger()
        blob_id = uuid.uuid4().hex
        now = self.clock()
        with self._write() as conn:
            dek = self._patient_key(conn, patient)
            sealed = dek.seal(data, blob_aad(blob_id, dek.dek_id, section, "data"))
            address = self.blob_store.put(sealed)
            sha = hashlib.sha256(sealed).hexdigest()
            meta = _canonical({"media_type": media_type, "name": name, "size": len(data)})
            conn.execute(S.blobs.insert(), {
                "blob_id": blob_id, "dek_id": dek.dek_id, "section": section, "store": self.blob_store.name,
                "address": address, "sha256": sha, "size": len(sealed), "load_ts": now,
                "meta_sealed": dek.seal(meta, blob_aad(blob_id, dek.dek_id, section, "meta")),
            })
            anchor = BlobAnchor(blob_id=blob_id, patient=patient, section=section, sha256=sha,
                                store=self.blob_store.name, address=address, size=len(sealed), at=now)
            try:
                ledger.anchor_blob(anchor)
            except VaultError:
                raise
            except Exception as exc:  # noqa: BLE001 - unanchored blobs are not kept
                raise LedgerUnavailable(f"cannot anchor the blob's digest on the ledger: {exc}") from exc
        return BlobRef(blob_id, patient, section, media_type, name, len(data), sha, self.blob_store.name, address, now)

    def _blob_refs(self, conn: sa.Connection, patient: str, dek: DataKey, sections: list[str],
                   as_of: _dt.datetime | None, blob_id: str | None = None) -> list[BlobRef]:
        raw = self._raw
        ts = raw.timestamps()
        bound_as_of = None if as_of is None else self.db_timestamp(as_of)
        out = []
        # blob_id, section, store, address, sha256, load_ts, meta_sealed
        for bid, section, store, address, sha, load_ts, meta_sealed in raw.rows(
                conn, raw.blobs, dek.dek_id, sections, bound_as_of, blob_id):
            meta = json.loads(dek.open(bytes(meta_sealed), blob_aad(bid, dek.dek_id, section, "meta")))
            out.append(BlobRef(bid, patient, section, meta["media_type"], meta["name"], meta["size"],
                               sha, store, address, ts(load_ts)[0]))
        return out

    def blob_info(self, patient: str, blob_id: str) -> BlobRef:
        with self.engine.connect() as conn:
            dek = self._patient_key(conn, patient)
            refs = self._blob_refs(conn, patient, dek, list(self.format.sections), None, blob_id)
        if not refs:
            raise BlobNotFound(f"patient has no blob {blob_id}")
        return refs[0]

    def get_blob(self, patient: str, blob_id: str) -> tuple[BlobRef, bytes]:
        """Operator read of a blob (no token): fetch, check its digest, decrypt."""
        ref = self.blob_info(patient, blob_id)
        return ref, self._fetch_blob(ref)

    def _fetch_blob(self, ref: BlobRef) -> bytes:
        with self.engine.connect() as conn:
            dek = self._patient_key(conn, ref.patient)
        blob_id = ref.blob_id
        sealed = self.blob_store.get(ref.address)
        if hashlib.sha256(sealed).hexdigest() != ref.sha256:
            raise IntegrityError(f"blob {blob_id} from the {ref.store} store does not match its anchored digest")
        return dek.open(sealed, blob_aad(blob_id, dek.dek_id, ref.section, "data"))

    def redeem_blob(self, token: str, presenter_id: str, blob_id: str) -> BlobRelease:
        """Release one blob against a token whose sections include the blob's section."""
        claims, grant = self.check_token(token, presenter_id)
        ref = self.blob_info(claims.patient, blob_id)
        if ref.section not in claims.sections or ref.section not in grant.sections:
            exc = SectionNotGranted(f"blob {blob_id} is in section {ref.section}, which this token does not release")
            self._log_refusal(exc, token_hash(token), presenter_id, claims)
            raise exc
        data = self._fetch_blob(ref)
        digest = hashlib.sha256(data).hexdigest()
        th = token_hash(token)
        self._log_access(grant.grant_id, th, [ref.section], digest)
        return BlobRelease(grant.grant_id, th, ref, data, digest)

    # ------------------------------------------------------------------ erasure
    def erase_patient(self, patient: str, *, reason: str) -> ErasureReport:
        """Cryptographic erasure: destroy the patient's data key, remove their pseudonymous
        structure (person and event hubs, links), keep the ciphertext as evidence, and prove
        that none of it decrypts any more."""
        if not reason.strip():
            raise ValueError("an erasure needs a reason (e.g. the request reference)")
        now = self.clock()
        with self._write() as conn:
            row = conn.execute(sa.select(S.data_keys).where(S.data_keys.c.person_hk == patient)).first()
            if row is None:
                raise PatientNotFound(f"no patient {patient} in this vault (already erased?)")
            dek = self.unwrap_data_key(row.dek_id, patient, row.wrapped, row.kek_id)
            n_sats = conn.execute(sa.select(sa.func.count()).select_from(S.satellites)
                                  .where(S.satellites.c.dek_id == dek.dek_id)).scalar_one()
            n_blobs = conn.execute(sa.select(sa.func.count()).select_from(S.blobs)
                                   .where(S.blobs.c.dek_id == dek.dek_id)).scalar_one()
            conn.execute(S.data_keys.delete().where(S.data_keys.c.dek_id == dek.dek_id))
            links_removed = conn.execute(S.links.delete().where(S.links.c.patient_hk == patient)).rowcount
            hubs_removed = conn.execute(S.hub_event.delete().where(S.hub_event.c.patient_hk == patient)).rowcount
            hubs_removed += conn.execute(S.hub_person.delete().where(S.hub_person.c.hk == patient)).rowcount
            conn.execute(S.erasures.insert(), {"dek_id": dek.dek_id, "fingerprint": dek.fingerprint, "erased_at": now,
                                               "reason": reason, "satellites": n_sats, "blobs": n_blobs})
        self._forget_key(patient)
        fp = dek.fingerprint
        del dek  # the last in-process reference to the key
        report = self.verify_erasure(patient, row.dek_id, fp, now, reason, links_removed, hubs_removed)
        with self._write() as conn:
            conn.execute(S.erasures.update().where(S.erasures.c.dek_id == row.dek_id)
                         .values(report_digest=report.digest()))
        log.info("erased patient %s: key %s destroyed, %d satellites and %d blobs no longer decrypt",
                 patient, row.dek_id, report.satellites, report.blobs)
        return report

    def verify_erasure(self, patient: str, dek_id: str, key_fingerprint: str, erased_at: _dt.datetime,
                       reason: str = "", links_removed: int = 0, hubs_removed: int = 0,
                       max_trial_keys: int = 64) -> ErasureReport:
        """Check that rows sealed under a destroyed key do not decrypt with any key the vault holds."""
        held: list[DataKey] = []
        same_fp = False
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(S.data_keys)):
                k = self.unwrap_data_key(r.dek_id, r.person_hk, r.wrapped, r.kek_id)
                if fingerprint(k.key) == key_fingerprint or r.dek_id == dek_id:
                    same_fp = True
                held.append(k)
            trial = held if len(held) <= max_trial_keys else random.sample(held, max_trial_keys)
            sat_rows = conn.execute(sa.select(S.satellites).where(S.satellites.c.dek_id == dek_id)).all()
            blob_rows = conn.execute(sa.select(S.blobs).where(S.blobs.c.dek_id == dek_id)).all()
        sats_open = 0
        for r in sat_rows:
            aad = sat_aad(r.satellite, r.hub_kind, r.hub_hk, r.section, dek_id, utc_iso(r.load_ts), r.record_source,
                          r.hash_diff)
            if not self.encrypts_payloads or any(try_open(k.key, r.sealed, aad) for k in trial):
                sats_open += 1
        blobs_open = 0
        for r in blob_rows:
            aad = blob_aad(r.blob_id, dek_id, r.section, "meta")
            if any(try_open(k.key, r.meta_sealed, aad) for k in trial):
                blobs_open += 1
        return ErasureReport(
            patient=patient, dek_id=dek_id, key_fingerprint=key_fingerprint, erased_at=erased_at, reason=reason,
            satellites=len(sat_rows), blobs=len(blob_rows), links_removed=links_removed, hubs_removed=hubs_removed,
            keys_checked=len(held), key_absent=not same_fp, trial_keys=len(trial), satellites_decrypted=sats_open,
            blobs_decrypted=blobs_open, verified=not same_fp and sats_open == 0 and blobs_open == 0,
        )

    # ------------------------------------------------------------------ KEK rotation
    def rotate_kek(self, *, new_passphrase: str | None = None) -> RotationReport:
        """Re-wrap every data key and the index key under a new KEK; no payload is re-encrypted.

        Without ``new_passphrase`` the new KEK is a fresh random key file; with one, it is derived
        from it. The old key file is replaced only after the database committed (crash-safe).
        """
        started = time.perf_counter()
        kf = KekFile(Path(self.config.key_dir) / "kek.key")
        salt = os.urandom(16)
        if new_passphrase:
            new = Kek.from_passphrase(new_passphrase, salt, self.config.scrypt_n)
        else:
            new = Kek.generate()
            kf.stage(new)
        try:
            with self._write(exclusive=True) as conn:
                old = self._kek
                meta = self._meta(conn)
                n_keys = 0
                rows = conn.execute(sa.select(S.data_keys.c.dek_id, S.data_keys.c.person_hk, S.data_keys.c.wrapped,
                                              S.data_keys.c.kek_id)).all()
                updates = []
                for r in rows:
                    aad = dek_aad(r.dek_id, r.person_hk)
                    secret = old.unwrap(r.wrapped, aad)
                    updates.append({"k": r.dek_id, "w": new.wrap(secret, aad)})
                    n_keys += 1
                if updates:
                    conn.execute(S.data_keys.update().where(S.data_keys.c.dek_id == sa.bindparam("k"))
                                 .values(wrapped=sa.bindparam("w"), kek_id=new.kek_id), updates)
                n_sys = 0
                for r in conn.execute(sa.select(S.system_keys)).all():
                    secret = old.unwrap(r.wrapped, system_key_aad(r.name))
                    conn.execute(S.system_keys.update().where(S.system_keys.c.name == r.name)
                                 .values(wrapped=new.wrap(secret, system_key_aad(r.name)), kek_id=new.kek_id))
                    n_sys += 1
                new_meta = {"kek.id": new.kek_id, "kek.kind": new.kind}
                if new.kind == "passphrase":
                    new_meta.update({"kek.salt": salt.hex(), "kek.scrypt_n": str(self.config.scrypt_n)})
                for k, v in new_meta.items():
                    if k in meta:
                        conn.execute(S.meta.update().where(S.meta.c.key == k).values(value=v))
                    else:
                        conn.execute(S.meta.insert(), {"key": k, "value": v})
                payloads = conn.execute(sa.select(sa.func.count()).select_from(S.satellites)).scalar_one()
        except BaseException:
            kf.discard_staged()
            raise
        if new.kind == "file":
            kf.promote()
        else:
            kf.path.unlink(missing_ok=True)  # the old file KEK must not outlive the rotation
            kf.discard_staged()
        self._kek = new
        if new_passphrase:
            self.config = dataclasses.replace(self.config, passphrase=new_passphrase)
        log.info("rotated the KEK %s -> %s: %d data keys re-wrapped", old.kek_id, new.kek_id, n_keys)
        return RotationReport(old.kek_id, new.kek_id, new.kind, n_keys, n_sys, payloads, time.perf_counter() - started)

    # ------------------------------------------------------------------ status
    def stats(self) -> VaultStats:
        with self.engine.connect() as conn:
            def count(t: sa.Table) -> int:
                return conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()

            meta = self._meta(conn)
            return VaultStats(
                format=self.format.name, protection=self.protection, kek_id=self._kek.kek_id,
                kek_kind=meta.get("kek.kind", ""), patients=count(S.data_keys), erased=count(S.erasures),
                satellites=count(S.satellites), links=count(S.links),
                hubs={k: count(t) for k, t in S.HUB_TABLES.items()}, blobs=count(S.blobs), batches=count(S.batches),
            )


class _HubResolver:
    """Turns hash keys into HubRefs for one read, with one query per hub table."""

    def __init__(self, vault: Vault, conn: sa.Connection, patient: str, dek: DataKey, released: list[str]):
        self.vault = vault
        self.conn = conn
        self.patient = patient
        self.dek = dek
        self.person_section = vault.format.person_section()
        self.released = set(released)
        self.wanted: dict[str, set[str]] = {k: set() for k in S.HUB_TABLES}
        self.refs: dict[tuple[str, str], HubRef] = {}  # reference hubs of this read
        self.event_keys: dict[str, tuple[str, str]] = {}
        self.person_key: str | None = None

    def want(self, kind: str, hk: str) -> None:
        self.wanted[kind].add(hk)

    def resolve(self) -> None:
        dek, conn, raw = self.dek, self.conn, self.vault._raw
        if self.wanted["person"] and self.person_section in self.released:
            r = raw.one(conn, raw.person, (self.patient,))
            if r is not None:
                self.person_key = dek.open(bytes(r[0]), bk_aad("person", self.patient, dek.dek_id)).decode()
        if self.wanted["event"]:
            wanted = self.wanted["event"]
            for hk, etype, dek_id, sealed in raw.rows(conn, raw.events, self.patient):
                if hk in wanted:
                    self.event_keys[hk] = (etype, dek.open(bytes(sealed), bk_aad("event", hk, dek_id)).decode())
        cache, refs = self.vault._ref_hubs, self.refs
        for kind in ("object", "location", "time"):
            missing = []
            for hk in self.wanted[kind]:
                got = cache.get((kind, hk))
                if got is None:
                    missing.append(hk)
                else:
                    refs[(kind, hk)] = got
            if not missing:
                continue
            missing.sort()
            ts = raw.timestamps()
            for i in range(0, len(missing), 500):
                for r in raw.rows(conn, raw.ref_hubs[kind], None, missing[i:i + 500]):
                    if kind == "object":
                        ref = HubRef("object", r[0], type=r[1], key=r[2], system=r[3])
                    elif kind == "location":
                        ref = HubRef("location", r[0], key=r[1], name=r[2], latitude=r[3], longitude=r[4],
                                     altitude=r[5])
                    else:
                        instant = ts(r[1])[1]
                        ref = HubRef("time", r[0], instant=instant, grain=r[2],
                                     key=instant[:10] if r[2] == "day" else instant)
                    refs[(kind, r[0])] = ref
            if len(cache) > _REF_HUB_CACHE:
                cache.clear()
            cache.update((key, ref) for key, ref in refs.items() if key[0] == kind)

    def ref(self, kind: str, hk: str, section: str) -> HubRef:
        if kind == "person":
            return HubRef("person", hk, key=self.person_key)
        if kind == "event":
            etype, key = self.event_keys.get(hk, ("", None))
            return HubRef("event", hk, type=etype, key=key)
        return self.refs.get((kind, hk)) or HubRef(kind, hk)


class _RawReads:
    """The read path's queries, in SQL on the driver connection of a SQLAlchemy connection.

    A read is a handful of small queries; through SQLAlchemy's execution and per-row result
    processing they cost more than the decryption. Rows come back as plain tuples; timestamps
    as the driver gives them (text on SQLite, aware datetimes on PostgreSQL): ``timestamps()``
    turns them into (aware UTC datetime, ISO text) exactly as ``UTCDateTime`` and ``utc_iso`` do.
    ``as_of`` is bound as ``Vault.db_timestamp`` gives it (what the bulk writer stores).
    """

    def __init__(self, dialect: str):
        self.sqlite = dialect == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        m = self.mark
        self.data_key = f"SELECT dek_id, wrapped, kek_id FROM {S.data_keys.name} WHERE person_hk = {m}"
        self.person_exists = f"SELECT hk FROM {S.hub_person.name} WHERE hk = {m}"
        self.person = f"SELECT bk_sealed FROM {S.hub_person.name} WHERE hk = {m}"
        self.events = f"SELECT hk, type, dek_id, bk_sealed FROM {S.hub_event.name} WHERE patient_hk = {m}"
        self.satellites = (f"SELECT hub_kind, hub_hk, satellite, section, load_ts, record_source, hash_diff, sealed "
                           f"FROM {S.satellites.name} WHERE dek_id = {m} AND section IN ({{values}}){{as_of}} "
                           f"ORDER BY load_ts, id")
        self.links = (f"SELECT name, section, from_kind, from_hk, to_kind, to_hk, load_ts FROM {S.links.name} "
                      f"WHERE patient_hk = {m} AND section IN ({{values}}){{as_of}} ORDER BY load_ts, id")
        self.blobs = (f"SELECT blob_id, section, store, address, sha256, load_ts, meta_sealed FROM {S.blobs.name} "
                      f"WHERE dek_id = {m} AND section IN ({{values}}){{as_of}}{{blob}}")
        self.ref_hubs = {
            "object": f"SELECT hk, type, code, system FROM {S.hub_object.name} WHERE hk IN ({{values}})",
            "location": (f"SELECT hk, code, name, latitude, longitude, altitude FROM {S.hub_location.name} "
                         f"WHERE hk IN ({{values}})"),
            "time": f"SELECT hk, instant, grain FROM {S.hub_time.name} WHERE hk IN ({{values}})",
        }
        self._sql: dict[tuple[str, int, bool, bool], str] = {}

    def _text(self, template: str, n: int, as_of: bool, blob: bool) -> str:
        key = (template, n, as_of, blob)
        sql = self._sql.get(key)
        if sql is None:
            m = self.mark
            sql = self._sql[key] = template.format(values=", ".join([m] * n),
                                                   as_of=f" AND load_ts <= {m}" if as_of else "",
                                                   blob=f" AND blob_id = {m}" if blob else "")
        return sql

    @staticmethod
    def _driver(conn: sa.Connection) -> Any:
        return conn.connection.driver_connection

    def one(self, conn: sa.Connection, sql: str, params: tuple) -> tuple | None:
        return self._driver(conn).execute(sql, params).fetchone()

    def rows(self, conn: sa.Connection, template: str, key: str | None, values: Sequence[str] = (),
             as_of: Any = None, blob_id: str | None = None) -> list[tuple]:
        """``template`` with ``key`` first (unless None), ``values`` in its IN list, then as_of and blob_id
        when given (each adds its condition)."""
        params: list[Any] = [] if key is None else [key]
        params.extend(values)
        if as_of is not None:
            params.append(as_of)
        if blob_id is not None:
            params.append(blob_id)
        sql = self._text(template, len(values), as_of is not None, blob_id is not None)
        return self._driver(conn).execute(sql, params).fetchall()

    def timestamps(self) -> Callable[[Any], tuple[_dt.datetime, str]]:
        """A converter from stored timestamps to (aware UTC datetime, utc_iso text), memoised for one
        read (a record has few distinct load times)."""
        seen: dict[Any, tuple[_dt.datetime, str]] = {}
        sqlite = self.sqlite

        def convert(value: Any) -> tuple[_dt.datetime, str]:
            got = seen.get(value)
            if got is None:
                if sqlite:  # SQLAlchemy's SQLite storage format, naive UTC
                    moment = _dt.datetime.fromisoformat(value).replace(tzinfo=_dt.UTC)
                else:
                    moment = value.astimezone(_dt.UTC)
                got = seen[value] = (moment, utc_iso(moment))
            return got

        return convert


# --------------------------------------------------------------------------- helpers


def _compatibility(old: RecordFormat, new: RecordFormat) -> list[str]:
    """A new version of a vault's format may add, never move: stored rows keep their meaning."""
    problems = []
    for s in old.sections:
        if s not in new.sections:
            problems.append(f"section {s!r} was removed; stored rows belong to it")
    old_sats, new_sats = old.satellites_by_name(), new.satellites_by_name()
    for name, (_, sat) in old_sats.items():
        if name not in new_sats:
            problems.append(f"satellite {name} was removed; stored rows use it")
        elif new_sats[name][1].section != sat.section:
            problems.append(f"satellite {name} moved from section {sat.section} to {new_sats[name][1].section}")
    for tname, t in old.tables.items():
        for lname, link in t.links.items():
            nt = new.tables.get(tname)
            if nt is not None and lname in nt.links and nt.links[lname].section != link.section:
                problems.append(f"link {tname}.{lname} moved from section {link.section} to {nt.links[lname].section}")
    return problems


def _resolve_kek(meta: Mapping[str, str], config: VaultConfig) -> Kek:
    want = meta["kek.id"]
    if meta.get("kek.kind") == "passphrase":
        if not config.passphrase:
            raise VaultConfigError("this vault's key-encryption key is derived from a passphrase: set "
                                   "SERUMS_KEY_PASSPHRASE")
        kek = Kek.from_passphrase(config.passphrase, bytes.fromhex(meta["kek.salt"]),
                                  int(meta.get("kek.scrypt_n", str(config.scrypt_n))))
        if kek.kek_id != want:
            raise VaultConfigError("wrong passphrase for this vault's key-encryption key")
        return kek
    kf = KekFile(Path(config.key_dir) / "kek.key")
    current, staged = kf.current(), kf.staged()
    if current is not None and current.kek_id == want:
        if staged is not None:
            kf.discard_staged()  # a rotation that never committed
        return current
    if staged is not None and staged.kek_id == want:
        kf.promote()  # a rotation that committed but crashed before renaming its key file
        return staged
    if current is None and staged is None:
        raise VaultConfigError(f"the vault's key file {kf.path} is missing: without it no record can be "
                               "decrypted (restore it from the hospital's key backup)")
    raise VaultConfigError(f"{kf.path} holds KEK {(current or staged).kek_id}, but this vault's keys are "
                           f"wrapped by KEK {want}")


def open_vault(settings: SettingsLike, hospital: str, *, ledger: GrantLedger | None = None,
               **overrides: Any) -> Vault:
    """Open (creating if new) ``hospital``'s vault: the one way every command and service opens one
    (the layout is :meth:`VaultConfig.for_hospital`)."""
    return Vault.open(VaultConfig.for_hospital(settings, hospital, **overrides), ledger=ledger)


#: How the chain's refusal reasons (ReleaseAccess) read as the vault's token errors.
_REFUSAL_ERRORS: dict[str, type[TokenError]] = {
    "grant-revoked": GrantRevoked,
    "grant-expired": GrantExpired,
    "grant-not-live": GrantExpired,
    "grant-not-found": GrantNotFound,
    "token-not-bound": TokenNotBound,
    "token-grant-mismatch": TokenGrantMismatch,
}
