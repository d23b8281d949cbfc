"""Every README example runs as written.

- Each ``serums …`` command line in the README's shell blocks parses with the real command-line
  parser (the command, its sub-command and every option exist, with valid values).
- The blocks marked ``<!-- readme-test: serums-up -->`` (the HTTP flow) run as written against a
  fresh ``serums up`` on an empty data directory, found as the README says (``SERUMS_DATA_DIR``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serums.cli import build_parser
from serums.supervisor import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"(?:<!-- readme-test: ([a-z-]+) -->\n)?```([a-z]*)\n(.*?)```", re.S)


def blocks() -> list[tuple[str | None, str, str]]:
    """(marker, language, code) of every fenced block."""
    return [(m[1], m[2], m[3]) for m in FENCE.finditer(README.read_text())]


def serums_commands() -> list[str]:
    """Every `serums …` command line of the shell blocks, alternatives (`a | b`) expanded."""
    out = []
    for _, lang, code in blocks():
        if lang not in ("sh", ""):
            continue
        for line in code.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(r"^(\.venv/bin/)?serums ", "serums ", line)
            if not line.startswith("serums "):
                continue
            line = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", line)  # optional parts, asides
            first, *alternatives = [a.strip() for a in line.split(" | ")]
            out.append(first)
            prefix = first.rsplit(" ", 1)[0]
            out += [f"{prefix} {alt}" for alt in alternatives]
    return out


def test_the_readme_has_serums_commands_and_one_marked_block():
    assert len(serums_commands()) >= 30
    assert [m for m, _, _ in blocks() if m] == ["serums-up"]


@pytest.mark.parametrize("command", serums_commands())
def test_every_serums_command_in_the_readme_parses(command: str):
    parser = build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit as exc:
            assert exc.code == 0, f"{command!r}: {err.getvalue().strip()}"


@pytest.mark.slow
def test_the_readme_http_flow_runs_as_written(tmp_path):
    [code] = [c for m, _, c in blocks() if m == "serums-up"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERUMS_")}
    env["SERUMS_DATA_DIR"] = str(tmp_path)
    up = subprocess.Popen(
        [sys.executable, "-m", "serums", "up", "--patients", "60", "--listen", f"127.0.0.1:{free_port()}",
         "--node-listen", f"127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        lines, deadline = [], time.monotonic() + 300
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert "SERUMS is up" in "".join(lines), "".join(lines)
        script = tmp_path / "readme_flow.py"
        script.write_text(code + "\nprint(json.dumps({'outcome': d['outcome'], 'digest': rec['digest'], "
                                 "'who': log['records'][0]['who'], 'withheld': rec['withheld'], "
                                 "'expires_at': code['expires_at']}))\n")
        run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr[-3000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["outcome"] in ("granted", "partial") and len(result["digest"]) == 64
        assert result["who"]["display_name"] == "dr.hughes" and result["who"]["role"] == "specialist"
        assert "contact" in result["withheld"] and "T" in result["expires_at"]  # as the README's comments say
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)
