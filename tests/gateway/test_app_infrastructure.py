"""The gateway's shared behaviour: problem+json errors, request ids, security headers, OpenAPI."""

from __future__ import annotations

import marshmallow as ma
import pytest
from flask_smorest import Blueprint

from gateway.app import create_app, map_error
from gateway.problems import PROBLEM_JSON


class EchoIn(ma.Schema):
    patient = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=40))
    sections = ma.fields.List(ma.fields.String(), required=True, validate=ma.validate.Length(min=1))


class Boom(Exception):
    pass


class Mapped(Exception):
    pass


@pytest.fixture
def client():
    app = create_app({"TESTING": True, "SERUMS_CORS_ORIGINS": "https://clinic.example"})
    bp = Blueprint("echo", __name__, url_prefix="/echo")

    @bp.route("", methods=["POST"])
    @bp.arguments(EchoIn)
    @bp.response(200, EchoIn)
    def echo(body):
        return body

    @bp.route("/boom")
    def boom():
        raise Boom("secret internals")

    @bp.route("/mapped")
    def mapped():
        raise Mapped("known failure")

    from gateway.problems import CONFLICT, problem_response

    map_error(app, Mapped, lambda exc: problem_response(CONFLICT, str(exc)))
    app.extensions["serums_api"].register_blueprint(bp)
    return app.test_client()


def test_valid_request_passes_and_carries_security_headers_and_request_id(client):
    r = client.post("/echo", json={"patient": "p-123", "sections": ["demographics"]},
                    headers={"X-Request-ID": "req-abcdef12"})
    assert r.status_code == 200 and r.json == {"patient": "p-123", "sections": ["demographics"]}
    assert r.headers["X-Request-ID"] == "req-abcdef12"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert "Access-Control-Allow-Origin" not in r.headers


def test_schema_violations_are_problem_json_with_each_field(client):
    r = client.post("/echo", json={"patient": "p", "extra": 1})
    assert r.status_code == 422 and r.mimetype == PROBLEM_JSON
    body = r.json
    assert body["type"] == "/problems/validation-error" and body["status"] == 422
    assert set(body["errors"]["json"]) == {"patient", "sections", "extra"}
    assert "patient" in body["detail"] and "sections" in body["detail"]
    assert body["instance"].startswith("urn:request:")


def test_unknown_routes_methods_and_bodies_are_problems_not_500(client):
    assert client.get("/nope").json["type"] == "/problems/not-found"
    assert client.delete("/echo").json["type"] == "/problems/method-not-allowed"
    r = client.post("/echo", data="{not json", content_type="application/json")
    assert r.status_code in (400, 422) and r.mimetype == PROBLEM_JSON
    r = client.get("/problems/validation-error")
    assert r.json["status"] == 422


def test_unexpected_errors_are_opaque_and_mapped_errors_keep_their_meaning(client):
    r = client.get("/echo/boom", headers={"X-Request-ID": "bad id with spaces"})
    assert r.status_code == 500 and r.json["type"] == "/problems/internal-error"
    assert "secret internals" not in r.get_data(as_text=True)
    assert r.headers["X-Request-ID"] != "bad id with spaces"  # an unsafe id is replaced
    r = client.get("/echo/mapped")
    assert r.status_code == 409 and r.json["detail"] == "known failure"


def test_cors_only_for_configured_origins(client):
    ok = client.post("/echo", json={"patient": "p-1", "sections": ["x"]}, headers={"Origin": "https://clinic.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://clinic.example"
    other = client.post("/echo", json={"patient": "p-1", "sections": ["x"]}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_openapi_document_and_local_docs(client):
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/echo" in spec["paths"] and "EchoIn" in spec["components"]["schemas"]
    page = client.get("/docs")
    assert page.status_code == 200 and b"/docs/static/swagger-ui-bundle.js" in page.data
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200
