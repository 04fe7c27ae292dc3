#!/usr/bin/env bash
# Rows 1 and 4 of issue 15 at a million users: issued OTPs/s (POST /user/otp with a password, as
# a ratio to raw Argon2id verifications/s measured right before) and OTP redemptions/s (valid codes,
# each sent once), on an empty database and on one filled by scripts/fill-db.sh (1M users, 10M
# audit events, 1M expired OTPs), on SQLite and PostgreSQL. Target: the filled database within
# 15 % of the empty one. Called by scripts/bench.sh when BENCH_SCALE=1; runs alone too:
#
#   scripts/bench-scale.sh                                  # ~15 min after the release build
#   BENCH_SCALE_USERS=100000 BENCH_BACKENDS=sqlite scripts/bench-scale.sh
#
# Both databases of a backend are served side by side (two otpd processes) and measured
# alternately in every round, so a busy minute on this shared machine hits both alike; each round
# pairs the OTP rate with a raw Argon2id run just before it. Writes docs/benchmark/scale.csv (every
# round), docs/benchmark/scale-size.csv (bytes per user and fill time) and
# docs/benchmark/scale.png (rate against database size; matplotlib in a venv under target/).
#
# The redemption load is the wrk script of scripts/bench-redeem.sh (extracted from it, so both
# measure alike); bench-redeem.sh itself always makes a fresh database, so it cannot be pointed at
# a filled one.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS="${BENCH_SCALE_USERS:-1000000}"
SECS="${BENCH_SECONDS:-8}"
REDEEM_SECS="${BENCH_REDEEM_SECONDS:-4}"
ROUNDS="${BENCH_ROUNDS:-3}"
REDEEM_USERS="${BENCH_REDEEM_USERS:-2000}" # per round and database; 10 codes each
PORT="${BENCH_PORT:-18180}"
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
OUT="${BENCH_SCALE_OUT:-docs/benchmark}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

cargo build --release --quiet --bin otpd --example bench_argon2
BIN="$(realpath "${CARGO_TARGET_DIR:-target}/release")"
CORES=$(nproc)
CONNS=$((CORES * 3)) # hash_concurrency + hash_queue at their defaults, as scripts/bench.sh

WORK="$(mktemp -d)"
PIDS=()
PG_DBS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for db in "${PG_DBS[@]}"; do
    psql "$PG_URL" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

sed -n "/^cat >\"\$WORK\/redeem.lua\" <<'EOF'\$/,/^EOF\$/p" scripts/bench-redeem.sh | sed '1d;$d' >"$WORK/redeem.lua"
grep -q '^function done' "$WORK/redeem.lua" || { echo "no wrk script found in scripts/bench-redeem.sh" >&2; exit 1; }

WRK_POST="$PWD/scripts/wrk-post.lua"
MAKE_USERS="$PWD/scripts/bench-users.sh"

export OTPD_RATE_LIMIT_PER_CLIENT=off OTPD_RATE_LIMIT_PER_ADDRESS=off OTPD_LOG=warn
# Codes must outlive the run; the retention job would otherwise spend the measured minutes
# deleting the million expired OTPs (its cost is its own question, docs/retention.md).
export OTPD_OTP_TTL_SECONDS=600 OTPD_OTP_MAX_LIVE=10 OTPD_RETENTION_INTERVAL_SECONDS=0
otpd() { (cd "$WORK" && "$BIN/otpd" --dev "$@"); }

mkdir -p "$OUT"
CSV="$OUT/scale.csv"
SIZE_CSV="$OUT/scale-size.csv"
echo "backend,database,users,round,raw_argon2_per_s,otps_per_s,otp_ratio,redemptions_per_s,redeem_p50_ms,redeem_p99_ms" >"$CSV"
echo "backend,table,bytes,bytes_per_user,fill_seconds" >"$SIZE_CSV"

# url_of BACKEND SIZE -> the database's URL (PostgreSQL: created by `create_db` first)
url_of() {
  case $1 in
    sqlite) echo "sqlite://$WORK/$2.db" ;;
    postgres) echo "${PG_URL%/*}/otpd_bench_scale_${2}_$$" ;;
  esac
}
create_db() { # BACKEND SIZE
  [ "$1" = postgres ] || return 0
  PG_DBS+=("otpd_bench_scale_${2}_$$")
  psql "$PG_URL" -q -c "CREATE DATABASE otpd_bench_scale_${2}_$$" >/dev/null
}

# prepare BACKEND SIZE URL: password users bench0..7 (their tokens in $WORK/tokens-SIZE) and live
# OTPs for the redemption rounds ($WORK/pairs-SIZE-ROUND).
prepare() {
  local backend=$1 size=$2 url=$3
  export OTPD_DATABASE_URL="$url"
  (cd "$WORK" && "$MAKE_USERS" "$BIN/otpd" bench) >"$WORK/tokens-$size"
  otpd dev bench-otps --users $((REDEEM_USERS * ROUNDS)) --per-user 10 --prefix "r$size" \
    >"$WORK/pairs-$size" 2>/dev/null
  split -n "l/$ROUNDS" -d -a 1 "$WORK/pairs-$size" "$WORK/pairs-$size-"
}

serve() { # SIZE PORT URL
  if curl -s "http://127.0.0.1:$2/health/live" >/dev/null 2>&1; then
    echo "port $2 is taken: BENCH_PORT=… to use others" >&2
    exit 1
  fi
  # exec: $! is otpd itself, so cleanup stops the server and not only a subshell.
  (cd "$WORK" && OTPD_DATABASE_URL="$3" OTPD_LISTEN="127.0.0.1:$2" exec "$BIN/otpd" --dev serve) \
    >"$WORK/otpd-$1.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$2/health/ready" >/dev/null 2>&1 && return
    sleep 0.1
  done
  cat "$WORK/otpd-$1.log" >&2
  exit 1
}

raw_argon2() { "$BIN/examples/bench_argon2" "$SECS" "$CORES" | sed -E 's/.*: ([0-9.]+) verifications.*/\1/'; }
otps() { # PORT SIZE -> OTPs (2xx) per second
  BODY='{"password":"correct horse battery"}' TOKENS="$(cat "$WORK/tokens-$2")" \
    wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$WRK_POST" -H "Content-Type: application/json" \
    "http://127.0.0.1:$1/user/2022-1/user/otp" | awk '/^RESULT/ { printf "%.1f\n", $2 / $4 }'
}
redeem() { # PORT SIZE ROUND -> "<204/s> <p50 ms> <p99 ms>"
  PAIRS="$WORK/pairs-$2-$(($3 - 1))" THREADS=2 wrk -t2 -c8 -d"${REDEEM_SECS}s" \
    -s "$WORK/redeem.lua" "http://127.0.0.1:$1/user/2022-1/user/otp/verify" |
    awk '/^RESULT/ { print $2, $4, $5; if ($7 > 0) print "warning: ran out of codes" > "/dev/stderr" }'
}

for backend in $BACKENDS; do
  echo "== $backend: empty database and $USERS users"
  create_db "$backend" empty
  create_db "$backend" full
  EMPTY_URL=$(url_of "$backend" empty)
  FULL_URL=$(url_of "$backend" full)
  OTPD_BIN="$BIN/otpd" FILL_USERS="$USERS" scripts/fill-db.sh "$FULL_URL" >"$WORK/fill-$backend.txt"
  cat "$WORK/fill-$backend.txt"
  fill_secs=$(awk '/^FILL/ { print $6 }' "$WORK/fill-$backend.txt")
  awk -v s="$fill_secs" '/^BYTES/ { printf "%s,%s,%s,%s,%s\n", $2, $3, $4, $5, s }' \
    "$WORK/fill-$backend.txt" >>"$SIZE_CSV"
  prepare "$backend" empty "$EMPTY_URL"
  prepare "$backend" full "$FULL_URL"
  serve empty "$PORT" "$EMPTY_URL"
  serve full "$((PORT + 1))" "$FULL_URL"
  for round in $(seq 1 "$ROUNDS"); do
    for size in empty full; do
      port=$PORT; n=0
      [ "$size" = full ] && port=$((PORT + 1)) && n=$USERS
      raw=$(raw_argon2)
      otp=$(otps "$port" "$size")
      read -r red p50 p99 < <(redeem "$port" "$size" "$round")
      ratio=$(awk -v a="$otp" -v b="$raw" 'BEGIN { printf "%.3f", a / b }')
      echo "round $round $size: raw Argon2id $raw/s, OTPs $otp/s (ratio $ratio), redemptions $red/s (p50 $p50 ms, p99 $p99 ms)"
      echo "$backend,$size,$n,$round,$raw,$otp,$ratio,$red,$p50,$p99" >>"$CSV"
    done
  done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
done

echo
echo "== summary: medians over $ROUNDS rounds; filled ÷ empty (target >= 0.85)"
awk -F, 'NR > 1 { k = $1 " " $2; r[k] = r[k] " " $7; d[k] = d[k] " " $8; o[k] = o[k] " " $6 }
  function per(a, b) { return b > 0 ? a / b : 0 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (k in r) { split(k, p, " "); ratio[p[1], p[2]] = median(r[k]); red[p[1], p[2]] = median(d[k]); otp[p[1], p[2]] = median(o[k]); seen[p[1]] = 1 }
    for (b in seen)
      printf "%s: issued OTPs / raw Argon2id %.3f empty, %.3f filled (%.2f); OTPs/s %.1f empty, %.1f filled (%.2f); redemptions/s %.0f empty, %.0f filled (%.2f)\n",
        b, ratio[b, "empty"], ratio[b, "full"], per(ratio[b, "full"], ratio[b, "empty"]),
        otp[b, "empty"], otp[b, "full"], per(otp[b, "full"], otp[b, "empty"]),
        red[b, "empty"], red[b, "full"], per(red[b, "full"], red[b, "empty"])
  }' "$CSV"

VENV="${CARGO_TARGET_DIR:-target}/bench-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q matplotlib
fi
"$VENV/bin/python" scripts/plot-scale.py "$CSV" "$OUT/scale.png" && echo "wrote $CSV, $SIZE_CSV, $OUT/scale.png"
