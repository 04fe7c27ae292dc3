#!/usr/bin/env bash
# The whole test suite: unit tests, then the integration suite on SQLite and on PostgreSQL.
#
#   scripts/test.sh
#
# Python tools (pyotp, an independent TOTP implementation for the tests; schemathesis, run
# against a live dev server; aiosmtpd, the mail tests' SMTP server) live in a venv under
# target/test-venv, made on first use.
#
# PostgreSQL is taken from OTPD_TEST_PG_URL (default: the local server at 127.0.0.1:5432, database
# `test`, trust auth); it is started if it is installed but not running. Without PostgreSQL the
# PostgreSQL half is skipped with a warning, except under CI (CI=true), where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${OTPD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

ensure_postgres() {
  command -v pg_isready >/dev/null 2>&1 || return 1
  pg_up && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "== starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && return 0; sleep 1; done
  fi
  return 1
}

# Every test app gets a database named after this run; only those are dropped, and only once the
# run is over, so runs of other engineers on the same server are left alone.
RUN_PREFIX="otpd_t_$(date +%s)_$$"
drop_test_databases() {
  psql "$PG_URL" -Atq -c "SELECT datname FROM pg_database WHERE datname LIKE '${RUN_PREFIX}%'" 2>/dev/null |
    while read -r db; do psql "$PG_URL" -q -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true; done
}

VENV=target/test-venv
PY_TOOLS="pyotp==2.* schemathesis==4.* aiosmtpd==1.*"
ensure_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import pyotp, schemathesis, aiosmtpd" >/dev/null 2>&1; then
    return 0
  fi
  echo "== creating $VENV ($PY_TOOLS)"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q $PY_TOOLS
}

if ensure_venv; then
  export OTPD_TEST_PYTHON="$PWD/$VENV/bin/python" OTPD_REQUIRE_PYOTP=1
  have_venv=1
elif [ "${CI:-}" = "true" ]; then
  echo "could not create $VENV with $PY_TOOLS" >&2
  exit 1
else
  echo "WARNING: no Python venv: the pyotp interop test and schemathesis are skipped" >&2
  have_venv=0
fi

# The real OpenID provider of the real_provider tests (tests/oidc, oidc-provider from npm): installed
# from the committed lock file when missing. Without node/npm those tests skip themselves, except
# under CI, where they fail.
ensure_oidc_provider() {
  [ -d tests/oidc/node_modules/oidc-provider ] && command -v node >/dev/null 2>&1 && return 0
  if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
    echo "== npm ci (tests/oidc: the OpenID provider for the real-provider tests)"
    npm ci --prefix tests/oidc --no-audit --no-fund && return 0
  fi
  return 1
}

if ! ensure_oidc_provider; then
  if [ "${CI:-}" = "true" ]; then
    echo "node/npm or the tests/oidc packages are missing: the real-provider tests cannot run" >&2
    exit 1
  fi
  echo "WARNING: node/npm unavailable: the real-provider tests (real_provider::*) will be skipped" >&2
fi

# Every part runs even when an earlier one failed; its output is kept for the closing summary.
LOGS=$(mktemp -d)
failed_parts=()
part=0
run_part() { # run_part NAME COMMAND...
  local name=$1; shift
  part=$((part + 1))
  local log="$LOGS/$(printf %02d "$part")-$name.log"
  if ! "$@" 2>&1 | tee "$log"; then
    failed_parts+=("$name")
    echo "$name" > "$log.failed"
  fi
}
extra_skips=0

echo "== architecture (docs/architecture.md: the arrows that must never exist)"
run_part architecture python3 scripts/check-architecture.py

echo "== unit tests and integration suite on SQLite"
run_part cargo-sqlite cargo test --all-targets

cargo build --bin otpd
if [ "$have_venv" = 1 ]; then
  run_part schemathesis scripts/schemathesis.sh "${OTPD_SCHEMATHESIS_EXAMPLES:-25}"
else
  extra_skips=$((extra_skips + 1))
fi

echo "== the README's examples against a fresh dev server (scripts/readme-examples.sh)"
run_part readme scripts/readme-examples.sh

echo "== the Debian package (scripts/test-deb.sh)"
run_part deb scripts/test-deb.sh

if ensure_postgres; then
  echo "== integration suite on PostgreSQL ($PG_URL)"
  trap drop_test_databases EXIT
  OTPD_TEST_DATABASE_URL="$PG_URL" OTPD_TEST_DB_PREFIX="$RUN_PREFIX" run_part cargo-postgres cargo test --test api
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable at 127.0.0.1:5432 and could not be started" >&2
  failed_parts+=(postgres-unreachable)
else
  echo "WARNING: PostgreSQL not reachable: the PostgreSQL half of the suite was skipped" >&2
  extra_skips=$((extra_skips + 1))
fi

# One closing line over every part: cargo's `test result:` lines (ignored tests and tests that
# printed `SKIPPED <name>: <why>` count as skipped), schemathesis's test cases, the package
# checks, and one each for the architecture check and any part that failed without counting.
summary=$(python3 scripts/test-summary.py "$LOGS" "$extra_skips")
rm -rf "$LOGS"
if [ "${#failed_parts[@]}" -gt 0 ]; then
  echo "failed parts: ${failed_parts[*]}" >&2
fi
echo "$summary"
[ "${#failed_parts[@]}" = 0 ]
