"""RFC 9457 problem details: every error of the gateway, as ``application/problem+json``.

A problem has a stable ``type`` (``/problems/<slug>``, documented at that URL), a ``title`` that
never varies for a type, the HTTP ``status``, a ``detail`` for this occurrence, the ``instance``
(the request id) and, where useful, extension members (``errors`` with the fields that failed
validation, ``retry_after`` for a lockout, ``transaction_id`` for a ledger refusal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Response, g, json

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str


# The catalogue: stable slugs that clients may switch on.
TYPES: dict[str, ProblemType] = {}


def problem_type(slug: str, status: int, title: str, description: str) -> ProblemType:
    pt = ProblemType(slug, status, title, description)
    TYPES[slug] = pt
    return pt


BAD_REQUEST = problem_type("bad-request", 400, "Bad request", "The request could not be understood.")
VALIDATION = problem_type(
    "validation-error", 422, "Invalid request",
    "The request's body, query or path did not match the schema; `errors` lists each field and why.",
)
UNAUTHORIZED = problem_type(
    "unauthorized", 401, "Authentication required", "No valid access token was presented."
)
FORBIDDEN = problem_type("forbidden", 403, "Forbidden", "The caller's role does not allow this operation.")
NOT_FOUND = problem_type("not-found", 404, "Not found", "No such resource.")
METHOD_NOT_ALLOWED = problem_type("method-not-allowed", 405, "Method not allowed", "The resource does not support this method.")
CONFLICT = problem_type("conflict", 409, "Conflict", "The request conflicts with the current state.")
PAYLOAD_TOO_LARGE = problem_type("payload-too-large", 413, "Payload too large", "The request body is too large.")
UNSUPPORTED_MEDIA = problem_type(
    "unsupported-media-type", 415, "Unsupported media type", "Send JSON with Content-Type: application/json."
)
TOO_MANY = problem_type("too-many-requests", 429, "Too many requests", "Wait `retry_after` seconds.")
LEDGER_UNAVAILABLE = problem_type(
    "ledger-unavailable", 503, "Ledger unavailable", "The ledger node could not be reached; try again."
)
INTERNAL = problem_type(
    "internal-error", 500, "Internal error",
    "An unexpected error; it was logged with the request id given as `instance`.",
)


def article(word: str) -> str:
    """``a`` or ``an`` before ``word`` in a message (an auditor, an insurer, a gp)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


@dataclass
class Problem(Exception):
    """Raise anywhere in a request to answer with this problem."""

    type: ProblemType
    detail: str = ""
    status: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.type.slug}: {self.detail}"

    @property
    def title(self) -> str:
        return self.type.title

    @property
    def message(self) -> str:
        """What a person reads: the detail of this occurrence, else the type's description."""
        return self.detail or self.type.description

    def response(self) -> Response:
        """This problem as an ``application/problem+json`` response."""
        return problem_response(self.type, self.detail, status=self.status, extra=self.extra, headers=self.headers)


def problem_response(
    pt: ProblemType, detail: str = "", *, status: int | None = None, extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"/problems/{pt.slug}",
        "title": pt.title,
        "status": status or pt.status,
        "detail": detail or pt.description,
    }
    rid = getattr(g, "request_id", None)
    if rid:
        body["instance"] = f"urn:request:{rid}"
    if extra:
        body.update(extra)
    resp = Response(json.dumps(body), status=status or pt.status, mimetype=PROBLEM_JSON)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp
