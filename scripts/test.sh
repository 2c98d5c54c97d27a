#!/usr/bin/env bash
# Install resattn with its test extras into .venv (torch 2.13.0 CPU first) and run every check:
# ruff, then the whole pytest suite including tests marked slow. Exit non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[test]"
"$VENV/bin/ruff" check src tests benchmarks scripts
set +e
"$VENV/bin/python" -m pytest -q "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$status"
