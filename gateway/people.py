"""Who is behind a pseudonymous id, for the patient whose trail names them: the chain keeps only
pseudonymous ids; the hospital's directory (auth, off-chain) knows the username, role and hospital.

:func:`with_who` adds ``who`` — ``{"user_id", "display_name", "role", "hospital"}`` — to each
record of a trail page or a list of treatments: the requester of a decision, grant or access, the
presenter of a refused token, the clinician of a treating relationship. An id the directory does not
know (a vault's service identity, a user of another deployment) keeps ``display_name`` = the id.
"""

from __future__ import annotations

from typing import Any

#: the fields that name the person a record is about, in order of precedence
ACTOR_FIELDS = ("requester_id", "presenter_id", "clinician")


def person(services, user_id: str, cache: dict[str, dict] | None = None) -> dict[str, Any]:
    """The directory's entry for ``user_id`` as ``who`` (looked up once per ``cache``)."""
    if cache is not None and user_id in cache:
        return cache[user_id]
    user = services.auth.get_user(user_id)
    if user is None:
        who = {"user_id": user_id, "display_name": user_id,
               "role": "vault" if user_id.startswith("vault-") else None, "hospital": None}
    else:
        who = {"user_id": user_id, "display_name": user.username, "role": user.role, "hospital": user.hospital}
    if cache is not None:
        cache[user_id] = who
    return who


def with_who(services, records: list[dict]) -> list[dict]:
    """``records`` (trail entries ``{kind, id, at, record}`` or plain chain documents), each with
    ``who`` when it names a person."""
    cache: dict[str, dict] = {}
    out = []
    for item in records:
        doc = item.get("record") if isinstance(item.get("record"), dict) else item
        uid = next((doc[f] for f in ACTOR_FIELDS if isinstance(doc.get(f), str) and doc[f]), None)
        out.append({**item, "who": person(services, uid, cache)} if uid else item)
    return out


__all__ = ["ACTOR_FIELDS", "person", "with_who"]
