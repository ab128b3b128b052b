#!/usr/bin/env bash
# Renders deploy/k8s (base and overlays/kind) offline with `kubectl kustomize`
# and runs check_refs.py on each result. Without kubectl it only checks that
# every YAML file parses and skips by tests/lib/skip.sh (loud; a failure when
# CI=true). Run from the repo root (Bazel runs it from the runfiles root).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
src="${1:-deploy/k8s}"
work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/k8s-render.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# kustomize refuses files reached through symlinks outside its root (Bazel
# runfiles are symlinks): render a dereferenced copy.
cp -rL "$src" "$work/k8s"
python3 - "$work/k8s" <<'PY'
import glob, sys, yaml
n = 0
for f in glob.glob(sys.argv[1] + "/**/*.yaml", recursive=True):
    n += sum(1 for _ in yaml.safe_load_all(open(f)))
print(f"parsed {n} YAML documents")
PY
if ! command -v kubectl >/dev/null 2>&1; then
  # kubectl comes with the machine image (DESIGN §10), not from Debian: a
  # machine without it cannot render. Loud, and a failure when CI=true.
  . "$(dirname "$0")/../../tests/lib/skip.sh"
  edge_platform_skip "kubectl not installed: YAML parsed, kustomize render not checked"
fi
kubectl kustomize "$work/k8s/base" >"$work/base.yaml"
kubectl kustomize "$work/k8s/overlays/kind" >"$work/kind.yaml"
rc=0
python3 "$src/check_refs.py" "$work/base.yaml" LoadBalancer || rc=1
python3 "$src/check_refs.py" "$work/kind.yaml" NodePort || rc=1
# The checker itself must catch a dangling reference.
sed 's/serviceAccountName: edge-syncd/serviceAccountName: nobody/' "$work/base.yaml" >"$work/broken.yaml"
if python3 "$src/check_refs.py" "$work/broken.yaml" LoadBalancer >/dev/null; then
  echo "FAIL  check_refs.py accepted a dangling ServiceAccount"
  rc=1
fi
# ... and a single syncd replica (the HA deployment is two).
python3 - "$work/base.yaml" "$work/one-syncd.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] == "Deployment" and d["metadata"]["name"] == "edge-syncd":
        d["spec"]["replicas"] = 1
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))
PY
if python3 "$src/check_refs.py" "$work/one-syncd.yaml" LoadBalancer >/dev/null; then
  echo "FAIL  check_refs.py accepted one syncd replica"
  rc=1
fi
exit "$rc"
