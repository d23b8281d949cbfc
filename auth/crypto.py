"""The cryptographic building blocks, all from argon2-cffi and ``cryptography``: nothing hand-rolled.

- Key verifiers: Argon2id PHC strings (argon2-cffi ``PasswordHasher``; random 16-byte salt per hash).
  The input is first keyed with the server pepper and bound to the user id and the key kind
  (HMAC-SHA256), so a stolen database cannot be attacked offline without the pepper, and a hash
  copied onto another user's row does not verify.
- Key derivation for wallets: raw Argon2id (``hash_secret_raw``) with its own salt and domain label,
  so the wallet key is independent of the stored verifier.
- Encryption: AES-256-GCM with a random 96-bit nonce and associated data naming what the
  ciphertext is and whose it is (ciphertexts cannot be swapped between users or purposes).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import Argon2Params

NONCE_LEN = 12


def keyed(pepper: bytes, label: str, *parts: str | bytes) -> bytes:
    """HMAC-SHA256 of length-prefixed ``parts`` under the pepper, domain-separated by ``label``.

    Length prefixes make the encoding injective: ("ab", "c") and ("a", "bc") never collide."""
    mac = hmac.new(pepper, label.encode(), hashlib.sha256)
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        mac.update(len(data).to_bytes(4, "big"))
        mac.update(data)
    return mac.digest()


def subkey(pepper: bytes, purpose: str, length: int = 32) -> bytes:
    """A key for one purpose, derived from the pepper with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(pepper)


class KeyHasher:
    """Argon2id verifiers for FlexPass keys, including the dummy used for unknown usernames."""

    def __init__(self, params: Argon2Params):
        self.params = params
        self._ph = PasswordHasher(
            time_cost=params.iterations,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=params.hash_len,
            salt_len=params.salt_len,
            type=Type.ID,
        )
        # Same parameters as real hashes, so verifying against it costs exactly as much.
        self._dummy = self._ph.hash(secrets.token_bytes(32))

    def hash(self, keyed_secret: bytes) -> str:
        return self._ph.hash(keyed_secret)

    def verify(self, encoded: str | None, keyed_secret: bytes) -> bool:
        """True when ``keyed_secret`` matches ``encoded``; ``None`` verifies against the dummy
        hash (same work, always False), which is how unknown usernames are handled."""
        target = encoded if encoded is not None else self._dummy
        try:
            ok = self._ph.verify(target, keyed_secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return bool(ok) and encoded is not None

    def verify_dummy(self) -> None:
        """Spend one verification's work for nothing (equal timing on paths that fail early)."""
        self.verify(None, b"\0" * 32)

    def needs_rehash(self, encoded: str) -> bool:
        return self._ph.check_needs_rehash(encoded)


def derive_key(keyed_secret: bytes, salt: bytes, params: Argon2Params, length: int = 32) -> bytes:
    """A 256-bit key from a (keyed) secret with raw Argon2id: what wraps a wallet's data key."""
    return hash_secret_raw(
        secret=keyed_secret,
        salt=salt,
        time_cost=params.iterations,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=length,
        type=Type.ID,
    )


@dataclass(frozen=True)
class Sealed:
    """An AES-256-GCM ciphertext (tag appended) with its nonce."""

    nonce: bytes
    ciphertext: bytes


def seal(key: bytes, plaintext: bytes, aad: bytes) -> Sealed:
    nonce = secrets.token_bytes(NONCE_LEN)
    return Sealed(nonce, AESGCM(key).encrypt(nonce, plaintext, aad))


def open_sealed(key: bytes, sealed: Sealed, aad: bytes) -> bytes | None:
    """The plaintext, or ``None`` when the key is wrong or the ciphertext/aad was tampered with."""
    try:
        return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except (InvalidTag, ValueError):
        return None


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def new_id(nbytes: int = 16) -> str:
    """A random identifier (URL-safe, no padding)."""
    return secrets.token_urlsafe(nbytes)


__all__ = [
    "KeyHasher",
    "Sealed",
    "derive_key",
    "keyed",
    "new_id",
    "open_sealed",
    "seal",
    "sha256_hex",
    "subkey",
]
