#!/usr/bin/env bash
# Memory under sustained overload: otpd (release, dev mode, SQLite) takes POST /user/otp with a
# password at 1.5x its sustainable rate for 10 minutes (examples/bench_load, open loop, 8 users),
# while its RSS is read from /proc every few seconds. Target: flat, < 200 MiB. Called by
# scripts/bench.sh with BENCH_RSS=1; runs alone too:
#
#   scripts/bench-rss.sh                    # measures the sustainable rate first (8 s of wrk)
#   BENCH_RSS_RATE=150 BENCH_RSS_SECONDS=600 BENCH_OUT=target/bench scripts/bench-rss.sh
#
# Writes $BENCH_OUT/rss.csv ("seconds,rss_kib,threads") and $BENCH_OUT/rss-load.txt (statuses and
# latencies of the load); scripts/bench-plot.py draws rss.png from it.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${BENCH_RSS_SECONDS:-600}"
EVERY="${BENCH_RSS_EVERY:-5}"
PORT="${BENCH_RSS_PORT:-18095}"
OUT="$(mkdir -p "${BENCH_OUT:-target/bench}" && realpath "${BENCH_OUT:-target/bench}")"
BIN="$(realpath "${CARGO_TARGET_DIR:-target}/release")"
[ -n "${OTPD_BIN:-}" ] || cargo build --release --quiet --bin otpd --example bench_load
OTPD_BIN="$(realpath "${OTPD_BIN:-$BIN/otpd}")"
WORK="$(mktemp -d)"
WRK_POST="$PWD/scripts/wrk-post.lua"
MAKE_USERS="$PWD/scripts/bench-users.sh"
OTPD_PID=""
cleanup() {
  [ -n "$OTPD_PID" ] && kill "$OTPD_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export OTPD_DATABASE_URL="sqlite://$WORK/otpd.db" OTPD_LISTEN="127.0.0.1:$PORT" OTPD_LOG="${OTPD_LOG:-info}"
export OTPD_RATE_LIMIT_PER_CLIENT=off OTPD_RATE_LIMIT_PER_ADDRESS=off
cd "$WORK"
TOKENS=$("$MAKE_USERS" "$OTPD_BIN" rss)
"$OTPD_BIN" --dev serve >"$WORK/otpd.log" 2>&1 &
OTPD_PID=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT/user/2022-1/user/otp"
BODY='{"password":"correct horse battery"}'

RATE="${BENCH_RSS_RATE:-}"
if [ -z "$RATE" ]; then
  command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk (or set BENCH_RSS_RATE)" >&2; exit 1; }
  SUSTAINED=$(BODY="$BODY" TOKENS="$TOKENS" wrk -t2 -c"$(($(nproc) * 3))" -d8s -s "$WRK_POST" \
    -H "Content-Type: application/json" "$URL" | awk '/^RESULT/ { printf "%.1f\n", $2 / $4 }')
  RATE=$(awk -v r="$SUSTAINED" 'BEGIN { printf "%d", r * 1.5 }')
  echo "sustainable rate ${SUSTAINED}/s: offering ${RATE}/s"
fi

echo "seconds,rss_kib,threads" >"$OUT/rss.csv"
"$BIN/examples/bench_load" "$URL" "$TOKENS" "$BODY" "$RATE" "$SECS" >"$OUT/rss-load.txt" &
LOAD=$!
START=$(date +%s)
while kill -0 "$LOAD" 2>/dev/null; do
  awk -v t="$(($(date +%s) - START))" '/^VmRSS:/ { rss = $2 } /^Threads:/ { th = $2 } END { printf "%d,%d,%d\n", t, rss, th }' \
    "/proc/$OTPD_PID/status" >>"$OUT/rss.csv"
  sleep "$EVERY"
done
wait "$LOAD"
cat "$OUT/rss-load.txt"
awk -F, 'NR > 1 { n++; if (n == 1 || $2 < lo) lo = $2; if ($2 > hi) hi = $2; last = $2
           if ($1 >= 60 && !m) m = $2 }
  END { printf "RSS over %d samples: min %.0f MiB, max %.0f MiB, at 60 s %.0f MiB, at the end %.0f MiB\n",
        n, lo / 1024, hi / 1024, m / 1024, last / 1024 }' "$OUT/rss.csv"
