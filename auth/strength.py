"""Strength check for FlexPass textual keys: refuse what an attacker would guess early.

The estimate is zxcvbn's (Dropbox's guess-count model: ranked dictionaries of passwords, English
words, names and TV/film vocabulary, l33t substitutions, keyboard patterns, sequences, repeats and
dates, combined by the minimum-guesses decomposition). A key is accepted when its estimated
guess count reaches ``10**min_guesses_log10`` (default 10^10, zxcvbn's "very unguessable: strong
protection from an offline slow-hash attack" band) and none of these hold, each of which zxcvbn
alone underrates or ignores:

- shorter than ``min_key_length`` characters (default 12);
- it contains the username or another identifying input (hospital, role, name parts);
- it is built on a well-known phrase (pangrams, quotes, lyrics, proverbs: ``phrases.py``), scored
  as one dictionary entry so the rest of the key must carry the strength;
- a long part repeats ("Summer2024!Summer"): the repetition is removed before scoring;
- it is mostly *context words* — the labels of the user's chosen pictures, the role — which
  anyone who saw the graphical key knows: they are removed and the rest must be strong.

zxcvbn keeps its user-input dictionary in a module global, so calls are serialised by a lock.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from dataclasses import dataclass, field

from zxcvbn import zxcvbn as _zxcvbn

from .errors import InvalidInput, WeakKey
from .phrases import COMMON_PHRASES

_ZXCVBN_MAX = 72  # zxcvbn refuses longer input; the rest only adds strength, so ignoring it is safe
_lock = threading.Lock()

_UNLEET = str.maketrans({"@": "a", "4": "a", "3": "e", "1": "i", "!": "i", "0": "o", "$": "s", "5": "s",
                         "7": "t", "+": "t", "8": "b", "9": "g", "|": "l"})


def _compact(text: str) -> str:
    """Lowercase letters and digits only: how phrases are compared."""
    return re.sub(r"[^0-9a-z]", "", unicodedata.normalize("NFKD", text).casefold())


def _compact_unleet(text: str) -> str:
    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", text).casefold().translate(_UNLEET))


_PHRASES: tuple[str, ...] = tuple(
    sorted({_compact(p) for p in COMMON_PHRASES if len(_compact(p)) >= 6}, key=len, reverse=True)
)
# The whole list is one "dictionary": a phrase costs the attacker at most len(list) guesses.
_PHRASE_GUESSES_LOG10 = math.log10(max(2, len(_PHRASES)))

_REASON_TEXT = {
    "too-short": "it is shorter than {min_len} characters",
    "contains-personal-info": "it contains your username or another detail about your account",
    "context-words": "it is mostly the names of your pictures or words about your account",
    "common-phrase": "it is built on a well-known phrase",
    "dictionary-word": "it is mostly common words or passwords",
    "sequence": "it contains a sequence such as abc or 6543",
    "repeat": "it repeats characters or words",
    "keyboard-pattern": "it contains a keyboard pattern such as qwerty",
    "date": "it contains a date or year",
    "predictable": "it would be guessed too quickly",
}

_PATTERN_REASON = {
    "dictionary": "dictionary-word",
    "sequence": "sequence",
    "repeat": "repeat",
    "spatial": "keyboard-pattern",
    "date": "date",
    "regex": "date",
}


@dataclass(frozen=True)
class StrengthReport:
    """The verdict on a candidate key. ``guesses_log10`` is log10 of the estimated guesses."""

    accepted: bool
    guesses_log10: float
    score: int  # zxcvbn's 0..4 band of the final estimate
    reasons: list[str] = field(default_factory=list)
    warning: str = ""
    suggestions: list[str] = field(default_factory=list)

    def explain(self, min_key_length: int = 12) -> str:
        if self.accepted:
            return "The key is strong enough."
        parts = [_REASON_TEXT.get(r, r).format(min_len=min_key_length) for r in self.reasons]
        return "This key is too predictable: " + "; ".join(parts) + "."


def _score(guesses_log10: float) -> int:
    for band, limit in enumerate((3, 6, 8, 10)):
        if guesses_log10 < limit:
            return band
    return 4


def _run_zxcvbn(text: str, user_inputs: list[str]) -> dict:
    with _lock:
        return _zxcvbn(text[:_ZXCVBN_MAX], user_inputs=user_inputs)


def _longest_repeat(text: str, min_len: int = 4) -> str | None:
    """The longest substring (>= ``min_len``) occurring twice without overlap, case-insensitively."""
    low = text.casefold()
    n = len(low)
    for size in range(n // 2, min_len - 1, -1):
        seen: dict[str, int] = {}
        for i in range(n - size + 1):
            chunk = low[i : i + size]
            first = seen.setdefault(chunk, i)
            if i - first >= size:
                return text[i : i + size]
    return None


def assess_key(
    key: str,
    *,
    user_inputs: list[str] | tuple[str, ...] = (),
    context_words: list[str] | tuple[str, ...] = (),
    min_key_length: int = 12,
    max_key_length: int = 256,
    min_guesses_log10: float = 10.0,
) -> StrengthReport:
    """Estimate how predictable ``key`` is. Raises :class:`InvalidInput` only for malformed input
    (not a string, empty, too long); a weak key is a report with ``accepted=False``.

    ``user_inputs`` (username, hospital…) must not appear in the key at all; ``context_words``
    (the role, the labels of the user's chosen pictures…) are merely cheap for an attacker: they
    are ranked first in zxcvbn's dictionary. A key that spells out the chosen pictures' labels is
    refused that way, so seeing the graphical key does not give the textual one away."""
    if not isinstance(key, str) or not key:
        raise InvalidInput("the textual key must be a non-empty string")
    if len(key) > max_key_length:
        raise InvalidInput(f"the textual key must be at most {max_key_length} characters")
    if any(unicodedata.category(c) == "Cc" for c in key):
        raise InvalidInput("the textual key must not contain control characters")
    key = unicodedata.normalize("NFKC", key)
    reasons: list[str] = []
    inputs = [i for i in (str(u).strip() for u in user_inputs) if i]
    if len(key) < min_key_length:
        reasons.append("too-short")

    compact = _compact(key)
    for item in inputs:
        for token in {_compact(item), *(_compact(t) for t in re.split(r"[\s._@-]+", item))}:
            if len(token) >= 4 and (token in compact or token[::-1] in compact):
                reasons.append("contains-personal-info")
                break
        if "contains-personal-info" in reasons:
            break

    zx_inputs = [i.casefold() for i in [*inputs, *(str(w).strip() for w in context_words)] if i]
    result = _run_zxcvbn(key, zx_inputs)
    guesses_log10 = float(result["guesses_log10"])
    warning = result["feedback"].get("warning", "") or ""
    suggestions = list(result["feedback"].get("suggestions", []))
    weak_patterns = [
        _PATTERN_REASON[m["pattern"]]
        for m in result["sequence"]
        if m["pattern"] in _PATTERN_REASON and len(m["token"]) >= 3
    ]

    # A repeated part adds almost nothing: score the key with the repetition removed.
    reduced = key
    for _ in range(4):
        rep = _longest_repeat(reduced)
        if rep is None:
            break
        idx = reduced.casefold().rfind(rep.casefold())
        reduced = reduced[:idx] + reduced[idx + len(rep) :]
    if reduced != key:
        reduced_log10 = float(_run_zxcvbn(reduced, zx_inputs)["guesses_log10"]) + 1.0
        if reduced_log10 < guesses_log10:
            guesses_log10 = reduced_log10
            weak_patterns.append("repeat")
            warning = warning or "Repeated words and characters add almost no strength."

    # Well-known phrases count as one dictionary entry; the rest of the key must carry the strength.
    for variant in {compact, _compact_unleet(key)}:
        for phrase in _PHRASES:
            if phrase in variant:
                rest = variant.replace(phrase, "", 1)
                rest_log10 = float(_run_zxcvbn(rest, [])["guesses_log10"]) if rest else 0.0
                estimate = _PHRASE_GUESSES_LOG10 + rest_log10 + math.log10(len(rest) + 1)
                if estimate < guesses_log10:
                    guesses_log10 = estimate
                if estimate < min_guesses_log10 and "common-phrase" not in reasons:
                    reasons.append("common-phrase")
                    warning = "This is a well-known phrase; attackers try those first."
                break

    # Context words (picture labels, role…) are known to whoever saw the graphical key: strip them
    # and let what remains carry the strength.
    words = sorted({w for w in (_compact(str(c)) for c in context_words) if len(w) >= 3}, key=len, reverse=True)
    if words:
        rest, removed = compact, 0
        for w in words:
            removed += rest.count(w)
            rest = rest.replace(w, "")
        if removed:
            rest_log10 = float(_run_zxcvbn(rest, [])["guesses_log10"]) if rest else 0.0
            estimate = removed * math.log10(len(words) + 1) + rest_log10
            if estimate < guesses_log10:
                guesses_log10 = estimate
            if estimate < min_guesses_log10:
                reasons.append("context-words")

    if guesses_log10 < min_guesses_log10 and not {"common-phrase", "context-words"} & set(reasons):
        found = [p for p in dict.fromkeys(weak_patterns)]
        reasons.extend(found or ["predictable"])
    if reasons and not suggestions:
        suggestions = ["Describe your secret in your own words, with uncommon words and details only you know."]
    return StrengthReport(
        accepted=not reasons,
        guesses_log10=round(guesses_log10, 2),
        score=_score(guesses_log10),
        reasons=list(dict.fromkeys(reasons)),
        warning=warning,
        suggestions=suggestions,
    )


def check_key_strength(
    key: str,
    *,
    user_inputs: list[str] | tuple[str, ...] = (),
    context_words: list[str] | tuple[str, ...] = (),
    min_key_length: int = 12,
    max_key_length: int = 256,
    min_guesses_log10: float = 10.0,
) -> StrengthReport:
    """Like :func:`assess_key`, but raise :class:`WeakKey` (with reasons) when the key is refused."""
    report = assess_key(
        key, user_inputs=user_inputs, context_words=context_words, min_key_length=min_key_length, max_key_length=max_key_length,
        min_guesses_log10=min_guesses_log10,
    )
    if not report.accepted:
        raise WeakKey(report.explain(min_key_length), reasons=report.reasons, suggestions=report.suggestions)
    return report


__all__ = ["StrengthReport", "assess_key", "check_key_strength"]
