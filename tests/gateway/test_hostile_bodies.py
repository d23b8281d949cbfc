"""Hostile JSON bodies on every endpoint that takes one: 400 problem+json, never a 500.

JSON nested a thousand deep made ``json.loads`` raise RecursionError, and an integer literal of
4,301 digits a ValueError (Python's int_max_str_digits), on every JSON endpoint, anonymously. The
app now reads every JSON body once, before routing (``gateway.app.parse_json_body``)."""

from __future__ import annotations

import re

import pytest

from gateway.app import MAX_JSON_DEPTH, parse_json_body
from gateway.problems import PROBLEM_JSON, Problem

DEEP = '{"a": ' + "[" * 1000 + "]" * 1000 + "}"
LONG_INT = '{"ttl_seconds": ' + "9" * 4301 + "}"
HOSTILE = {"deep": DEEP, "long-int": LONG_INT, "nan": '{"x": NaN}', "not-utf8": b'{"x": "\xff"}'}


def json_endpoints(app) -> list[tuple[str, str]]:
    """(method, path) of every route that takes a body, path parameters filled in."""
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            out.append((method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"x-\1", rule.rule)))
    return out


def test_every_body_taking_endpoint_is_covered(app):
    spec = app.test_client().get("/openapi.json").json
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                  if m in ("post", "put", "patch", "delete")}
    found = {(m, r.rule.replace("<", "{").replace(">", "}")) for r in app.url_map.iter_rules()
             for m in (r.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}}
    found = {(m, re.sub(r"\{[^:}]+:", "{", p)) for m, p in found}
    assert documented <= found and len(json_endpoints(app)) >= 30


@pytest.mark.parametrize("payload", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_json_is_400_problem_on_every_endpoint(app, payload):
    client = app.test_client()
    body = HOSTILE[payload]
    failures = []
    for method, path in json_endpoints(app):
        r = client.open(path, method=method, data=body, content_type="application/json")
        if r.status_code != 400 or r.mimetype != PROBLEM_JSON or r.json["type"] != "/problems/bad-request":
            failures.append((method, path, r.status_code, r.get_data()[:120]))
    assert not failures


def test_the_detail_says_what_is_wrong():
    with pytest.raises(Problem, match=f"deeper than {MAX_JSON_DEPTH}"):
        parse_json_body(DEEP.encode())
    with pytest.raises(Problem, match="more than 4300 digits"):
        parse_json_body(LONG_INT.encode())
    with pytest.raises(Problem, match=r"not JSON: Expecting value \(line 1, column 7\)"):
        parse_json_body(b'{"a": }')
    # just inside the limit is fine; one level more is not
    assert parse_json_body(("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode()) is not None
    with pytest.raises(Problem):
        parse_json_body(("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode())


def test_a_body_over_the_limit_is_413(app):
    r = app.test_client().post("/auth/login", data=b'{"x": "' + b"a" * (3 * 1024 * 1024) + b'"}',
                               content_type="application/json")
    assert r.status_code == 413 and r.json["type"] == "/problems/payload-too-large"
