"""Wallets: the user's Fabric private key, usable only while the user is logged in.

Layout (envelope encryption, AES-256-GCM throughout):

    private key (PKCS#8 DER) --sealed under--> DEK (random 256-bit data key)
    DEK --wrapped under--> KEK_text      = Argon2id(HMAC(pepper, uid, textual key), salt_t)
    DEK --wrapped under--> KEK_graphical = Argon2id(HMAC(pepper, uid, sorted picture ids), salt_g)

Both keys of the one FlexPass secret unwrap the same DEK, so a login with either can sign. The
server stores neither KEK: without the user's key it cannot open the wallet. At login the DEK is
re-sealed under a random *session wallet key* that only the client holds (inside its tokens), so
a request can sign while the session lives, and nothing can once it has ended.

Every ciphertext's associated data names its purpose and owner: a wrap copied to another user or
slot fails to open.

Caveat (stated in the README too): the graphical key has far fewer combinations than a good
textual key, so the graphical wrap is only as strong as ~log2(C(36, k)) bits times Argon2id's cost
and the pepper's secrecy. Deployments that need more turn ``graphical_wallet`` off (graphical
logins then cannot sign) or let users hold their keys (``custody="exported"``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from network import Signer

from .config import Argon2Params
from .crypto import Sealed, derive_key, keyed, open_sealed, seal
from .errors import WalletError

_KEY_AAD = b"serums-auth/wallet-key/v1|"
_WRAP_AAD = b"serums-auth/wallet-wrap/v1|"
_SESSION_AAD = b"serums-auth/session-wallet/v1|"
_CHALLENGE_AAD = b"serums-auth/challenge-wallet/v1|"


@dataclass(frozen=True)
class SealedKey:
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class Wrap:
    method: str
    salt: bytes
    kdf: Argon2Params
    nonce: bytes
    wrapped_dek: bytes


def new_dek() -> bytes:
    return secrets.token_bytes(32)


def seal_private_key(signer: Signer, dek: bytes, user_id: str) -> SealedKey:
    """Seal the signer's key (PKCS#8, unencrypted inside the AES-GCM envelope) under the DEK."""
    sealed = seal(dek, signer.private_key_pem(), _KEY_AAD + user_id.encode())
    return SealedKey(sealed.nonce, sealed.ciphertext)


def open_private_key(sealed: SealedKey, dek: bytes, user_id: str) -> Signer:
    pem = open_sealed(dek, Sealed(sealed.nonce, sealed.ciphertext), _KEY_AAD + user_id.encode())
    if pem is None:
        raise WalletError("the wallet cannot be opened with this key")
    return Signer.from_pem(pem)


def kek_input(pepper: bytes, user_id: str, method: str, material: tuple[str, ...]) -> bytes:
    """The KDF input for one key kind (domain-separated from the login verifier's input)."""
    return keyed(pepper, f"serums-auth/wallet-kek/{method}/v1", user_id, *material)


def wrap_dek(dek: bytes, *, user_id: str, method: str, kek_secret: bytes, params: Argon2Params) -> Wrap:
    salt = secrets.token_bytes(16)
    kek = derive_key(kek_secret, salt, params)
    sealed = seal(kek, dek, _WRAP_AAD + f"{user_id}|{method}".encode())
    return Wrap(method, salt, params, sealed.nonce, sealed.ciphertext)


def unwrap_dek(wrap: Wrap, *, user_id: str, kek_secret: bytes) -> bytes | None:
    kek = derive_key(kek_secret, wrap.salt, wrap.kdf)
    return open_sealed(kek, Sealed(wrap.nonce, wrap.wrapped_dek), _WRAP_AAD + f"{user_id}|{wrap.method}".encode())


def seal_for_session(dek: bytes, session_key: bytes, session_id: str, user_id: str) -> Sealed:
    return seal(session_key, dek, _SESSION_AAD + f"{session_id}|{user_id}".encode())


def open_for_session(sealed: Sealed, session_key: bytes, session_id: str, user_id: str) -> bytes | None:
    return open_sealed(session_key, sealed, _SESSION_AAD + f"{session_id}|{user_id}".encode())


def seal_for_challenge(dek: bytes, challenge_key: bytes, challenge_id: str) -> Sealed:
    return seal(challenge_key, dek, _CHALLENGE_AAD + challenge_id.encode())


def open_for_challenge(sealed: Sealed, challenge_key: bytes, challenge_id: str) -> bytes | None:
    return open_sealed(challenge_key, sealed, _CHALLENGE_AAD + challenge_id.encode())


__all__ = [
    "SealedKey",
    "Wrap",
    "kek_input",
    "new_dek",
    "open_for_challenge",
    "open_for_session",
    "open_private_key",
    "seal_for_challenge",
    "seal_for_session",
    "seal_private_key",
    "unwrap_dek",
    "wrap_dek",
]
