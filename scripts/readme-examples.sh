#!/usr/bin/env bash
# Runs the README's examples as a newcomer would paste them: every ```sh block of README.md, in
# order, in one bash (so variables like $TOKEN and $OTP carry from block to block), with the
# built `otpd` first on the PATH, against a fresh `otpd serve --dev` on a free port in an empty
# directory (the README's 127.0.0.1:8080 is rewritten to that port). A block that fails stops the
# run. Blocks fenced as ```text (starting the server, installing) are not run.
#
#   scripts/readme-examples.sh      # needs target/debug/otpd; ends with `readme: N passed, N failed[, N skipped]`
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bin="$repo/${CARGO_TARGET_DIR:-target}/debug"
[ -x "$bin/otpd" ] || { echo "build first: cargo build --bin otpd" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# The blocks, each followed by a marker line so the count of blocks that ran can be told.
python3 - "$repo/README.md" "$port" > "$work/examples.sh" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
print("set -euo pipefail")
for i, block in enumerate(blocks, 1):
    print(f"echo '--- README block {i}/{len(blocks)}'")
    print(block.replace("127.0.0.1:8080", f"127.0.0.1:{sys.argv[2]}"))
    print(f"printf '\\nREADME-BLOCK-OK {i}\\n'")
print(f"# blocks: {len(blocks)}")
PY
total=$(sed -n 's/^# blocks: //p' "$work/examples.sh")

# What a newcomer's shell has: no OTPD_* settings, the README's working directory.
for v in $(env | sed -n 's/^\(OTPD_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export PATH="$bin:$PATH"
cd "$work"
OTPD_LISTEN="127.0.0.1:$port" otpd serve --dev > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

bash "$work/examples.sh" > "$work/out.log" 2>&1
rc=$?
cat "$work/out.log"
passed=$(grep -c '^README-BLOCK-OK ' "$work/out.log")
failed=0
if [ "$rc" != 0 ]; then
  failed=1
  echo "--- the block after README-BLOCK-OK $passed failed (exit $rc); server log:" >&2
  tail -n 30 "$work/server.log" >&2
fi
# The mail of the sendmail example must have reached the dev console.
if [ "$rc" = 0 ] && grep -q 'user/otp/sendmail' "$repo/README.md"; then
  if ! grep -q 'development mode: this mail was not sent' "$work/server.log"; then
    echo "--- sendmail answered, but no mail was printed by the server" >&2
    failed=1 passed=$((passed - 1))
  fi
fi
# Likewise the SMS of the phone example.
if [ "$rc" = 0 ] && grep -q 'user/phone' "$repo/README.md"; then
  if ! grep -q 'development mode: this SMS was not sent' "$work/server.log"; then
    echo "--- PUT /user/phone answered, but no SMS was printed by the server" >&2
    failed=1 passed=$((passed - 1))
  fi
fi
echo "readme: $passed passed, $failed failed, $((total - passed - failed)) skipped"
[ "$failed" = 0 ]
