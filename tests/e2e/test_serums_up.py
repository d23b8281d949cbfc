"""`serums up` on an empty data directory, then `serums demo` against it, then Ctrl-C: the main job."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from serums.supervisor import free_port


@pytest.mark.slow
def test_up_demo_and_clean_stop(tmp_path):
    port = free_port()
    env = {**os.environ, "SERUMS_DATA_DIR": str(tmp_path)}
    env.pop("SERUMS_DATABASE_URL", None)
    up = subprocess.Popen(
        [sys.executable, "-m", "serums", "up", "--patients", "60", "--listen", f"127.0.0.1:{port}",
         "--node-listen", f"127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        out = "".join(lines)
        assert "SERUMS is up" in out, out
        assert "[up 8/8]" in out and "rule validity 100%" in out
        assert "dr.hughes" in out and "auditor.martin" in out
        demo = subprocess.run([sys.executable, "-m", "serums", "demo"], capture_output=True, text=True, env=env,
                              timeout=180)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "Tour complete." in demo.stdout
        assert "token-presenter-mismatch" in demo.stdout  # the stolen token was refused
        assert "ledger verification: OK" in demo.stdout
        # one owner per data directory: a second `serums up` exits at once, naming the first
        second = subprocess.run([sys.executable, "-m", "serums", "up", "--listen", f"127.0.0.1:{free_port()}"],
                                capture_output=True, text=True, env=env, timeout=60)
        assert second.returncode == 1 and second.stderr.count("\n") == 1, second.stderr
        assert f"in use by serums up (pid {up.pid}, its node pid" in second.stderr
        # everything it created is private: files 0600 in 0700 directories
        loose = [f"{p} {stat.S_IMODE(p.lstat().st_mode):o}" for p in [tmp_path, *tmp_path.rglob("*")]
                 if stat.S_IMODE(p.lstat().st_mode) & ~(0o700 if p.is_dir() else 0o600)]
        assert loose == []
    finally:
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=60)
    assert up.returncode == 0, rest
    assert "[up] stopped" in rest
    assert not (tmp_path / "up.json").exists()
    totp = subprocess.run([sys.executable, "-m", "serums", "demo", "totp", "dr.hughes"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert totp.returncode == 0 and totp.stdout.strip().isdigit()
    bad = subprocess.run([sys.executable, "-m", "serums", "demo", "totp", "nobody"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode == 1 and "not a demo user" in bad.stderr and "Traceback" not in bad.stderr
