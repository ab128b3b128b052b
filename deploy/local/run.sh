#!/usr/bin/env bash
# run.sh — the whole HA edge on this machine, with the example Ingresses.
#
#   deploy/local/run.sh            build, start, print where to send requests,
#                                  run until Ctrl-C, then stop everything
#   deploy/local/run.sh --check    the same, then send the example requests,
#                                  assert the answers and exit (CI smoke test)
#   --bin-dir=DIR                  use binaries from DIR (./bin, or a bazel-bin),
#                                  no build
#   --images=TAG                   run syncd, l7proxy and l4lb from the images
#                                  edge/syncd:TAG, edge/l7proxy:TAG,
#                                  edge/l4lb:TAG (docker run --network=host,
#                                  as the images' own uid 65532; see
#                                  deploy/docker/README.md), no build
#   --netns                        run inside a private network namespace
#                                  (root): the fixed ports below cannot clash
#                                  with anything else on the machine
#
# Without --bin-dir or --images it builds with `bazel build -c opt` and
# copies the four binaries to ./bin/ (syncd, syncctl, l7proxy, l4lb), so
# the commands it prints can be pasted as they are.
#
# What runs (all on 127.0.0.1, every process started here is stopped by PID
# on exit, Ctrl-C or TERM):
#   example backends  deploy/local/backend.py, 127.0.x.y:18080 (one process)
#   syncd-a, syncd-b  two replicas of the control plane, both reading
#                     --source=dir:RUN/manifests: gRPC :17000 and :17010,
#                     admin :17001 and :17011 (each serves streams and Status)
#   l7proxy l7-1..3   http :17110/:17120/:17130, admin :17111/:17121/:17131,
#                     https :17113/:17123/:17133
#   l4lb lb-a, lb-b   listen :17080 and :17090, admin :17081/:17091,
#                     replicas from both syncd replicas' Membership streams
# Every l7proxy and l4lb is given both syncd addresses: a proxy uses one
# and fails over to the other; an l4lb watches both and merges.
# syncd talks mTLS with the proxies and syncctl (a throw-away CA made by
# pki.sh in RUN/pki); EDGE_INSECURE=1 uses plaintext gRPC instead.
#
# RUN/manifests is a live mirror of deploy/examples/ (mirror.py, 0.1 s)
# plus the generated TLS Secret, so editing a file in deploy/examples/
# changes routing within a second and no private key lives in the tree.
#
# Environment: EDGE_RUN_DIR (default /tmp/edge-local), EDGE_BIN_DIR (use
# binaries from there, skip the build), EDGE_BAZEL (default "bazel"),
# EDGE_INSECURE=1, EDGE_READY_TIMEOUT (seconds, default 60).
set -uo pipefail

if [ -n "${TEST_SRCDIR:-}" ]; then # under bazel test: $0 is named after the target
  root="$TEST_SRCDIR/${TEST_WORKSPACE:-edge}"
  here="$root/deploy/local"
else
  here="$(cd "$(dirname "$0")" && pwd)"
  root="$(cd "$here/../.." && pwd)"
fi
check=0
netns=0
images=""
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    --bin-dir=*) EDGE_BIN_DIR="$(cd "${a#--bin-dir=}" && pwd)" ;;
    --images=*) images="${a#--images=}" ;;
    --netns) netns=1 ;;
    -h | --help) sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $a (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$netns" = 1 ] && [ -z "${EDGE_LOCAL_NETNS:-}" ]; then
  if [ "$(id -u)" -ne 0 ] || ! unshare --net true 2>/dev/null; then
    # A platform limit only: loud, and a failure when CI=true.
    . "$root/tests/lib/skip.sh"
    edge_platform_skip "deploy/local/run.sh --netns needs root and unshare --net"
  fi
  export EDGE_LOCAL_NETNS=1
  exec unshare --net -- bash -c 'ip link set lo up && exec bash "$0" "$@"' "$here/run.sh" "$@"
fi

run="${EDGE_RUN_DIR:-${TEST_TMPDIR:-/tmp}/edge-local}"
bazel_cmd="${EDGE_BAZEL:-bazel}"
ready_timeout="${EDGE_READY_TIMEOUT:-60}"
insecure="${EDGE_INSECURE:-0}"

say() { printf '[run.sh] %s\n' "$*"; }
die() { printf '[run.sh] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes
pids=()
names=()
mirror_pid=""
stopping=0
bad_exits=0

# start NAME CMD... : starts a process with its output in RUN/logs/NAME.log.
start() {
  local name="$1"
  shift
  "$@" >"$run/logs/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  [ -n "$mirror_pid" ] && kill "$mirror_pid" 2>/dev/null
  local i
  # Front to back: load balancers first, backends last, so no request is
  # sent to something already gone.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null
  done
  local deadline=$((SECONDS + 10))
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    while kill -0 "${pids[$i]}" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      say "${names[$i]} (pid ${pids[$i]}) did not stop in time: SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null
      bad_exits=$((bad_exits + 1))
    fi
    wait "${pids[$i]}" 2>/dev/null
    rc=$?
    # 0 is a clean exit; 143 is "killed by SIGTERM" for processes that do not
    # catch it (python backends). Anything else (a crash, a sanitizer
    # report at exit) is a failure worth a line.
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ] && [ "$rc" -ne 137 ]; then
      say "${names[$i]} exited with status $rc (see $run/logs/${names[$i]}.log)"
      bad_exits=$((bad_exits + 1))
    fi
  done
  [ -n "$mirror_pid" ] && wait "$mirror_pid" 2>/dev/null
  say "stopped ${#pids[@]} processes; logs in $run/logs"
}
trap 'stop_all' EXIT
trap 'echo; say "stopping"; exit 130' INT
trap 'say "stopping"; exit 143' TERM

# Fails with the log tail of any started process that already exited.
check_alive() {
  local i
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      say "${names[$i]} exited early; last lines of $run/logs/${names[$i]}.log:"
      tail -n 15 "$run/logs/${names[$i]}.log" | sed 's/^/    /'
      return 1
    fi
  done
}

# wait_http URL...: polls each URL for HTTP 200 until the deadline.
wait_ready() {
  local deadline=$((SECONDS + ready_timeout)) url
  for url in "$@"; do
    until curl -fsS -m 1 -o /dev/null "$url" 2>/dev/null; do
      check_alive || return 1
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "not ready after ${ready_timeout}s: $url"
        return 1
      fi
      sleep 0.2
    done
  done
}

# ------------------------------------------------------------------ binaries
if [ -n "$images" ]; then
  command -v docker >/dev/null || die "--images needs docker (and DOCKER_HOST for a private daemon)"
  for t in syncd l7proxy l4lb; do
    docker image inspect "edge/$t:$images" >/dev/null 2>&1 ||
      die "image edge/$t:$images missing (deploy/docker/build-images.sh --tag=$images)"
  done
elif [ -n "${EDGE_BIN_DIR:-}" ]; then
  bin="$EDGE_BIN_DIR"
else
  say "building: $bazel_cmd build -c opt //syncd:syncd //syncd:syncctl //l7proxy:l7proxy //l4lb:l4lb"
  (cd "$root" && $bazel_cmd build -c opt //syncd:syncd //syncd:syncctl //l7proxy:l7proxy //l4lb:l4lb) ||
    die "build failed"
  built="$(cd "$root" && $bazel_cmd info -c opt bazel-bin 2>/dev/null)" || die "bazel info failed"
  bin="$root/bin"
  mkdir -p "$bin"
  for b in syncd/syncd syncd/syncctl l7proxy/l7proxy l4lb/l4lb; do
    install -m 0755 "$built/$b" "$bin/$(basename "$b")" || die "cannot copy $b to $bin"
  done
  say "binaries in $bin"
fi
# cmd KIND NAME: sets CMD to the command that runs KIND (syncd, syncctl,
# l7proxy, l4lb): a binary of $bin (flat ./bin or a bazel-bin layout), or a
# container of the KIND image sharing the host network and $run.
cmd() {
  local kind="$1" name="$2"
  if [ -n "$images" ]; then
    local image="edge/$kind:$images" ep=()
    [ "$kind" = syncctl ] && image="edge/syncd:$images" && ep=(--entrypoint /usr/bin/syncctl)
    CMD=(docker run --rm --network=host --name "edge-$name-$$" -v "$run:$run" "${ep[@]}" "$image")
    return
  fi
  local sub="$kind"
  [ "$kind" = syncctl ] && sub=syncd
  if [ -x "$bin/$kind" ] && [ ! -d "$bin/$kind" ]; then CMD=("$bin/$kind")
  else CMD=("$bin/$sub/$kind"); fi
}
if [ -z "$images" ]; then
  for k in syncd syncctl l7proxy l4lb; do
    cmd "$k" check
    [ -x "${CMD[0]}" ] || die "missing binary ${CMD[0]}"
  done
fi

# --------------------------------------------------------------- ports, dirs
# ports_busy ADDR:PORT...: prints the ones that cannot be bound (one python
# start for all of them: interpreter start-up is slow on a loaded machine).
ports_busy() {
  python3 - "$@" <<'PY'
import socket, sys
for a in sys.argv[1:]:
    host, port = a.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, int(port)))
    except OSError:
        print(a)
    s.close()
PY
}
backend_specs=()
ports_wanted=()
for p in 17000 17001 17010 17011 17080 17081 17090 17091 17110 17111 17113 17120 17121 17123 17130 17131 17133; do
  ports_wanted+=("127.0.0.1:$p")
done
while read -r name addr; do
  backend_specs+=("$name=$addr:18080")
  ports_wanted+=("$addr:18080")
done <<'EOF'
shop-web-1 127.0.1.1
shop-web-2 127.0.1.2
shop-web-3 127.0.1.3
shop-api-1 127.0.2.1
shop-api-2 127.0.2.2
shop-health-1 127.0.3.1
blog-1 127.0.4.1
secure-1 127.0.5.1
fallback-1 127.0.6.1
app-stable-1 127.0.7.1
app-canary-1 127.0.8.1
EOF
mapfile -t busy < <(ports_busy "${ports_wanted[@]}")
[ "${#busy[@]}" -eq 0 ] || die "ports in use: ${busy[*]} (another run.sh still running?)"

rm -rf "$run"
mkdir -p "$run/logs" "$run/manifests" "$run/tmp" "$run/syncd-a" "$run/syncd-b" ||
  die "cannot create $run"
chmod 700 "$run"
# the images run as uid 65532: it owns the run directory (root still can)
own_run() { if [ -n "$images" ]; then chown -R 65532:65532 "$run"; fi; }

# ------------------------------------------------------------------- secrets
# one client certificate per node: syncd binds each node's id and role to it
"$here/pki.sh" "$run/pki" --secret=default/secure-tls=secure.example.test \
  --node=l7proxy/l7-1 --node=l7proxy/l7-2 --node=l7proxy/l7-3 --node=l4lb/lb-a --node=l4lb/lb-b \
  --node=syncctl/local || die "pki.sh failed"
cp "$run/pki/tls-secret.yaml" "$run/tmp/gen-tls-secret.yaml" && mv "$run/tmp/gen-tls-secret.yaml" "$run/manifests/"
# node_tls ROLE NAME: the TLS flags of that node (its own certificate)
node_tls() {
  if [ "$insecure" = 1 ]; then
    tls=(--insecure)
  else
    tls=(--cert="$run/pki/$1-$2.crt" --key="$run/pki/$1-$2.key" --ca="$run/pki/ca.crt")
  fi
}
if [ "$insecure" = 1 ]; then
  say "EDGE_INSECURE=1: syncd and the proxies talk plaintext gRPC (fine on 127.0.0.1 only)"
else
  syncd_tls=(--cert="$run/pki/syncd.crt" --key="$run/pki/syncd.key" --ca="$run/pki/ca.crt")
fi

# --------------------------------------------------------- manifest mirror
# --check must not edit the source tree: it mirrors a copy of the examples
# and edits that, so the live-edit path is tested end to end.
examples="$root/deploy/examples"
if [ "$check" = 1 ]; then
  mkdir -p "$run/examples" && cp "$examples"/*.yaml "$run/examples/" && examples="$run/examples"
fi
# deploy/local/mirror.py keeps RUN/manifests/ex-NAME equal to the examples
# (polled every 0.1 s, written by rename). The first copy happens before
# syncd starts.
"$here/mirror.py" "$examples" "$run/manifests" "$run/tmp" >"$run/logs/mirror.log" 2>&1 &
mirror_pid=$!
for _ in $(seq 1 100); do
  grep -q ready "$run/logs/mirror.log" 2>/dev/null && break
  kill -0 "$mirror_pid" 2>/dev/null || die "mirror.py failed: $(cat "$run/logs/mirror.log")"
  sleep 0.1
done

# ----------------------------------------------------------------- processes
start backends python3 "$here/backend.py" "${backend_specs[@]}"
if [ "$insecure" = 1 ]; then syncd_tls=(--insecure); fi
own_run
# two syncd replicas fed the same directory and the same default certificate
# (so they name the same state with the same version)
syncds=127.0.0.1:17000,127.0.0.1:17010
for sd in a:17000:17001 b:17010:17011; do
  IFS=: read -r n port admin <<<"$sd"
  cmd syncd "syncd-$n"
  start "syncd-$n" "${CMD[@]}" --source="dir:$run/manifests" --listen="127.0.0.1:$port" \
    --admin="127.0.0.1:$admin" --state-dir="$run/syncd-$n" --replica-id="syncd-$n" \
    --default-cert="$run/pki/default.crt" --default-key="$run/pki/default.key" "${syncd_tls[@]}"
done

for i in 1 2 3; do
  mkdir -p "$run/l7-$i"
  node_tls l7proxy "l7-$i"
  own_run
  cmd l7proxy "l7-$i"
  start "l7-$i" "${CMD[@]}" --syncd="$syncds" --node-id="l7-$i" \
    --http="127.0.0.1:171${i}0" --https="127.0.0.1:171${i}3" --admin="127.0.0.1:171${i}1" \
    --advertise="127.0.0.1:171${i}0" --workers=1 --cache-dir="$run/l7-$i" --drain-timeout=5s \
    "${tls[@]}"
done
for lb in a:17080:17081 b:17090:17091; do
  IFS=: read -r n port admin <<<"$lb"
  node_tls l4lb "lb-$n"
  cmd l4lb "lb-$n"
  start "lb-$n" "${CMD[@]}" --listen="127.0.0.1:$port" --syncd="$syncds" \
    --admin="127.0.0.1:$admin" --node-id="lb-$n" --workers=1 --proxy-protocol=off \
    --check-interval=500ms --drain-timeout=5s "${tls[@]}"
done

say "waiting for /readyz (up to ${ready_timeout}s)"
wait_ready http://127.0.1.1:18080/ http://127.0.6.1:18080/ http://127.0.0.1:17001/readyz \
  http://127.0.0.1:17011/readyz http://127.0.0.1:17111/readyz \
  http://127.0.0.1:17121/readyz http://127.0.0.1:17131/readyz \
  http://127.0.0.1:17081/readyz http://127.0.0.1:17091/readyz || exit 1

cmd syncctl syncctl
syncctl=("${CMD[@]}" --syncd="$syncds")
node_tls syncctl local
syncctl+=("${tls[@]}")

cat <<EOF

edge is up. Send requests through either L4 load balancer (HA pair):

  curl -H 'Host: shop.example.test' http://127.0.0.1:17080/             # shop-web (3 endpoints)
  curl -H 'Host: shop.example.test' http://127.0.0.1:17090/api/cart     # shop-api
  curl -H 'Host: shop.example.test' http://127.0.0.1:17080/api/v2/health  # shop-health (Exact)
  curl --resolve blog.example.test:17090:127.0.0.1 http://blog.example.test:17090/
  curl -H 'Host: nothing.example.test' http://127.0.0.1:17080/          # default backend
  curl -H 'Host: canary.example.test' http://127.0.0.1:17080/           # Gateway API HTTPRoute: 90 % app-stable, 10 % app-canary
  curl -H 'Host: canary.example.test' -H 'X-Canary: always' http://127.0.0.1:17090/  # always app-canary
  curl --cacert $run/pki/tls-secure-tls.crt --resolve secure.example.test:17113:127.0.0.1 \\
       https://secure.example.test:17113/                               # TLS (SNI) on l7-1
  curl --http2 --cacert $run/pki/tls-secure-tls.crt --resolve secure.example.test:17123:127.0.0.1 \\
       https://secure.example.test:17123/                               # HTTP/2 on l7-2

Each answer is JSON naming the backend that served it. Edit a file in
deploy/examples/ and the routing changes within a second. Status:
  ${syncctl[*]} status
Admin endpoints: syncd-a :17001, syncd-b :17011, l7-1..3 :17111 :17121 :17131,
lb-a :17081, lb-b :17091
(/healthz /readyz /metrics /config). Logs: $run/logs/

EOF
"${syncctl[@]}" status || say "syncctl status failed (exit $?)"

if [ "$check" = 0 ]; then
  say "running; Ctrl-C stops everything"
  while check_alive; do sleep 1; done
  say "a process exited; stopping the rest"
  exit 1
fi

# ------------------------------------------------------------------- --check
fails=0
sent=0
# expect URL HOST WANT-BACKEND-PREFIX [curl args...]
expect() {
  local url="$1" host="$2" want="$3" got
  shift 3
  sent=$((sent + 1))
  got="$(curl -sS -m 5 -H "Host: $host" "$@" -o /dev/null -w '%{http_code} %header{x-backend}' "$url" 2>&1)"
  case "$got" in
    "200 $want"*) printf '  ok    %-28s %-22s -> %s\n' "$host" "${url#http://127.0.0.1}" "${got#200 }" ;;
    *) printf '  FAIL  %-28s %-22s -> %s (want 200 %s)\n' "$host" "${url#http://127.0.0.1}" "$got" "$want"
       fails=$((fails + 1)) ;;
  esac
}
say "--check: example requests through both load balancers"
for port in 17080 17090; do
  u="http://127.0.0.1:$port"
  expect "$u/" shop.example.test shop-web
  expect "$u/cart" shop.example.test shop-web
  expect "$u/api" shop.example.test shop-api
  expect "$u/api/items/7" shop.example.test shop-api
  expect "$u/api/v2/health" shop.example.test shop-health
  expect "$u/api/v2/health/" shop.example.test shop-api
  expect "$u/other" shop.example.test shop-web
  expect "$u/" BLOG.example.test blog
  expect "$u/" unknown.example.test fallback
done
# The three shop-web endpoints all get traffic.
seen=""
for _ in $(seq 1 30); do
  seen="$seen $(curl -sS -m 5 -H 'Host: shop.example.test' -o /dev/null -w '%header{x-backend}' http://127.0.0.1:17080/)"
done
distinct=$(tr ' ' '\n' <<<"$seen" | grep . | sort -u | wc -l)
sent=$((sent + 30))
if [ "$distinct" -eq 3 ]; then say "  ok    shop-web: 3 endpoints answered 30 requests"
else say "  FAIL  shop-web: $distinct distinct endpoints answered (want 3):$seen" && fails=$((fails + 1)); fi
# The Gateway API example (60-gateway-canary.yaml): X-Canary: always always reaches the canary,
# and the 90/10 split sends requests to both.
expect "http://127.0.0.1:17080/" canary.example.test app-canary -H 'X-Canary: always'
expect "http://127.0.0.1:17090/" canary.example.test app-canary -H 'X-Canary: always'
split=""
for _ in $(seq 1 200); do
  split="$split $(curl -sS -m 5 -H 'Host: canary.example.test' -o /dev/null -w '%header{x-backend}' http://127.0.0.1:17080/)"
done
sent=$((sent + 200))
canary=$(tr ' ' '\n' <<<"$split" | grep -c '^app-canary' || true)
stable=$(tr ' ' '\n' <<<"$split" | grep -c '^app-stable' || true)
if [ "$canary" -gt 0 ] && [ "$stable" -gt "$canary" ] && [ $((canary + stable)) -eq 200 ]; then
  say "  ok    canary.example.test: 200 requests split $stable app-stable / $canary app-canary (weights 90/10)"
else
  say "  FAIL  canary.example.test: $stable app-stable / $canary app-canary of 200 (want both, mostly stable)"
  fails=$((fails + 1))
fi
expect "https://secure.example.test:17113/" secure.example.test secure \
  --cacert "$run/pki/tls-secure-tls.crt" --resolve secure.example.test:17113:127.0.0.1
# A new file in the (copied) examples directory changes routing within a
# second: mirror, syncd's debounce, the push to every replica.
cat >"$run/tmp/gen-check.yaml" <<'EOF'
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: run-check
  namespace: default
spec:
  ingressClassName: edge
  rules:
    - host: check.example.test
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: blog
                port:
                  number: 80
EOF
t0=$(date +%s%N)
mv "$run/tmp/gen-check.yaml" "$examples/zz-check.yaml"
routed=0
for _ in $(seq 1 100); do
  if [ "$(curl -sS -m 2 -H 'Host: check.example.test' -o /dev/null -w '%header{x-backend}' http://127.0.0.1:17080/)" = blog-1 ]; then
    routed=1
    break
  fi
  sleep 0.05
done
ms=$((($(date +%s%N) - t0) / 1000000))
sent=$((sent + 1))
if [ "$routed" = 1 ]; then say "  ok    Ingress added to the examples routed after ${ms} ms"
else say "  FAIL  new Ingress not routed after ${ms} ms" && fails=$((fails + 1)); fi
"${syncctl[@]}" status >/dev/null 2>&1 || { say "  FAIL  syncctl status"; fails=$((fails + 1)); }
# One syncd replica goes away: the proxies fail over to the other and a
# change still reaches them; syncctl still answers (and shows it down).
for i in "${!names[@]}"; do [ "${names[$i]}" = syncd-a ] && kill -TERM "${pids[$i]}"; done
sed 's/check.example.test/check2.example.test/; s/run-check/run-check2/' \
  "$examples/zz-check.yaml" >"$run/tmp/gen-check2.yaml"
t0=$(date +%s%N)
mv "$run/tmp/gen-check2.yaml" "$examples/zz-check2.yaml"
routed=0
for _ in $(seq 1 200); do
  if [ "$(curl -sS -m 2 -H 'Host: check2.example.test' -o /dev/null -w '%header{x-backend}' http://127.0.0.1:17090/)" = blog-1 ]; then
    routed=1
    break
  fi
  sleep 0.05
done
ms=$((($(date +%s%N) - t0) / 1000000))
sent=$((sent + 1))
if [ "$routed" = 1 ]; then say "  ok    syncd-a stopped: an Ingress added after it routed in ${ms} ms"
else say "  FAIL  syncd-a stopped: new Ingress not routed after ${ms} ms" && fails=$((fails + 1)); fi
out="$("${syncctl[@]}" status 2>&1)"
if grep -q 'UNREACHABLE' <<<"$out" && grep -q 'syncd-b' <<<"$out"; then
  say "  ok    syncctl status: syncd-a unreachable, syncd-b answers"
else
  say "  FAIL  syncctl status over both replicas: $(head -5 <<<"$out")" && fails=$((fails + 1))
fi
stop_all
[ "$bad_exits" -eq 0 ] || fails=$((fails + bad_exits))
say "--check: $sent requests, $bad_exits unclean exits, $fails failed"
[ "$fails" -eq 0 ]
