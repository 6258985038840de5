#!/usr/bin/env bash
# Creates .venv/ at the repo root if missing and installs the project into it
# (editable, with the `test` and `beam` extras) whenever setup.py changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "ensure_venv: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.cvrl-setup-sha256
want=$(sha256sum setup.py | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "ensure_venv: installing dependencies into .venv (first run: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test,beam]"
  echo "$want" > "$stamp"
fi
