#!/usr/bin/env python3
"""runner — the e2e scenarios against edge on a kind cluster.

Started by deploy/kind/run.sh once edge is deployed (overlay kind). Shares
the scenario format and the request/load code with the netns runner
(tests/e2e/lib/scenario.py); differs in how things happen:
  - backends are StatefulSets of the example backend image (pods NAME-0..),
    so answers name "svc-K" as the scenario format expects;
  - objects are applied with kubectl; a generation marker Ingress, applied
    last and polled through the entry point, says the change is served;
  - every request goes through the entry point (the l4lb NodePort); https
    requests are skipped (the NodePort carries HTTP only);
  - faults are Kubernetes actions (see deploy/kind/README.md).
Prints one line per scenario and "N passed, N failed, N skipped".
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import scenario as sc  # noqa: E402

NS = "edge-system"
# What the kind entry point (the l4lb NodePort, plain TCP) can carry: h2c
# passes through; TLS and the client address (the node NATs it) do not.
# Declared, never probed: scenarios needing more are skipped here as a
# limit of this platform, loudly, and fail when CI=true.
PROVIDES = {"h2c"}


def kubectl(*args, stdin=None, check=True):
    p = subprocess.run(["kubectl"] + list(args), input=stdin, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def apply_docs(docs):
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                   "items": docs}))


def backend_docs(backends):
    docs = []
    for svc, n in sorted(backends.items()):
        labels = {"app": svc, "edge-e2e": "backend"}
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": svc, "namespace": "default", "labels": labels},
                     "spec": {"selector": {"app": svc},
                              "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        docs.append({"apiVersion": "apps/v1", "kind": "StatefulSet",
                     "metadata": {"name": svc, "namespace": "default", "labels": labels},
                     "spec": {"replicas": n, "serviceName": svc, "podManagementPolicy": "Parallel",
                              "selector": {"matchLabels": {"app": svc}},
                              "template": {"metadata": {"labels": labels}, "spec": {
                                  "containers": [{
                                      "name": "backend", "image": "edge/backend:dev",
                                      "imagePullPolicy": "Never",
                                      "env": [{"name": "NAME", "valueFrom": {"fieldRef": {
                                          "fieldPath": "metadata.name"}}}],
                                      "ports": [{"containerPort": 8080}],
                                      "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                         "periodSeconds": 1}}]}}}})
    return docs


def wait_until(cond, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


class Kind:
    def __init__(self, entry):
        host, _, port = entry.rpartition(":")
        self.ip, self.port = host, int(port)
        self.gen = 0
        self.applied = []

    def marker_host(self):
        return f"gen-{self.gen}.marker.e2e.test"

    def apply(self, scen):
        if self.applied:
            kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false", check=False,
                    stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": self.applied}))
        docs = backend_docs(dict(scen["backends"], marker=1)) + scen["object_list"]
        with tempfile.TemporaryDirectory() as td:
            docs += sc.tls_secret_objects(scen["tls_secrets"], td)
        for d in docs:
            d.setdefault("metadata", {}).setdefault("namespace", "default")
        apply_docs(docs)
        self.applied = [d for d in docs if d["metadata"]["name"] != "marker"]
        for svc in list(scen["backends"]) + ["marker"]:
            kubectl("rollout", "status", f"statefulset/{svc}", "-n", "default", "--timeout=120s")
        self.write_marker()

    def write_marker(self):
        self.gen += 1
        apply_docs([{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                     "metadata": {"name": "e2e-marker", "namespace": "default"},
                     "spec": {"ingressClassName": "edge", "rules": [{
                         "host": self.marker_host(), "http": {"paths": [{
                             "path": "/", "pathType": "Prefix", "backend": {"service": {
                                 "name": "marker", "port": {"number": 80}}}}]}}]}}])
        # Ten answers in a row from the marker: with new connections spread
        # over three replicas, every replica serves the new generation.
        streak = [0]

        def ok():
            a = sc.send({"host": self.marker_host(), "path": "/", "expect": {}}, self.ip, self.port,
                        timeout=2)
            streak[0] = streak[0] + 1 if a.backend.startswith("marker-") else 0
            return streak[0] >= 10
        if not wait_until(ok, 60):
            raise RuntimeError(f"generation {self.gen} not served within 60s")

    def pods(self, name):
        out = kubectl("get", "pods", "-n", NS, "-l", f"app.kubernetes.io/name={name}", "-o",
                      "jsonpath={.items[*].metadata.name}")
        return out.split()


def run_fault(k, scen, fl, out):
    kind = fl["kind"]
    if kind == "cut-replica-link":
        out.append("    skipped cut-replica-link: needs a network partition inside the cluster")
        return True
    host = fl["host"]
    load = sc.Load(k.ip, k.port, host, fl["path"], threads=2, rate=40, timeout=10).start()
    time.sleep(1.5)
    try:
        if kind == "kill-l7proxy":
            kubectl("delete", "pod", "-n", NS, k.pods("edge-l7proxy")[0], "--grace-period=0", "--force")
        elif kind == "kill-active-l4lb":
            kubectl("delete", "pod", "-n", NS, k.pods("edge-l4lb")[0], "--grace-period=0", "--force")
        elif kind == "syncd-outage":
            # SIGKILL: the pod is deleted without grace once the deployment
            # stops replacing it; SIGTERM: a plain scale-down.
            syncd_pods = k.pods("edge-syncd")
            kubectl("scale", "-n", NS, "deployment/edge-syncd", "--replicas=0")
            if fl["signal"] == "KILL":
                for pod in syncd_pods:
                    kubectl("delete", "pod", "-n", NS, pod, "--grace-period=0", "--force")
            time.sleep(fl["outage"])
            kubectl("scale", "-n", NS, "deployment/edge-syncd", "--replicas=1")
            kubectl("rollout", "status", "-n", NS, "deployment/edge-syncd", "--timeout=120s")
            k.write_marker()
        elif kind == "config-churn":
            for i in range(fl["changes"]):
                apply_docs([{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                             "metadata": {"name": "churn", "namespace": "default",
                                          "annotations": {"edge.dev/churn": str(i)}},
                             "spec": {"ingressClassName": "edge", "rules": [{
                                 "host": "churn.example.test", "http": {"paths": [{
                                     "path": f"/v{i % 7}", "pathType": "Prefix",
                                     "backend": {"service": {"name": "churn-a" if i % 2 == 0 else "churn-b",
                                                             "port": {"number": 80}}}}]}}]}}])
            k.write_marker()
        time.sleep(fl["duration"])
    finally:
        load.stop()
    out.append(f"    fault {kind}: {load.summary()}")
    pct = 100.0 * load.failed / max(1, load.sent)
    ok = pct <= fl["max_failed_percent"]
    if not ok:
        out.append(f"    FAIL {pct:.1f}% failed, allowed {fl['max_failed_percent']}%")
    return ok


def run_scenario(k, scen, caps):
    missing = [c for c in scen["requires"] if c not in caps]
    if missing:
        return "SKIP", [f"    needs {', '.join(missing)} (not through the kind entry point)"]
    out = []
    ok = True
    try:
        k.apply(scen)
        for r in scen["requests"]:
            if r["scheme"] == "https":
                out.append(f"    skipped https://{r['host']}{r['path']}: no TLS entry point")
                continue
            seen = set()
            for _ in range(r["repeat"]):
                a = sc.send(r, k.ip, k.port)
                why = sc.check_answer(r["expect"], a, {})
                if why:
                    out.append(f"    FAIL {r['host']}{r['path']}: {why}")
                    ok = False
                    break
                seen.add(a.backend)
            else:
                want = r["expect"].get("endpoints")
                if want and len(seen) != want:
                    out.append(f"    FAIL {r['host']}{r['path']}: {len(seen)} endpoints, want {want}")
                    ok = False
        for fl in scen["faults"]:
            ok = run_fault(k, scen, fl, out) and ok
    except RuntimeError as e:
        out.append(f"    ERROR {e}")
        ok = False
    return ("PASS" if ok else "FAIL"), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--entry", default="127.0.0.1:18080")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    k = Kind(args.entry)
    caps = PROVIDES
    results = []
    for f in sorted(glob.glob(os.path.join(args.repo, "tests/e2e/scenarios/*.yaml"))):
        s = sc.load(f, args.repo)
        if args.only and s["name"] not in args.only.split(","):
            continue
        status, lines = run_scenario(k, s, caps)
        results.append((s["name"], status))
        print(f"{status:4}  {s['name']}", flush=True)
        for ln in lines:
            print(ln, flush=True)
    passed = sum(1 for _, st in results if st == "PASS")
    failed = sum(1 for _, st in results if st == "FAIL")
    skipped = len(results) - passed - failed
    for name, st in results:
        if st == "SKIP":
            print(f"EDGE_SKIP: kind e2e {name}: needs what the kind entry point cannot carry")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    ci = os.environ.get("CI", "").lower() in ("true", "1", "yes")
    return 1 if failed or (skipped and ci) else 0


if __name__ == "__main__":
    sys.exit(main())
