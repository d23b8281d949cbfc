#!/usr/bin/env bash
# README command 1: install everything, then bring SERUMS up on the embedded default.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/serums" up "$@"
