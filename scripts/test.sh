#!/usr/bin/env bash
# The test command (README, CI): sets up .venv if needed, then runs every test,
# the slow-marked ones included. Extra arguments go to pytest, e.g.
#   bash scripts/test.sh -m "not slow"      # skip the slow end-to-end tests
#   bash scripts/test.sh tests/test_video_decoder.py
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_venv.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec .venv/bin/python -m pytest -n "${CVRL_TEST_WORKERS:-2}" --durations=15 tests "$@"
