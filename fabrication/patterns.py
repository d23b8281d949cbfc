"""String formats: one pattern both generates values and checks them.

Pattern language (a small, generating subset of regular expressions):

- ``#`` a digit, ``A`` an upper-case letter, ``a`` a lower-case letter
- ``[ABD-HJ]`` one character of the class, ``(EH|G|KY)`` one of the alternatives
- a postfix ``?`` makes the previous token optional (present in half the rows)
- ``{column}`` / ``{column:format}`` the row's value of a column (dates use strftime formats)
- ``{parity:EXPR}`` one digit, odd where EXPR is true and even where it is false
- ``\\x`` a literal ``x``; any other character stands for itself

Example — a CHI-like number: ``{date_of_birth:%d%m%y}##{parity:sex == 'M'}#``; a Scottish
postcode: ``(EH|G|KY|FK|DD|AB)[1-9]#? #[ABD-HJLNP-UW-Z][ABD-HJLNP-UW-Z]``.
"""

from __future__ import annotations

import datetime as _dt
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class PatternError(ValueError):
    pass


@dataclass
class Tok:
    kind: str  # lit | chars | alt | col | parity
    chars: str = ""
    alts: tuple[str, ...] = ()
    name: str = ""
    fmt: str = ""
    optional: bool = False


def _expand_class(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            a, b = body[i], body[i + 2]
            if ord(b) < ord(a):
                raise PatternError(f"bad range {a}-{b}")
            out.extend(chr(c) for c in range(ord(a), ord(b) + 1))
            i += 3
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def parse_pattern(pattern: str) -> list[Tok]:
    toks: list[Tok] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= len(pattern):
                raise PatternError("pattern ends with a lone backslash")
            toks.append(Tok("lit", chars=pattern[i + 1]))
            i += 2
            continue
        if ch == "#":
            toks.append(Tok("chars", chars=string.digits))
        elif ch == "A":
            toks.append(Tok("chars", chars=string.ascii_uppercase))
        elif ch == "a":
            toks.append(Tok("chars", chars=string.ascii_lowercase))
        elif ch == "[":
            j = pattern.find("]", i)
            if j < 0:
                raise PatternError("unclosed [")
            chars = _expand_class(pattern[i + 1 : j])
            if not chars:
                raise PatternError("empty character class")
            toks.append(Tok("chars", chars=chars))
            i = j
        elif ch == "(":
            j = pattern.find(")", i)
            if j < 0:
                raise PatternError("unclosed (")
            toks.append(Tok("alt", alts=tuple(pattern[i + 1 : j].split("|"))))
            i = j
        elif ch == "{":
            j = pattern.find("}", i)
            if j < 0:
                raise PatternError("unclosed {")
            body = pattern[i + 1 : j]
            if body.startswith("parity:"):
                toks.append(Tok("parity", name=body[len("parity:") :].strip()))
            else:
                name, _, fmt = body.partition(":")
                if not name.strip():
                    raise PatternError("empty {} interpolation")
                toks.append(Tok("col", name=name.strip(), fmt=fmt))
            i = j
        elif ch == "?":
            if not toks or toks[-1].kind in ("col", "parity"):
                raise PatternError("'?' must follow a character, class or alternative")
            toks[-1].optional = True
        else:
            toks.append(Tok("lit", chars=ch))
        i += 1
    return toks


def pattern_columns(pattern: str) -> list[str]:
    """Column names the pattern interpolates, plus names used inside parity expressions."""
    return [t.name for t in parse_pattern(pattern) if t.kind in ("col", "parity")]


def pattern_regex(pattern: str) -> re.Pattern:
    parts = []
    for t in parse_pattern(pattern):
        if t.kind == "lit":
            p = re.escape(t.chars)
        elif t.kind == "chars":
            p = "[" + re.escape(t.chars).replace("]", r"\]") + "]"
        elif t.kind == "alt":
            p = "(?:" + "|".join(re.escape(a) for a in t.alts) + ")"
        elif t.kind == "parity":
            p = r"\d"
        else:
            p = ".+?"
        parts.append(f"(?:{p})?" if t.optional else p)
    return re.compile("".join(parts))


def generate(
    pattern: str,
    rng: np.random.Generator,
    n: int,
    column: Callable[[str], tuple[np.ndarray, str]],
    parity: Callable[[str], np.ndarray],
) -> np.ndarray:
    """Generate ``n`` strings. ``column(name)`` gives (values, type) for interpolation and
    ``parity(expr)`` the boolean array for a parity digit."""
    out = np.full(n, "", dtype=object)
    for t in parse_pattern(pattern):
        if t.kind == "lit":
            piece = np.full(n, t.chars, dtype=object)
        elif t.kind == "chars":
            piece = np.asarray(list(t.chars), dtype=object)[rng.integers(0, len(t.chars), n)]
        elif t.kind == "alt":
            piece = np.asarray(t.alts, dtype=object)[rng.integers(0, len(t.alts), n)]
        elif t.kind == "parity":
            odd = parity(t.name).astype(bool)
            d = rng.integers(0, 5, n) * 2 + odd.astype(np.int64)
            piece = d.astype(str).astype(object)
        else:
            vals, typ = column(t.name)
            piece = _format(vals, typ, t.fmt)
        if t.optional:
            piece = np.where(rng.random(n) < 0.5, piece, "")
        out = out + piece
    return out


def _format(vals: np.ndarray, typ: str, fmt: str) -> np.ndarray:
    if typ == "date":
        base = _dt.date(1970, 1, 1)
        f = fmt or "%Y-%m-%d"
        if f == "%d%m%y":  # the common CHI case, vectorised
            d = np.asarray(vals, dtype="int64").astype("datetime64[D]")
            y = d.astype("datetime64[Y]").astype(int) + 1970
            m = d.astype("datetime64[M]").astype(int) % 12 + 1
            day = (d - d.astype("datetime64[M]")).astype(int) + 1
            return np.char.add(np.char.add(np.char.zfill(day.astype(str), 2), np.char.zfill(m.astype(str), 2)),
                               np.char.zfill((y % 100).astype(str), 2)).astype(object)
        return np.array([(base + _dt.timedelta(days=int(v))).strftime(f) for v in vals], dtype=object)
    if fmt:
        return np.array([format(v, fmt) for v in vals.tolist()], dtype=object)
    return np.asarray(vals).astype(str).astype(object)
