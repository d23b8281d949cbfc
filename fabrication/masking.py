"""Masking rules for moving real data into a target (SERUMS D4.2 §2.3): per column, one of

- ``substitute`` — a value from a code list chosen by a keyed hash of the original (the same
  original always gets the same substitute, so joins survive); given names follow the row's sex
  (``sex: sex`` names the column; Sheila stays a woman's name) — the pick and the name lists are
  ``pseudonyms``', the same the vault's masking uses;
- ``shuffle`` — the value's own characters in a keyed order (same original → same result);
- ``fpe`` — format-preserving encryption, FF3-1 (NIST SP 800-38G Rev. 1) from the ``ff3`` package
  (AES from pycryptodome underneath; no cipher is written here): digits stay digits, letters stay
  letters, other characters (``-``, spaces) stay where they are, and the key holder can decrypt;
- ``keep`` or ``drop``.

    rules = {"given_name": {"substitute": "given_names", "sex": "sex"}, "chi": "fpe", "postcode": "shuffle",
             "notes": "drop"}
    masked = mask_frame(df, rules, key)
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pseudonyms import given_names, pick_name

METHODS = ("substitute", "shuffle", "fpe", "keep", "drop")


class MaskingError(ValueError):
    """A masking rule that cannot be applied; the message names the column and the reason."""

    slug, status, title = "masking-rule", 422, "Masking rule cannot be applied"

    @property
    def detail(self) -> str:
        return str(self)


def _names(list_name: str) -> list[str]:
    data = yaml.safe_load((resources.files("fabrication") / "codelists" / f"{list_name}.yaml").read_text())
    vals = data.get("values", data) if isinstance(data, dict) else data
    return [str(v) for v in vals]


def _digest(key: bytes, purpose: str, value: str) -> bytes:
    return hmac.new(key, f"{purpose}\x1f{value}".encode(), hashlib.sha256).digest()


def substitute(value: str, key: bytes, column: str, names: Sequence[str]) -> str:
    return pick_name(key, f"substitute:{column}", value, names)


def shuffle(value: str, key: bytes, column: str) -> str:
    """The value's characters in an order fixed by the key and the value."""
    seed = int.from_bytes(_digest(key, f"shuffle:{column}", value)[:8], "big")
    chars = list(value)
    np.random.default_rng(seed).shuffle(chars)
    return "".join(chars)


class Fpe:
    """FF3-1 over the digits (and, separately, the letters) of a value, other characters in place.
    The 256-bit AES key and the 56-bit tweak come from the masking key and the column's name."""

    def __init__(self, key: bytes, column: str):
        from ff3 import FF3Cipher

        k = _digest(key, "fpe-key", "").hex()
        tweak = _digest(key, "fpe-tweak", column)[:7].hex()
        self.digits = FF3Cipher.withCustomAlphabet(k, tweak, string.digits)
        self.letters = FF3Cipher.withCustomAlphabet(k, tweak, string.ascii_uppercase)

    def _apply(self, value: str, decrypt: bool) -> str:
        out = list(value)
        for cipher, pick in ((self.digits, str.isdigit), (self.letters, lambda c: c.isascii() and c.isalpha())):
            pos = [i for i, ch in enumerate(value) if pick(ch)]
            if not pos:
                continue
            text = "".join(value[i].upper() for i in pos)
            minimum = 6 if cipher is self.digits else 5  # radix ** length ≥ 1,000,000 (FF3-1's domain bound)
            if len(text) < minimum:
                raise MaskingError(f"{value!r} has {len(text)} {'digits' if cipher is self.digits else 'letters'}; "
                                   f"format-preserving encryption needs at least {minimum}: use shuffle or substitute")
            res = cipher.decrypt(text) if decrypt else cipher.encrypt(text)
            for i, ch in zip(pos, res, strict=True):
                out[i] = ch if value[i].isupper() or value[i].isdigit() else ch.lower()
        return "".join(out)

    def encrypt(self, value: str) -> str:
        return self._apply(value, decrypt=False)

    def decrypt(self, value: str) -> str:
        return self._apply(value, decrypt=True)


def _rule(column: str, spec: str | Mapping[str, Any]) -> tuple[str, dict]:
    if isinstance(spec, str):
        method, opts = spec, {}
    else:
        opts = dict(spec)
        found = [m for m in METHODS if m in opts]
        if len(found) != 1:
            raise MaskingError(f"{column}: give exactly one of {', '.join(METHODS)}")
        method = found[0]
    if method not in METHODS:
        raise MaskingError(f"{column}: unknown masking method {method!r} ({', '.join(METHODS)})")
    return method, opts


def validate_rules(rules: Mapping[str, str | Mapping[str, Any]]) -> None:
    """Raise MaskingError for a rule with an unknown or ambiguous method (columns are checked per frame)."""
    for col, spec in rules.items():
        _rule(col, spec)


def mask_frame(df: pd.DataFrame, rules: Mapping[str, str | Mapping[str, Any]], key: bytes) -> pd.DataFrame:
    """A copy of ``df`` with each ruled column masked (nulls stay null); other columns unchanged."""
    out = df.copy()
    unknown = [c for c in rules if c not in df.columns]
    if unknown:
        raise MaskingError(f"no column {unknown[0]!r} to mask (columns: {', '.join(map(str, df.columns))})")
    for col, spec in rules.items():
        method, opts = _rule(col, spec)
        if method == "keep":
            continue
        if method == "drop":
            out = out.drop(columns=[col])
            continue
        vals = df[col]
        known = vals.notna()
        text = vals[known].astype(str)
        if method == "shuffle":
            masked = [shuffle(v, key, col) for v in text]
        elif method == "fpe":
            fpe = Fpe(key, col)
            masked = [fpe.encrypt(v) for v in text]
        else:
            masked = _substitute(df, col, text, opts, key)
        res = vals.astype(object).copy()
        res[known] = masked
        out[col] = res
    return out


def _substitute(df: pd.DataFrame, col: str, text: pd.Series, opts: dict, key: bytes) -> list[str]:
    lists = opts.get("substitute")
    sex_col = opts.get("sex")
    if sex_col is None:
        if lists == "given_names":
            raise MaskingError(f"{col}: given names need the record's sex (sex: COLUMN) so a woman keeps a woman's name")
        return [substitute(v, key, col, _names(str(lists))) for v in text]
    if sex_col not in df.columns:
        raise MaskingError(f"{col}: no sex column {sex_col!r}")
    return [substitute(v, key, col, given_names(df.at[i, sex_col])) for i, v in text.items()]
