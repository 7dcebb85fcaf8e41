#!/usr/bin/env bash
# Installs what only the test suite needs, outside the clone: an S3-compatible server (moto, from PyPI) in a
# virtual environment, so the S3 storage backend is tested against a real server on loopback.
# Idempotent: a second run installs nothing.
set -euo pipefail
VENV=${NEXENT_TEST_VENV:-$HOME/.cache/nexent/test-venv}
if ! "$VENV/bin/python" -c "import moto.server, flask" >/dev/null 2>&1; then
  printf 'setup-test: installing moto[server] into %s\n' "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==5.2.5"
fi
