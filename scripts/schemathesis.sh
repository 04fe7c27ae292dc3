#!/usr/bin/env bash
# Runs schemathesis against a live development server, with the OpenAPI document it serves.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]
#
# Needs target/test-venv (scripts/test.sh makes it) and a built `target/debug/otpd`. The server
# runs in --dev mode on a free loopback port with a database in a temporary directory; the test
# user has a password and PIN set, so the long-poll checks answer at once.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${1:-${OTPD_SCHEMATHESIS_EXAMPLES:-25}}"
VENV="${OTPD_TEST_VENV:-target/test-venv}"
OTPD="${CARGO_TARGET_DIR:-target}/debug/otpd"
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export OTPD_DATABASE_URL="sqlite://$work/otpd.db" OTPD_LISTEN="127.0.0.1:$port" OTPD_ARGON2="m=256,t=1,p=1" OTPD_LOG=warn
# All requests come from one address and one client: the rate limits would answer most of them.
export OTPD_RATE_LIMIT_PER_CLIENT=off OTPD_RATE_LIMIT_PER_ADDRESS=off
unset OTPD_CONFIG

"$OTPD" --dev migrate 2>/dev/null
printf 'correct horse battery' | "$OTPD" --dev user set-password schemathesis >/dev/null 2>&1
printf '4378' | "$OTPD" --dev user set-pin schemathesis >/dev/null 2>&1
token=$("$OTPD" --dev dev token --sub schemathesis)
admin_token=$("$OTPD" --dev dev token --sub schemathesis-support --scope otpd:admin)

"$OTPD" --dev serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 50); do
  "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  sleep 0.2
done

echo "== schemathesis against http://127.0.0.1:$port (max $MAX_EXAMPLES examples per operation)"
status=0
"$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
  --url "http://127.0.0.1:$port/user/2022-1" \
  -H "Authorization: Bearer $token" \
  --checks all \
  --max-examples "$MAX_EXAMPLES" \
  --request-timeout 70 \
  --exclude-tag Admin \
  --no-color || status=$?
# The admin API sits at the root, outside the base path, and needs the admin scope. It runs last:
# it may erase the users it invents.
if [ "$status" -eq 0 ]; then
  echo "== schemathesis: the admin API"
  "$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
    --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $admin_token" \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --request-timeout 70 \
    --include-tag Admin \
    --no-color || status=$?
fi
if [ "$status" -ne 0 ]; then
  echo "--- server log" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
