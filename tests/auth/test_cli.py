"""``serums auth …`` end to end on a fresh data directory."""

from __future__ import annotations

import json

import pytest

from serums.cli import main

from .conftest import IMAGES, KEY


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    for var in ("SERUMS_DATABASE_URL", "SERUMS_AUTH_DATABASE_URL", "SERUMS_AUTH_PEPPER", "SERUMS_AUTH_JWT_SECRET",
                "SERUMS_KEY_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SERUMS_AUTH_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("SERUMS_AUTH_ARGON2_ITERATIONS", "1")
    monkeypatch.setenv("THE_KEY", KEY)
    assert main(["--data-dir", str(tmp_path), "network", "init", "--hospitals", "lothian,zmc"]) == 0
    return tmp_path


def run(data_dir, *argv) -> int:
    return main(["--data-dir", str(data_dir), "auth", *argv])


def test_register_list_suspend_report(data_dir, capsys):
    assert run(data_dir, "init") == 0
    qr = data_dir / "qr.png"
    assert run(data_dir, "register", "--username", "dr.cli", "--role", "specialist", "--hospital", "lothian",
               "--images", ",".join(IMAGES), "--key-env", "THE_KEY", "--qr", str(qr)) == 0
    out = capsys.readouterr().out
    assert "enrolled dr.cli as u-" in out and "otpauth://totp/" in out and qr.read_bytes().startswith(b"\x89PNG")
    codes = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert len(codes) == 10 and all(len(c) == 19 for c in codes)
    user_id = out.split(" as ")[1].split()[0]

    assert run(data_dir, "users") == 0
    assert "dr.cli" in capsys.readouterr().out
    assert run(data_dir, "unlock", "dr.cli") == 0
    assert run(data_dir, "suspend", user_id) == 0
    assert "suspended" in capsys.readouterr().out
    assert run(data_dir, "reinstate", user_id) == 0
    assert run(data_dir, "report") == 0
    report = json.loads(capsys.readouterr().out.split("reinstated\n")[-1])
    assert report["attempts"] == 0 and set(report["methods"]) == {"text", "graphical"}


def test_expected_failures_are_one_line(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("WEAK", "password12345")
    assert run(data_dir, "register", "--username", "dr.weak", "--role", "specialist", "--hospital", "lothian",
               "--images", ",".join(IMAGES), "--key-env", "WEAK") == 1
    err = capsys.readouterr().err
    assert err.startswith("serums: This key is too predictable") and "Traceback" not in err
    assert run(data_dir, "register", "--username", "dr.far", "--role", "specialist", "--hospital", "narnia",
               "--images", ",".join(IMAGES), "--key-env", "THE_KEY") == 1
    assert "no usable certificate authority" in capsys.readouterr().err
    assert run(data_dir, "suspend", "u-unknown") == 1
    assert run(data_dir, "check-key", "--key-env", "WEAK") == 1
    assert json.loads(capsys.readouterr().out)["accepted"] is False
    assert run(data_dir, "check-key", "--key-env", "THE_KEY") == 0


def test_images_export(data_dir, capsys):
    assert run(data_dir, "images") == 0
    assert "animals.owl" in capsys.readouterr().out
    assert run(data_dir, "images", "--export", str(data_dir / "pics")) == 0
    assert len(list((data_dir / "pics").glob("*.png"))) == 96
