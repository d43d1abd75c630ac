#!/usr/bin/env bash
# Interleaved A/B of the reverse proxy's `--threads 2` (not run by CI; `bash -n` only):
#
#   benches/load/per_core.sh OLD_BINARY NEW_BINARY     (ROUNDS, DURATION, CONNECTIONS)
#
# Three proxies over the same nginx backends (one nginx, 3 ports, as run.sh starts them,
# on ports 18181-18183), the configuration of run.sh's "ours" (byrequests + sticky cookie +
# health checks + X-Forwarded-*), each with --threads 2: "old" is OLD_BINARY (e.g. the
# work-stealing runtime of be3a132), "new" NEW_BINARY per core (a thread, current-thread
# runtime and SO_REUSEPORT listener per worker), "newws" NEW_BINARY with --runtime
# work-stealing (a control: same code, old runtime). Rounds alternate the order. Nothing
# is pinned: the proxy's two threads need both CPUs of a 2-core machine, which wrk
# (-t1 -c64) and nginx share with them. One line per measurement: req/s, p50 and p99 (µs),
# the proxy's CPU (user + system, /proc) per request, errors, the load average, read and
# write syscalls per request (/proc/PID/io) and context switches per request (all threads).
set -euo pipefail
OLD=$1; NEW=$2; ROUNDS=${ROUNDS:-5}; DURATION=${DURATION:-10}; CONNECTIONS=${CONNECTIONS:-64}
WORK="$(mktemp -d /tmp/cores-bench.XXXXXX)"
TICKS="$(getconf CLK_TCK)"
BACKEND_PORTS=(18181 18182 18183)
declare -A PORT=([old]=18193 [new]=18194 [newws]=18195)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f $WORK/backends/nginx.pid ]] && kill "$(cat $WORK/backends/nginx.pid)" 2>/dev/null || true; sleep 0.5; rm -rf "$WORK"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "no $1" >&2; return 1; }
mkdir -p "$WORK/backends"
listens=""; for p in "${BACKEND_PORTS[@]}"; do listens+="        listen 127.0.0.1:$p;"$'\n'; done
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
}
EOF
nginx -c "$WORK/backends/nginx.conf" -p "$WORK/backends"
for p in "${BACKEND_PORTS[@]}"; do wait_port "$p"; done
members=""; i=0
for p in "${BACKEND_PORTS[@]}"; do i=$((i+1)); members+="    BalancerMember \"http://127.0.0.1:$p\" route=node$i hcmethod=GET hcuri=/health hcinterval=2"$'\n'; done
cat >"$WORK/balancers.conf" <<EOF
<Proxy "balancer://bench">
$members
    ProxySet lbmethod=byrequests stickysession=ROUTEID
</Proxy>
ProxyPass "/" "balancer://bench/"
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
EOF
start() { local name=$1 bin=$2; shift 2
  "$bin" --threads 2 "$@" --no-access-log --config "$WORK/balancers.conf" --listen "127.0.0.1:${PORT[$name]}" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!); echo $! >"$WORK/$name.pid"; wait_port "${PORT[$name]}"; }
start old "$OLD"
start new "$NEW"
start newws "$NEW" --runtime work-stealing
ticks() { local pid; pid=$(cat "$WORK/$1.pid"); sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}'; }
sys() { local pid; pid=$(cat "$WORK/$1.pid"); awk '/^syscr|^syscw/ {n += $2} END {print n}' "/proc/$pid/io"; }
csw() { local pid; pid=$(cat "$WORK/$1.pid"); cat /proc/$pid/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u); if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000; else m = 1; printf "%.1f", n * m }'; }
measure() { local name=$1 port=${PORT[$1]}
  wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/" >/dev/null
  local before after out s0 s1 c0 c1; before=$(ticks "$name"); s0=$(sys "$name"); c0=$(csw "$name")
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
  after=$(ticks "$name"); s1=$(sys "$name"); c1=$(csw "$name")
  local rps req p50 p99 err cpu
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}'); req=$(echo "$out" | awk '/requests in/ {print $1}')
  p50=$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')"); p99=$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  err=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ {n += $5} /Socket errors:/ {n += 1} END {print n + 0}')
  cpu=$(awk -v t=$((after - before)) -v r="$req" -v hz="$TICKS" 'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
  echo "$r $name $rps $p50 $p99 $cpu $err $(cut -d' ' -f1 /proc/loadavg) $(awk -v a=$((s1 - s0)) -v r="$req" 'BEGIN {printf "%.2f", a / r}') $(awk -v a=$((c1 - c0)) -v r="$req" 'BEGIN {printf "%.3f", a / r}')"; }
for name in old new newws; do code=$(wrk -t1 -c1 -d1s "http://127.0.0.1:${PORT[$name]}/" | awk '/Non-2xx/ {print "bad"}'); [[ -z $code ]] || { echo "$name non-2xx" >&2; exit 1; }; done
echo "# round name req/s p50us p99us cpu_us/req errors load1 rw_syscalls/req ctxsw/req"
for r in $(seq 1 "$ROUNDS"); do
  if (( r % 2 )); then order="old new newws"; else order="newws new old"; fi
  for name in $order; do measure "$name"; done
done
