#!/usr/bin/env bash
# The Python environment of the integration tests: aiosmtpd, a real SMTP server the mail tests
# start on loopback. Created once in target/test-venv; re-running is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="target/test-venv"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import aiosmtpd" 2>/dev/null; then
  exit 0
fi
echo "== creating $VENV with aiosmtpd" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd>=1.4,<2" >&2
