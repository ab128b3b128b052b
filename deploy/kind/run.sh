#!/usr/bin/env bash
# run.sh — edge on a real Kubernetes cluster made with kind, running the same
# e2e scenarios (tests/e2e/scenarios) as the netns runner through the
# cluster's L4 entry point (the l4lb NodePort, 127.0.0.1:18080 on the host).
#
#   deploy/kind/run.sh [--keep] [--only=NAME[,NAME]]
#
# Steps: create the kind cluster (deploy/kind/cluster.yaml), build the images
# with deploy/docker/build-images.sh (the Debian 12 base from debootstrap,
# then the Dockerfile targets syncd, l7proxy, l4lb and the example backend,
# tag dev: the tags deploy/k8s/overlays/kind names), `kind load` them (never
# pulled), create the mTLS Secrets
# (deploy/k8s/gen-secrets.sh), apply deploy/k8s/overlays/kind, wait for the
# rollouts, run tests/e2e/kind/runner.py, collect every pod's logs into
# $EDGE_KIND_LOGS (default /tmp/edge-kind-logs), delete the cluster (unless
# --keep).
#
# Where Docker or kind is missing it says so in one line and exits 0:
# skipped. On the build machines the images build and run
# (//deploy:images_test), but kind itself cannot: its node image
# (kindest/node) can only be pulled from a registry, and no registry is
# reachable here.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
keep=0
runner_args=()
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    --only=*) runner_args+=("$a") ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
for tool in docker kind kubectl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIPPED: $tool not installed (the kind runner needs docker, kind and kubectl)"
    exit 0
  fi
done
if ! docker info >/dev/null 2>&1; then
  echo "SKIPPED: the Docker daemon is not reachable"
  exit 0
fi

cluster=edge
logs="${EDGE_KIND_LOGS:-/tmp/edge-kind-logs}"
say() { printf '[kind] %s\n' "$*"; }
collect_logs() {
  mkdir -p "$logs"
  for pod in $(kubectl get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}' 2>/dev/null | grep -E '^(edge-system|default)/'); do
    kubectl logs -n "${pod%%/*}" "${pod#*/}" --all-containers --prefix >"$logs/${pod//\//_}.log" 2>&1
  done
  kubectl get all,ingress,endpointslices -A -o wide >"$logs/objects.txt" 2>&1
  say "logs in $logs"
}
cleanup() {
  collect_logs
  if [ "$keep" = 0 ]; then kind delete cluster --name "$cluster" >/dev/null 2>&1; fi
}

say "creating cluster $cluster"
kind create cluster --name "$cluster" --config "$here/cluster.yaml" --wait 120s || exit 1
trap cleanup EXIT
kubectl config use-context "kind-$cluster" >/dev/null

say "building images (deploy/docker/build-images.sh: Debian base from debootstrap, no pull)"
bash "$root/deploy/docker/build-images.sh" --tag=dev || exit 1
kind load docker-image --name "$cluster" edge/syncd:dev edge/l7proxy:dev edge/l4lb:dev edge/backend:dev || exit 1

say "deploying"
kubectl apply -f "$root/deploy/k8s/base/namespace.yaml" || exit 1
"$root/deploy/k8s/gen-secrets.sh" || exit 1
kubectl apply -k "$root/deploy/k8s/overlays/kind" || exit 1
for d in edge-syncd edge-l7proxy edge-l4lb; do
  kubectl -n edge-system rollout status "deployment/$d" --timeout=180s || exit 1
done

say "running scenarios through 127.0.0.1:18080 (l4lb NodePort)"
python3 "$root/tests/e2e/kind/runner.py" --repo="$root" --entry=127.0.0.1:18080 "${runner_args[@]}"
