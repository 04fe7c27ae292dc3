#!/usr/bin/env bash
# Load comparison in one run: ONE otpd replica on SQLite vs TWO replicas on one PostgreSQL database,
# both driven with wrk on POST /user/otp (PIN proof), each scenario for DURATION seconds.
#
#   scripts/load-replicas.sh                    # release build, default settings
#   DURATION=20 CONNECTIONS=16 scripts/load-replicas.sh
#
# Two Argon2 settings are measured: the production default (m=19456,t=2,p=1), where every request
# is bounded by the hash, and a cheap one (m=256,t=1,p=1), where the database write is what is left.
# Needs: wrk (apt-get install -y wrk), PostgreSQL at $PG_URL (default the test server). All replicas
# run in dev mode from one working directory, so they share the dev pepper and signing key.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-8}"
USERS="${USERS:-32}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
PIN=4378

command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --bin otpd >&2
BIN="$ROOT/target/release/otpd"

WORK=$(mktemp -d)
PIDS=()
PG_DB="otpd_load_$$"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG_URL" -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
SQLITE_URL="sqlite://$WORK/otpd.db"
PG_TARGET="${PG_URL%/*}/$PG_DB"
psql "$PG_URL" -q -c "CREATE DATABASE $PG_DB" >/dev/null

# Users with a PIN in both databases; tokens from the shared dev key.
for url in "$SQLITE_URL" "$PG_TARGET"; do
  OTPD_DATABASE_URL="$url" OTPD_ARGON2="m=256,t=1,p=1" "$BIN" --dev migrate 2>/dev/null
done
{
  echo "tokens = {"
  for i in $(seq 1 "$USERS"); do
    for url in "$SQLITE_URL" "$PG_TARGET"; do
      echo "$PIN" | OTPD_DATABASE_URL="$url" "$BIN" --dev user set-pin "load-$i" 2>/dev/null
    done
    printf '  "%s",\n' "$(OTPD_DATABASE_URL="$SQLITE_URL" "$BIN" dev token --sub "load-$i" --ttl 3600)"
  done
  echo "}"
  cat <<LUA
wrk.method = "POST"
wrk.body = '{"pin":"$PIN"}'
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1]
  return wrk.format()
end
statuses = {}
response = function(status) statuses[status] = (statuses[status] or 0) + 1 end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.1f p99_ms=%.1f non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, (summary.errors.status or 0)))
end
LUA
} > "$WORK/load.lua"

start() { # port url argon2 -> pid
  # One wrk on one address is not a flood to shed, and a user's parallel requests (counted before
  # they are checked) must not lock the PIN: per-client limits and PIN locking are off. The attempt
  # counter is still written and reset on every request.
  OTPD_LISTEN="127.0.0.1:$1" OTPD_DATABASE_URL="$2" OTPD_ARGON2="$3" OTPD_LOG=warn \
    OTPD_HASH_QUEUE=256 OTPD_RATE_LIMIT_PER_CLIENT=off OTPD_RATE_LIMIT_PER_ADDRESS=off \
    OTPD_PIN_LOCK_FROM=0 OTPD_PIN_DISABLE_AFTER=0 "$BIN" --dev serve >"$WORK/serve-$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$1/health/ready" >/dev/null && return; sleep 0.1; done
  echo "replica on :$1 did not become ready" >&2; cat "$WORK/serve-$1.log" >&2; exit 1
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
load() { # port connections -> RESULT line
  wrk -t1 -c"$2" -d"${DURATION}s" -s "$WORK/load.lua" "http://127.0.0.1:$1/user/2022-1/user/otp" | grep RESULT
}
sum_rps() { awk -F'[ =]' '{for (i=1;i<=NF;i++) if ($i=="rps") s+=$(i+1)} END {print s}'; }

echo "| Argon2 | setup | replicas | connections | OTPs/s | per-replica p50 / p99 ms | non-2xx |"
echo "|---|---|---|---|---|---|---|"
for argon in "m=19456,t=2,p=1" "m=256,t=1,p=1"; do
  start 18081 "$SQLITE_URL" "$argon"
  one=$(load 18081 "$CONNECTIONS")
  stop_all
  rps=$(echo "$one" | sum_rps)
  lat=$(echo "$one" | sed -E 's/.*p50_ms=([0-9.]+) p99_ms=([0-9.]+).*/\1 \/ \2/')
  bad=$(echo "$one" | sed -E 's/.*non2xx=([0-9]+).*/\1/')
  echo "| $argon | SQLite | 1 | $CONNECTIONS | $rps | $lat | $bad |"

  start 18082 "$PG_TARGET" "$argon"
  start 18083 "$PG_TARGET" "$argon"
  half=$((CONNECTIONS / 2))
  both=$( (load 18082 "$half" & load 18083 "$half" & wait) )
  stop_all
  rps=$(echo "$both" | sum_rps)
  lat=$(echo "$both" | sed -E 's/.*p50_ms=([0-9.]+) p99_ms=([0-9.]+).*/\1 \/ \2/' | paste -sd ';' | sed 's/;/; /')
  bad=$(echo "$both" | sed -E 's/.*non2xx=([0-9]+).*/\1/' | awk '{s+=$1} END {print s}')
  echo "| $argon | PostgreSQL | 2 | $half + $half | $rps | $lat | $bad |"
done
