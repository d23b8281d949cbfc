"""Access tokens: compact, signed, tamper-evident claims minted by the vault for a chain grant.

Format: ``srt1.<payload>.<signature>`` — both parts base64url without padding. The payload is
canonical JSON (sorted keys, no spaces) of the claims; the signature is ECDSA P-256/SHA-256
(DER, low-S, as everywhere in SERUMS) over the ASCII bytes ``srt1.<payload>``. Low-S and strict
base64 make the token string unique for its claims, so its SHA-256 — the *token hash* bound on
chain — identifies it exactly.

Claims: ``v`` format version, ``kid`` signing key id, ``gid`` grant id, ``sub`` requester
(the only presenter accepted), ``pat`` patient reference, ``sec`` sections, ``pur`` purpose,
``iat``/``exp`` issue and expiry (Unix seconds, UTC), ``n`` a random nonce (two tokens for the
same grant never collide).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from network import Signer, verify

from .errors import TokenMalformed, TokenSignatureInvalid

PREFIX = "srt1"
MAX_TOKEN_LENGTH = 4096


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def _b64d(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64e(data) != text:  # non-canonical encodings (stray bits) would change the token hash
        raise ValueError("non-canonical base64url")
    return data


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def token_hash(token: str) -> str:
    """SHA-256 of the token string, hex: what the chain binds to the grant."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class TokenClaims:
    grant_id: str
    requester_id: str
    patient: str
    sections: tuple[str, ...]
    purpose: str
    issued_at: _dt.datetime
    expires_at: _dt.datetime
    nonce: str
    key_id: str

    def to_json(self) -> bytes:
        doc = {
            "v": 1, "kid": self.key_id, "gid": self.grant_id, "sub": self.requester_id, "pat": self.patient,
            "sec": sorted(self.sections), "pur": self.purpose, "iat": int(self.issued_at.timestamp()),
            "exp": int(self.expires_at.timestamp()), "n": self.nonce,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> TokenClaims:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise TokenMalformed("token payload is not JSON") from None
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise TokenMalformed("unsupported token version")
        str_fields = ("kid", "gid", "sub", "pat", "pur", "n")
        if not all(isinstance(doc.get(k), str) and doc.get(k) for k in str_fields):
            raise TokenMalformed(f"token lacks one of {', '.join(str_fields)}")
        sec = doc.get("sec")
        if not isinstance(sec, list) or not all(isinstance(s, str) for s in sec):
            raise TokenMalformed("token sections are not a list of names")
        for k in ("iat", "exp"):
            if not isinstance(doc.get(k), int) or isinstance(doc.get(k), bool):
                raise TokenMalformed(f"token {k} is not a timestamp")
        claims = cls(
            grant_id=doc["gid"], requester_id=doc["sub"], patient=doc["pat"], sections=tuple(sec),
            purpose=doc["pur"], issued_at=_dt.datetime.fromtimestamp(doc["iat"], _dt.UTC),
            expires_at=_dt.datetime.fromtimestamp(doc["exp"], _dt.UTC), nonce=doc["n"], key_id=doc["kid"],
        )
        if claims.to_json() != data:
            raise TokenMalformed("token payload is not in canonical form")
        return claims


@dataclass(frozen=True)
class MintedToken:
    token: str
    token_hash: str
    claims: TokenClaims


class TokenIssuer:
    """Mints and verifies tokens with the vault's ECDSA key."""

    def __init__(self, signer: Signer):
        self._signer = signer
        self.public_key = signer.public_key
        self.key_id = key_id(self.public_key)

    def public_key_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    def mint(self, *, grant_id: str, requester_id: str, patient: str, sections: tuple[str, ...], purpose: str,
             issued_at: _dt.datetime, expires_at: _dt.datetime) -> MintedToken:
        claims = TokenClaims(
            grant_id=grant_id, requester_id=requester_id, patient=patient, sections=tuple(sorted(sections)),
            purpose=purpose, issued_at=issued_at, expires_at=expires_at, nonce=_b64e(os.urandom(16)),
            key_id=self.key_id,
        )
        token = self.sign(PREFIX, claims.to_json())
        return MintedToken(token=token, token_hash=token_hash(token), claims=claims)

    def sign(self, prefix: str, payload: bytes) -> str:
        """``<prefix>.<payload>.<signature>``: the signed form every token of this vault has."""
        signing_input = f"{prefix}.{_b64e(payload)}"
        return f"{signing_input}.{_b64e(self._signer.sign(signing_input.encode('ascii')))}"

    def open(self, token: str, prefix: str) -> bytes:
        """Check a signed token's form and signature (:meth:`sign`); return its payload bytes."""
        payload, check = self._split(token, prefix)
        check()
        return payload

    def _split(self, token: str, prefix: str):
        """(payload, a function that checks the signature): the form is checked here."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise TokenMalformed("a token is a short ASCII string")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != prefix:
            raise TokenMalformed(f"a token has three dot-separated parts and starts with {prefix}.")
        try:
            payload, signature = _b64d(parts[1]), _b64d(parts[2])
        except (ValueError, binascii.Error):
            raise TokenMalformed("token parts are not base64url") from None

        def check() -> None:
            if not verify(self.public_key, f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
                raise TokenSignatureInvalid("token signature does not verify: it was altered")

        return payload, check

    @staticmethod
    def payload(token: str) -> bytes | None:
        """A token's payload bytes without verifying anything (None when it has no such part)."""
        try:
            _, payload, _ = token.split(".")
            return _b64d(payload)
        except (ValueError, binascii.Error, AttributeError):
            return None

    @staticmethod
    def peek(token: str) -> TokenClaims | None:
        """The claims without verifying anything — only to say what a refused token claimed."""
        payload = TokenIssuer.payload(token)
        try:
            return TokenClaims.from_json(payload) if payload is not None else None
        except TokenMalformed:
            return None

    def verify(self, token: str) -> TokenClaims:
        """Check form and signature; return the claims. Expiry and grant are the caller's checks."""
        payload, check_signature = self._split(token, PREFIX)
        claims = TokenClaims.from_json(payload)
        if claims.key_id != self.key_id:
            raise TokenSignatureInvalid("token was not signed by this vault's key")
        check_signature()
        return claims
