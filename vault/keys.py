"""Key material of the vault: the hospital's key-encryption key and the keys it wraps.

Envelope encryption: each patient has a random 256-bit data key (DEK); payloads are sealed with
AES-256-GCM under it. DEKs are stored only wrapped (AES-256-GCM again) by the hospital's
key-encryption key (KEK), which never touches the database. Rotating the KEK re-wraps the DEKs
and leaves every payload untouched; destroying a DEK erases that patient cryptographically.

The KEK comes either from a key file (0600, under the data directory) or from a passphrase
(scrypt, salt and parameters kept in the database). Its id is a key check value — a hash of
the key — so the vault can tell which KEK wrapped what without storing the key.

Besides DEKs the KEK wraps the *index key*: the HMAC key that turns business keys into hash
keys (so the database cannot be searched for a known CHI without it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from network import write_private_file

from .errors import IntegrityError, VaultConfigError

KEY_BYTES = 32
NONCE_BYTES = 12
KEK_FILE_HEADER = "serums-vault-kek-v1"
DEFAULT_SCRYPT_N = 2**15


def hmac_sha256(key: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 under ``key`` as a function of the message: exactly ``hmac.digest(key, m,
    "sha256")``, from one keyed ``hmac.HMAC`` copied per message.

    The vault computes several HMACs a satellite (hash keys, hash diffs); the one-shot form pays
    for the key schedule (and OpenSSL's digest lookup) on every call; a copy of the keyed object
    starts from its precomputed inner and outer states (measured: 1.5 µs instead of 2.0 µs).
    """
    keyed = hmac.new(key, digestmod="sha256")

    def mac(data: bytes) -> bytes:
        h = keyed.copy()
        h.update(data)
        return h.digest()

    return mac


def nonce_stream(block: int = 1024) -> Iterator[bytes]:
    """Fresh random 96-bit GCM nonces, drawn from the OS in blocks (one system call a block).

    For bulk sealing (an ingest): each nonce is used once, and the stream lives only as long as
    the operation that created it, so no buffered nonce can survive into a forked process.
    """
    while True:
        buf = os.urandom(NONCE_BYTES * block)
        yield from [buf[i:i + NONCE_BYTES] for i in range(0, len(buf), NONCE_BYTES)]


def _kek_id(key: bytes) -> str:
    return hashlib.sha256(b"serums-kek-id\x00" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Kek:
    """A key-encryption key and its id (a key check value; safe to store and log)."""

    key: bytes = field(repr=False)
    kind: str = "file"  # "file" or "passphrase"
    kek_id: str = ""

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise VaultConfigError("a key-encryption key is 32 bytes (AES-256)")
        if not self.kek_id:
            object.__setattr__(self, "kek_id", _kek_id(self.key))

    @classmethod
    def generate(cls) -> Kek:
        return cls(AESGCM.generate_key(bit_length=256), "file")

    @classmethod
    def from_passphrase(cls, passphrase: str, salt: bytes, n: int = DEFAULT_SCRYPT_N) -> Kek:
        if not passphrase:
            raise VaultConfigError("an empty passphrase cannot protect the vault")
        key = Scrypt(salt=salt, length=KEY_BYTES, n=n, r=8, p=1).derive(passphrase.encode("utf-8"))
        return cls(key, "passphrase")

    def wrap(self, secret: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, secret, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(self.key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except InvalidTag:
            raise IntegrityError("a wrapped key does not authenticate under the KEK (tampered row?)") from None


class KekFile:
    """The KEK in a key file, with a staging slot that makes rotation crash-safe.

    Rotation writes the new key to ``<path>.next`` before the database re-wraps anything; the
    database records which KEK id is current. On open, whichever file matches wins and a
    stale slot is tidied, so a crash between the commit and the rename loses nothing.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.next_path = self.path.with_name(self.path.name + ".next")

    @staticmethod
    def _read(path: Path) -> Kek | None:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise VaultConfigError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
        header, _, b64 = text.partition(" ")
        if header != KEK_FILE_HEADER:
            raise VaultConfigError(f"{path} is not a SERUMS vault key file")
        try:
            return Kek(base64.b64decode(b64, validate=True), "file")
        except (ValueError, VaultConfigError):
            raise VaultConfigError(f"{path} is damaged (not a 32-byte key)") from None

    @staticmethod
    def _write(path: Path, kek: Kek) -> None:
        write_private_file(path, f"{KEK_FILE_HEADER} {base64.b64encode(kek.key).decode()}\n".encode())

    def current(self) -> Kek | None:
        return self._read(self.path)

    def staged(self) -> Kek | None:
        return self._read(self.next_path)

    def create(self) -> Kek:
        """Create the key file, or — when another process just created it — use that one.

        Exclusive creation (a hard link of a finished temporary file) guarantees that two
        processes initialising one vault at the same time end up with the same KEK.
        """
        kek = Kek.generate()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        write_private_file(tmp, f"{KEK_FILE_HEADER} {base64.b64encode(kek.key).decode()}\n".encode())
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            existing = self.current()
            if existing is None:
                raise
            return existing
        finally:
            tmp.unlink(missing_ok=True)
        return kek

    def stage(self, kek: Kek) -> None:
        self._write(self.next_path, kek)

    def promote(self) -> None:
        os.replace(self.next_path, self.path)

    def discard_staged(self) -> None:
        self.next_path.unlink(missing_ok=True)


class DataKey:
    """A patient's data key, unwrapped: seals payloads and derives the keyed hash-diff key."""

    __slots__ = ("_aead", "_mac", "dek_id", "fingerprint", "hash_key", "key")

    def __init__(self, dek_id: str, key: bytes):
        if len(key) != KEY_BYTES:
            raise IntegrityError("a data key is 32 bytes")
        self.dek_id = dek_id
        self.key = key
        self._aead = AESGCM(key)
        # Hash diffs are keyed by the patient's key: equal payloads compare equal for change
        # detection, but a low-entropy value (a sex, a grade) cannot be guessed from its hash,
        # and the hashes die with the key on erasure.
        self.hash_key = hmac.digest(key, b"serums hash-diff key", "sha256")  # HMAC as the KDF (a PRF)
        self._mac = hmac_sha256(self.hash_key)
        self.fingerprint = fingerprint(key)

    @classmethod
    def generate(cls) -> DataKey:
        return cls(os.urandom(16).hex(), AESGCM.generate_key(bit_length=256))

    def seal(self, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
        """AES-256-GCM with a fresh random nonce (or one drawn from a :func:`nonce_stream`)."""
        if nonce is None:
            nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag:
            raise IntegrityError("a sealed payload does not authenticate (tampered, moved or wrong key)") from None

    def hash_diff(self, data: bytes) -> str:
        return self._mac(data).hex()

    def __repr__(self) -> str:
        return f"DataKey({self.dek_id})"


def fingerprint(key: bytes) -> str:
    """Commitment to a key (HMAC of a constant): proves later that this key is gone."""
    return hmac.digest(key, b"serums key fingerprint", "sha256").hex()[:32]


def try_open(key: bytes, sealed: bytes, aad: bytes) -> bool:
    """True when ``key`` opens ``sealed`` — used by erasure proofs, which expect False."""
    try:
        AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        return False
    return True


def dek_aad(dek_id: str, person_hk: str) -> bytes:
    """A wrapped data key is bound to its id and its person: it cannot be moved to another."""
    return b"serums-dek-v1\x1f" + dek_id.encode() + b"\x1f" + person_hk.encode()


def system_key_aad(name: str) -> bytes:
    return b"serums-syskey-v1\x1f" + name.encode()


def sat_aad_prefix(satellite: str, section: str, load_ts: str, record_source: str) -> bytes:
    """The part of a satellite's associated data shared by a whole batch of one satellite."""
    return "\x1f".join(("sat1", satellite, section, load_ts, record_source, "")).encode()


def sat_aad(satellite: str, hub_kind: str, hub_hk: str, section: str, dek_id: str, load_ts: str,
            record_source: str, hash_diff: str) -> bytes:
    """Associated data of a satellite payload: every column that says what the row is.

    Moving a ciphertext to another hub, section, satellite, time or patient key breaks its tag.
    """
    return sat_aad_prefix(satellite, section, load_ts, record_source) + sat_aad_suffix(hub_kind, hub_hk, dek_id,
                                                                                       hash_diff)


def sat_aad_suffix(hub_kind: str, hub_hk: str, dek_id: str, hash_diff: str) -> bytes:
    return f"{hub_kind}\x1f{hub_hk}\x1f{dek_id}\x1f{hash_diff}".encode()


def bk_aad(hub_kind: str, hk: str, dek_id: str) -> bytes:
    return "\x1f".join(("bk1", hub_kind, hk, dek_id)).encode()


def blob_aad(blob_id: str, dek_id: str, section: str, part: str) -> bytes:
    return "\x1f".join(("blob1", part, blob_id, dek_id, section)).encode()


class HashKeys:
    """Hash keys of hubs and links: 128-bit HMACs of business keys under the index key."""

    __slots__ = ("_mac",)

    def __init__(self, index_key: bytes):
        self._mac = hmac_sha256(index_key)

    def __call__(self, *parts: str) -> str:
        return self._mac("\x1f".join(parts).encode())[:16].hex()
