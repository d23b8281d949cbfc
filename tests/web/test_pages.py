"""The pages without a browser (Flask's test client against the same site): redirects, headers,
the cookie's Secure flag over TLS, where sign-in may send the browser, JSON bodies answered as
problem+json."""

from __future__ import annotations

from gateway.web import CSP


def test_the_front_page_sends_strangers_to_sign_in(site):
    client = site.app.test_client()
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/sign-in")
    r = client.get("/patient/record")
    assert r.status_code == 302 and "/sign-in?next=/patient/record" in r.headers["Location"]
    page = client.get("/sign-in")
    assert page.headers["Content-Security-Policy"] == CSP and "csrf_token" in page.get_data(as_text=True)


def test_the_cookie_is_secure_over_tls(site):
    client = site.app.test_client()
    r = client.get("/sign-in", base_url="https://serums.example")
    cookie = r.headers.get("Set-Cookie", "")
    assert "serums_web=" in cookie and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    r = client.get("/sign-in", base_url="http://127.0.0.1")
    assert "Secure" not in r.headers.get("Set-Cookie", "")


def test_sign_in_only_follows_paths_of_this_site(site):
    client = site.app.test_client()
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        body = client.get("/sign-in", query_string={"next": target}).get_data(as_text=True)
        assert "evil.example" not in body, target
    assert 'value="/patient/record"' in client.get("/sign-in?next=/patient/record").get_data(as_text=True)


def test_a_program_posting_json_to_a_page_gets_problem_json(site):
    r = site.app.test_client().post("/sign-in/key", json={"username": "x"})
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert r.json["type"] == "/problems/csrf-refused"
