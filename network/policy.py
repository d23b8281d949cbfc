"""Endorsement policies in Fabric's syntax, evaluated over the identities that signed.

    MAJORITY | ANY | ALL                         implicit: over the channel's application orgs' peers
    AND('A.peer', 'B.peer')                      every sub-policy
    OR('A.member', 'B.member')                   any sub-policy
    OutOf(2, 'A.peer', 'B.peer', 'C.peer')       at least n sub-policies

A principal is ``'<MSP id>.<role>'`` with role member, peer, admin, client or orderer. As in
Fabric, one signature satisfies at most one principal of a policy.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ROLES = ("member", "peer", "admin", "client", "orderer")


class PolicyError(ValueError):
    """A policy string that does not parse or names unknown organisations."""


@dataclass(frozen=True)
class Principal:
    msp_id: str
    role: str

    def satisfied_by(self, msp_id: str, node_role: str | None) -> bool:
        if msp_id != self.msp_id:
            return False
        return self.role == "member" or node_role == self.role

    def __str__(self) -> str:
        return f"'{self.msp_id}.{self.role}'"


@dataclass(frozen=True)
class NOutOf:
    n: int
    rules: tuple[Policy, ...]

    def __str__(self) -> str:
        return f"OutOf({self.n}, {', '.join(str(r) for r in self.rules)})"


Policy = Principal | NOutOf
Signer = tuple[str, str | None]  # (msp id, node role)

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z]+)|(?P<num>\d+)|'(?P<str>[^']*)'|\"(?P<dstr>[^\"]*)\"|(?P<sym>[(),]))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PolicyError(f"unexpected character {text[pos]!r} at position {pos} in policy {text!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        val = m.group(kind)
        out.append(("str" if kind == "dstr" else kind, val))
    return out


def parse_policy(text: str, orgs: Sequence[str] = ()) -> Policy:
    """Parse a policy. ``orgs`` (MSP ids of the channel's hospitals) resolve MAJORITY/ANY/ALL and,
    when given, every principal must name one of them."""
    if not isinstance(text, str) or not text.strip():
        raise PolicyError("policy must be a non-empty string")
    word = text.strip().upper()
    if word in ("MAJORITY", "ANY", "ALL"):
        if not orgs:
            raise PolicyError(f"{word} needs the channel's organisations")
        rules = tuple(Principal(o, "peer") for o in orgs)
        n = {"MAJORITY": len(orgs) // 2 + 1, "ANY": 1, "ALL": len(orgs)}[word]
        return NOutOf(n, rules)
    toks = _tokens(text)
    pos = 0

    def expect(sym: str) -> None:
        nonlocal pos
        if pos >= len(toks) or toks[pos] != ("sym", sym):
            got = toks[pos][1] if pos < len(toks) else "end of policy"
            raise PolicyError(f"expected {sym!r} but found {got!r} in policy {text!r}")
        pos += 1

    def principal(s: str) -> Principal:
        msp, _, role = s.rpartition(".")
        if not msp or role not in ROLES:
            raise PolicyError(f"principal {s!r} must be 'MSPID.role' with role one of {', '.join(ROLES)}")
        if orgs and msp not in orgs:
            raise PolicyError(f"principal {s!r} names an organisation that is not on the channel")
        return Principal(msp, role)

    def expr() -> Policy:
        nonlocal pos
        if pos >= len(toks):
            raise PolicyError(f"policy {text!r} ends too early")
        kind, val = toks[pos]
        pos += 1
        if kind == "str":
            return principal(val)
        if kind != "name" or val.upper() not in ("AND", "OR", "OUTOF"):
            raise PolicyError(f"unexpected {val!r} in policy {text!r} (expected AND, OR, OutOf or a principal)")
        op = val.upper()
        expect("(")
        n = None
        if op == "OUTOF":
            if pos >= len(toks) or toks[pos][0] != "num":
                raise PolicyError(f"OutOf needs a number first in policy {text!r}")
            n = int(toks[pos][1])
            pos += 1
            expect(",")
        rules = [expr()]
        while pos < len(toks) and toks[pos] == ("sym", ","):
            pos += 1
            rules.append(expr())
        expect(")")
        if op == "AND":
            n = len(rules)
        elif op == "OR":
            n = 1
        assert n is not None
        if not 1 <= n <= len(rules):
            raise PolicyError(f"OutOf({n}, …) with {len(rules)} sub-policies can never be satisfied")
        return NOutOf(n, tuple(rules))

    result = expr()
    if pos != len(toks):
        raise PolicyError(f"unexpected {toks[pos][1]!r} after the end of policy {text!r}")
    return result


def _eval(policy: Policy, signers: Sequence[Signer], used: list[bool]) -> bool:
    if isinstance(policy, Principal):
        for i, (msp, role) in enumerate(signers):
            if not used[i] and policy.satisfied_by(msp, role):
                used[i] = True
                return True
        return False
    count = 0
    snapshot = list(used)
    for rule in policy.rules:
        if _eval(rule, signers, used):
            count += 1
            if count >= policy.n:
                return True
    used[:] = snapshot
    return False


def evaluate(policy: Policy, signers: Iterable[Signer]) -> bool:
    """True when the distinct signers ``(msp_id, node_role)`` satisfy ``policy``."""
    uniq = list(dict.fromkeys(signers))
    return _eval(policy, uniq, [False] * len(uniq))


def plan_orgs(policy: Policy, orgs: Sequence[str], first: str | None = None, rotate: int = 0) -> list[str]:
    """The smallest set of organisations whose peers satisfy ``policy``: ``first`` (the gateway's own
    organisation) when it can take part, the others chosen starting at offset ``rotate`` so that
    load spreads over the hospitals. Raises PolicyError when no set of the given orgs suffices."""
    others = [o for o in orgs if o != first]
    if others:
        k = rotate % len(others)
        others = others[k:] + others[:k]
    for size in range(1, len(orgs) + 1):
        candidates = []
        if first in orgs:
            candidates += [[first, *c] for c in itertools.combinations(others, size - 1)]
        candidates += [list(c) for c in itertools.combinations(others, size)]
        for combo in candidates:
            if evaluate(policy, [(o, "peer") for o in combo]):
                return combo
    raise PolicyError(f"no combination of peers can be derived which satisfy the endorsement policy {policy}")
