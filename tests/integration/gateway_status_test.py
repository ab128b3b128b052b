#!/usr/bin/env python3
"""Gateway API status write-back (issue 19): a real syncd reading the
in-tree API server stand-in (tests/apiserver/fake_apiserver.py) and the
real syncctl.

Usage: gateway_status_test.py SYNCD SYNCCTL FAKE_APISERVER [unittest args]

- our GatewayClass, Gateway (listeners, addresses) and an HTTPRoute get the
  specification's conditions written to their status (merge-patch of the
  status subresource), with observedGeneration; a parent entry written by
  another controller is kept;
- a route whose backend is missing says ResolvedRefs=False BackendNotFound
  in the object and in `syncctl status`, and True once the Service exists,
  with the new generation;
- a status already written is not written again (no write loop);
- a cluster without the Gateway API CRDs (404 on their lists) still serves
  Ingresses and writes their status.

Every wait polls with a deadline; processes are started here and killed by
PID.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SYNCD = SYNCCTL = FAKE = None
DEADLINE_S = 20
PUBLISH = "192.0.2.10"


def poll(cond, timeout=DEADLINE_S, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = cond()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Cluster:
    """The fake API server and a syncd reading it."""

    def __init__(self, crds=True):
        self.tmp = tempfile.mkdtemp(prefix="gwstatus-")
        self.api = subprocess.Popen([sys.executable, FAKE], stdout=subprocess.PIPE, text=True)
        self.port = int(self.api.stdout.readline())
        self.base = "http://127.0.0.1:%d" % self.port
        if not crds:
            self.post("/_test/crds", {"installed": False})
        kc = os.path.join(self.tmp, "kubeconfig")
        with open(kc, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: t\n"
                    "clusters: [{name: c, cluster: {server: '%s'}}]\n"
                    "users: [{name: u, user: {token: test}}]\n"
                    "contexts: [{name: t, context: {cluster: c, user: u}}]\n" % self.base)
        self.grpc = free_port()
        self.log = open(os.path.join(self.tmp, "syncd.log"), "w")
        self.syncd = subprocess.Popen(
            [SYNCD, "--source=kubernetes", "--kubeconfig=" + kc, "--insecure",
             "--listen=127.0.0.1:%d" % self.grpc, "--admin=127.0.0.1:0",
             "--publish-address=" + PUBLISH, "--debounce=20ms", "--max-delay=200ms"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def close(self):
        for p in (self.syncd, self.api):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.log.close()

    def call(self, path, body=None):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode()
                                     if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def post(self, path, body):
        return self.call(path, body)

    def apply(self, *objs):
        self.post("/_test/apply", {"objects": list(objs)})

    def patches(self, kind=None, name=None):
        return [p for p in self.call("/_test/status-patches")
                if (kind is None or p.get("kind", "Ingress") == kind) and
                (name is None or p["name"] == name)]

    def syncctl(self, *args):
        return subprocess.run([SYNCCTL, "--syncd=127.0.0.1:%d" % self.grpc, "--insecure"] +
                              list(args), capture_output=True, text=True, timeout=20)


def cond(conds, type_):
    for c in conds or []:
        if c["type"] == type_:
            return c
    return None


GW = "gateway.networking.k8s.io"
CLASS = {"kind": "GatewayClass", "apiVersion": GW + "/v1", "metadata": {"name": "edge"},
         "spec": {"controllerName": "edge.dev/gateway-controller"}}
GATEWAY = {"kind": "Gateway", "apiVersion": GW + "/v1",
           "metadata": {"name": "gw", "namespace": "default"},
           "spec": {"gatewayClassName": "edge",
                    "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"},
                                  {"name": "odd", "port": 8443, "protocol": "HTTP"}]}}
SERVICE = {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"clusterIP": "10.0.0.5", "ports": [{"port": 8080}]}}


def route(backend="web"):
    return {"kind": "HTTPRoute", "apiVersion": GW + "/v1",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": backend, "port": 8080}]}]},
            "status": {"parents": [{"parentRef": {"name": "other-gw"},
                                    "controllerName": "example.com/other",
                                    "conditions": [{"type": "Accepted", "status": "True",
                                                    "reason": "Accepted"}]}]}}


class GatewayStatusTest(unittest.TestCase):
    def setUp(self):
        self.c = None

    def tearDown(self):
        if self.c:
            self.c.close()

    def latest(self, kind, name):
        ps = self.c.patches(kind, name)
        return ps[-1]["body"]["status"] if ps else None

    def test_conditions_are_written_with_the_specifications_reasons(self):
        self.c = Cluster()
        self.c.apply(CLASS, GATEWAY, route(backend="missing"))
        cls = poll(lambda: self.latest("GatewayClass", "edge"), what="GatewayClass status")
        self.assertEqual(cond(cls["conditions"], "Accepted")["status"], "True")

        def route_status():
            st = self.latest("HTTPRoute", "r")
            return st if st and any(p["controllerName"] == "edge.dev/gateway-controller"
                                    for p in st["parents"]) else None
        st = poll(route_status, what="HTTPRoute status")
        ours = [p for p in st["parents"] if p["controllerName"] == "edge.dev/gateway-controller"]
        other = [p for p in st["parents"] if p["controllerName"] == "example.com/other"]
        self.assertEqual(len(other), 1, "another controller's parent entry is kept")
        self.assertEqual(ours[0]["parentRef"]["name"], "gw")
        self.assertEqual(cond(ours[0]["conditions"], "Accepted")["reason"], "Accepted")
        rr = cond(ours[0]["conditions"], "ResolvedRefs")
        self.assertEqual((rr["status"], rr["reason"]), ("False", "BackendNotFound"))
        self.assertEqual(rr["observedGeneration"], 1)

        gw = poll(lambda: self.latest("Gateway", "gw"), what="Gateway status")
        self.assertEqual(gw["addresses"], [{"type": "IPAddress", "value": PUBLISH}])
        ls = {l["name"]: l for l in gw["listeners"]}
        self.assertEqual(ls["http"]["attachedRoutes"], 1)
        self.assertEqual(cond(ls["odd"]["conditions"], "Accepted")["reason"], "PortUnavailable")
        self.assertEqual(cond(ls["odd"]["conditions"], "Programmed")["status"], "False")

        out = poll(lambda: (lambda r: r.stdout if "BackendNotFound" in r.stdout else None)(
            self.c.syncctl("status")), what="syncctl status naming BackendNotFound")
        self.assertIn("HTTPRoute default/r", out)
        self.assertIn("ResolvedRefs=False (BackendNotFound", out)
        self.assertIn("listener odd: attached routes 0  Accepted=False (PortUnavailable", out)
        js = json.loads(self.c.syncctl("status", "--json").stdout)
        kinds = sorted(o["kind"] for o in js["gateway"])
        self.assertEqual(kinds, ["Gateway", "GatewayClass", "HTTPRoute"])

        # The Service appears and the route's spec changes (generation 2): ResolvedRefs turns True.
        r2 = route()
        self.c.apply(SERVICE, r2)

        def resolved():
            st = self.latest("HTTPRoute", "r")
            ours = [p for p in st["parents"] if p["controllerName"] == "edge.dev/gateway-controller"]
            c = cond(ours[0]["conditions"], "ResolvedRefs")
            return c if c["status"] == "True" else None
        c = poll(resolved, what="ResolvedRefs=True")
        self.assertEqual(c["observedGeneration"], 2)

        # No write loop: another change is processed, our objects are not written again.
        before = len(self.c.patches("HTTPRoute")) + len(self.c.patches("Gateway"))
        self.c.apply({"kind": "Service", "apiVersion": "v1",
                      "metadata": {"name": "unrelated", "namespace": "default"},
                      "spec": {"clusterIP": "10.0.0.6", "ports": [{"port": 80}]}})
        poll(lambda: "Service=2" in self.c.syncctl("status").stdout, what="syncd saw the Service")
        self.assertEqual(len(self.c.patches("HTTPRoute")) + len(self.c.patches("Gateway")), before)

    def test_cluster_without_gateway_crds_still_serves_ingresses(self):
        self.c = Cluster(crds=False)
        self.c.apply(
            {"kind": "IngressClass", "apiVersion": "networking.k8s.io/v1",
             "metadata": {"name": "edge"}, "spec": {"controller": "edge.dev/ingress-controller"}},
            {"kind": "Service", "apiVersion": "v1",
             "metadata": {"name": "shop", "namespace": "default"},
             "spec": {"clusterIP": "10.0.0.7", "ports": [{"port": 80}]}},
            {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
             "metadata": {"name": "shop", "namespace": "default"},
             "spec": {"ingressClassName": "edge", "rules": [{"host": "shop.example.com", "http": {
                 "paths": [{"path": "/", "pathType": "Prefix", "backend": {
                     "service": {"name": "shop", "port": {"number": 80}}}}]}}]}})
        poll(lambda: self.c.patches("Ingress", "shop"), what="Ingress status written")
        st = self.c.syncctl("status").stdout
        self.assertIn("healthy", st)
        self.assertNotIn("UNHEALTHY", st)


if __name__ == "__main__":
    SYNCD, SYNCCTL, FAKE = sys.argv[1:4]
    unittest.main(argv=sys.argv[:1] + sys.argv[4:], verbosity=2)
