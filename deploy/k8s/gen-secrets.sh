#!/usr/bin/env bash
# gen-secrets.sh — creates the mTLS Secrets the manifests reference, from a
# throw-away CA made by deploy/local/pki.sh (use your own PKI in production:
# the Secrets only need tls.crt, tls.key and ca.crt). One certificate per
# role, each carrying the role's identity as its only URI SAN (README,
# "Security model"):
#   edge-syncd-tls    syncd's server certificate (SAN edge-syncd.edge-system.svc)
#   edge-l7proxy-tls  spiffe://edge/l7proxy/*  ConfigSync: routes and keys
#   edge-l4lb-tls     spiffe://edge/l4lb/*     Membership only, never keys
#   edge-syncctl-tls  spiffe://edge/syncctl/*  Status and Explain (operators)
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
} >"$out"
if [ "${1:-}" = "--dry-run" ]; then
  cat "$out"
else
  kubectl apply -f "$out"
fi
