#!/usr/bin/env bash
# Benchmark: otpd (release build, dev mode, SQLite) against baselines measured in the same run.
#
#   scripts/bench.sh            # ~3 min after the release build; needs wrk (apt-get install -y wrk)
#
# Prints:
#   1. raw Argon2id verifications/s (examples/bench_argon2, default parameters, one thread per core)
#      vs OTPs/s through POST /user/otp with a password (wrk, closed loop, 4 connections)
#   2. a minimal axum handler (examples/bench_hello) vs otpd's cheap rejections 401, 406, 415
#   3. open-loop load at 2x the measured OTP rate (examples/bench_load): statuses and p50/p99
#      latency, and otpd's resident memory before and after
# Not part of CI: numbers depend on the machine; docs/benchmark.md records a run.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN="${BENCH_SECONDS:-15}"
PORT="${BENCH_PORT:-18080}"
HELLO_PORT="${BENCH_HELLO_PORT:-18081}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

echo "== release build"
cargo build --release --quiet --bin otpd --example bench_argon2 --example bench_hello --example bench_load
BIN=target/release
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

export OTPD_DATABASE_URL="sqlite://$WORK/otpd.db"
export OTPD_LISTEN="127.0.0.1:$PORT"
export OTPD_LOG="info"
# One source address and one client id do all the load: the rate limits would answer most of it.
export OTPD_RATE_LIMIT_PER_CLIENT=off OTPD_RATE_LIMIT_PER_ADDRESS=off

echo "== raw Argon2id baseline"
ARGON=$("$BIN/examples/bench_argon2" "$SECONDS_PER_RUN")
echo "$ARGON"
RAW=$(echo "$ARGON" | sed -E 's/.*: ([0-9.]+) verifications.*/\1/')

"$BIN/otpd" --dev migrate 2>/dev/null
# Users bench0..bench7: wrk drives bench0; the open-loop run spreads over all of them.
TOKENS=""
for i in $(seq 0 7); do
  printf 'correct horse battery\n' | "$BIN/otpd" --dev user set-password "bench$i" 2>/dev/null
  TOKENS="$TOKENS${TOKENS:+,}$("$BIN/otpd" --dev dev token --sub "bench$i" --ttl 7200)"
done
TOKEN="${TOKENS%%,*}"
"$BIN/otpd" --dev serve >"$WORK/otpd.log" 2>&1 &
OTPD_PID=$!
PIDS+=("$OTPD_PID")
"$BIN/examples/bench_hello" "127.0.0.1:$HELLO_PORT" &
PIDS+=("$!")
for _ in $(seq 1 50); do
  curl -fs "http://127.0.0.1:$PORT/health/live" >/dev/null 2>&1 && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT/user/2022-1/user/otp"

cat >"$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = os.getenv("BODY") or ""
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT ok=%d bad=%d secs=%.2f p99_ms=%.1f\n", summary.requests - bad, bad,
    summary.duration / 1e6, latency:percentile(99) / 1000))
end
EOF
# Runs wrk and prints "<2xx requests/s> <non-2xx requests/s> <p99 ms>".
run_wrk() {
  local conns=$1; shift
  wrk -t2 -c"$conns" -d"${SECONDS_PER_RUN}s" -s "$WORK/post.lua" "$@" | awk '
    /^RESULT/ { split($2,a,"="); split($3,b,"="); split($4,c,"="); split($5,d,"=");
                printf "%.1f %.1f %s\n", a[2]/c[2], b[2]/c[2], d[2] }'
}

echo "== POST /user/otp with a password (4 connections)"
RSS_BEFORE=$(ps -o rss= -p "$OTPD_PID")
read -r OTPS OTP_BAD OTP_P99 < <(BODY='{"password":"correct horse battery"}' run_wrk 4 \
  -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" "$URL")
echo "OTPs/s: $OTPS (non-201/s: $OTP_BAD, p99 $OTP_P99 ms)"
RSS_LOADED=$(ps -o rss= -p "$OTPD_PID")
# The raw baseline again, right after: the ratio uses the mean of the runs before and after.
ARGON2=$("$BIN/examples/bench_argon2" "$SECONDS_PER_RUN")
echo "$ARGON2 (again)"
RAW2=$(echo "$ARGON2" | sed -E 's/.*: ([0-9.]+) verifications.*/\1/')
RAW=$(awk -v a="$RAW" -v b="$RAW2" 'BEGIN { printf "%.1f", (a + b) / 2 }')

echo "== cheap rejections vs a minimal axum handler (64 connections)"
# The machine is shared and noisy: each rejection is measured right after its own baseline run,
# and the ratio is taken within that pair.
hello() { BODY='' run_wrk 64 "http://127.0.0.1:$HELLO_PORT/" | cut -d' ' -f1; }
read -r H401 < <(hello)
read -r _ R401 _ < <(BODY='{"pin":"1235"}' run_wrk 64 -H "Content-Type: application/json" "$URL")
read -r H406 < <(hello)
read -r _ R406 _ < <(BODY='{"pin":"1235"}' run_wrk 64 -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" -H "Accept: text/html" "$URL")
read -r H415 < <(hello)
read -r _ R415 _ < <(BODY='pin=1235' run_wrk 64 -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: text/plain" "$URL")
echo "401: $R401/s (minimal handler just before: $H401/s)"
echo "406: $R406/s (minimal handler just before: $H406/s)"
echo "415: $R415/s (minimal handler just before: $H415/s)"

echo "== open loop at 2x the OTP rate"
RATE=$(awk -v r="$OTPS" 'BEGIN { printf "%d", r * 2 }')
"$BIN/examples/bench_load" "$URL" "$TOKENS" '{"password":"correct horse battery"}' "$RATE" "$SECONDS_PER_RUN"
RSS_AFTER=$(ps -o rss= -p "$OTPD_PID")

echo
echo "== summary"
awk -v raw="$RAW" -v otps="$OTPS" -v a="$R401" -v b="$R406" -v c="$R415" \
    -v ha="$H401" -v hb="$H406" -v hc="$H415" \
    -v before="$RSS_BEFORE" -v loaded="$RSS_LOADED" -v after="$RSS_AFTER" 'BEGIN {
  printf "OTPs/s %.1f / raw Argon2id %.1f/s (mean of before and after) = %.2f (target >= 0.9)\n", otps, raw, otps / raw
  printf "cheap rejections / minimal handler (target >= 0.5): 401 %.2f, 406 %.2f, 415 %.2f\n",
    a / ha, b / hb, c / hc
  printf "otpd RSS: %.0f MiB idle, %.0f MiB after the sustained run, %.0f MiB after the overload run\n",
    before / 1024, loaded / 1024, after / 1024
}'
