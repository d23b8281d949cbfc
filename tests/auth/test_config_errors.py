"""Configuration (OWASP Argon2id, secrets on disk) and the error contract (problem+json slugs)."""

from __future__ import annotations

import inspect
import os
import stat
import threading

import pytest

import auth
import auth.errors as errors
from auth import Argon2Params, AuthConfig, AuthError, InvalidInput, database_url_from_env
from auth.config import load_or_create_secret


def test_default_argon2id_parameters_meet_owasp():
    p = Argon2Params()
    assert (p.memory_kib, p.iterations, p.parallelism) == (19456, 2, 1)
    assert p.meets_owasp() and Argon2Params(47104, 1).meets_owasp() and Argon2Params(7168, 5).meets_owasp()
    assert not Argon2Params(4096, 3).meets_owasp() and not Argon2Params(19456, 1).meets_owasp()
    cfg = AuthConfig.ephemeral()
    assert cfg.argon2.meets_owasp() and cfg.wallet_kdf.meets_owasp()


def test_hashes_use_argon2id_with_the_configured_cost():
    from auth.crypto import KeyHasher

    encoded = KeyHasher(Argon2Params()).hash(b"x" * 32)
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_invalid_configuration_is_refused():
    with pytest.raises(InvalidInput, match="pepper"):
        AuthConfig(pepper=b"short", jwt_secret=os.urandom(32))
    with pytest.raises(InvalidInput, match="suspension_cache_ttl"):
        AuthConfig.ephemeral(access_ttl=20, suspension_cache_ttl=30)
    with pytest.raises(InvalidInput, match="min_key_length"):
        AuthConfig.ephemeral(min_key_length=6)


def test_from_env_creates_shared_secret_files(tmp_path):
    cfg1 = AuthConfig.from_env(tmp_path, env={"SERUMS_AUTH_ACCESS_TTL": "300"})
    cfg2 = AuthConfig.from_env(tmp_path, env={})
    assert cfg1.pepper == cfg2.pepper and cfg1.jwt_secret == cfg2.jwt_secret and cfg1.pepper != cfg1.jwt_secret
    assert cfg1.access_ttl == 300 and cfg2.access_ttl == 600
    for name in ("pepper.key", "jwt.key"):
        assert stat.S_IMODE((tmp_path / "auth" / name).stat().st_mode) == 0o600
    env = {"SERUMS_AUTH_PEPPER": "ab" * 32, "SERUMS_AUTH_ARGON2_MEMORY_KIB": "47104", "SERUMS_AUTH_ARGON2_ITERATIONS": "1"}
    cfg3 = AuthConfig.from_env(tmp_path, env=env)
    assert cfg3.pepper == bytes.fromhex("ab" * 32) and cfg3.argon2 == Argon2Params(47104, 1)
    with pytest.raises(InvalidInput):
        AuthConfig.from_env(tmp_path, env={"SERUMS_AUTH_ACCESS_TTL": "ten minutes"})
    assert database_url_from_env(tmp_path, env={}) == f"sqlite:///{tmp_path / 'auth.db'}"
    assert database_url_from_env(tmp_path, env={"SERUMS_DATABASE_URL": "postgresql://x/y"}) == "postgresql://x/y"


def test_concurrent_first_start_agrees_on_one_secret(tmp_path):
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def start():
        barrier.wait()
        results.append(load_or_create_secret(tmp_path / "s" / "pepper.key"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results[0]) == 32


def test_every_error_has_a_stable_slug_status_and_problem_body():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, AuthError)]
    slugs = {}
    for cls in classes:
        assert cls.slug and cls.slug == cls.slug.lower() and " " not in cls.slug
        assert 200 <= cls.status < 600
        slugs.setdefault(cls.slug, []).append(cls.__name__)
    # only the TokenError base shares its slug with its generic subclass
    assert {s: n for s, n in slugs.items() if len(n) > 1} == {"token-invalid": ["TokenError", "TokenInvalid"]}
    err = errors.LoginThrottled(61.2)
    body = err.problem(instance="/login")
    assert body == {"type": "/problems/login-throttled", "title": "Too many failed attempts", "status": 429,
                    "detail": err.detail, "instance": "/login", "retry_after": 62}
    assert "1 min 2 s" in err.detail
    assert errors.InvalidCredentials().problem(base="https://serums.example/problems/")["type"].endswith(
        "/invalid-credentials")
    assert set(errors.__all__) <= set(auth.__all__)  # the gateway imports every error from ``auth``
