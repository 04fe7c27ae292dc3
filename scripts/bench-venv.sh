#!/usr/bin/env bash
# The Python environment of the benchmark's plots (scripts/bench-plot.py): matplotlib, installed once
# into target/bench-venv; re-running is a no-op. Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="target/bench-venv"
if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import matplotlib" 2>/dev/null; }; then
  echo "== installing matplotlib into $VENV" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "matplotlib>=3.8,<4" >&2
fi
echo "$PWD/$VENV/bin/python"
