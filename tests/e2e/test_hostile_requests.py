"""Bad input against the real server (gunicorn serving ``serums.wsgi:app``): what the Flask test
client cannot express. A chunked body over the limit is 413 problem+json; where gunicorn answers
before the application (request line over ``limit_request_line``: 414; a malformed request line: 400;
too many or too large header fields: 431) its answer is short and correct and the connection closes."""

from __future__ import annotations

import socket

import httpx

from .conftest import Stack

LIMIT = 2 * 1024 * 1024  # the app's MAX_CONTENT_LENGTH


def _chunks(total: int, size: int = 64 * 1024):
    yield b'{"username": "'
    sent = 0
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}'


def test_an_over_limit_chunked_body_is_413(stack: Stack):
    r = httpx.post(f"{stack.base_url}/auth/login", content=_chunks(LIMIT + 256 * 1024),
                   headers={"Content-Type": "application/json"}, timeout=30)
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/payload-too-large"


def test_a_deep_or_long_number_body_is_400_through_gunicorn(stack: Stack):
    for body in ('{"a": ' + "[" * 1000 + "]" * 1000 + "}", '{"a": ' + "7" * 4301 + "}"):
        r = httpx.post(f"{stack.base_url}/doctors/share-codes/redeem", content=body,
                       headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 400 and r.json()["type"] == "/problems/bad-request"


def _raw(stack: Stack, request: bytes) -> bytes:
    host, port = stack.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_what_gunicorn_answers_itself_is_short_and_correct(stack: Stack):
    cases = {  # gunicorn's defaults: limit_request_line 4094, limit_request_field_size 8190, limit_request_fields 100
        "request line too long": (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414 URI Too Long"),
        "malformed request line": (b"GARBAGE\r\nHost: x\r\n\r\n", b"400 Bad Request"),
        "header field too large": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
                                   b"431 Request Header Fields Too Large"),
        "too many header fields": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                   + b"".join(b"X-H%d: 1\r\n" % i for i in range(150)) + b"\r\n",
                                   b"431 Request Header Fields Too Large"),
    }
    for name, (request, status) in cases.items():
        answer = _raw(stack, request)  # the server closes the connection after its answer
        assert answer.startswith(b"HTTP/1.1 " + status + b"\r\n"), (name, answer[:300])
        assert len(answer) < 600, (name, len(answer))
        assert b"Traceback" not in answer and b"a" * 100 not in answer, name
