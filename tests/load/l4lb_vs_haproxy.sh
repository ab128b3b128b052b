#!/usr/bin/env bash
# Load scenario "L4 connection rate": l4lb vs HAProxy `mode tcp`, one
# worker/thread each, in front of the same nginx (PROXY v2 on both, as in
# production), all on 127.0.0.1, in one run. Reports for each proxy:
#   - new connections per second (wrk, Connection: close)
#   - requests per second over kept-alive connections (wrk)
#   - bulk throughput (curl downloading a large file)
# with the proxy's CPU time per connection / request / MB read from
# /proc/PID/stat, and edge's ratios to HAProxy. Then the Maglev table build
# time for N=1000, M=65537 (the paper: 1.8 ms).
#
#   bash tests/load/l4lb_vs_haproxy.sh            # DUR=5 seconds per run
#   DUR=10 BULK_MB=1024 bash tests/load/l4lb_vs_haproxy.sh
#
# Client and proxies share the machine's cores: compare the ratios, not
# the absolute numbers (DESIGN §10). A benchmark, never a test.
set -euo pipefail
cd "$(dirname "$0")/../.."

DUR=${DUR:-5}
CONNS=${CONNS:-50}
BULK_MB=${BULK_MB:-512}
BULK_RUNS=${BULK_RUNS:-3}

if [ -z "${L4LB:-}" ] || [ -z "${MAGLEV_BENCH:-}" ]; then
  bazel build -c opt //l4lb:l4lb //tests/load:l4lb_maglev_bench >/dev/null
  bin=$(bazel info -c opt bazel-bin 2>/dev/null)
  L4LB=${L4LB:-$bin/l4lb/l4lb}
  MAGLEV_BENCH=${MAGLEV_BENCH:-$bin/tests/load/l4lb_maglev_bench}
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
NGX=$(free_port)
HAP=$(free_port)
L4=$(free_port)
L4ADMIN=$(free_port)

mkdir -p "$work/www" "$work/nginx"
chmod 755 "$work"  # nginx workers (another user) read www
printf 'ok\n' >"$work/www/index.html"
truncate -s "${BULK_MB}M" "$work/www/bulk.bin"

cat >"$work/nginx.conf" <<EOF
worker_processes 1;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$NGX proxy_protocol;
    root $work/www;
    sendfile on;
  }
}
EOF
nginx -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)

cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000
defaults
  mode tcp
  timeout connect 3s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$HAP
  default_backend b
backend b
  server s1 127.0.0.1:$NGX send-proxy-v2
EOF
haproxy -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" &
HAP_PID=$!
pids+=($HAP_PID)

"$L4LB" --listen=127.0.0.1:$L4 --admin=127.0.0.1:$L4ADMIN --workers=1 \
  --backend=127.0.0.1:$NGX --log-level=info 2>"$work/l4lb.log" &
L4_PID=$!
pids+=($L4_PID)

wait_port() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
    sleep 0.1
  done
  echo "port $1 never answered" >&2
  exit 1
}
wait_port "$HAP"
wait_port "$L4"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# run NAME PID PORT -> sets R_RATE R_CPU_US (per request)
wrk_run() {
  local pid=$1 port=$2
  shift 2
  local t0 t1 out reqs
  t0=$(ticks "$pid")
  out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" "$@" "http://127.0.0.1:$port/")
  t1=$(ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  R_RATE=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  R_CPU_US=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
}

bulk_run() {
  local pid=$1 port=$2 t0 t1 speed sum=0
  t0=$(ticks "$pid")
  for _ in $(seq 1 "$BULK_RUNS"); do
    speed=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/bulk.bin")
    sum=$(awk -v a="$sum" -v b="$speed" 'BEGIN {print a + b}')
  done
  t1=$(ticks "$pid")
  R_RATE=$(awk -v s="$sum" -v n="$BULK_RUNS" 'BEGIN {printf "%.0f", s / n / 1048576}')
  R_CPU_US=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v mb=$((BULK_MB * BULK_RUNS)) \
    'BEGIN {printf "%.1f", d * 1e6 / hz / mb}')
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

printf '%-22s %14s %14s %10s %14s %14s %10s\n' scenario "edge rate" "haproxy rate" "ratio" \
  "edge cpu_us" "haproxy cpu_us" "cpu ratio"
row() {
  local name=$1 unit=$2 cpuunit=$3
  shift 3
  "$@" "$L4_PID" "$L4" ${EXTRA:-}
  local er=$R_RATE ec=$R_CPU_US
  "$@" "$HAP_PID" "$HAP" ${EXTRA:-}
  local hr=$R_RATE hc=$R_CPU_US
  printf '%-22s %14s %14s %10s %14s %14s %10s\n' "$name" "$er $unit" "$hr $unit" \
    "$(ratio "$er" "$hr")" "$ec/$cpuunit" "$hc/$cpuunit" "$(ratio "$ec" "$hc")"
}
EXTRA="-H Connection:close" row "new connections" conn/s conn wrk_run
EXTRA="" row "keep-alive requests" req/s req wrk_run
EXTRA="" row "bulk download" MB/s MB bulk_run

echo
"$MAGLEV_BENCH" 1000 65537 20
