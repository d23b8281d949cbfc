"""Masking for test copies (SERUMS D4.2 §2.3): format-preserving, deterministic per key.

A test copy must look and join like the real extract while naming nobody. Every mask is a
keyed function (HMAC-SHA256 from ``cryptography``'s primitives via the stdlib ``hmac``) of the
original value, so the same value masks to the same result in every table and every run with
the same key — joins survive — and nobody without the key can invert or recompute it.

- ``chi``: a CHI-like number keeps its shape: a DDMMYY date prefix (the patient's date of birth
  shifted like every other date of theirs), three serial digits through a keyed permutation
  that keeps the sex digit's parity, and a valid modulus-11 check digit (cycle-walking the
  permutation past serials whose check digit would be 10).
- ``given_name``/``family_name``: a name from the shared lists of ``pseudonyms`` (the ones
  fabrication draws from), chosen by the keyed hash of the original (case style kept); a given name
  follows the row's ``sex`` column: a woman keeps a woman's name (Sheila never becomes Peter).
- ``shift_date``: every date of a patient moves by the same keyed offset (±1–180 days), so
  intervals (length of stay, time between cycles, age at an event) are preserved.
- ``postcode``: the postcode area (leading letters) stays, every other character is replaced
  by one of the same class, valid for its position.
- ``identifier``: digits to digits, letters to letters (case kept), punctuation kept.
- ``drop``: emptied. ``keep``: unchanged.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hmac
import os
import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from network import write_private_file
from pseudonyms import family_names, given_names, pick_name

from .errors import IngestError, IngestRejected, RowProblem
from .recordformat import RecordFormat, RowError, TableSpec

#: every substitute given name (women's and men's) and family name: the shared lists of ``pseudonyms``
GIVEN_NAMES = given_names()
FAMILY_NAMES = family_names()
#: the column of a table that gives a row's sex, for given names that follow it
SEX_COLUMNS = ("sex", "gender")
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters used in the inward code of UK postcodes
_CHI_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def chi_check_digit(first9: str) -> int | None:
    """Modulus-11 check digit of a CHI's first nine digits; None when it would be 10 (unused)."""
    total = sum(int(d) * w for d, w in zip(first9, _CHI_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def chi_is_valid(chi: str) -> bool:
    if len(chi) != 10 or not chi.isdigit():
        return False
    return chi_check_digit(chi[:9]) == int(chi[9])


def _chi_date(prefix: str) -> _dt.date | None:
    # CHI carries no century; 20yy accepts every valid DDMMYY (29 Feb included) and the
    # shifted prefix is written as DDMMYY again.
    try:
        return _dt.date(2000 + int(prefix[4:6]), int(prefix[2:4]), int(prefix[:2]))
    except ValueError:
        return None


class Masker:
    """Masks rows of a record format's tables with one secret key."""

    def __init__(self, key: bytes, fmt: RecordFormat, *, max_shift_days: int = 180):
        if len(key) < 16:
            raise ValueError("a masking key has at least 128 bits")
        if max_shift_days < 1:
            raise ValueError("max_shift_days must be at least 1")
        self._key = key
        self.format = fmt
        self.max_shift_days = max_shift_days
        ranked = sorted(range(500), key=lambda i: self._mac("chi-serial", str(i)))
        self._serial_perm = {i: ranked[i] for i in range(500)}

    # -- primitives
    def _mac(self, purpose: str, value: str) -> bytes:
        return hmac.digest(self._key, f"{purpose}\x1f{value}".encode(), "sha256")

    def _stream(self, purpose: str, value: str, n: int) -> bytes:
        out = b""
        counter = 0
        while len(out) < n:
            out += self._mac(f"{purpose}#{counter}", value)
            counter += 1
        return out[:n]

    def shift_days(self, person: str) -> int:
        """The patient's date offset: the same for every date of theirs, never 0."""
        n = int.from_bytes(self._mac("date-shift", person)[:8], "big") % (2 * self.max_shift_days)
        return n - self.max_shift_days if n < self.max_shift_days else n - self.max_shift_days + 1

    # -- masks
    def mask_date(self, value: str, person: str) -> str:
        days = _dt.timedelta(days=self.shift_days(person))
        if len(value) == 10:
            return (_dt.date.fromisoformat(value) + days).isoformat()
        moment = _dt.datetime.fromisoformat(value.replace("Z", "+00:00")) + days
        return moment.astimezone(_dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"

    def mask_identifier(self, value: str, purpose: str = "identifier") -> str:
        stream = self._stream(purpose, value, len(value))
        out = []
        for ch, b in zip(value, stream, strict=True):
            if ch.isdigit():
                out.append(string.digits[b % 10])
            elif ch.isascii() and ch.isalpha():
                letter = string.ascii_uppercase[b % 26]
                out.append(letter if ch.isupper() else letter.lower())
            else:
                out.append(ch)
        return "".join(out)

    def mask_name(self, value: str, kind: str, sex: object = None) -> str:
        """A substitute name; a given name is a woman's for a woman and a man's for a man (both lists
        when the sex is unknown)."""
        return pick_name(self._key, kind, value, given_names(sex) if kind == "given_name" else FAMILY_NAMES)

    def mask_postcode(self, value: str) -> str:
        text = value.strip().upper()
        area_len = 0
        while area_len < len(text) and area_len < 2 and text[area_len].isalpha():
            area_len += 1
        compact = text.replace(" ", "")
        stream = self._stream("postcode", compact, len(text))
        out = list(text[:area_len])
        rest = text[area_len:]
        inward_start = len(rest.replace(" ", "")) - 3  # the last three characters are the inward code
        pos = 0
        for ch, b in zip(rest, stream[area_len:], strict=False):
            if ch == " ":
                out.append(ch)
                continue
            if ch.isdigit():
                out.append(string.digits[b % 10] if pos != 0 else string.digits[1 + b % 9])
            elif pos >= inward_start:
                out.append(_INWARD_LETTERS[b % len(_INWARD_LETTERS)])
            else:
                out.append(string.ascii_uppercase[b % 26])
            pos += 1
        return "".join(out)

    def mask_chi(self, chi: str, person: str | None = None) -> str:
        if len(chi) != 10 or not chi.isdigit():
            return self.mask_identifier(chi, "chi")
        born = _chi_date(chi[:6])
        if born is not None:
            shifted = born + _dt.timedelta(days=self.shift_days(person or chi))
            prefix = shifted.strftime("%d%m%y")
        else:
            prefix = self.mask_identifier(chi[:6], "chi-prefix")
        serial = int(chi[6:9])
        half, parity = divmod(serial, 2)
        for _ in range(500):  # cycle-walk the permutation until the check digit exists
            half = self._serial_perm[half]
            candidate = f"{prefix}{2 * half + parity:03d}"
            check = chi_check_digit(candidate)
            if check is not None:
                return f"{candidate}{check}"
        raise AssertionError("no valid CHI serial in a permutation cycle")  # cannot happen: cycles contain valid serials

    # -- rows
    def mask_row(self, table: TableSpec, row: Mapping[str, Any]) -> dict[str, Any]:
        """Mask a converted row (typed values as the record format yields them)."""
        person = row.get(table.person_column)
        person = str(person) if person is not None else ""
        sex = next((row.get(c) for c in SEX_COLUMNS if c in table.columns), None)
        out: dict[str, Any] = {}
        for name, col in table.columns.items():
            v = row.get(name)
            if v is None or col.mask == "keep":
                out[name] = v
            elif col.mask == "drop":
                out[name] = None
            elif col.mask == "chi":
                out[name] = self.mask_chi(str(v), person if name != table.person_column else str(v))
            elif col.mask in ("given_name", "family_name"):
                out[name] = self.mask_name(str(v), col.mask, sex)
            elif col.mask == "shift_date":
                out[name] = self.mask_date(str(v), person)
            elif col.mask == "postcode":
                out[name] = self.mask_postcode(str(v))
            else:  # identifier
                out[name] = self.mask_identifier(str(v))
        return out

    def mask_rows(self, table: str, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        spec = self.format.table(table)
        convert = spec.converter().convert
        return [self.mask_row(spec, convert(r)) for r in rows]


def load_mask_key(path: Path, create: bool = True) -> bytes:
    """The masking key (32 random bytes, hex, 0600). Separate from the vault's keys on purpose:
    test copies are handed to people who must never hold a key that opens the vault."""
    path = Path(path)
    if path.exists():
        try:
            key = bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise IngestError(f"{path} is not a masking key (64 hex characters)") from None
        if len(key) < 16:
            raise IngestError(f"{path} holds a key shorter than 128 bits")
        return key
    if not create:
        raise IngestError(f"no masking key at {path}")
    key = os.urandom(32)
    write_private_file(path, key.hex().encode() + b"\n")
    return key


def mask_file(source: str | Path, target: str | Path, fmt: RecordFormat, key: bytes,
              table: str | None = None) -> dict[str, int]:
    """Mask a source file (CSV/XLSX/JSON) into CSV file(s) of the same columns.

    One input table writes ``target`` (a file); several (an XLSX or JSON of many tables) write
    ``target/<table>.csv``. Bad rows are reported like an ingest and nothing is written.
    """
    from .sources import close_inputs, read_source

    masker = Masker(key, fmt)
    inputs = read_source(source, fmt, table)
    try:
        return _mask_inputs(inputs, target, fmt, masker)
    finally:
        close_inputs(inputs)


def _mask_inputs(inputs: list, target: str | Path, fmt: RecordFormat, masker: Masker) -> dict[str, int]:
    results: dict[str, list[dict[str, Any]]] = {}
    problems: list[RowProblem] = []
    total = 0
    for ti in inputs:
        spec = fmt.table(ti.table)
        conv = spec.converter()
        bad_header = conv.check_header(ti.header)
        if bad_header:
            problems.append(RowProblem(ti.table, 0, f"{ti.source} header", "; ".join(bad_header)))
            continue
        out = results.setdefault(ti.table, [])
        for n, (where, raw) in enumerate(ti.rows, start=1):
            total += 1
            try:
                if "__error__" in raw:
                    raise RowError(raw["__error__"])
                out.append(masker.mask_row(spec, conv.convert(raw)))
            except RowError as exc:
                problems.append(RowProblem(ti.table, n, where, str(exc)))
    if problems:
        raise IngestRejected(problems, total)
    target = Path(target)
    if len(results) > 1:
        target.mkdir(parents=True, exist_ok=True)
    counts = {}
    for tname, rows in results.items():
        path = target / f"{tname}.csv" if len(results) > 1 else target
        spec = fmt.table(tname)
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(list(spec.columns))
            for r in rows:
                w.writerow(["" if r[c] is None else ("true" if r[c] is True else "false" if r[c] is False else r[c])
                            for c in spec.columns])
        counts[tname] = len(rows)
    return counts

