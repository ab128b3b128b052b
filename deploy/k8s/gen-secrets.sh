#!/usr/bin/env bash
# gen-secrets.sh — creates the two mTLS Secrets the manifests reference, from
# a throw-away CA made by deploy/local/pki.sh (use your own PKI in
# production: the Secrets only need tls.crt, tls.key and ca.crt):
#   edge-syncd-tls  syncd's server certificate, shared by its replicas (SANs
#                   edge-syncd.edge-system.svc and edge-syncd-replicas.edge-system.svc:
#                   a client that resolved the headless name checks that name)
#   edge-proxy-tls  the client certificate of l7proxy and l4lb
#   edge-syncd-default-tls  the default certificate every syncd replica serves
# Usage: gen-secrets.sh [--dry-run]   (prints the YAML instead of applying)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$here/../local/pki.sh" "$dir" --san=DNS:edge-syncd.edge-system.svc \
  --san=DNS:edge-syncd.edge-system.svc.cluster.local --san=DNS:edge-syncd \
  --san=DNS:edge-syncd-replicas.edge-system.svc \
  --san=DNS:edge-syncd-replicas.edge-system.svc.cluster.local
out="$dir/secrets.yaml"
kubectl create secret generic edge-syncd-tls -n edge-system --dry-run=client -o yaml \
  --from-file=tls.crt="$dir/syncd.crt" --from-file=tls.key="$dir/syncd.key" \
  --from-file=ca.crt="$dir/ca.crt" >"$out"
echo "---" >>"$out"
kubectl create secret generic edge-proxy-tls -n edge-system --dry-run=client -o yaml \
  --from-file=tls.crt="$dir/client.crt" --from-file=tls.key="$dir/client.key" \
  --from-file=ca.crt="$dir/ca.crt" >>"$out"
# the default certificate, shared by the syncd replicas (so they name the
# same state with the same version)
echo "---" >>"$out"
kubectl create secret generic edge-syncd-default-tls -n edge-system --dry-run=client -o yaml \
  --from-file=tls.crt="$dir/default.crt" --from-file=tls.key="$dir/default.key" >>"$out"
if [ "${1:-}" = "--dry-run" ]; then
  cat "$out"
else
  kubectl apply -f "$out"
fi
