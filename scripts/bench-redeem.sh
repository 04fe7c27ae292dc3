#!/usr/bin/env bash
# OTP redemption throughput: POST /user/otp/verify with valid codes, each sent once (no hashing on
# this path). Called by scripts/bench.sh; runs alone too:
#
#   scripts/bench-redeem.sh                 # SQLite and PostgreSQL, release build
#   BENCH_BACKENDS=sqlite OTPD_BIN=/tmp/otpd-old scripts/bench-redeem.sh   # another binary
#
# Users with live OTPs are made by `otpd dev bench-otps` (development mode, no proof, prints
# `<token> <otp>` lines); wrk (BENCH_REDEEM_CONNECTIONS, default 64) sends every pair once and counts the
# 204s. Codes run out after BENCH_REDEEM_USERS x 10 (default 80,000: 20,000/s for the default 4 s,
# twice the best rate measured; 40,000 ran dry on SQLite with 64 connections, capping its figure):
# the script warns when wrk ran dry.
# Prints one line per backend: "REDEEM <backend> <204/s> <other/s> <p50 ms> <p99 ms> <max ms>".
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${BENCH_REDEEM_SECONDS:-4}"
USERS="${BENCH_REDEEM_USERS:-8000}"
PER_USER=10
CONNS="${BENCH_REDEEM_CONNECTIONS:-64}"
PORT="${BENCH_REDEEM_PORT:-18090}"
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
if [ -z "${OTPD_BIN:-}" ]; then
  cargo build --release --quiet --bin otpd
  OTPD_BIN="${CARGO_TARGET_DIR:-target}/release/otpd"
fi
OTPD_BIN="$(realpath "$OTPD_BIN")"

WORK="$(mktemp -d)"
OTPD_PID=""
PG_DB="otpd_bench_redeem_$$"
cleanup() {
  [ -n "$OTPD_PID" ] && kill "$OTPD_PID" 2>/dev/null || true
  psql "$PG_URL" -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  [ -n "${BENCH_KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/redeem.lua" <<'EOF'
-- Every thread takes its share of the "<token> <otp>" lines and sends each once.
local threads, counter = {}, 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  pairs_, n, sent = {}, 0, 0
  local i = 0
  for line in io.lines(os.getenv("PAIRS")) do
    if i % tonumber(os.getenv("THREADS")) == id then
      local token, otp = line:match("^(%S+) (%S+)$")
      pairs_[#pairs_ + 1] = { token, '{"otp":"' .. otp .. '"}' }
    end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  ok, other, dry = 0, 0, 0
end
function request()
  n = n + 1
  local p = pairs_[n]
  if p == nil then
    dry = dry + 1
    return wrk.format("GET", "/health/live", {}, nil)
  end
  wrk.headers["Authorization"] = "Bearer " .. p[1]
  return wrk.format(nil, nil, nil, p[2])
end
function response(status)
  if status == 204 then ok = ok + 1 elseif status ~= 200 then other = other + 1; if os.getenv("BENCH_DEBUG") and other < 3 then io.stderr:write("status " .. status .. "\n") end end
end
function done(summary, latency, requests)
  local o, x, d = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); x = x + t:get("other"); d = d + t:get("dry")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT %.1f %.1f %.2f %.2f %.2f %d\n", o / secs, x / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, d))
end
EOF

run_backend() { # backend url
  local backend=$1 url=$2
  export OTPD_DATABASE_URL="$url" OTPD_OTP_MAX_LIVE=$PER_USER OTPD_LOG=${OTPD_LOG:-warn}
  export OTPD_RATE_LIMIT_PER_CLIENT=off OTPD_RATE_LIMIT_PER_ADDRESS=off
  export OTPD_LISTEN="127.0.0.1:$PORT"
  (cd "$WORK" && "$OTPD_BIN" --dev migrate 2>/dev/null)
  (cd "$WORK" && "$OTPD_BIN" --dev dev bench-otps --users "$USERS" --per-user "$PER_USER" \
    --prefix "r$backend" >"$WORK/pairs-$backend.txt")
  cd "$WORK"
  "$OTPD_BIN" --dev serve >"$WORK/otpd-$backend.log" 2>&1 &
  OTPD_PID=$!
  cd - >/dev/null
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && break
    kill -0 "$OTPD_PID" 2>/dev/null || { cat "$WORK/otpd-$backend.log" >&2; exit 1; }
    sleep 0.1
  done
  local result
  result=$(PAIRS="$WORK/pairs-$backend.txt" THREADS=2 wrk -t2 -c"$CONNS" -d"${SECS}s" \
    -s "$WORK/redeem.lua" "http://127.0.0.1:$PORT/user/2022-1/user/otp/verify" | grep '^RESULT')
  kill "$OTPD_PID" 2>/dev/null || true
  wait "$OTPD_PID" 2>/dev/null || true
  OTPD_PID=""
  read -r _ ok other p50 p99 max dry <<<"$result"
  [ "$dry" -gt 0 ] && echo "warning: $backend ran out of codes ($dry requests without one): raise BENCH_REDEEM_USERS" >&2
  echo "REDEEM $backend $ok $other $p50 $p99 $max"
}

for backend in $BACKENDS; do
  case $backend in
    sqlite) run_backend sqlite "sqlite://$WORK/redeem.db" ;;
    postgres)
      psql "$PG_URL" -q -c "CREATE DATABASE $PG_DB" >/dev/null
      run_backend postgres "${PG_URL%/*}/$PG_DB"
      ;;
  esac
done
