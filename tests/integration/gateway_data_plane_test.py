#!/usr/bin/env python3
"""Gateway API and Ingress canaries in the data plane (issue 19): a real
syncd (directory source), a real l7proxy and echo backends
(tests/conformance/echo_backend.py) on 127.0.0.1.

Usage: gateway_data_plane_test.py SYNCD L7PROXY ECHO_BACKEND H2C_BACKEND [unittest args]

- an HTTPRoute at 90/10 over 10,000 requests lands within 1.5 points of
  10 % (a per-request choice: every request is a fresh pick);
- changing the weights is a push of that one virtual host (syncd's push
  line names what it carries) and the split follows;
- the Ingress canary annotations (edge.dev/canary-weight,
  edge.dev/canary-by-header) split and steer the same way;
- a mirror never delays the client: with the mirror's backend stopped the
  request is still answered;
- a mirror to an h2c cluster (appProtocol kubernetes.io/h2c) is copied as
  an HTTP/2 stream, body included, and answered by the mirror
  (edge_l7_mirrored_requests_total{result="sent"}), not dropped;
- a header modifier value with CR LF never reaches the wire (the route is
  refused by syncd, reported, and the host serves what it served before).

Every wait polls with a deadline; processes are started here and killed by
PID. No timing is asserted.
"""
import http.client
import json
import os
import re
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

SYNCD = L7PROXY = ECHO = None
DEADLINE_S = 20


def poll(cond, timeout=DEADLINE_S, what="condition"):
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
    p = s.getsockname()[1]
    s.close()
    return p


BASE = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: edge}
spec: {controllerName: edge.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: edge
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: edge}
spec: {controller: edge.dev/ingress-controller}
---
"""


def service(name, port):
    return """apiVersion: v1
kind: Service
metadata: {name: %s, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: %d}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}
ports: [{name: http, port: %d}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
---
""" % (name, port, name, name, port)


def httproute(stable, canary, extra=""):
    return """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  hostnames: [app.example.test]
  rules:
  - backendRefs:
    - {name: stable, port: 80, weight: %d}
    - {name: canary, port: 80, weight: %d}
%s---
""" % (stable, canary, extra)


class DataPlane(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gwdp-")
        self.dir = os.path.join(self.tmp, "manifests")
        os.makedirs(self.dir)
        self.procs, self.files = [], []
        self.ports = {n: free_port() for n in ("stable", "canary", "mirror")}
        self.echo_log = os.path.join(self.tmp, "echo-requests.jsonl")
        self.echo = self.spawn([sys.executable, ECHO] + ["%s-0=default=127.0.0.1:%d" % (n, p)
                                                          for n, p in self.ports.items()],
                               "echo", pipe=True, env=dict(os.environ, ECHO_LOG=self.echo_log))
        self.assertEqual(self.echo.stdout.readline().strip(), "READY")
        self.grpc = free_port()
        self.http = free_port()
        self.admin = free_port()
        self.syncd_log = os.path.join(self.tmp, "syncd.log")
        self.write("00-base.yaml", BASE + "".join(service(n, p) for n, p in self.ports.items()))
        self.syncd = self.spawn([SYNCD, "--source=dir:" + self.dir, "--insecure",
                                 "--listen=127.0.0.1:%d" % self.grpc, "--admin=127.0.0.1:0",
                                 "--debounce=20ms", "--max-delay=200ms", "--log-level=debug"],
                                "syncd")
        self.spawn([L7PROXY, "--syncd=127.0.0.1:%d" % self.grpc, "--insecure", "--node-id=dp",
                    "--http=127.0.0.1:%d" % self.http, "--admin=127.0.0.1:%d" % self.admin,
                    "--workers=2"],
                   "l7proxy")

    def tearDown(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if p.stdout:
                p.stdout.close()
        for f in self.files:
            f.close()

    def spawn(self, argv, name, pipe=False, env=None):
        out = open(os.path.join(self.tmp, name + ".log"), "w")
        self.files.append(out)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE if pipe else out, stderr=out, text=True,
                             env=env)
        self.procs.append(p)
        return p

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)

    def get(self, conn, host, path="/", headers=None):
        conn.request("GET", path, headers=dict({"Host": host}, **(headers or {})))
        r = conn.getresponse()
        body = r.read()
        return r.status, (json.loads(body)["pod"] if r.status == 200 else None)

    def pods(self, host, n, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        seen = {}
        try:
            for _ in range(n):
                status, pod = self.get(conn, host, headers=headers)
                self.assertEqual(status, 200)
                seen[pod] = seen.get(pod, 0) + 1
        finally:
            conn.close()
        return seen

    def served(self, host, want_pod, headers=None):
        def ok():
            conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=5)
            try:
                st, pod = self.get(conn, host, headers=headers)
                return st == 200 and pod == want_pod
            except OSError:
                return False
            finally:
                conn.close()
        poll(ok, what="%s served by %s" % (host, want_pod))

    def pushes(self):
        with open(self.syncd_log) as f:
            return re.findall(r"msg=push .*? upserted=(\d+) removed=(\d+) .*?names=\"?([^\"\n]*)",
                              f.read())

    def test_ninety_ten_over_10000_requests_and_a_weight_change_is_one_route(self):
        self.write("10-route.yaml", httproute(90, 10))
        poll(lambda: sum(self.pods_quick("app.example.test").values()) > 0,
             what="the route is served")
        seen = self.pods("app.example.test", 10000)
        share = 100.0 * seen.get("canary-0", 0) / 10000
        print("90/10 over 10000 requests: %s (%.2f%% canary)" % (seen, share))
        self.assertLessEqual(abs(share - 10.0), 1.5, seen)
        self.assertEqual(set(seen), {"stable-0", "canary-0"})

        before = len(self.pushes())
        self.write("10-route.yaml", httproute(50, 50))
        poll(lambda: len(self.pushes()) > before, what="a push after the weight change")
        delta = self.pushes()[before]
        self.assertEqual(delta, ("1", "0", "+gw:http:app.example.test"),
                         "a weight change pushes that one virtual host")
        seen = poll(lambda: (lambda s: s if abs(s.get("canary-0", 0) - 1000) < 150 else None)(
            self.pods("app.example.test", 2000)), what="the split follows the new weights")
        print("50/50 after the change over 2000 requests: %s" % seen)

    def pods_quick(self, host):
        try:
            return self.pods(host, 1)
        except (OSError, AssertionError):
            return {}

    def test_ingress_canary_annotations_split_and_steer(self):
        ing = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: default
  creationTimestamp: "%s"
  annotations: {%s}
spec:
  ingressClassName: edge
  rules:
  - host: shop.example.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: %s, port: {number: 80}}}}]}
---
"""
        self.write("20-ingress.yaml",
                   ing % ("main", "2026-01-01T00:00:00Z", "", "stable") +
                   ing % ("canary", "2026-01-02T00:00:00Z",
                          "edge.dev/canary: \"true\", edge.dev/canary-weight: \"20\", "
                          "edge.dev/canary-by-header: X-Canary", "canary"))
        self.served("shop.example.test", "canary-0", {"X-Canary": "always"})
        self.served("shop.example.test", "stable-0", {"X-Canary": "never"})
        seen = self.pods("shop.example.test", 2000, {"X-Canary": "never"})
        self.assertEqual(seen, {"stable-0": 2000}, "never: the main path only")
        seen = self.pods("shop.example.test", 4000)
        share = 100.0 * seen.get("canary-0", 0) / 4000
        print("Ingress canary-weight 20 over 4000 requests: %s (%.2f%%)" % (seen, share))
        self.assertLessEqual(abs(share - 20.0), 3.0, seen)

    def test_mirror_never_delays_the_client(self):
        """The mirror accepts and reads but never answers: the client is answered all the same
        while the copy is still open, and a mirror that refuses connections changes nothing."""
        import threading
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        got, conns = [], []

        def serve():
            while True:
                try:
                    c, _ = hole.accept()
                except OSError:
                    return
                conns.append(c)
                got.append(c.recv(65536))
        threading.Thread(target=serve, daemon=True).start()
        dead = free_port()  # nothing listens there
        self.write("05-mirrors.yaml", service("hole", hole.getsockname()[1]) +
                   service("dead", dead))
        route = httproute(100, 0).replace("    - {name: canary, port: 80, weight: 0}\n", "")
        route = route.replace("    - {name: stable, port: 80, weight: 100}\n", """    - {name: stable, port: 80, weight: 100}
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: hole, port: 80}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: dead, port: 80}}
""")
        self.write("10-route.yaml", route)
        self.served("app.example.test", "stable-0")
        n0 = len(got)
        conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        status, pod = self.get(conn, "app.example.test", "/mirrored?x=1")
        conn.close()
        self.assertEqual((status, pod), (200, "stable-0"))
        poll(lambda: any(b"GET /mirrored?x=1 HTTP/1.1" in g for g in got[n0:]),
             what="the copy at the mirror")
        copy = [g for g in got[n0:] if b"/mirrored" in g][0].decode("latin-1").lower()
        self.assertIn("host: app.example.test", copy)
        self.assertIn("connection: close", copy)
        # the copy's connection is still open (never answered) and the client had its answer
        self.assertTrue(any(c.fileno() >= 0 for c in conns))
        hole.close()
        for c in conns:
            c.close()

    def mirrored(self, result):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin,
                                        timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return 0
        m = re.search(r'^edge_l7_mirrored_requests_total\{result="%s"\} (\d+)' % result, text,
                      re.M)
        return int(m.group(1)) if m else 0

    def test_mirror_to_an_h2c_cluster_is_an_http2_stream(self):
        port = free_port()
        self.spawn([H2C, "h2mirror-0=default=127.0.0.1:%d" % port], "h2c", pipe=True)
        self.assertEqual(self.procs[-1].stdout.readline().strip(), "READY")
        self.write("05-h2c.yaml", """apiVersion: v1
kind: Service
metadata: {name: h2mirror, namespace: default}
spec: {ports: [{name: h2c, port: 80, targetPort: %d, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: h2mirror-1, namespace: default, labels: {kubernetes.io/service-name: h2mirror}}
ports: [{name: h2c, port: %d}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
---
""" % (port, port))
        route = httproute(100, 0).replace("    - {name: canary, port: 80, weight: 0}\n", "")
        route = route.replace("    - {name: stable, port: 80, weight: 100}\n", """    - {name: stable, port: 80, weight: 100}
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: h2mirror, port: 80}}
""")
        self.write("10-route.yaml", route)
        self.served("app.example.test", "stable-0")
        sent, dropped = self.mirrored("sent"), self.mirrored("dropped")
        conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        conn.request("POST", "/copied", body=b"x" * 100000,
                     headers={"Host": "app.example.test", "Content-Type": "text/plain"})
        r = conn.getresponse()
        r.read()
        conn.close()
        self.assertEqual(r.status, 200)
        poll(lambda: self.mirrored("sent") > sent, what="the h2c copy answered")
        self.assertEqual(self.mirrored("dropped"), dropped)

    def test_header_value_with_crlf_never_reaches_the_wire(self):
        self.write("10-route.yaml", httproute(100, 0))
        self.served("app.example.test", "stable-0")
        bad = httproute(100, 0, extra="""    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Evil, value: "a\\r\\nX-Injected: 1"}]}
""").replace("name: app,", "name: app2,").replace("app.example.test", "evil.example.test")
        self.write("11-bad.yaml", bad)
        out = poll(lambda: (lambda r: r.stdout if "evil" not in r.stdout and "app2" in
                            r.stdout else None)(self.syncctl_status()),
                   what="syncctl status reporting the refused route")
        self.assertIn("UnsupportedValue", out)
        conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=5)
        status, _ = self.get(conn, "evil.example.test")
        conn.close()
        self.assertEqual(status, 404, "the refused route serves nothing")
        self.served("app.example.test", "stable-0")

    def backend_saw(self):
        """Every request the echo backends received (path and headers)."""
        try:
            with open(self.echo_log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    def test_url_rewrite_path_with_crlf_never_reaches_the_backend(self):
        """An HTTPRoute whose URLRewrite path (or redirect path) would split the upstream request
        line is refused where it enters (syncd: UnsupportedValue); its host serves nothing, and
        no backend ever sees the injected header or the smuggled second request."""
        self.write("10-route.yaml", httproute(100, 0))
        self.served("app.example.test", "stable-0")
        evil = "/x HTTP/1.1\\r\\nX-Injected: 1\\r\\n\\r\\nGET /smuggled"
        bad = httproute(100, 0, extra="""    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: "%s"}}
""" % evil).replace("name: app,", "name: rw,").replace("app.example.test", "rw.example.test")
        bad += httproute(100, 0, extra="""    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: "%s"}}
""" % evil).replace("name: app,", "name: rd,").replace("app.example.test", "rd.example.test")
        self.write("11-bad.yaml", bad)
        out = poll(lambda: (lambda r: r.stdout if "rw" in r.stdout and "rd" in r.stdout
                            else None)(self.syncctl_status()),
                   what="syncctl status reporting the refused routes")
        self.assertIn("UnsupportedValue", out)
        conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=5)
        for host in ("rw.example.test", "rd.example.test"):
            status, _ = self.get(conn, host, "/anything")
            self.assertEqual(status, 404, "the refused route %s serves nothing" % host)
        conn.close()
        self.served("app.example.test", "stable-0")
        for req in self.backend_saw():
            names = {k.lower() for k in req.get("headers", {})}
            self.assertNotIn("x-injected", names, req)
            self.assertNotIn("smuggled", req.get("path", ""), req)

    def syncctl_status(self):
        syncctl = os.path.join(os.path.dirname(SYNCD), "syncctl")
        return subprocess.run([syncctl, "--syncd=127.0.0.1:%d" % self.grpc, "--insecure",
                               "status"], capture_output=True, text=True, timeout=20)


if __name__ == "__main__":
    SYNCD, L7PROXY, ECHO, H2C = sys.argv[1:5]
    skip_policy.main(sys.argv[:1] + sys.argv[5:])
