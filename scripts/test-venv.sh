#!/usr/bin/env bash
# The Python environment of the integration tests: aiosmtpd, a real SMTP server the mail tests
# start on loopback. Installed once into target/test-venv (created if missing, otherwise added to,
# so other test tools in the same venv stay); re-running is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="target/test-venv"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import aiosmtpd" 2>/dev/null; then
  exit 0
fi
echo "== installing aiosmtpd into $VENV" >&2
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd>=1.4,<2" >&2
