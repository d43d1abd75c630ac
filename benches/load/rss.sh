#!/usr/bin/env bash
# Memory per idle keep-alive client connection: the reverse-proxy example against HAProxy.
#
#   benches/load/rss.sh [--clients N] [--concurrency N] [--rounds N] [BINARY ...]
#
# Starts 3 backends (one nginx answering 13 bytes on 3 ports, as run.sh), then in turn
# HAProxy (run.sh's config: round robin, sticky cookie, health checks, X-Forwarded-For) and
# each reverse-proxy BINARY given (default: this tree's `perf` build; run.sh's config:
# byrequests, sticky cookie, health checks, X-Forwarded-*), one worker each. Against each,
# rss.py opens N client connections (default 10,000) on 127.0.0.1, sends one `GET /` on
# each (at most CONCURRENCY at once, default 100) and reads its answer, holds them all idle,
# and reads the proxy's RSS (VmRSS of all its processes); it prints the RSS growth per idle
# connection and the ratio against HAProxy's from the same round. Rounds interleave.
#
# Both proxies get what holding 10,000 idle connections needs and nothing else: an open-file
# limit of 65,536 (or the hard limit, if it cannot be raised); KeepAliveTimeout 300 for ours
# (Apache's default 5 s would close them) and `timeout client 300s` and `maxconn` (limit - 100) / 2
# for HAProxy (run.sh's 30 s and 4,096). Give two
# binaries (e.g. one built from main, one from a branch) to compare them in the same run.
# Needs root (the limit; apt-get for haproxy/nginx if missing). Nothing leaves loopback;
# every phase is bounded; the temporary directory is removed at the end. Not part of CI.

set -euo pipefail

CLIENTS=10000
CONCURRENCY=100
ROUNDS=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --clients) CLIENTS="$2"; shift 2 ;;
        --concurrency) CONCURRENCY="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        --*) echo "unknown argument: $1" >&2; exit 2 ;;
        *) break ;;
    esac
done

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$(mktemp -d /tmp/proxy-balancer-rss.XXXXXX)"
BACKEND_PORTS=(18481 18482 18483)
PORT=18490
NOFILE=65536

log() { echo "[rss] $*" >&2; }

if [[ $# -eq 0 ]]; then
    # The workspace's `perf` profile, as run.sh; PROFILE=release for the default build.
    PROFILE="${PROFILE:-perf}"
    log "building the reverse-proxy example (profile $PROFILE)"
    (cd "$ROOT" && cargo build --profile "$PROFILE" --example reverse-proxy -q)
    set -- "${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/examples/reverse-proxy"
fi

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v haproxy >/dev/null || missing+=(haproxy)
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >"$WORK/apt.log" 2>&1 || {
        DEBIAN_FRONTEND=noninteractive apt-get update >>"$WORK/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >>"$WORK/apt.log" 2>&1
    }
    for s in nginx haproxy; do service "$s" stop >/dev/null 2>&1 || true; done
fi

# Both proxies and the client inherit it. Where the hard limit cannot be raised (a container
# without CAP_SYS_RESOURCE), the clients are capped to what the derived connection cap of ours
# allows ((limit - 64) / 2), less a margin, and the table says so.
ulimit -Hn "$NOFILE" 2>/dev/null || NOFILE=$(ulimit -Hn)
ulimit -n "$NOFILE"
FIT=$(((NOFILE - 64) / 2 - 50))
if [[ $CLIENTS -gt $FIT ]]; then
    log "open-file limit $NOFILE: $FIT clients instead of $CLIENTS"
    CLIENTS=$FIT
fi

PID=""
cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
    for f in haproxy.pid backends/nginx.pid; do
        [[ -f "$WORK/$f" ]] && kill "$(cat "$WORK/$f")" 2>/dev/null || true
    done
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "nothing listens on 127.0.0.1:$1"
    return 1
}

mkdir -p "$WORK/backends"
listens=""
for p in "${BACKEND_PORTS[@]}"; do listens+="        listen 127.0.0.1:$p;"$'\n'; done
cat >"$WORK/backends/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/backends/nginx.pid;
error_log $WORK/backends/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
$listens
        location / { default_type text/plain; return 200 "hello, world\n"; }
    }
}
EOF
nginx -c "$WORK/backends/nginx.conf" -p "$WORK/backends"
for p in "${BACKEND_PORTS[@]}"; do wait_port "$p"; done

servers="" members="" i=0
for p in "${BACKEND_PORTS[@]}"; do
    i=$((i + 1))
    servers+="    server node$i 127.0.0.1:$p cookie node$i check inter 2s"$'\n'
    members+="    BalancerMember \"http://127.0.0.1:$p\" route=node$i hcmethod=GET hcuri=/health hcinterval=2"$'\n'
done
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $(((NOFILE - 100) / 2))
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$PORT
    default_backend be
backend be
    balance roundrobin
    cookie ROUTEID insert indirect nocache
    option httpchk GET /health
    option forwardfor
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
$servers
EOF
cat >"$WORK/balancers.conf" <<EOF
KeepAliveTimeout 300
<Proxy "balancer://bench">
$members
    ProxySet lbmethod=byrequests stickysession=ROUTEID
</Proxy>
ProxyPass "/" "balancer://bench/"
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
EOF

# `measure NAME`: with the proxy up as $PID, one line of rss.py into results.
measure() {
    # Warm-up: one request, so that what the first one allocates is in the baseline.
    curl -s -o /dev/null "http://127.0.0.1:$PORT/"
    sleep 1
    local out
    out=$(timeout 300 python3 "$HERE/rss.py" "$PORT" "$PID" --clients "$CLIENTS" \
        --concurrency "$CONCURRENCY")
    log "$1: $out"
    echo "$1 $(echo "$out" | sed -n 's/.*bytes_per_conn=\([0-9-]*\).*/\1/p')" >>"$WORK/results"
}

stop() {
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    PID=""
    rm -f "$WORK/haproxy.pid"
    # The closed connections' TIME_WAIT sit on the client's side; let the backlog settle.
    sleep 1
}

for r in $(seq 1 "$ROUNDS"); do
    log "round $r of $ROUNDS"
    haproxy -f "$WORK/haproxy.cfg" -D -p "$WORK/haproxy.pid"
    wait_port "$PORT"
    PID=$(cat "$WORK/haproxy.pid")
    measure haproxy
    stop
    n=0
    for bin in "$@"; do
        n=$((n + 1))
        "$bin" --threads 1 --no-access-log --config "$WORK/balancers.conf" \
            --listen "127.0.0.1:$PORT" >"$WORK/ours$n.log" 2>&1 &
        PID=$!
        wait_port "$PORT"
        measure "ours$n"
        stop
    done
done

python3 - "$WORK/results" "$CLIENTS" "$@" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, per = line.split()
    rows.setdefault(name, []).append(float(per))
bins = sys.argv[3:]
print(f"\nRSS growth per idle keep-alive client connection ({sys.argv[2]} clients; median over rounds), bytes")
print("| proxy | bytes per connection | vs HAProxy (median of per-round ratios) |")
print("|---|---:|---:|")
for name, per in rows.items():
    label = name if name == "haproxy" else f"{name} ({bins[int(name[4:]) - 1]})"
    ratios = [p / h for p, h in zip(per, rows["haproxy"]) if h]
    ratio = f"{statistics.median(ratios):.2f}×" if ratios else "-"
    print(f"| {label} | {statistics.median(per):,.0f} | {ratio} |")
EOF
