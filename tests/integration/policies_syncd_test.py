#!/usr/bin/env python3
"""Per-route policies from Ingress annotations (issue 20) end to end: a real
syncd reading Kubernetes YAML (an Opaque Secret holding a real htpasswd file
written by apache2-utils' htpasswd, Services with EndpointSlices pointing at
real backends and a real auth service), a real l7proxy connected to it, and
raw HTTP/1.1 clients. Bad annotation values are rejected with a reason in
`syncctl status`, and no hash or key reaches syncd's /config or Status.

Usage: policies_syncd_test.py SYNCD SYNCCTL L7PROXY BACKEND AUTH_SERVICE [unittest args]
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import explain_test as et  # noqa: E402
import l7proxy_test as l7t  # noqa: E402
import policies_test as pt  # noqa: E402

SYNCD = SYNCCTL = L7PROXY = None


def service(name, port):
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: http, port: 80, targetPort: {port}, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: {port}, protocol: TCP}}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {{ready: true}}
"""


def htpasswd_secret(name, lines):
    data = base64.b64encode(("\n".join(lines) + "\n").encode()).decode()
    return f"""---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: Opaque
data:
  auth: {data}
"""


def ing(name, host, svc, annotations, created):
    return et.ingress(name, host, [("/", "Prefix", svc)], created=created,
                      annotations=annotations)


class PoliciesFromAnnotations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="policies-syncd-")
        cls.backend = l7t.Backend("web", cls.tmp)
        cls.auth = pt.AuthService(cls.tmp)
        cls.lines = pt.htpasswd_file(cls.tmp)
        apr1 = "carol:$apr1$bNHH1mVJ$XtLOaBqmzCB1ETGGksrCw/"
        docs = ["""apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: edge}
spec: {controller: edge.dev/ingress-controller}
""", service("web", cls.backend.port), service("auth", cls.auth.port),
                htpasswd_secret("users", cls.lines), htpasswd_secret("old-users", [apr1])]
        t = "2026-01-01T00:00:%02dZ"
        good = [
            ("basic", {"edge.dev/auth-type": "basic", "edge.dev/auth-secret": "users",
                       "edge.dev/auth-realm": "staff"}),
            ("ext", {"edge.dev/auth-url": "http://auth.default.svc.cluster.local/verify",
                     "edge.dev/auth-response-headers": "X-User, X-Groups"}),
            ("limit", {"edge.dev/limit-rpm": "2", "edge.dev/limit-key": "header:X-Api-Key"}),
            ("cors", {"edge.dev/enable-cors": "true",
                      "edge.dev/cors-allow-origin": "https://*.example.com",
                      "edge.dev/cors-max-age": "60"}),
            ("sticky", {"edge.dev/affinity": "cookie",
                        "edge.dev/session-cookie-name": "route"}),
        ]
        bad = [
            ("bad-secret", {"edge.dev/auth-type": "basic", "edge.dev/auth-secret": "old-users"},
             "Apache MD5"),
            ("bad-ns", {"edge.dev/auth-url": "http://auth.other.svc/verify"}, "own namespace"),
            ("bad-rate", {"edge.dev/limit-rps": "ten"}, "limit-rps"),
            ("bad-origin", {"edge.dev/enable-cors": "true",
                            "edge.dev/cors-allow-origin": "https://a.test/x"}, "origin"),
            ("bad-hash", {"edge.dev/upstream-hash-by": "header:X Bad"}, "header name"),
            ("bad-both", {"edge.dev/affinity": "cookie",
                          "edge.dev/upstream-hash-by": "source-address"}, "both"),
        ]
        cls.bad = bad
        for i, (name, ann) in enumerate(good):
            # each policy on its own Service name, so cluster-level ones do not mix
            docs.append(ing(name, name + ".test", "web" if name != "sticky" else "sticky",
                            ann, t % i))
        docs.append(service("sticky", cls.backend.port))
        for i, (name, ann, _) in enumerate(bad):
            docs.append(ing(name, name + ".test", "web", ann, t % (20 + i)))
        os.makedirs(os.path.join(cls.tmp, "manifests"))
        with open(os.path.join(cls.tmp, "manifests", "all.yaml"), "w") as f:
            f.write("".join(docs))
        cls.procs = []
        cls.admin = l7t.free_port()
        os.makedirs(os.path.join(cls.tmp, "state"))
        cls.syncd = et.Proc([SYNCD, "--source=dir:" + os.path.join(cls.tmp, "manifests"),
                             "--listen=127.0.0.1:0", "--admin=127.0.0.1:%d" % cls.admin,
                             "--insecure", "--state-dir=" + os.path.join(cls.tmp, "state")],
                            os.path.join(cls.tmp, "syncd.log"))
        cls.procs.append(cls.syncd)
        port = l7t.poll(lambda: cls._grpc_port(), what="syncd listening")
        cls.target = "127.0.0.1:%d" % port
        l7t.poll(lambda: et.http_get("http://127.0.0.1:%d/readyz" % cls.admin)[0] == 200,
                 what="syncd ready")
        cls.http = l7t.free_port()
        cls.proxy_admin = l7t.free_port()
        cls.proxy = et.Proc([L7PROXY, "--syncd=" + cls.target, "--insecure", "--node-id=p1",
                             "--http=127.0.0.1:%d" % cls.http,
                             "--admin=127.0.0.1:%d" % cls.proxy_admin, "--workers=1"],
                            os.path.join(cls.tmp, "l7proxy.log"))
        cls.procs.append(cls.proxy)
        version = json.loads(cls.syncctl("status", "--json"))["version"]
        l7t.poll(lambda: json.loads(et.http_get("http://127.0.0.1:%d/config" % cls.proxy_admin)[1]
                                    or "{}").get("version") == version,
                 what="proxy applied syncd's version")

    @classmethod
    def _grpc_port(cls):
        for word in cls.syncd.text().split():
            if word.startswith("grpc_port="):
                return int(word.split("=")[1])
        return None

    @classmethod
    def syncctl(cls, *args):
        r = subprocess.run([SYNCCTL, "--syncd=" + cls.target, "--insecure"] + list(args),
                           capture_output=True, text=True, timeout=30)
        return r.stdout

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            p.stop()
        cls.backend.kill()
        cls.auth.kill()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def req(self, host, path="/", headers=None, method="GET"):
        return pt.request(self.http, method, path, host, headers)

    def test_basic_auth_from_an_htpasswd_secret(self):
        st, h, _ = self.req("basic.test")
        self.assertEqual(st, 401)
        self.assertIn('realm="staff"', h["www-authenticate"][0])
        st, _, body = self.req("basic.test", headers={
            "Authorization": pt.basic("alice", "wonder land")})
        self.assertEqual(st, 200, body)

    def test_external_auth_from_auth_url(self):
        self.assertEqual(self.req("ext.test", headers={"Authorization": "Bearer forbidden"})[0],
                         403)
        st, _, body = self.req("ext.test", headers={"Authorization": "Bearer good",
                                                    "X-User": "root"})
        self.assertEqual(st, 200)
        self.assertEqual(pt.body_json(body)["headers"]["x-user"], "alice")

    def test_rate_limit_from_limit_rpm(self):
        got = [self.req("limit.test", headers={"X-Api-Key": "k"})[0] for _ in range(3)]
        self.assertEqual(got, [200, 200, 429])

    def test_cors_from_enable_cors(self):
        st, h, _ = self.req("cors.test", "/api", method="OPTIONS", headers={
            "Origin": "https://a.example.com", "Access-Control-Request-Method": "GET"})
        self.assertEqual(st, 204)
        self.assertEqual(h["access-control-allow-origin"], ["https://a.example.com"])
        self.assertEqual(h["access-control-max-age"], ["60"])

    def test_affinity_cookie_from_annotation(self):
        st, h, _ = self.req("sticky.test")
        self.assertEqual(st, 200)
        cookie = [c for c in h.get("set-cookie", []) if c.startswith("route=")]
        self.assertEqual(len(cookie), 1, h)
        tok = cookie[0].split(";")[0]
        st, h, _ = self.req("sticky.test", headers={"Cookie": tok})
        self.assertNotIn("set-cookie", h)

    def test_bad_values_are_rejected_with_a_reason(self):
        status = json.loads(self.syncctl("status", "--json"))
        rejected = {r["name"]: r["reason"] for r in status["rejected"]}
        for name, _, why in self.bad:
            self.assertIn(name, rejected, status["rejected"])
            self.assertIn(why, rejected[name])
            self.assertEqual(self.req(name + ".test")[0], 404)  # never served
        self.assertNotIn("XtLOaBqmzCB1ETGGksrCw", json.dumps(status))

    def test_no_hash_or_key_in_syncd_config_or_status(self):
        _, cfg = et.http_get("http://127.0.0.1:%d/config" % self.admin)
        self.assertIn('"basic_auth"', cfg)
        self.assertIn('"cookie_affinity"', cfg)
        self.assertNotIn("hmac_key", cfg)
        text = cfg + self.syncctl("status", "--json") + self.syncd.text() + self.proxy.text()
        for line in self.lines:
            self.assertNotIn(line.split(":", 1)[1], text)


if __name__ == "__main__":
    SYNCD, SYNCCTL, L7PROXY = (os.path.abspath(a) for a in sys.argv[1:4])
    l7t.BACKEND = os.path.abspath(sys.argv[4])
    pt.AUTH_SERVICE = os.path.abspath(sys.argv[5])
    l7t.skip_policy.main([sys.argv[0]] + sys.argv[6:])
