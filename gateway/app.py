"""The Flask application factory: blueprints per role, problem+json errors, OpenAPI, hardening.

``create_app()`` builds the app from ``SERUMS_*`` settings (or a mapping of overrides, for tests).
Every request gets a request id (``X-Request-ID``, taken from the client when it is a sane token,
generated otherwise) that appears in the logs and in problem responses; every response carries
security headers; CORS is off unless ``SERUMS_CORS_ORIGINS`` lists allowed origins. The OpenAPI 3
document is generated from the same marshmallow schemas that validate requests and is served at
``/openapi.json``, with interactive documentation at ``/docs`` (Swagger UI served from the
``swagger-ui-bundle`` package, no CDN).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, jsonify, request, send_from_directory
from flask_smorest import Api
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import problems as P

log = logging.getLogger("serums.gateway")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Cache-Control": "no-store",
}

_HTTP_TO_PROBLEM = {
    400: P.BAD_REQUEST, 401: P.UNAUTHORIZED, 403: P.FORBIDDEN, 404: P.NOT_FOUND,
    405: P.METHOD_NOT_ALLOWED, 409: P.CONFLICT, 413: P.PAYLOAD_TOO_LARGE, 415: P.UNSUPPORTED_MEDIA,
    422: P.VALIDATION, 429: P.TOO_MANY,
}

#: JSON bodies nest at most this deep (ours nest 4); deeper ones are refused before any parser recurses.
MAX_JSON_DEPTH = 32


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.request_id = getattr(g, "request_id", "-")
        except RuntimeError:  # outside a request
            record.request_id = "-"
        return True


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(P.Problem)
    def _problem(exc: P.Problem):
        return P.problem_response(exc.type, exc.detail, status=exc.status, extra=exc.extra, headers=exc.headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        pt = _HTTP_TO_PROBLEM.get(status, P.BAD_REQUEST if status < 500 else P.INTERNAL)
        extra = None
        data = getattr(exc, "data", None)  # webargs/flask-smorest validation errors
        if status == 422 and isinstance(data, dict) and "messages" in data:
            extra = {"errors": data["messages"]}
            detail = "the request does not match the schema: " + _summarise(data["messages"])
        else:
            detail = exc.description or pt.description
        return P.problem_response(pt, detail, status=status, extra=extra)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        for exc_type, mapper in app.extensions.get("serums_error_mappers", []):
            if isinstance(exc, exc_type):
                return mapper(exc)
        log.exception("unhandled error")
        return P.problem_response(P.INTERNAL)


_LOCATIONS = {"json", "query", "path", "form", "headers", "files", "cookies"}


def _summarise(messages: Any, path: tuple[str, ...] = ()) -> str:
    """One line from marshmallow's nested error messages: ``field.sub: message; …``."""
    if isinstance(messages, dict):
        parts = []
        for k, v in messages.items():
            sub = path if (not path and k in _LOCATIONS) else (*path, str(k))
            parts.append(_summarise(v, sub))
        return "; ".join(p for p in parts if p)
    text = "; ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
    return f"{'.'.join(path) or 'body'}: {text}"


def _json_depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests (stops counting past ``limit``), without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth > limit:
                return depth
            todo.extend((x, depth + 1) for x in item)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json_body(data: bytes) -> Any:
    """A request body as JSON, or :class:`problems.Problem` ``bad-request`` saying what is wrong:
    not UTF-8, not JSON (with the position), nested deeper than :data:`MAX_JSON_DEPTH`, an integer
    of more digits than Python reads (4,300), ``NaN``/``Infinity``. Never a RecursionError."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise P.Problem(P.BAD_REQUEST, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise P.Problem(P.BAD_REQUEST, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise P.Problem(P.BAD_REQUEST, f"the body is not JSON: {exc.msg} (line {exc.lineno}, "
                                       f"column {exc.colno})") from None
    except ValueError as exc:  # int_max_str_digits, or a refused constant
        text = str(exc)
        if "digits" in text:
            text = "a number in the body has more than 4300 digits"
        raise P.Problem(P.BAD_REQUEST, f"the body is not acceptable JSON: {text}") from None
    if _json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise P.Problem(P.BAD_REQUEST, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _install_body_parsing(app: Flask) -> None:
    """Every JSON body is read and checked once, before routing to a view (and before webargs,
    whose own ``json.loads`` would otherwise meet hostile bodies): bad JSON is 400, a body over
    ``MAX_CONTENT_LENGTH`` is 413, with Content-Length or chunked."""

    @app.before_request
    def _check_body():
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        if request.content_length is None and request.environ.get("wsgi.input_terminated"):
            # a chunked body: werkzeug stops reading at the limit and hands on what it read, so
            # look past the limit on the server's own stream (the read is cached for the view)
            data, limit = request.get_data(cache=True), request.max_content_length
            if limit is not None and len(data) >= limit and request.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()
        if request.is_json:
            data = request.get_data(cache=True)  # with Content-Length over the limit: 413
            if data.strip():
                parse_json_body(data)


def map_error(app: Flask, exc_type: type[BaseException], mapper) -> None:
    """Register how a domain exception becomes a problem response (first match wins)."""
    app.extensions.setdefault("serums_error_mappers", []).append((exc_type, mapper))


def _install_hardening(app: Flask) -> None:
    cors_origins = {o.strip() for o in (app.config.get("SERUMS_CORS_ORIGINS") or "").split(",") if o.strip()}

    @app.before_request
    def _start():
        rid = request.headers.get("X-Request-ID", "")
        g.request_id = rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(resp: Response) -> Response:
        for k, v in SECURITY_HEADERS.items():
            if request.path.startswith("/docs") and k in ("Content-Security-Policy", "Cache-Control"):
                continue
            resp.headers.setdefault(k, v)
        resp.headers["X-Request-ID"] = getattr(g, "request_id", "")
        origin = request.headers.get("Origin")
        if origin and origin in cors_origins:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Vary"] = "Origin"
        elapsed = (time.perf_counter() - getattr(g, "started", time.perf_counter())) * 1000
        log.info("%s %s -> %d (%.1f ms)", request.method, request.path, resp.status_code, elapsed)
        return resp


def create_app(overrides: Mapping[str, Any] | None = None, services: Any = None) -> Flask:
    """The gateway application. With ``services`` (a :class:`gateway.services.Services`), the whole
    API is mounted: auth, patients, doctors, admins, auditors; without, only the infrastructure
    (health, problems, OpenAPI, docs)."""
    app = Flask("serums.gateway")
    app.config.update(
        API_TITLE="SERUMS gateway",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/docs/static/",
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.config.update(overrides or {})
    handler_filter = _RequestIdFilter()
    for h in logging.getLogger().handlers:
        h.addFilter(handler_filter)

    api = Api(app)
    app.extensions["serums_api"] = api
    _install_error_handlers(app)
    _install_hardening(app)
    _install_body_parsing(app)

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.get("/problems/<slug>")
    def problem_doc(slug: str):
        pt = P.TYPES.get(slug)
        if pt is None:
            raise P.Problem(P.NOT_FOUND, f"no problem type {slug!r}")
        return jsonify({"type": f"/problems/{pt.slug}", "title": pt.title, "status": pt.status,
                        "description": pt.description})

    @app.get("/docs/static/<path:filename>")
    def swagger_static(filename: str):
        import swagger_ui_bundle

        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)

    if services is not None:
        from .api import register_api
        from .web import register_web

        register_api(app, services)
        register_web(app)  # the pages people use (gateway/web), on the same application layer
    return app
