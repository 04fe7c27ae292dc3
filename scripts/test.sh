#!/usr/bin/env bash
# The whole test suite: unit tests, then the integration suite on SQLite and on PostgreSQL.
#
#   scripts/test.sh
#
# Python tools (pyotp, an independent TOTP implementation for the tests; bcrypt and argon2-cffi,
# independent password hashers for the import tests; schemathesis, run
# against a live dev server; aiosmtpd, the mail tests' SMTP server) live in a venv under
# target/test-venv, made on first use.
#
# PostgreSQL is taken from OTPD_TEST_PG_URL (default: the local server at 127.0.0.1:5432, database
# `test`, trust auth); it is started if it is installed but not running. Without PostgreSQL the
# PostgreSQL half is skipped with a warning, except under CI (CI=true), where that is a failure.
#
# A test that cannot run here prints `SKIPPED <test>: <why>`; the summary at the end counts those
# lines per half of the suite. Under CI a missing tool (Python, Node) fails its tests instead.
#
# Every part runs even when an earlier one failed, and the run ends with one line over all of
# them (scripts/test-summary.py): `otpd: N passed, N failed, N skipped`.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${OTPD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"

pg_up() { pg_isready -q -d "$PG_URL" >/dev/null 2>&1; }

# Each part's output is kept here, for the skip summary and the closing line. A part that fails is
# recorded (`<name>.failed`) and the run goes on; the exit status says whether any failed.
LOG_DIR="$(mktemp -d)"
failed_parts=()
skipped_parts=0
logged() {
  local name=$1
  shift
  if ! "$@" 2>&1 | tee "$LOG_DIR/$name.log"; then
    failed_parts+=("$name")
    touch "$LOG_DIR/$name.failed"
  fi
}

summary() {
  local total=0 n f
  echo "== skipped tests"
  for f in "$LOG_DIR"/*.log; do
    [ -e "$f" ] || continue
    # Anywhere in a line: the harness may print a test's name on the same line first.
    n=$({ grep -oE 'SKIPPED [A-Za-z0-9_:]+: .*' "$f" || true; } | sort -u | tee "$f.skipped" | wc -l)
    total=$((total + n))
    echo "$(basename "$f" .log): $n skipped"
    sed 's/^/  /' "$f.skipped"
  done
  echo "== $total skipped in all"
  [ "${#failed_parts[@]}" = 0 ] || echo "== failed parts: ${failed_parts[*]}"
  python3 scripts/test-summary.py "$LOG_DIR" "$skipped_parts" "$1"
}

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
PY_TOOLS="pyotp==2.* schemathesis==4.* aiosmtpd==1.* selenium==4.* bcrypt==4.* argon2-cffi==23.*"
ensure_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import pyotp, schemathesis, aiosmtpd, selenium, bcrypt, argon2" >/dev/null 2>&1; then
    return 0
  fi
  echo "== creating $VENV ($PY_TOOLS)"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q $PY_TOOLS
}

if ensure_venv; then
  export OTPD_TEST_PYTHON="$PWD/$VENV/bin/python"
  have_venv=1
elif [ "${CI:-}" = "true" ]; then
  echo "could not create $VENV with $PY_TOOLS" >&2
  exit 1
else
  echo "WARNING: no Python venv: the pyotp interop test, the mail tests and schemathesis are skipped" >&2
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

# The browser tests (tests/api/browser.rs): Debian's Chromium and chromedriver, driven by selenium
# from the venv, with axe-core from tests/browser (committed lock file). CI installs the browser;
# elsewhere the tests skip with a SKIPPED line when it is missing.
ensure_browser() {
  if [ "${CI:-}" = "true" ] && ! [ -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    echo "== apt-get install chromium chromium-driver (browser tests)"
    apt-get install -y -q chromium chromium-driver >/dev/null ||
      { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }
  fi
  if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ] && command -v npm >/dev/null 2>&1; then
    echo "== npm ci (tests/browser: axe-core for the browser tests)"
    npm ci --prefix tests/browser --no-audit --no-fund
  fi
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -f tests/browser/node_modules/axe-core/axe.min.js ]
}

if ! ensure_browser; then
  if [ "${CI:-}" = "true" ]; then
    echo "chromium, chromedriver or axe-core is missing: the browser tests cannot run" >&2
    exit 1
  fi
  echo "WARNING: no chromium/chromedriver/axe-core: the browser tests (browser::*) will be skipped" >&2
fi

used_postgres=0
on_exit() {
  local rc=$?
  set +e  # the summary must be printed whatever happened
  [ "$used_postgres" = 1 ] && drop_test_databases
  summary "$rc"
  rm -rf "$LOG_DIR"
  return $rc
}
trap on_exit EXIT

echo "== architecture (docs/architecture.md: the arrows that must never exist)"
logged architecture python3 scripts/check-architecture.py

echo "== unit tests and integration suite on SQLite"
logged sqlite cargo test --all-targets

cargo build --bin otpd
if [ "$have_venv" = 1 ]; then
  logged schemathesis scripts/schemathesis.sh "${OTPD_SCHEMATHESIS_EXAMPLES:-25}"
else
  skipped_parts=$((skipped_parts + 1))
fi

echo "== the README's examples against a fresh dev server (scripts/readme-examples.sh)"
logged readme scripts/readme-examples.sh

echo "== the Debian package (scripts/test-deb.sh)"
logged deb scripts/test-deb.sh

if ensure_postgres; then
  echo "== integration suite on PostgreSQL ($PG_URL)"
  used_postgres=1
  OTPD_TEST_DATABASE_URL="$PG_URL" OTPD_TEST_DB_PREFIX="$RUN_PREFIX" logged postgresql cargo test --test api
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable at $PG_URL and could not be started" >&2
  exit 1
else
  echo "WARNING: PostgreSQL not reachable: the PostgreSQL half of the suite was skipped" >&2
  skipped_parts=$((skipped_parts + 1))
fi

[ "${#failed_parts[@]}" = 0 ]
