#!/usr/bin/env bash
# gen-secrets.sh — creates the mTLS Secrets the manifests reference, from a
# throw-away CA made by deploy/local/pki.sh (use your own PKI in production:
# the Secrets only need tls.crt, tls.key and ca.crt). One certificate per
# role, each client certificate carrying the role's identity as its only
# URI SAN (README, "Security model"):
#   edge-syncd-tls    syncd's server certificate, shared by its replicas (SANs
#                     edge-syncd.edge-system.svc and edge-syncd-replicas.edge-system.svc:
#                     a client that resolved the headless name checks that name)
#   edge-l7proxy-tls  spiffe://edge/l7proxy/*  ConfigSync: routes and keys
#   edge-l4lb-tls     spiffe://edge/l4lb/*     Membership only, never keys
#   edge-syncctl-tls  spiffe://edge/syncctl/*  Status and Explain (operators)
#   edge-syncd-default-tls  the default certificate every syncd replica serves
# The replicas of a Deployment have pod names nobody knows in advance, so
# these bind the role, not the node name ('*'); issue per-node certificates
# (spiffe://edge/l7proxy/POD) from your PKI to bind names as well.
# Usage: gen-secrets.sh [--dry-run]   (prints the YAML instead of applying)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$here/../local/pki.sh" "$dir" --san=DNS:edge-syncd.edge-system.svc \
  --san=DNS:edge-syncd.edge-system.svc.cluster.local --san=DNS:edge-syncd \
  --san=DNS:edge-syncd-replicas.edge-system.svc \
  --san=DNS:edge-syncd-replicas.edge-system.svc.cluster.local \
  '--node=l7proxy/*' '--node=l4lb/*' '--node=syncctl/*'
out="$dir/secrets.yaml"
# secret NAME CERT-BASENAME
secret() {
  kubectl create secret generic "$1" -n edge-system --dry-run=client -o yaml \
    --from-file=tls.crt="$dir/$2.crt" --from-file=tls.key="$dir/$2.key" \
    --from-file=ca.crt="$dir/ca.crt"
}
{
  secret edge-syncd-tls syncd
  echo "---"
  secret edge-l7proxy-tls l7proxy-any
  echo "---"
  secret edge-l4lb-tls l4lb-any
  echo "---"
  secret edge-syncctl-tls syncctl-any
  echo "---"
  # the default certificate, shared by the syncd replicas (so they name the
  # same state with the same version)
  kubectl create secret generic edge-syncd-default-tls -n edge-system --dry-run=client -o yaml \
    --from-file=tls.crt="$dir/default.crt" --from-file=tls.key="$dir/default.key"
} >"$out"
if [ "${1:-}" = "--dry-run" ]; then
  cat "$out"
else
  kubectl apply -f "$out"
fi
