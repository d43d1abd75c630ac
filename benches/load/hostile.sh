#!/usr/bin/env bash
# Hostile clients against the reverse-proxy example (issue 13's front-door figures):
#
#   benches/load/hostile.sh [BINARY ...]
#
# For each reverse-proxy binary given (default: this tree's release build, built if
# missing), with its embedded demo configuration on 127.0.0.1:18190:
#  1. lock-out: under `ulimit -n 1024`, 1,100 idle connections, then how long until a new
#     client's GET / and a GET /balancer-manager are answered (each bounded by 60 s); then
#     the same with connections that each sent one byte (not idle: the header timeout, not
#     the cap, frees them);
#  2. memory: under `ulimit -n 4096`, RSS idle and the peak while 1,000 clients each drip
#     an unfinished 300 KB request head, then 31 KB heads (just under this branch's
#     32 KiB head cap: the most a slow client can make it hold).
# Give two binaries (e.g. one built from main, one from this branch) to compare them in the
# same run. Nothing leaves loopback; every phase is bounded. Not part of CI.

set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PORT=18190
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [[ $# -eq 0 ]]; then
    (cd "$ROOT" && cargo build --release --example reverse-proxy)
    set -- "$TARGET/release/examples/reverse-proxy"
fi

start() { # BINARY NOFILE
    bash -c "ulimit -n $2; exec \"$1\" --listen 127.0.0.1:$PORT --backends 3" >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
        sleep 0.1
    done
    echo "the proxy did not start" >&2
    kill "$PID"
    return 1
}

stop() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    sleep 1
}

for bin in "$@"; do
    echo "=== $bin"
    start "$bin" 1024
    echo "--- lock-out (ulimit -n 1024)"
    python3 "$HERE/hostile.py" lockout "$PORT" "$PID" --idle 1100
    stop
    start "$bin" 1024
    echo "--- lock-out by connections that each sent one byte (ulimit -n 1024)"
    python3 "$HERE/hostile.py" lockout "$PORT" "$PID" --idle 1100 --first-byte
    stop
    start "$bin" 4096
    echo "--- memory (ulimit -n 4096)"
    python3 "$HERE/hostile.py" memory "$PORT" "$PID" --clients 1000 --head-kb 300
    stop
    start "$bin" 4096
    echo "--- memory, heads just under the 32 KiB cap (ulimit -n 4096)"
    python3 "$HERE/hostile.py" memory "$PORT" "$PID" --clients 1000 --head-kb 31
    stop
done
