#!/usr/bin/env bash
# obs_instructions.sh — instructions per request of l7proxy (valgrind
# callgrind: counts, not seconds, so the figure does not move with the
# machine's load), for HTTP/1.1 keep-alive requests (h2load --h1 -c10)
# to an nginx backend, 1 worker:
#   before    BEFORE_BIN_DIR's l7proxy (e.g. main's -c opt build)
#   off       BIN_DIR's l7proxy, tracing and access logs off
#   logfmt    + --access-log-path (logfmt)
#   json+1%   + --access-log-format=json, --trace-sample=0.01 to the in-tree
#             OTLP receiver
# Each side runs twice, with 0 and with N requests; the difference / N is
# the cost of a request (start-up and shutdown cancel out).
#
#   tests/load/obs_instructions.sh BIN_DIR [BEFORE_BIN_DIR] [N=6000]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$(cd "$1" && pwd)"
before="${2:-}"
n="${3:-6000}"
for t in valgrind h2load nginx curl; do
  command -v "$t" >/dev/null || { echo "obs_instructions.sh: $t missing" >&2; exit 1; }
done
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/ng/nginx.pid" ] && kill "$(cat "$work/ng/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$work/ng"
bport=$(free_port)
cat >"$work/ng/nginx.conf" <<EOC
worker_processes 1;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/ng; proxy_temp_path $work/ng; fastcgi_temp_path $work/ng;
  uwsgi_temp_path $work/ng; scgi_temp_path $work/ng;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$bport; location / { return 200 "hello from the backend\n"; } }
}
EOC
nginx -p "$work/ng" -c "$work/ng/nginx.conf"
cat >"$work/cfg.json" <<EOC
{"version":1,"resources":[{"cluster":{"name":"be","endpoints":[{"address":"127.0.0.1","port":$bport,"ready":true}]}},
 {"virtual_host":{"name":"v","host":"*","host_match":"HOST_MATCH_ANY","routes":[{"path":"/","path_type":"PATH_TYPE_PREFIX","cluster":"be"}]}}]}
EOC
python3 "$root/tests/otlp/otlp_receiver.py" "$work/otlp.port" &
pids+=($!)
for _ in $(seq 1 100); do [ -f "$work/otlp.port" ] && break; sleep 0.1; done
rport=$(cat "$work/otlp.port")

# instructions BINARY REQUESTS FLAGS...: total Ir of one run
instructions() {
  local b="$1" reqs="$2"
  shift 2
  local port admin out="$work/cg.$RANDOM.out"
  port=$(free_port)
  admin=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$b" --workers=1 \
    --http=127.0.0.1:"$port" --admin=127.0.0.1:"$admin" --config="$work/cfg.json" \
    --log-level=warn "$@" >"$out.log" 2>&1 &
  local pid=$!
  local ok=0
  for _ in $(seq 1 600); do
    if curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$admin/readyz" 2>/dev/null &&
      curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then ok=1; break; fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || { echo "l7proxy under valgrind did not become ready" >&2; kill "$pid"; return 1; }
  if [ "$reqs" -gt 0 ]; then
    h2load --h1 -n "$reqs" -c 10 "http://127.0.0.1:$port/" >"$out.h2load" 2>&1
    grep -q "$reqs succeeded" "$out.h2load" || { echo "h2load: $(grep ^requests "$out.h2load")" >&2; kill "$pid"; return 1; }
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  sed -n 's/^summary: //p; s/^totals: //p' "$out" | head -n1
}

declare -A per
sides=()
[ -n "$before" ] && sides+=("before|$before/l7proxy/l7proxy|")
sides+=("off|$bin/l7proxy/l7proxy|")
sides+=("logfmt|$bin/l7proxy/l7proxy|--access-log-path=$work/access.log")
sides+=("json+1%|$bin/l7proxy/l7proxy|--access-log-format=json --access-log-path=$work/access.json --trace-otlp=http://127.0.0.1:$rport/v1/traces --trace-sample=0.01")
for s in "${sides[@]}"; do
  IFS='|' read -r name b flags <<<"$s"
  # shellcheck disable=SC2086
  i0=$(instructions "$b" 0 $flags)
  # shellcheck disable=SC2086
  i1=$(instructions "$b" "$n" $flags)
  per[$name]=$(( (i1 - i0) / n ))
  printf '%-8s %s instructions per request\n' "$name" "${per[$name]}"
done
off=${per[off]}
echo
echo "| l7proxy | instructions / request | ÷ off |"
echo "|---|--:|--:|"
for s in "${sides[@]}"; do
  name=${s%%|*}
  awk -v n="$name" -v v="${per[$name]}" -v o="$off" 'BEGIN { printf "| %s | %d | %.3f× |\n", n, v, v / o }'
done
