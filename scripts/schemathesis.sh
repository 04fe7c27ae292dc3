#!/usr/bin/env bash
# Runs schemathesis against a live development server, with the OpenAPI document it serves.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]
#
# Needs target/test-venv (scripts/test.sh makes it) and a built `target/debug/otpd`. The server
# runs in --dev mode on a free loopback port with a database in a temporary directory; the test
# user has a password and PIN set, so the long-poll checks answer at once. The hooks in
# scripts/schemathesis_hooks.py give most schema-valid requests what a real client has (fresh
# OTPs, a policy-conforming PIN, a UUID device id, the real password), so every operation reaches
# its success path. Any schemathesis warning (an operation that only ever saw 401/403 or 404, or
# that mostly rejected valid data) fails the run, like a finding does (scripts/schemathesis.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${1:-${OTPD_SCHEMATHESIS_EXAMPLES:-25}}"
VENV="${OTPD_TEST_VENV:-target/test-venv}"
OTPD="${CARGO_TARGET_DIR:-target}/debug/otpd"
work=$(mktemp -d)
server_pid="" smtp_pid=""
cleanup() {
  for pid in $server_pid $smtp_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
# A mail sink, so POST /user/otp/sendmail reaches its 204 (the token carries a verified email).
smtp_port=$(free_port)
"$VENV/bin/python" -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Sink >/dev/null 2>&1 &
smtp_pid=$!
export OTPD_SMTP_URL="smtp://127.0.0.1:$smtp_port" OTPD_MAIL_FROM="otpd <otpd@localhost>" OTPD_MAIL_PER_HOUR=1000
export OTPD_DATABASE_URL="sqlite://$work/otpd.db" OTPD_LISTEN="127.0.0.1:$port" OTPD_ARGON2="m=256,t=1,p=1" OTPD_LOG=warn
# All requests come from one address and one client: the rate limits would answer most of them.
export OTPD_RATE_LIMIT_PER_CLIENT=off OTPD_RATE_LIMIT_PER_ADDRESS=off
# Where password links point (the link endpoints answer 503 without it).
export OTPD_PUBLIC_URL="http://127.0.0.1:$port"
# Fuzzed wrong PINs, passwords and OTPs would lock the test user's factors, and then the valid
# requests of the hooks would meet 429s: no locking here (the lockout has its own tests).
export OTPD_PIN_LOCK_FROM=0 OTPD_PIN_DISABLE_AFTER=0 OTPD_PASSWORD_LOCK_FROM=0 \
  OTPD_PASSWORD_DISABLE_AFTER=0 OTPD_OTP_REVOKE_AFTER=0
# Phone: no lock on wrong codes, and SMS limits the run cannot reach (development mode prints
# each SMS into the server log, where the hooks read the codes).
export OTPD_PHONE_LOCK_FROM=0 OTPD_SMS_PER_USER_PER_HOUR=100 OTPD_SMS_PER_NUMBER_PER_HOUR=100
unset OTPD_CONFIG

sub=schemathesis password='correct horse battery' pin=4378
"$OTPD" --dev migrate 2>/dev/null
printf '%s' "$password" | "$OTPD" --dev user set-password "$sub" >/dev/null 2>&1
printf '%s' "$pin" | "$OTPD" --dev user set-pin "$sub" >/dev/null 2>&1
# PUT /sessions/{sessionId} names its user by a UUID, and only a user otpd knows gets a session.
session_user=6f1c2a9e-2d0b-4c11-9a3e-0c5b7f3d9e21
printf '%s' "$password" | "$OTPD" --dev user set-password "$session_user" >/dev/null 2>&1
token=$("$OTPD" --dev dev token --sub "$sub" --email schemathesis@example.com --email-verified true)
admin_token=$("$OTPD" --dev dev token --sub schemathesis-support --scope otpd:admin)
export SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
export OTPD_ST_BASE="http://127.0.0.1:$port/user/2022-1" OTPD_ST_TOKEN="$token" OTPD_ST_SUB="$sub" \
  OTPD_ST_PASSWORD="$password" OTPD_ST_PIN="$pin" OTPD_ST_BIN="$OTPD" \
  OTPD_ST_SESSION_USER="$session_user" \
  OTPD_ST_SERVER_LOG="$work/server.log"

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
