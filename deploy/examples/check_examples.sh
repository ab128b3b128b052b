#!/usr/bin/env bash
# Checks deploy/examples: every document parses, every Ingress of class edge
# (or no class) and every HTTPRoute names a Service defined here (and an
# HTTPRoute a Gateway of our GatewayClass), every Service has an
# EndpointSlice, and no private key is committed (the TLS Secret is
# generated at run time by deploy/local/run.sh).
set -euo pipefail
cd "${1:-.}"
export PYTHONDONTWRITEBYTECODE=1
python3 - deploy/examples <<'PY'
import glob, os, sys, yaml
d = sys.argv[1]
docs = []
for f in sorted(glob.glob(os.path.join(d, "*.yaml"))):
    docs += [(f, o) for o in yaml.safe_load_all(open(f)) if o]
kinds = {}
for f, o in docs:
    kinds.setdefault(o["kind"], []).append(o)
services = {o["metadata"]["name"] for o in kinds.get("Service", [])}
sliced = {o["metadata"]["labels"]["kubernetes.io/service-name"] for o in kinds.get("EndpointSlice", [])}
fails = []
for s in services - sliced:
    fails.append(f"Service {s} has no EndpointSlice")
ours = {o["metadata"]["name"] for o in kinds.get("IngressClass", [])
        if o["spec"]["controller"] == "edge.dev/ingress-controller"}
for o in kinds.get("Ingress", []):
    spec = o["spec"]
    if spec.get("ingressClassName", "edge") not in ours:
        continue
    names = [spec["defaultBackend"]["service"]["name"]] if "defaultBackend" in spec else []
    for r in spec.get("rules", []):
        names += [p["backend"]["service"]["name"] for p in r["http"]["paths"]]
    for n in names:
        if n not in services:
            fails.append(f"Ingress {o['metadata']['name']} names unknown Service {n}")
gw_classes = {o["metadata"]["name"] for o in kinds.get("GatewayClass", [])
              if o["spec"]["controllerName"] == "edge.dev/gateway-controller"}
gateways = {o["metadata"]["name"] for o in kinds.get("Gateway", [])
            if o["spec"]["gatewayClassName"] in gw_classes}
for o in kinds.get("HTTPRoute", []):
    for ref in o["spec"].get("parentRefs", []):
        if ref["name"] not in gateways:
            fails.append(f"HTTPRoute {o['metadata']['name']} names unknown Gateway {ref['name']}")
    for r in o["spec"].get("rules", []):
        for b in r.get("backendRefs", []):
            if b["name"] not in services:
                fails.append(f"HTTPRoute {o['metadata']['name']} names unknown Service {b['name']}")
if kinds.get("Secret"):
    fails.append("a Secret is committed in deploy/examples (keys must be generated at run time)")
for f in glob.glob(os.path.join(d, "*.y*ml")):
    if "PRIVATE KEY" in open(f, errors="replace").read():
        fails.append(f"{f}: contains a private key")
for x in fails:
    print("FAIL", x)
print(f"{len(docs)} documents, {len(kinds.get('Ingress', []))} Ingresses, {len(fails)} problems")
sys.exit(1 if fails else 0)
PY
