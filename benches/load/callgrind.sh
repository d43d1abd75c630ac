#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: the reverse-proxy
# example (one thread) in front of 3 nginx backends on loopback, driven by wrk.
#
#   benches/load/callgrind.sh [--mode default|plain|both] [--requests N] [--warmup N]
#                             [--runs N] [--top N] [--bin PATH] [--keep DIR]
#
# Modes (both by default):
#   default  what run.sh's "ours" serves: byrequests + sticky cookie (ROUTEID, route cookie
#            set on the response) + health checks every 2 s + X-Forwarded-* (ProxyAddHeaders
#            is On by default);
#   plain    byrequests only: ProxyAddHeaders Off, no sticky session, no health checks.
# Both run with --no-access-log (as run.sh does); ACCESS_LOG=1 keeps the example's default
# access log (combined format, to a file here) to measure its cost; SHARE=http://host:port
# adds `BalancerShare etcd SHARE` (an etcd you started) to measure the shared mode's cost.
#
# How: the proxy runs with --threads 1 under `valgrind --tool=callgrind`; wrk -t1 -c8 sends
# --warmup requests (pools filled, caches warm), the counters are zeroed
# (`callgrind_control -z`), wrk sends exactly --requests more (a Lua script stops it at that
# count), the counters are dumped (`callgrind_control -d`) and the figure is the dump's total
# Ir divided by the requests wrk counted. A fixed count rather than a fixed time: the
# proxy's speed under valgrind follows the machine's load, a count does not. --runs N
# repeats each mode (a new proxy each time) and prints every run and the spread. Then the
# top functions by inclusive cost (`callgrind_annotate --inclusive=yes`) of the last run.
#
# The build: `cargo build --profile $PROFILE --example reverse-proxy` (PROFILE=release by
# default; CARGO_TARGET_DIR is honoured), or --bin PATH to measure a binary built elsewhere
# (A/B of two commits: run the script once per binary, interleaved). A release build has
# symbols but no debug info: inlined functions are counted in their callers.
#
# Nothing leaves loopback; the ports are free ones the kernel hands out; every file lives in
# a temporary directory removed at the end (--keep DIR copies the dumps there first). Nothing
# is pinned (set PROXY_CPU and LOAD_CPU to pin the proxy and wrk + backends): instruction
# counts do not depend on it. Bounded in time: each wrk has a timeout. Needs valgrind, nginx,
# wrk (Debian: valgrind nginx-light wrk). Not a test: CI only checks `bash -n` on it.

set -euo pipefail

MODES="default plain"
REQUESTS=20000
WARMUP=3000
RUNS=1
TOP=40
BIN=""
KEEP=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --mode) MODES="$2"; [[ "$MODES" == both ]] && MODES="default plain"; shift 2 ;;
        --requests) REQUESTS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --top) TOP="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --keep) KEEP="$2"; shift 2 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

PROFILE="${PROFILE:-release}"
CONNECTIONS="${CONNECTIONS:-8}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$(mktemp -d /tmp/proxy-balancer-callgrind.XXXXXX)"

log() { echo "[callgrind] $*" >&2; }

for tool in valgrind callgrind_control callgrind_annotate nginx wrk python3; do
    command -v "$tool" >/dev/null || { log "needs $tool"; exit 1; }
done

# Prefixes pinning a command to a CPU (empty: not pinned). Arrays, not a function: a
# function run with `&` is a subshell, and `$!` would not be the command's pid.
PROXY_PIN=()
LOAD_PIN=()
[[ -n "${PROXY_CPU:-}" ]] && PROXY_PIN=(taskset -c "$PROXY_CPU")
[[ -n "${LOAD_CPU:-}" ]] && LOAD_PIN=(taskset -c "$LOAD_CPU")

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    [[ -f "$WORK/backends/nginx.pid" ]] && kill "$(cat "$WORK/backends/nginx.pid")" 2>/dev/null || true
    sleep 0.3
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# Free loopback ports, as the kernel hands them out (bound and released at once).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_port() {
    local port=$1 tries=${2:-100}
    for _ in $(seq 1 "$tries"); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    log "nothing listens on 127.0.0.1:$port"
    return 1
}

read -r -a BACKEND_PORTS <<<"$(free_ports 3)"

start_backends() {
    mkdir -p "$WORK/backends"
    local listens=""
    for p in "${BACKEND_PORTS[@]}"; do
        listens+="        listen 127.0.0.1:$p;"$'\n'
    done
    # As run.sh's backends: a fixed 13-byte body, keep-alive without a request limit.
    cat >"$WORK/backends/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/backends/nginx.pid;
error_log $WORK/backends/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/backends;
    proxy_temp_path $WORK/backends;
    fastcgi_temp_path $WORK/backends;
    uwsgi_temp_path $WORK/backends;
    scgi_temp_path $WORK/backends;
    server {
$listens
        location / { default_type text/plain; return 200 "hello, world\n"; }
    }
}
EOF
    "${LOAD_PIN[@]}" nginx -e "$WORK/backends/error.log" -c "$WORK/backends/nginx.conf" -p "$WORK/backends"
    for p in "${BACKEND_PORTS[@]}"; do wait_port "$p"; done
}

# The configuration of a mode.
write_config() {
    local mode=$1 file=$2 i=0 p
    {
        echo '<Proxy "balancer://bench">'
        for p in "${BACKEND_PORTS[@]}"; do
            i=$((i + 1))
            case "$mode" in
                # run.sh's balancer_members: routes, health checks every 2 s.
                default) echo "    BalancerMember \"http://127.0.0.1:$p\" route=node$i hcmethod=GET hcuri=/health hcinterval=2" ;;
                plain) echo "    BalancerMember \"http://127.0.0.1:$p\"" ;;
            esac
        done
        case "$mode" in
            default)
                echo '    ProxySet lbmethod=byrequests stickysession=ROUTEID'
                echo '</Proxy>'
                echo 'ProxyPass "/" "balancer://bench/"'
                echo 'Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED'
                ;;
            plain)
                echo '    ProxySet lbmethod=byrequests'
                echo '</Proxy>'
                echo 'ProxyAddHeaders Off'
                echo 'ProxyPass "/" "balancer://bench/"'
                ;;
            *) log "unknown mode $mode"; exit 2 ;;
        esac
        if [[ -n "${ACCESS_LOG:-}" ]]; then
            echo "CustomLog \"$WORK/access.log\" combined"
        fi
        # SHARE=http://127.0.0.1:PORT: the balancer shared through that etcd (BalancerShare),
        # to measure what sharing costs each request (nothing, by design: docs/fleet.md).
        if [[ -n "${SHARE:-}" ]]; then
            echo "BalancerShare etcd $SHARE prefix=/callgrind/"
        fi
    } >"$file"
}

# wrk stopping after N responses (one thread): the Lua script stops the thread and leaves a
# marker file; wrk's main thread sleeps for its whole -d, so SIGINT (which wrk takes as "stop
# now and report") ends it as soon as the marker appears.
cat >"$WORK/count.lua" <<'EOF'
local limit = tonumber(os.getenv("WRK_LIMIT"))
local marker = os.getenv("WRK_MARKER")
local seen = 0
response = function(status, headers, body)
    seen = seen + 1
    if seen == limit then
        local f = io.open(marker, "w")
        f:close()
        wrk.thread:stop()
    end
end
EOF

# `drive PORT N`: N requests through wrk (at most 10 minutes); prints wrk's output.
drive() {
    local port=$1 n=$2 marker="$WORK/wrk.done"
    rm -f "$marker"
    WRK_LIMIT=$n WRK_MARKER=$marker "${LOAD_PIN[@]}" wrk -t1 -c"$CONNECTIONS" -d600s \
        --timeout 30s -s "$WORK/count.lua" "http://127.0.0.1:$port/" >"$WORK/wrk.out" 2>&1 &
    local wrk=$!
    PIDS+=("$wrk")
    while kill -0 "$wrk" 2>/dev/null && [[ ! -e "$marker" ]]; do
        sleep 0.1
    done
    kill -INT "$wrk" 2>/dev/null || true
    wait "$wrk" || true
    cat "$WORK/wrk.out"
}

# The newest dump file of a pid.
dump_of() {
    ls -t "$WORK"/cg."$1"* 2>/dev/null | head -n1
}

# `measure MODE RUN`: one proxy under callgrind; appends "mode ir requests" to results.
measure() {
    local mode=$1 run=$2 port
    port=$(free_ports 1)
    local conf="$WORK/$mode.conf"
    write_config "$mode" "$conf"
    local access=(--no-access-log)
    [[ -n "${ACCESS_LOG:-}" ]] && access=()
    "${PROXY_PIN[@]}" valgrind --tool=callgrind --dump-instr=no --compress-strings=no \
        --callgrind-out-file="$WORK/cg.%p" \
        "$OURS" --threads 1 "${access[@]}" --config "$conf" --listen "127.0.0.1:$port" \
        >"$WORK/proxy.$mode.$run.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$port" 600
    drive "$port" "$WARMUP" >"$WORK/warmup.log"
    callgrind_control -z "$pid" >/dev/null 2>&1
    local out
    out=$(drive "$port" "$REQUESTS")
    callgrind_control -d "$pid" >/dev/null 2>&1
    local dump=""
    for _ in $(seq 1 100); do
        dump=$(dump_of "$pid")
        [[ -n "$dump" ]] && break
        sleep 0.2
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [[ -z "$dump" ]]; then log "no dump from $pid; see $WORK"; exit 1; fi
    if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then
        log "$mode: errors: $(echo "$out" | grep 'Non-2xx\|Socket errors')"
        exit 1
    fi
    local requests ir
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
    echo "$mode $ir $requests" >>"$WORK/results"
    log "$(printf '%-8s run %d: %14s Ir / %7s requests = %8.0f Ir per request' \
        "$mode" "$run" "$ir" "$requests" "$(echo "$ir $requests" | awk '{print $1 / $2}')")"
    mv "$dump" "$WORK/callgrind.$mode.$run"
    rm -f "$WORK"/cg."$pid"*
}

if [[ -z "$BIN" ]]; then
    log "building the reverse-proxy example (--profile $PROFILE)"
    (cd "$ROOT" && cargo build --profile "$PROFILE" --example reverse-proxy -q)
    dir="$PROFILE"
    [[ "$PROFILE" == dev ]] && dir=debug
    [[ "$PROFILE" == test ]] && dir=debug
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$dir/examples/reverse-proxy"
fi
OURS="$BIN"
log "binary: $OURS"

start_backends
for run in $(seq 1 "$RUNS"); do
    for mode in $MODES; do
        measure "$mode" "$run"
    done
done

echo
echo "Instructions per request (callgrind Ir, --threads 1, wrk -t1 -c$CONNECTIONS, $REQUESTS requests after $WARMUP):"
awk '
    { ir[$1] = ir[$1] " " $2 / $3; n[$1]++; s[$1] += $2 / $3
      if (!($1 in lo) || $2 / $3 < lo[$1]) lo[$1] = $2 / $3
      if (!($1 in hi) || $2 / $3 > hi[$1]) hi[$1] = $2 / $3 }
    END { for (m in n) printf "  %-8s mean %8.0f   runs:%s   spread %.2f %%\n", m, s[m] / n[m], ir[m], (hi[m] - lo[m]) / (s[m] / n[m]) * 100 }
' "$WORK/results"

if [[ -n "$KEEP" ]]; then
    mkdir -p "$KEEP"
    cp "$WORK"/callgrind.* "$WORK/results" "$KEEP"/
    log "dumps kept in $KEEP"
fi

for mode in $MODES; do
    echo
    echo "== $mode: top $TOP functions by inclusive Ir (last run; share of the total) =="
    callgrind_annotate --inclusive=yes --threshold=100 "$WORK/callgrind.$mode.$RUNS" \
        >"$WORK/annotate.$mode" 2>/dev/null || true
    awk -v top="$TOP" 'found && NF && n < top { print; n++ } /file:function/ { found = 1 }' \
        "$WORK/annotate.$mode" | cut -c1-200
done
