#!/usr/bin/env bash
# Make .venv and install flowml with its built-in plugins (and, with --dev, the test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
if [ ! -x .venv/bin/python ] && ! python3 -m venv .venv; then
  rm -rf .venv
  echo "python3 cannot make a virtual environment: install it with 'sudo apt-get install python3-venv'" >&2
  exit 1
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r "$req"
