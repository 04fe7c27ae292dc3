#!/usr/bin/env bash
# User-space instructions per cheap rejection (401, 406, 415), otpd against the minimal axum
# handler (examples/bench_hello) sent the identical request, counted by valgrind's callgrind.
#
#   scripts/bench-instructions.sh        # ~1 min after the release build; needs valgrind
#
# Unlike the throughput ratios of scripts/bench.sh, an instruction count does not depend on what
# else the machine runs, so it shows changes of a few per cent that the noise of a shared 2-core
# machine hides (docs/benchmark.md). It leaves out the kernel's share (the same two syscalls per
# request for both servers) and the cost of cache misses and preemption, so it is a guide to
# otpd's own work, not a replacement for the throughput ratio. Not part of CI.
#
# Each server runs under callgrind with instrumentation off; after BENCH_WARMUP requests on one
# keep-alive connection, it is switched on for BENCH_REQUESTS more, and the count is divided by
# them. The client writes each request in one piece, as wrk does (a body that arrives after the
# answer makes hyper close the connection), and opens a new connection when told to close one
# (otpd's max_requests_per_connection, 1,000 by default: the new connection is counted).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${BENCH_REQUESTS:-2000}"
WARMUP="${BENCH_WARMUP:-200}"
PORT="${BENCH_PORT:-18088}"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 1; }

# BENCH_BIN: a directory holding otpd and examples/bench_hello (an earlier build, to compare).
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --quiet --bin otpd --example bench_hello
fi
BIN="$(realpath "${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release}")"
WORK="$(mktemp -d)"
VG_PID=""
cleanup() {
  [ -n "$VG_PID" ] && kill "$VG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export OTPD_LISTEN="127.0.0.1:$PORT" OTPD_LOG="${OTPD_LOG:-info}"
export OTPD_RATE_LIMIT_PER_CLIENT=off OTPD_RATE_LIMIT_PER_ADDRESS=off
export OTPD_DATABASE_URL="sqlite://$WORK/otpd.db"
(cd "$WORK" && "$BIN/otpd" --dev migrate 2>/dev/null)
TOKEN=$(cd "$WORK" && "$BIN/otpd" --dev dev token --sub bench0 --ttl 7200)

# send KIND COUNT: COUNT requests of KIND on one keep-alive connection; fails on a reconnect.
send() {
  python3 - "$PORT" "$1" "$2" "$TOKEN" <<'EOF'
import socket, sys
port, kind, count, token = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
headers = {
    "401": ["Content-Type: application/json"],
    "406": [f"Authorization: Bearer {token}", "Content-Type: application/json", "Accept: text/html"],
    "415": [f"Authorization: Bearer {token}", "Content-Type: text/plain"],
}[kind]
body = b"pin=1235" if kind == "415" else b'{"pin":"1235"}'
head = ["POST /user/2022-1/user/otp HTTP/1.1", f"Host: 127.0.0.1:{port}", *headers,
        f"Content-Length: {len(body)}"]
request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
sock = socket.create_connection(("127.0.0.1", port))
buf = b""
for _ in range(count):
    sock.sendall(request)
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection")
        buf += chunk
    head_end = buf.index(b"\r\n\r\n") + 4
    lines = buf[:head_end].lower().split(b"\r\n")
    length = next(int(l.split(b":")[1]) for l in lines if l.startswith(b"content-length:"))
    while len(buf) < head_end + length:
        buf += sock.recv(65536)
    buf = buf[head_end + length:]
    if b"connection: close" in lines:
        # max_requests_per_connection: a new connection, as wrk opens one (and it is counted).
        sock.close()
        sock = socket.create_connection(("127.0.0.1", port))
EOF
}

# count SERVER KIND: instructions per request of KIND.
count() {
  local server=$1 kind=$2 out="$WORK/callgrind.$1.$2"
  local cmd=("$BIN/otpd" --dev serve)
  [ "$server" = hello ] && cmd=("$BIN/examples/bench_hello" "127.0.0.1:$PORT")
  (cd "$WORK" && exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "${cmd[@]}" >>"$WORK/server.log" 2>&1) &
  VG_PID=$!
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.2
  done
  send "$kind" "$WARMUP"
  callgrind_control -i on "$VG_PID" >/dev/null 2>&1
  send "$kind" "$N"
  callgrind_control -i off "$VG_PID" >/dev/null 2>&1
  callgrind_control -d "$VG_PID" >/dev/null 2>&1
  kill "$VG_PID"
  wait "$VG_PID" 2>/dev/null || true
  VG_PID=""
  local ir
  ir=$(callgrind_annotate "$(ls "$out".* | tail -1)" 2>/dev/null |
    awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' || true)
  awk -v ir="$ir" -v n="$N" 'BEGIN { printf "%.0f", ir / n }'
}

echo "kind,minimal_handler_instructions,otpd_instructions,ratio"
for kind in 401 406 415; do
  hello=$(count hello "$kind")
  otpd=$(count otpd "$kind")
  echo "$kind,$hello,$otpd,$(awk -v a="$hello" -v b="$otpd" 'BEGIN { printf "%.2f", a / b }')"
done
