#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo, idempotently, into target/ci/:
#   - a Python virtualenv with `websockets` (the non-Rust client of the interop test);
#   - Autobahn|Testsuite `wstest` (WebSocket conformance, scripts/install-autobahn.sh);
#   - Debian's chromium (headless browser tests of the generated docs), when missing;
#   - Microsoft's SARIF validator (npm `@microsoft/sarif-multitool`), with Debian's nodejs and npm
#     when missing.
# Safe to run repeatedly; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
CI=target/ci
mkdir -p "$CI"

if [ ! -x "$CI/venv/bin/python" ] || ! "$CI/venv/bin/python" -c 'import websockets' 2>/dev/null; then
  echo "setup: python venv with websockets"
  python3 -m venv "$CI/venv"
  "$CI/venv/bin/pip" install --quiet --disable-pip-version-check 'websockets>=13,<16'
fi

if [ ! -x "$CI/autobahn/wstest" ]; then
  echo "setup: Autobahn|Testsuite (wstest)"
  scripts/install-autobahn.sh "$CI/autobahn"
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: chromium (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "setup: nodejs and npm (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d "$CI/sarif/node_modules/@microsoft/sarif-multitool" ]; then
  echo "setup: SARIF validator (npm)"
  npm install --prefix "$CI/sarif" --no-audit --no-fund --silent @microsoft/sarif-multitool@5.7.0
fi
echo "setup: done"
