"""Second factors: TOTP (RFC 6238, authenticator-app compatible) and single-use recovery codes.

TOTP secrets must be readable by the server to check codes, so they are stored encrypted
(AES-256-GCM under a key derived from the pepper, bound to the user id). A code is accepted in
the current 30-second step or one step either side (clock drift), and never twice: the last
accepted step is stored and a code must belong to a later one (RFC 6238 §5.2).

Recovery codes carry 80 random bits each (16 Crockford base32 characters), so a keyed SHA-256
hash is as good as a slow hash for them, and lets a login find the code with one lookup.
"""

from __future__ import annotations

import hmac
import io
import secrets
from dataclasses import dataclass

import pyotp
import qrcode
from qrcode.image.pil import PilImage

from .crypto import Sealed, keyed, open_sealed, seal, subkey
from .errors import InvalidInput

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_FIX = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})


@dataclass(frozen=True)
class TotpProvisioning:
    """What the user scans once: the secret, the ``otpauth://`` URI and the same as a QR PNG."""

    secret: str
    uri: str
    qr_png: bytes


class Totp:
    def __init__(self, pepper: bytes, *, issuer: str, interval: int = 30, digits: int = 6, valid_window: int = 1):
        self._key = subkey(pepper, "serums-auth/totp-secret-encryption")
        self.issuer = issuer
        self.interval = interval
        self.digits = digits
        self.valid_window = valid_window

    @staticmethod
    def new_secret() -> str:
        return pyotp.random_base32(32)  # 160 bits, as RFC 4226 recommends

    def seal(self, user_id: str, secret: str) -> Sealed:
        return seal(self._key, secret.encode(), b"serums-auth/totp/v1|" + user_id.encode())

    def unseal(self, user_id: str, sealed: Sealed) -> str:
        data = open_sealed(self._key, sealed, b"serums-auth/totp/v1|" + user_id.encode())
        if data is None:
            raise RuntimeError(f"TOTP secret of {user_id} cannot be decrypted (pepper changed?)")
        return data.decode()

    def _otp(self, secret: str) -> pyotp.TOTP:
        return pyotp.TOTP(secret, digits=self.digits, interval=self.interval, issuer=self.issuer)

    def provisioning(self, secret: str, account_name: str) -> TotpProvisioning:
        uri = self._otp(secret).provisioning_uri(name=account_name, issuer_name=self.issuer)
        img = qrcode.make(uri, image_factory=PilImage, box_size=8, border=4,
                          error_correction=qrcode.constants.ERROR_CORRECT_M)
        buf = io.BytesIO()
        img.save(buf)
        return TotpProvisioning(secret, uri, buf.getvalue())

    def normalise(self, code: object) -> str:
        if not isinstance(code, str):
            raise InvalidInput("the TOTP code must be a string of digits")
        code = code.replace(" ", "").replace("-", "")
        if len(code) != self.digits or not code.isdigit():
            raise InvalidInput(f"the TOTP code must be {self.digits} digits")
        return code

    def matching_step(self, secret: str, code: str, now: float, last_step: int) -> int | None:
        """The time step ``code`` belongs to if it is valid now and newer than ``last_step``."""
        otp = self._otp(secret)
        current = int(now // self.interval)
        found = None
        for offset in range(-self.valid_window, self.valid_window + 1):
            step = current + offset
            # compare every candidate (no early exit) so timing does not depend on which matched
            if hmac.compare_digest(otp.at(now, counter_offset=offset), code) and step > last_step:
                found = step
        return found

    def code_at(self, secret: str, when: float) -> str:
        """The code for ``when`` (what an authenticator app shows): for tests and tooling."""
        return self._otp(secret).at(when)


def new_recovery_codes(n: int) -> list[str]:
    codes = []
    for _ in range(n):
        raw = "".join(secrets.choice(CROCKFORD) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalise_recovery_code(code: object) -> str:
    if not isinstance(code, str):
        raise InvalidInput("the recovery code must be a string")
    raw = code.upper().replace("-", "").replace(" ", "").translate(_CROCKFORD_FIX)
    if len(raw) != 16 or any(c not in CROCKFORD for c in raw):
        raise InvalidInput("a recovery code has 16 letters and digits (XXXX-XXXX-XXXX-XXXX)")
    return raw


def recovery_code_hash(pepper: bytes, user_id: str, code: str) -> str:
    return keyed(pepper, "serums-auth/recovery-code", user_id, normalise_recovery_code(code)).hex()


__all__ = [
    "Totp",
    "TotpProvisioning",
    "new_recovery_codes",
    "normalise_recovery_code",
    "recovery_code_hash",
]
