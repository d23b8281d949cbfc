"""One settings source: only ``serums/config.py`` reads ``SERUMS_*`` variables, and what it reads
reaches the packages (CORS origins to the app, XDG_DATA_HOME to auth's key files and database)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from network import init_network
from serums.config import AUTH_VARIABLES, VARIABLES, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("analytics", "auth", "chaincode", "fabrication", "gateway", "network", "serums", "vault")
CONFIG_KEYS = ("SERUMS_", "XDG_DATA_HOME")


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and ast.unparse(node.value) == "os"


def _environ_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, code) for each read of configuration from the process environment: ``os.environ.get(K)``,
    ``os.environ[K]``, ``os.getenv(K)`` with K a ``SERUMS_*`` or ``XDG_DATA_HOME`` literal (or a name: a
    reader taking the variable from elsewhere), and ``os.environ`` as a default mapping
    (``env or os.environ``, ``os.environ if env is None else env``, ``dict(os.environ)``). Handing the
    whole environment to a child process (``{**os.environ, …}``) is not a read."""
    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args:
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in ("get", "pop", "setdefault") and _is_os_environ(f.value) \
                    or ast.unparse(f) == "os.getenv":
                key = node.args[0]
            elif ast.unparse(f) == "dict" and _is_os_environ(node.args[0]):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value) and isinstance(node.ctx, ast.Load):
            key = node.slice
        elif isinstance(node, (ast.IfExp, ast.BoolOp)):
            parts = [node.body, node.orelse] if isinstance(node, ast.IfExp) else node.values
            if any(_is_os_environ(p) for p in parts):
                found.append((node.lineno, ast.unparse(node)))
        if key is not None and not (isinstance(key, ast.Constant) and isinstance(key.value, str)
                                    and not key.value.startswith(CONFIG_KEYS)):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_only_serums_config_reads_serums_variables():
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "serums/config.py":
                continue
            offenders += [f"{rel}:{line}: {code}" for line, code in _environ_reads(ast.parse(path.read_text(), rel))]
    assert not offenders, "read the environment only in serums/config.py's Settings:\n" + "\n".join(offenders)


def test_the_grep_catches_a_reader():
    tree = ast.parse('import os\nx = os.environ.get("SERUMS_X", "1")\ny = os.getenv("XDG_DATA_HOME")\n'
                     'z = os.environ["SERUMS_Z"]\nenv = env or os.environ\nw = dict(os.environ)\n'
                     'ok = os.environ.get("HOME")\nchild = {**os.environ, "SERUMS_DATA_DIR": "/d"}\n'
                     'mine = request.environ["wsgi.input"]\n')
    assert [line for line, _ in _environ_reads(tree)] == [2, 3, 4, 5, 6]


def test_every_variable_is_read_and_documented():
    source = (ROOT / "serums" / "config.py").read_text()
    readme = (ROOT / "README.md").read_text()
    for var in [*VARIABLES, *AUTH_VARIABLES]:
        if var.startswith("SERUMS_AUTH_"):
            assert var in (ROOT / "auth" / "config.py").read_text(), var
        else:
            assert f'"{var}"' in source.split("def from_env", 1)[1], f"{var} is documented but never read"
        short = "…" + var.removeprefix("SERUMS_AUTH")  # the table abbreviates SERUMS_AUTH_X as …_X
        assert var in readme or short in readme, f"{var} is missing from the README's configuration table"


def test_defaults_and_values_from_the_environment(tmp_path):
    s = Settings.from_env({"XDG_DATA_HOME": str(tmp_path)})
    assert s.data_dir == tmp_path / "serums"
    assert (s.engine, s.database_url, s.cors_origins, s.max_proposal_skew_s) == ("embedded", None, (), 600.0)
    s = Settings.from_env({"SERUMS_DATA_DIR": str(tmp_path / "d"), "SERUMS_ENGINE": "Fabric",
                           "SERUMS_CORS_ORIGINS": " https://a.example, https://b.example ,",
                           "SERUMS_MAX_PROPOSAL_SKEW_S": "30", "SERUMS_AUTH_ACCESS_TTL": "300"})
    assert s.data_dir == tmp_path / "d" and s.engine == "fabric" and s.max_proposal_skew_s == 30.0
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert s.auth_config().access_ttl == 300
    assert Settings.from_env({"SERUMS_DATA_DIR": "/x"}, data_dir=tmp_path).data_dir == tmp_path  # --data-dir wins
    assert Settings.from_env({"XDG_DATA_HOME": str(tmp_path)}).mqtt == "127.0.0.1:1883"
    assert Settings.from_env({"SERUMS_DATA_DIR": str(tmp_path), "SERUMS_MQTT": "broker.example:8883"}).mqtt \
        == "broker.example:8883"
    assert Settings.from_env({"SERUMS_DATA_DIR": str(tmp_path), "SERUMS_MQTT": "off"}).mqtt is None


@pytest.mark.parametrize("var,value", [("SERUMS_ENGINE", "hyperledger"), ("SERUMS_MAX_PROPOSAL_SKEW_S", "ten"),
                                       ("SERUMS_MAX_PROPOSAL_SKEW_S", "-1"), ("SERUMS_MQTT", "localhost"),
                                       ("SERUMS_MQTT", "broker:99999")])
def test_a_bad_value_is_one_line_naming_the_variable(tmp_path, var, value):
    with pytest.raises(SettingsError, match=var):
        Settings.from_env({"SERUMS_DATA_DIR": str(tmp_path), var: value})
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SERUMS_DATA_DIR": str(tmp_path), var: value}
    run = subprocess.run([sys.executable, "-m", "serums", "ledger", "verify"], env=env, capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and var in run.stderr


def test_xdg_data_home_is_honoured_by_auth_defaults(tmp_path):
    settings = Settings.from_env({"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")})
    config = settings.auth_config()
    assert (tmp_path / "xdg" / "serums" / "auth" / "pepper.key").exists()
    assert config.pepper == bytes.fromhex((tmp_path / "xdg" / "serums" / "auth" / "pepper.key").read_text())
    assert settings.auth_url == f"sqlite:///{tmp_path / 'xdg' / 'serums' / 'auth.db'}"
    assert not (tmp_path / "home").exists()


def test_cors_origins_from_the_environment_reach_the_app(tmp_path):
    from serums.wsgi import create_app

    init_network(tmp_path / "network", ["lothian"])
    env = {"SERUMS_DATA_DIR": str(tmp_path), "SERUMS_CORS_ORIGINS": "https://clinic.example",
           "SERUMS_AUTH_ARGON2_MEMORY_KIB": "1024", "SERUMS_AUTH_ARGON2_ITERATIONS": "1"}
    app = create_app(Settings.from_env(env))
    client = app.test_client()
    allowed = client.get("/healthz", headers={"Origin": "https://clinic.example"})
    assert allowed.headers.get("Access-Control-Allow-Origin") == "https://clinic.example"
    other = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
