#!/usr/bin/env bash
# README command 2: install everything, then run the whole test suite.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
cd "$ROOT"

# PostgreSQL-marked tests are mandatory under CI: make sure the local server is up.
if [ -n "${CI:-}" ] && command -v pg_isready >/dev/null 2>&1; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "[test] starting the local PostgreSQL cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi

.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
