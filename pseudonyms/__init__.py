"""Substitute names for masking: the name lists and one keyed, sex-consistent pick.

Shared by ``vault``'s masking of test copies and ``fabrication``'s move/transform masking (and the
lists are ``fabrication``'s code lists ``female_given_names``, ``male_given_names`` and
``scottish_surnames``); it imports nothing of the project, so either may use it.

    pick_name(key, "given_name", "Sheila", given_names("F"))   # a woman's name, the same every time

A pick is ``names[HMAC-SHA256(key, purpose ‖ 0x1f ‖ normalised value) mod len(names)]`` with the
original's case style (``SHEILA`` → upper case), so the same original always gets the same
substitute under one key (joins between tables survive) and nobody without the key can recompute it.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from functools import cache
from importlib import resources

import yaml

FEMALE = frozenset({"f", "female", "woman", "w", "2"})
MALE = frozenset({"m", "male", "man", "1"})
LISTS = ("female_given_names", "male_given_names", "scottish_surnames")


@cache
def names(list_name: str) -> tuple[str, ...]:
    """The values of one packaged name list (``LISTS``)."""
    if list_name not in LISTS:
        raise ValueError(f"no name list {list_name!r} ({', '.join(LISTS)})")
    data = yaml.safe_load((resources.files(__package__) / f"{list_name}.yaml").read_text())
    return tuple(str(v) for v in data["values"])


def sex_of(value: object) -> str | None:
    """``F``, ``M`` or None (unknown, missing) for a sex code as records write it."""
    text = "" if value is None else str(value).strip().lower()
    return "F" if text in FEMALE else "M" if text in MALE else None


def given_names(sex: object = None) -> tuple[str, ...]:
    """Women's names for a female code, men's for a male one, both lists when the sex is unknown."""
    s = sex_of(sex)
    female, male = names("female_given_names"), names("male_given_names")
    return female if s == "F" else male if s == "M" else female + male


def family_names() -> tuple[str, ...]:
    return names("scottish_surnames")


def pick_name(key: bytes, purpose: str, value: str, choices: Sequence[str]) -> str:
    """The substitute of ``value`` among ``choices``: keyed, deterministic, case style kept."""
    digest = hmac.digest(key, f"{purpose}\x1f{value.strip().lower()}".encode(), "sha256")
    pick = choices[int.from_bytes(digest[:8], "big") % len(choices)]
    return pick.upper() if value.isupper() else pick.lower() if value.islower() else pick
