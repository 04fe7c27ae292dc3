#!/usr/bin/env bash
# The benchmarks' password users: migrates the database of OTPD_DATABASE_URL, gives PREFIX0 …
# PREFIX7 the password "correct horse battery" and prints their access tokens, comma-separated
# (development mode, 2 hours). Load spread over eight users, as real traffic is: one user's
# parallel checks would meet the attempt limits (docs/lockout.md). Run it in the benchmark's work
# directory, where development mode keeps its keys:
#
#   TOKENS=$(cd "$WORK" && scripts/bench-users.sh target/release/otpd bench)
set -euo pipefail
OTPD=$1 PREFIX=$2
"$OTPD" --dev migrate >/dev/null 2>&1
TOKENS=""
for i in $(seq 0 7); do
  printf 'correct horse battery\n' | "$OTPD" --dev user set-password "$PREFIX$i" >/dev/null 2>&1
  TOKENS="$TOKENS${TOKENS:+,}$("$OTPD" --dev dev token --sub "$PREFIX$i" --ttl 7200 2>/dev/null)"
done
echo "$TOKENS"
