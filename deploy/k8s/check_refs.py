#!/usr/bin/env python3
"""check_refs — static checks of a rendered edge kustomization (the output
of `kubectl kustomize`), so a broken reference fails CI instead of a rollout.

Checks: every ServiceAccount, ConfigMap and Secret a pod uses exists (Secrets
may instead be one of EXTERNAL_SECRETS, created by gen-secrets.sh); every
Deployment selector matches its template; every Service and PDB selector
matches some pod template; RBAC bindings resolve and the ClusterRole is
least privilege (no wildcards, writes only to the status subresources of
Ingresses and our Gateway API kinds); pods run as
non-root with readiness on /readyz; l7proxy has 3 replicas, anti-affinity
and a PDB; syncd has 2 replicas, anti-affinity, a PDB, a headless Service
the proxies and l4lbs are given, and a Role for its Lease (the only other
write); l4lb has 2 replicas behind a Service of the expected type.

Usage: check_refs.py RENDERED.yaml EXPECTED_L4_SERVICE_TYPE
"""
import sys

import yaml

STATUS_WRITES = {"ingresses/status", "gatewayclasses/status", "gateways/status",
                 "httproutes/status", "grpcroutes/status", "tlsroutes/status"}
EXTERNAL_SECRETS = {"edge-syncd-tls", "edge-l7proxy-tls", "edge-l4lb-tls",  # deploy/k8s/gen-secrets.sh
                    "edge-syncctl-tls", "edge-syncd-default-tls"}


def main(path, l4_type):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    fails = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def names(kind, ns=None):
        return {d["metadata"]["name"] for d in by_kind.get(kind, [])
                if ns is None or d["metadata"].get("namespace") == ns}

    def matches(selector, labels):
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    templates = []  # (namespace, labels, deployment)
    for dep in by_kind.get("Deployment", []):
        ns = dep["metadata"].get("namespace")
        name = dep["metadata"]["name"]
        tpl = dep["spec"]["template"]
        labels = tpl["metadata"].get("labels", {})
        templates.append((ns, labels, dep))
        if not matches(dep["spec"]["selector"]["matchLabels"], labels):
            fails.append(f"Deployment {name}: selector does not match its template labels")
        pod = tpl["spec"]
        sa = pod.get("serviceAccountName")
        if sa and sa not in names("ServiceAccount", ns):
            fails.append(f"Deployment {name}: ServiceAccount {sa} not defined")
        for v in pod.get("volumes", []):
            if "secret" in v:
                s = v["secret"]["secretName"]
                if s not in names("Secret", ns) and s not in EXTERNAL_SECRETS:
                    fails.append(f"Deployment {name}: Secret {s} not defined")
            if "configMap" in v and v["configMap"]["name"] not in names("ConfigMap", ns):
                fails.append(f"Deployment {name}: ConfigMap {v['configMap']['name']} not defined")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            fails.append(f"Deployment {name}: pod not runAsNonRoot")
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    cm = ref["configMapKeyRef"]["name"]
                    cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == cm]
                    if not cms:
                        fails.append(f"Deployment {name}: ConfigMap {cm} not defined")
                    elif ref["configMapKeyRef"]["key"] not in cms[0].get("data", {}):
                        fails.append(f"Deployment {name}: ConfigMap {cm} has no key "
                                     f"{ref['configMapKeyRef']['key']}")
                if "secretKeyRef" in ref and ref["secretKeyRef"]["name"] not in EXTERNAL_SECRETS \
                        and ref["secretKeyRef"]["name"] not in names("Secret", ns):
                    fails.append(f"Deployment {name}: Secret {ref['secretKeyRef']['name']} not defined")
            probe = c.get("readinessProbe", {}).get("httpGet", {})
            if probe.get("path") != "/readyz":
                fails.append(f"Deployment {name}: container {c['name']} has no /readyz readiness")
            if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
                fails.append(f"Deployment {name}: container {c['name']} allows privilege escalation")
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in by_kind.get(kind, []):
            sel = obj["spec"].get("selector", {})
            sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
            ns = obj["metadata"].get("namespace")
            if not any(n == ns and matches(sel, labels) for n, labels, _ in templates):
                fails.append(f"{kind} {obj['metadata']['name']}: selector matches no pod template")
    for b in by_kind.get("ClusterRoleBinding", []) + by_kind.get("RoleBinding", []):
        if b["roleRef"]["name"] not in names(b["roleRef"]["kind"]):
            fails.append(f"{b['kind']} {b['metadata']['name']}: {b['roleRef']['kind']} "
                         f"{b['roleRef']['name']} not defined")
        for s in b["subjects"]:
            if s["kind"] == "ServiceAccount" and s["name"] not in names("ServiceAccount", s["namespace"]):
                fails.append(f"{b['kind']} {b['metadata']['name']}: ServiceAccount "
                             f"{s['namespace']}/{s['name']} not defined")
    for role in by_kind.get("ClusterRole", []) + by_kind.get("Role", []):
        for rule in role["rules"]:
            if "*" in rule["verbs"] or "*" in rule["resources"] or "*" in rule.get("apiGroups", []):
                fails.append(f"{role['kind']} {role['metadata']['name']}: wildcard rule")
            writes = set(rule["verbs"]) - {"get", "list", "watch"}
            lease = (role["kind"] == "Role" and rule["resources"] == ["leases"] and
                     rule.get("apiGroups") == ["coordination.k8s.io"] and
                     writes <= {"create", "update"} and
                     (writes == {"create"} or rule.get("resourceNames") == ["edge-syncd"]))
            if writes and not all(r in STATUS_WRITES for r in rule["resources"]) and not lease:
                fails.append(f"{role['kind']} {role['metadata']['name']}: writes {sorted(writes)} "
                             f"on {rule['resources']}")
    deps = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    l7 = deps.get("edge-l7proxy")
    if not l7 or l7["spec"]["replicas"] != 3 or \
            "podAntiAffinity" not in l7["spec"]["template"]["spec"].get("affinity", {}):
        fails.append("edge-l7proxy: want 3 replicas with pod anti-affinity")
    if "edge-l7proxy" not in names("PodDisruptionBudget"):
        fails.append("edge-l7proxy: no PodDisruptionBudget")
    sd = deps.get("edge-syncd")
    if not sd or sd["spec"]["replicas"] != 2 or \
            "podAntiAffinity" not in sd["spec"]["template"]["spec"].get("affinity", {}):
        fails.append("edge-syncd: want 2 replicas with pod anti-affinity")
    if "edge-syncd" not in names("PodDisruptionBudget"):
        fails.append("edge-syncd: no PodDisruptionBudget")
    heads = [s for s in by_kind.get("Service", []) if s["spec"].get("clusterIP") == "None" and
             s["spec"].get("selector", {}).get("app.kubernetes.io/name") == "edge-syncd"]
    if not heads:
        fails.append("edge-syncd: no headless Service (one address per replica)")
    for name in ("edge-l7proxy", "edge-l4lb"):
        args = " ".join(a for c in (deps.get(name) or {"spec": {"template": {"spec": {
            "containers": []}}}})["spec"]["template"]["spec"]["containers"]
            for a in c.get("args", []))
        if heads and "--syncd=%s." % heads[0]["metadata"]["name"] not in args:
            fails.append(f"{name}: --syncd is not the headless syncd Service (every replica)")
    leases = [b for b in by_kind.get("RoleBinding", []) if b["roleRef"]["name"] == "edge-syncd-lease"]
    if not leases:
        fails.append("edge-syncd: no RoleBinding for its Lease (leader election)")
    if not deps.get("edge-l4lb") or deps["edge-l4lb"]["spec"]["replicas"] != 2:
        fails.append("edge-l4lb: want 2 replicas")
    svc = [s for s in by_kind.get("Service", []) if s["metadata"]["name"] == "edge-l4lb"]
    if not svc or svc[0]["spec"].get("type") != l4_type:
        fails.append(f"edge-l4lb Service: want type {l4_type}")
    classes = [c for c in by_kind.get("IngressClass", [])
               if c["spec"]["controller"] == "edge.dev/ingress-controller"]
    if not classes:
        fails.append("no IngressClass with controller edge.dev/ingress-controller")
    for f in fails:
        print(f"FAIL  {f}")
    print(f"{path}: {len(docs)} objects, {len(fails)} problems")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
