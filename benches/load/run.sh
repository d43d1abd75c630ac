#!/usr/bin/env bash
# The load benchmark: proxy-balancer's reverse proxy against nginx, HAProxy and Apache httpd,
# each balancing round-robin over the same 3 backends on loopback, with keep-alive to them.
#
#   benches/load/run.sh [--rounds N] [--duration SECONDS] [--connections N] [--only LIST]
#
# LIST names the cases, among `nginx haproxy apache ours h1pool h2pool haproxy-rr ours-rr`
# (all but the last two by default).
# `h1pool` and `h2pool` compare our member clients: the same reverse proxy and config
# (byrequests + sticky cookie, no health checks) over the same nginx, whose members speak
# HTTP/1.1 (`http://`, our HTTP/1.1 pool) or h2c (`h2c://`, our multiplexed HTTP/2 pool);
# `--only "h1pool h2pool"` measures just those two, and the summary gives h2pool's
# ratios against h1pool.
# `haproxy-rr` and `ours-rr` are plain round robin, nothing else: HAProxy `balance
# roundrobin` with `http-reuse always` and no `option forwardfor`, no cookie, no checks;
# ours byrequests with `ProxyAddHeaders Off`, no sticky session, no health checks.
# `--only "haproxy-rr ours-rr"` measures just those two, and the summary gives ours-rr's
# ratios against haproxy-rr.
#
# It installs nginx, haproxy, apache2 and wrk from Debian's packages if they are missing
# (apt-get; run as root), builds the reverse-proxy example (the `perf` profile; PROFILE=release
# for the default one), starts the 3 backends
# (one nginx answering a fixed 13-byte body on 3 ports) and the four proxies, all on
# 127.0.0.1, pins every proxy to CPU 1 and the load generator and backends to CPU 0 (on a
# machine with more CPUs, set PROXY_CPU and LOAD_CPU), and measures each proxy with wrk in
# interleaved rounds (round 1: nginx, haproxy, apache, ours; round 2: ...), so that a
# slowdown of the machine hits all of them alike. For each proxy it reports the median over
# the rounds of req/s, p50 and p99 latency (wrk --latency) and CPU time per request (the
# proxy's processes' user+system ticks from /proc, divided by the requests served), then the
# ratios against HAProxy.
#
# Every proxy does what ours does with the embedded default: round robin (Apache's
# byrequests), X-Forwarded-For and X-Forwarded-Host to the backends, a sticky cookie set on
# the response, and active health checks of the backends every 2 s, except nginx, whose
# open-source build has neither of the last two (noted in the table). Each
# proxy runs one worker (nginx worker_processes 1, HAProxy nbthread 1, Apache one event-MPM
# process, ours --threads 1) on its one CPU.
#
# Nothing leaves loopback. All files live in a temporary directory, removed at the end.
# This is a benchmark, not a test: CI only checks `bash -n benches/load/run.sh`.

set -euo pipefail

ROUNDS=5
DURATION=10
CONNECTIONS=64
ONLY="nginx haproxy apache ours h1pool h2pool"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
BACKEND_PORTS=(18081 18082 18083)
# The same nginx, speaking h2c (HTTP/2 with prior knowledge) on these.
H2C_PORTS=(18084 18085 18086)
declare -A PORT=([nginx]=18090 [haproxy]=18091 [apache]=18092 [ours]=18093 [h1pool]=18094 [h2pool]=18095
    [haproxy-rr]=18096 [ours-rr]=18097)
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$(mktemp -d /tmp/proxy-balancer-load.XXXXXX)"
TICKS="$(getconf CLK_TCK)"

log() { echo "[load] $*" >&2; }

need() {
    local missing=()
    # nginx serves the backends of every case.
    command -v nginx >/dev/null || missing+=(nginx)
    if [[ " $ONLY " == *" haproxy "* || " $ONLY " == *" haproxy-rr "* ]]; then
        command -v haproxy >/dev/null || missing+=(haproxy)
    fi
    if [[ " $ONLY " == *" apache "* ]]; then
        command -v apache2 >/dev/null || missing+=(apache2)
    fi
    command -v wrk >/dev/null || missing+=(wrk)
    command -v taskset >/dev/null || missing+=(util-linux)
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >"$WORK/apt.log" 2>&1 || {
            DEBIAN_FRONTEND=noninteractive apt-get update >>"$WORK/apt.log" 2>&1
            DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >>"$WORK/apt.log" 2>&1
        }
    fi
    # The packages start their own services on port 80: not ours to keep running.
    for s in nginx haproxy apache2; do
        service "$s" stop >/dev/null 2>&1 || true
    done
}

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    # The daemons, by their pid files (HAProxy and nginx fork; Apache's parent stops its
    # children).
    for f in apache/httpd.pid haproxy/haproxy.pid haproxy-rr/haproxy.pid nginx/nginx.pid backends/nginx.pid; do
        [[ -f "$WORK/$f" ]] && kill "$(cat "$WORK/$f")" 2>/dev/null || true
    done
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    local port=$1
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    log "nothing listens on 127.0.0.1:$port"
    return 1
}

start_backends() {
    mkdir -p "$WORK/backends"
    local listens="" h2c_listens=""
    for p in "${BACKEND_PORTS[@]}"; do
        listens+="        listen 127.0.0.1:$p;"$'\n'
    done
    for p in "${H2C_PORTS[@]}"; do
        h2c_listens+="        listen 127.0.0.1:$p http2;"$'\n'
    done
    cat >"$WORK/backends/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/backends/nginx.pid;
error_log $WORK/backends/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
$listens
        location / { default_type text/plain; return 200 "hello, world\n"; }
    }
    server {
$h2c_listens
        # A connection of the proxy's HTTP/2 pool carries a third of every run's requests:
        # no GOAWAY for reaching a request count.
        keepalive_requests 1000000000;
        location / { default_type text/plain; return 200 "hello, world\n"; }
    }
}
EOF
    taskset -c "$LOAD_CPU" nginx -c "$WORK/backends/nginx.conf" -p "$WORK/backends"
    for p in "${BACKEND_PORTS[@]}" "${H2C_PORTS[@]}"; do wait_port "$p"; done
}

start_nginx() {
    mkdir -p "$WORK/nginx"
    local servers=""
    for p in "${BACKEND_PORTS[@]}"; do servers+="        server 127.0.0.1:$p;"$'\n'; done
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream backends {
$servers
        keepalive 64;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]};
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # What Apache and ours add (ProxyAddHeaders On).
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host \$http_host;
        }
    }
}
EOF
    taskset -c "$PROXY_CPU" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
    wait_port "${PORT[nginx]}"
}

start_haproxy() {
    mkdir -p "$WORK/haproxy"
    local servers="" i=0
    for p in "${BACKEND_PORTS[@]}"; do
        i=$((i + 1))
        servers+="    server node$i 127.0.0.1:$p cookie node$i check inter 2s"$'\n'
    done
    cat >"$WORK/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend be
backend be
    balance roundrobin
    cookie ROUTEID insert indirect nocache
    option httpchk GET /health
    # What Apache and ours add (ProxyAddHeaders On).
    option forwardfor
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
$servers
EOF
    taskset -c "$PROXY_CPU" haproxy -f "$WORK/haproxy/haproxy.cfg" -D -p "$WORK/haproxy/haproxy.pid"
    wait_port "${PORT[haproxy]}"
}

# Plain round robin: no cookie, no checks, no X-Forwarded-*; idle member connections reused
# by any client connection (`http-reuse always`), as our pool does.
start_haproxy-rr() {
    mkdir -p "$WORK/haproxy-rr"
    local servers="" i=0
    for p in "${BACKEND_PORTS[@]}"; do
        i=$((i + 1))
        servers+="    server node$i 127.0.0.1:$p"$'\n'
    done
    cat >"$WORK/haproxy-rr/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:${PORT[haproxy-rr]}
    default_backend be
backend be
    balance roundrobin
$servers
EOF
    taskset -c "$PROXY_CPU" haproxy -f "$WORK/haproxy-rr/haproxy.cfg" -D -p "$WORK/haproxy-rr/haproxy.pid"
    wait_port "${PORT[haproxy-rr]}"
}

# The BalancerMember lines Apache and ours share: routes, health checks every 2 s.
balancer_members() {
    local i=0
    for p in "${BACKEND_PORTS[@]}"; do
        i=$((i + 1))
        echo "    BalancerMember \"http://127.0.0.1:$p\" route=node$i hcmethod=GET hcuri=/health hcinterval=2"
    done
}

start_apache() {
    mkdir -p "$WORK/apache"
    chmod 755 "$WORK" "$WORK/apache"
    local members
    members=$(balancer_members)
    local modules=/usr/lib/apache2/modules
    cat >"$WORK/apache/httpd.conf" <<EOF
ServerRoot "$WORK/apache"
ServerName localhost
Listen 127.0.0.1:${PORT[apache]}
PidFile "$WORK/apache/httpd.pid"
ErrorLog "$WORK/apache/error.log"
LogLevel warn
DefaultRuntimeDir "$WORK/apache"
User www-data
Group www-data
LoadModule mpm_event_module $modules/mod_mpm_event.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule headers_module $modules/mod_headers.so
LoadModule slotmem_shm_module $modules/mod_slotmem_shm.so
LoadModule proxy_module $modules/mod_proxy.so
LoadModule proxy_http_module $modules/mod_proxy_http.so
LoadModule proxy_balancer_module $modules/mod_proxy_balancer.so
LoadModule lbmethod_byrequests_module $modules/mod_lbmethod_byrequests.so
LoadModule proxy_hcheck_module $modules/mod_proxy_hcheck.so
# One process of 128 threads (ours, HAProxy and nginx run one worker each).
ServerLimit 1
StartServers 1
ThreadsPerChild 128
ThreadLimit 128
MaxRequestWorkers 128
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
<Proxy "balancer://bench">
$members
    ProxySet lbmethod=byrequests stickysession=ROUTEID
</Proxy>
ProxyPass "/" "balancer://bench/"
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
EOF
    taskset -c "$PROXY_CPU" apache2 -f "$WORK/apache/httpd.conf" -k start
    wait_port "${PORT[apache]}"
}

start_ours() {
    mkdir -p "$WORK/ours"
    local members
    members=$(balancer_members)
    cat >"$WORK/ours/balancers.conf" <<EOF
<Proxy "balancer://bench">
$members
    ProxySet lbmethod=byrequests stickysession=ROUTEID
</Proxy>
ProxyPass "/" "balancer://bench/"
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
EOF
    taskset -c "$PROXY_CPU" "$OURS" --threads 1 --no-access-log \
        --config "$WORK/ours/balancers.conf" --listen "127.0.0.1:${PORT[ours]}" \
        >"$WORK/ours/out.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$WORK/ours/pid"
    wait_port "${PORT[ours]}"
}

# Ours over plain members (no health checks, so that both protocols do the same work):
# `start_pool NAME SCHEME PORT...`.
start_pool() {
    local name=$1 scheme=$2
    shift 2
    mkdir -p "$WORK/$name"
    local members="" i=0
    for p in "$@"; do
        i=$((i + 1))
        members+="    BalancerMember \"$scheme://127.0.0.1:$p\" route=node$i"$'\n'
    done
    cat >"$WORK/$name/balancers.conf" <<EOF
<Proxy "balancer://bench">
$members
    ProxySet lbmethod=byrequests stickysession=ROUTEID
</Proxy>
ProxyPass "/" "balancer://bench/"
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
EOF
    taskset -c "$PROXY_CPU" "$OURS" --threads 1 --no-access-log \
        --config "$WORK/$name/balancers.conf" --listen "127.0.0.1:${PORT[$name]}" \
        >"$WORK/$name/out.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$WORK/$name/pid"
    wait_port "${PORT[$name]}"
}

# Ours, plain round robin: byrequests, no X-Forwarded-*, no sticky session, no health checks
# (against haproxy-rr).
start_ours-rr() {
    mkdir -p "$WORK/ours-rr"
    local members="" p
    for p in "${BACKEND_PORTS[@]}"; do
        members+="    BalancerMember \"http://127.0.0.1:$p\""$'\n'
    done
    cat >"$WORK/ours-rr/balancers.conf" <<EOF
ProxyAddHeaders Off
<Proxy "balancer://bench">
$members
    ProxySet lbmethod=byrequests
</Proxy>
ProxyPass "/" "balancer://bench/"
EOF
    taskset -c "$PROXY_CPU" "$OURS" --threads 1 --no-access-log \
        --config "$WORK/ours-rr/balancers.conf" --listen "127.0.0.1:${PORT[ours-rr]}" \
        >"$WORK/ours-rr/out.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$WORK/ours-rr/pid"
    wait_port "${PORT[ours-rr]}"
}

start_h1pool() { start_pool h1pool http "${BACKEND_PORTS[@]}"; }
start_h2pool() { start_pool h2pool h2c "${H2C_PORTS[@]}"; }

# The processes of a proxy, for its CPU time.
proxy_pids() {
    case "$1" in
        nginx) local m; m=$(cat "$WORK/nginx/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')" ;;
        haproxy|haproxy-rr) local m; m=$(cat "$WORK/$1/haproxy.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')" ;;
        apache) local m; m=$(cat "$WORK/apache/httpd.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')" ;;
        ours|h1pool|h2pool|ours-rr) cat "$WORK/$1/pid" ;;
    esac
}

cpu_ticks() {
    local total=0 pid fields
    for pid in $(proxy_pids "$1"); do
        if [[ -r "/proc/$pid/stat" ]]; then
            # utime and stime: fields 14 and 15, counted after the command name's ')'.
            fields=$(sed 's/^.*) //' "/proc/$pid/stat")
            total=$((total + $(echo "$fields" | awk '{print $12 + $13}')))
        fi
    done
    echo "$total"
}

# Converts wrk's latency ("1.23ms", "950.00us", "1.02s") to microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000; else m = 1;
        printf "%.1f", n * m }'
}

measure() {
    local name=$1 port=${PORT[$1]} before after out
    # Warm up connection pools and caches.
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/" >/dev/null
    before=$(cpu_ticks "$name")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
    after=$(cpu_ticks "$name")
    local rps requests p50 p99 errors
    rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    p50=$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')")
    p99=$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")
    errors=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ {n += $5} /Socket errors:/ {n += 1} END {print n + 0}')
    local cpu_us
    cpu_us=$(awk -v t=$((after - before)) -v r="$requests" -v hz="$TICKS" 'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
    echo "$name $rps $p50 $p99 $cpu_us $errors" >>"$WORK/results"
    log "$(printf '%-8s %10.0f req/s  p50 %8s us  p99 %8s us  cpu %6s us/req  errors %s' "$name" "$rps" "$p50" "$p99" "$cpu_us" "$errors")"
}

need
# The workspace's `perf` profile (fat LTO, one codegen unit); PROFILE=release for the
# default build.
PROFILE="${PROFILE:-perf}"
log "building the reverse-proxy example (profile $PROFILE)"
(cd "$ROOT" && cargo build --profile "$PROFILE" --example reverse-proxy -q)
OURS="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/examples/reverse-proxy"

start_backends
for p in $ONLY; do
    "start_$p"
done
log "proxies up; checking each answers 200"
for p in $ONLY; do
    code=$(taskset -c "$LOAD_CPU" wrk -t1 -c1 -d1s "http://127.0.0.1:${PORT[$p]}/" | awk '/Non-2xx/ {print "bad"}')
    if [[ -n "$code" ]]; then log "$p answers non-2xx; see $WORK"; exit 1; fi
done

for r in $(seq 1 "$ROUNDS"); do
    log "round $r of $ROUNDS"
    for p in $ONLY; do
        measure "$p"
    done
done

# Medians per proxy, and ratios against HAProxy (see summary.py).
python3 "$HERE/summary.py" "$WORK/results" "$ROUNDS" "$DURATION" "$CONNECTIONS"
