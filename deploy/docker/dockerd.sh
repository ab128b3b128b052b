#!/usr/bin/env bash
# dockerd.sh — a private Docker daemon for building and running edge's
# images on a machine whose own Docker (if any) we must not touch.
#
#   deploy/docker/dockerd.sh start DIR   # prints: export DOCKER_HOST=unix://DIR/docker.sock
#   deploy/docker/dockerd.sh stop DIR    # stops that daemon (by its pid file) and its containers
#
# The daemon (Debian's docker.io) gets its own socket, data root, exec root
# and pid file under DIR, and no networking of its own: --bridge=none
# --iptables=false --ip-masq=false. Containers therefore run with
# --network=host, and edge's tests bind 127.0.0.0/8 only.
set -euo pipefail
cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
sock="$dir/docker.sock"
pidf="$dir/docker.pid"
case "$cmd" in
  start)
    command -v dockerd >/dev/null || { echo "dockerd.sh: dockerd missing (bazel/setup.sh installs docker.io)" >&2; exit 1; }
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
      echo "export DOCKER_HOST=unix://$sock"
      exit 0
    fi
    mkdir -p "$dir/data" "$dir/exec"
    # DOCKER_HOST of the caller must not point the new daemon anywhere
    env -u DOCKER_HOST dockerd --host="unix://$sock" --data-root="$dir/data" --exec-root="$dir/exec" \
      --pidfile="$pidf" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
      --userland-proxy=false >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 300); do
      if DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then
        echo "export DOCKER_HOST=unix://$sock"
        exit 0
      fi
      sleep 0.1
    done
    echo "dockerd.sh: the daemon did not start; last lines of $dir/dockerd.log:" >&2
    tail -n 20 "$dir/dockerd.log" >&2
    exit 1
    ;;
  stop)
    [ -f "$pidf" ] || exit 0
    pid="$(cat "$pidf")"
    ids="$(DOCKER_HOST="unix://$sock" docker ps -q 2>/dev/null || true)"
    # shellcheck disable=SC2086
    [ -z "$ids" ] || DOCKER_HOST="unix://$sock" docker rm -f $ids >/dev/null 2>&1 || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    ;;
  *) echo "dockerd.sh: start or stop" >&2; exit 2 ;;
esac
