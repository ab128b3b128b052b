#!/usr/bin/env python3
"""Several syncd replicas fed the same directory: they name the same state
the same way, and a proxy moving between them costs nothing.

Usage: syncd_replicas_test.py SYNCD SYNCCTL L7PROXY [unittest args]

- two replicas started on one directory (each with its own state
  directory, one shared default certificate) report the same version; a
  change gives both the same new version; a third replica started later,
  from nothing, reports it too;
- a real l7proxy given both (--syncd=A,B) uses one; when that one is
  killed it reconnects to the other within the reconnect backoff, is
  SYNCED there, and receives no push at all (it already has that state);
  syncctl over both names the replica serving it.

Every wait polls a condition with a deadline; nothing asserts on timing.
Processes are started here and killed by PID.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import skip_policy  # noqa: E402

SYNCD = SYNCCTL = L7PROXY = None


def poll(cond, timeout=20, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def metric(port, name):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    total = None
    for m in re.finditer(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M):
        total = (total or 0) + float(m.group(1))
    return total


INGRESS = """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: edge
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: edge.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.5
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: %(name)s, namespace: default}
spec:
  rules:
    - host: %(name)s.example.test
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


class ReplicasTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="syncd-replicas-")
        self.src = os.path.join(self.tmp, "src")
        os.makedirs(self.src)
        self.write("shop")
        self.cert = os.path.join(self.tmp, "default.crt")
        self.key = os.path.join(self.tmp, "default.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out",
                        self.cert, "-days", "2", "-subj", "/CN=edge-default"],
                       check=True, capture_output=True)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name):
        tmp = os.path.join(self.src, ".tmp")
        with open(tmp, "w") as f:
            f.write(INGRESS % {"name": name})
        os.rename(tmp, os.path.join(self.src, "app.yaml"))

    def syncd(self, name):
        grpc, admin = free_port(), free_port()
        state = os.path.join(self.tmp, "state-" + name)
        os.makedirs(state)
        p = subprocess.Popen(
            [SYNCD, "--source=dir:" + self.src, "--listen=127.0.0.1:%d" % grpc,
             "--admin=127.0.0.1:%d" % admin, "--state-dir=" + state, "--insecure",
             "--replica-id=" + name, "--default-cert=" + self.cert, "--default-key=" + self.key,
             "--debounce=50ms"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, name + ".log"), "w"))
        self.procs.append(p)
        poll(lambda: self.status(grpc), what=name + " status")
        return p, grpc, admin

    def status(self, *grpcs):
        spec = ",".join("127.0.0.1:%d" % g for g in grpcs)
        out = subprocess.run([SYNCCTL, "--insecure", "--syncd=" + spec, "status", "--json"],
                             capture_output=True, text=True, timeout=20)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def version(self, grpc):
        st = self.status(grpc)
        return st["version"] if st else 0

    def test_replicas_fed_the_same_directory_report_the_same_version(self):
        _, ga, _ = self.syncd("syncd-a")
        _, gb, _ = self.syncd("syncd-b")
        v1 = poll(lambda: self.version(ga), what="a first version")
        poll(lambda: self.version(gb) == v1, what="syncd-b at syncd-a's version %d" % v1)
        self.write("blog")
        v2 = poll(lambda: self.version(ga) != v1 and self.version(ga), what="a new version")
        poll(lambda: self.version(gb) == v2, what="syncd-b at the new version %d" % v2)
        _, gc, _ = self.syncd("syncd-c")  # later, from nothing
        poll(lambda: self.version(gc) == v2, what="a third replica at %d" % v2)
        print("three replicas, one directory: version %d on each" % v2, flush=True)

    def test_a_proxy_fails_over_to_the_other_replica_and_gets_no_push(self):
        pa, ga, _ = self.syncd("syncd-a")
        pb, gb, _ = self.syncd("syncd-b")
        v = poll(lambda: self.version(ga), what="a version")
        poll(lambda: self.version(gb) == v, what="the same version on both")
        admin = free_port()
        proxy = subprocess.Popen(
            [L7PROXY, "--syncd=127.0.0.1:%d,127.0.0.1:%d" % (ga, gb), "--insecure",
             "--node-id=l7-a", "--http=127.0.0.1:%d" % free_port(),
             "--admin=127.0.0.1:%d" % admin, "--workers=1"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "l7.log"), "w"))
        self.procs.append(proxy)

        def serving():
            st = self.status(ga, gb)
            rows = [n for n in (st or {}).get("nodes", []) if n["node_id"] == "l7-a"]
            return rows and rows[0]["state"] == "SYNCED" and rows[0]["replica"]

        first = poll(serving, what="the proxy SYNCED on a replica")
        pushes = metric(admin, "edge_l7_config_pushes_total")
        self.assertEqual(pushes, 1, "one push: the initial state")
        dead, survivor = (pa, gb) if first == "syncd-a" else (pb, ga)
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        t0 = time.monotonic()

        def synced_on_survivor():
            st = self.status(survivor)
            rows = [n for n in (st or {}).get("nodes", []) if n["node_id"] == "l7-a"]
            return rows and rows[0]["state"] == "SYNCED" and rows[0]["last_acked_version"] == v

        poll(synced_on_survivor, what="the proxy SYNCED on the surviving replica")
        print("failover: SYNCED on the survivor after %.2f s" % (time.monotonic() - t0),
              flush=True)
        self.assertEqual(metric(admin, "edge_l7_config_pushes_total"), pushes,
                         "the survivor pushed to a proxy that had its state")
        self.assertEqual(metric(admin, "edge_l7_config_connects_total"), 2)


def main():
    global SYNCD, SYNCCTL, L7PROXY
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    SYNCD, SYNCCTL, L7PROXY = (os.path.abspath(p) for p in sys.argv[1:4])
    skip_policy.main([sys.argv[0]] + sys.argv[4:])


if __name__ == "__main__":
    main()
