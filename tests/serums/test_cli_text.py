"""What the command line tells a new user: what plain `serums demo` does and how it finds the
running system, and where to start when a data directory is empty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _serums(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERUMS_")}
    return subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(data_dir), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_demo_help_says_what_it_does_and_how_it_finds_the_system(tmp_path):
    out = _serums(tmp_path, "demo", "--help")
    text = " ".join(out.stdout.split())
    assert out.returncode == 0
    assert "Plain `serums demo` runs the 10-step flow" in text
    assert "up.json" in text and "`serums up`" in text and "SERUMS_DATA_DIR" in text


def test_demo_and_ledger_verify_on_an_empty_data_dir_point_at_serums_up(tmp_path):
    for args in (("demo",), ("ledger", "verify")):
        out = _serums(tmp_path, *args)
        assert out.returncode == 1 and out.stdout == "", args
        assert out.stderr.strip().count("\n") == 0 and "`serums up`" in out.stderr, (args, out.stderr)
