#!/usr/bin/env bash
# Where an issued OTP's CPU goes: raw Argon2id verifications and a flood of POST /user/otp with a
# password (wrk, 6 connections over 8 users, as scripts/bench.sh), alternated, each with the
# machine's idle share from /proc/stat and, for otpd, its CPU per issued OTP by thread name
# (otpd-hash, tokio-rt-worker, sqlx-sqlite-worker; scripts/cpu-per-thread.py). A diagnosis tool
# beside bench.sh, not a target; docs/benchmark.md quotes it.
#
#   scripts/bench-cpu.sh                                 # SQLite, release build, 3 pairs of 8 s
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/scratch scripts/bench-cpu.sh
#   OTPD_BIN=/tmp/otpd-old scripts/bench-cpu.sh          # another build of otpd
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${BENCH_SECONDS:-8}"
ROUNDS="${BENCH_ROUNDS:-3}"
PORT="${BENCH_PORT:-18082}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet --bin otpd --example bench_argon2
BIN="$(realpath "${CARGO_TARGET_DIR:-target}/release")"
OTPD="$(realpath "${OTPD_BIN:-$BIN/otpd}")"
CPU="$(realpath scripts/cpu-per-thread.py)"
WRK_POST="$(realpath scripts/wrk-post.lua)"
MAKE_USERS="$(realpath scripts/bench-users.sh)"
WORK="$(mktemp -d)"
OTPD_PID=""
cleanup() { [ -n "$OTPD_PID" ] && kill "$OTPD_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

export OTPD_LISTEN="127.0.0.1:$PORT" OTPD_LOG=info
export OTPD_RATE_LIMIT_PER_CLIENT=off OTPD_RATE_LIMIT_PER_ADDRESS=off
export OTPD_DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$WORK/otpd.db}"
cd "$WORK"
TOKENS=$("$MAKE_USERS" "$OTPD" cpu)
"$OTPD" --dev serve >>otpd.log 2>&1 &
OTPD_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
CORES=$(nproc)
for round in $(seq 1 "$ROUNDS"); do
  "$CPU" snap a
  RAW=$("$BIN/examples/bench_argon2" "$SECS" "$CORES" | sed -E 's/.*: ([0-9.]+) verifications.*/\1/')
  "$CPU" snap b
  echo "round $round: raw Argon2id $RAW/s ($(awk -v r="$RAW" -v c="$CORES" 'BEGIN { printf "%.2f", c * 1000 / r }') ms of a core each, $CORES threads)"
  "$CPU" diff a b 1 | grep 'machine idle'
  "$CPU" snap a
  read -r _ OK _ DUR < <(BODY='{"password":"correct horse battery"}' TOKENS=$TOKENS \
    wrk -t2 -c$((CORES * 3)) -d"${SECS}s" -s "$WRK_POST" -H "Content-Type: application/json" \
    "http://127.0.0.1:$PORT/user/2022-1/user/otp" | grep '^RESULT')
  "$CPU" snap b
  RATE=$(awk -v n="$OK" -v d="$DUR" 'BEGIN { printf "%.1f", n / d }')
  echo "round $round: otpd $RATE OTPs/s, ratio $(awk -v a="$RATE" -v b="$RAW" 'BEGIN { printf "%.2f", a / b }'); CPU per issued OTP:"
  "$CPU" diff a b "$OK" "$OTPD_PID"
done
