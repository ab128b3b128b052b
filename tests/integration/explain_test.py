#!/usr/bin/env python3
"""Troubleshooting integration tests (issue 9): a real syncd reading
manifests from a temp directory, the real syncctl binary, and a real
l7proxy connected to that syncd.

Usage: explain_test.py SYNCD SYNCCTL L7PROXY [unittest args]

- each common failure (wrong IngressClass, missing Secret, host typo,
  trailing-slash Exact rule, backend with no ready endpoints, rejected
  Ingress) is set up in the manifests and `syncctl explain` must name it;
- `syncctl certs` / `syncctl status` flag a certificate expiring within
  --expiry-warning, syncd exports the expiry gauge and logs a warn line;
- syncd's Explain and the proxy's GET /explain agree on 50+ URL/SNI cases.

Every wait polls a condition with a deadline; nothing asserts on timing.
Processes are started here and killed by PID.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

SYNCD = SYNCCTL = L7PROXY = None
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
    port = s.getsockname()[1]
    s.close()
    return port


def make_cert(tmp, name, days):
    """A self-signed cert+key for name (openssl CLI), base64 for a Secret."""
    crt, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-days", str(days), "-subj", "/CN=" + name,
         "-addext", "subjectAltName=DNS:" + name],
        check=True, capture_output=True)
    with open(crt, "rb") as c, open(key, "rb") as k:
        return base64.b64encode(c.read()).decode(), base64.b64encode(k.read()).decode()


def service(name, ready=True, addr="127.0.9.1"):
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: http, port: 80, targetPort: 18080, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: 18080, protocol: TCP}}]
endpoints:
  - addresses: ["{addr}"]
    conditions: {{ready: {"true" if ready else "false"}}}
"""


def ingress(name, host, paths, cls="edge", tls_secret=None, created="2026-01-01T00:00:00Z",
            annotations=None):
    p = "".join(
        f"""          - path: {path}
            pathType: {ptype}
            backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}
""" for path, ptype, svc in paths)
    tls = ""
    if tls_secret:
        tls = f"""  tls:
    - hosts: ["{host}"]
      secretName: {tls_secret}
"""
    ann = ""
    if annotations:
        ann = "  annotations:\n" + "".join(f'    {k}: "{v}"\n' for k, v in annotations.items())
    hostline = f'    - host: "{host}"\n' if host else "    -\n"
    return f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  creationTimestamp: "{created}"
{ann}spec:
  ingressClassName: {cls}
{tls}  rules:
{hostline}      http:
        paths:
{p}"""


def secret(name, crt, key):
    return f"""---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: kubernetes.io/tls
data:
  tls.crt: {crt}
  tls.key: {key}
"""


def world(tmp):
    shop = make_cert(tmp, "shop.example.test", 365)
    wild = make_cert(tmp, "*.wild.test", 365)
    soon = make_cert(tmp, "soon.example.test", 5)
    docs = [
        """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: edge}
spec: {controller: edge.dev/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: other}
spec: {controller: example.com/other-controller}
""",
        service("web", addr="127.0.9.1"),
        service("api", addr="127.0.9.2"),
        service("empty", ready=False, addr="127.0.9.3"),
        secret("shop-tls", *shop),
        secret("wild-tls", *wild),
        secret("soon-tls", *soon),
        ingress("shop", "shop.example.test",
                [("/", "Prefix", "web"), ("/api", "Prefix", "api"), ("/cart", "Exact", "web"),
                 ("/empty", "Prefix", "empty"), ("/aaa", "Prefix", "api")],
                tls_secret="shop-tls"),
        ingress("wild", "*.wild.test", [("/", "Prefix", "web"), ("/x", "Exact", "api")],
                tls_secret="wild-tls", created="2026-01-01T00:00:01Z"),
        ingress("secure", "secure.example.test", [("/", "Prefix", "web")], tls_secret="nope",
                created="2026-01-01T00:00:02Z"),
        ingress("plain", "plain.example.test", [("/", "Prefix", "api"), ("/v1", "Exact", "web")],
                created="2026-01-01T00:00:03Z"),
        ingress("noredirect", "noredir.example.test", [("/", "Prefix", "web")],
                tls_secret="shop-tls", created="2026-01-01T00:00:04Z",
                annotations={"edge.dev/ssl-redirect": "false"}),
        ingress("soon", "soon.example.test", [("/", "Prefix", "web")], tls_secret="soon-tls",
                created="2026-01-01T00:00:05Z"),
        ingress("other-team", "other.example.test", [("/", "Prefix", "web")], cls="other"),
        ingress("broken", "broken.example.test", [("relative", "Prefix", "web")],
                created="2026-01-01T00:00:06Z"),
    ]
    os.makedirs(os.path.join(tmp, "manifests"))
    with open(os.path.join(tmp, "manifests", "all.yaml"), "w") as f:
        f.write("".join(docs))


class Proc:
    def __init__(self, argv, logpath):
        self.log = open(logpath, "wb")
        self.logpath = logpath
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


class ExplainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="explain-test-")
        world(cls.tmp)
        cls.procs = []
        cls.admin = free_port()
        os.makedirs(os.path.join(cls.tmp, "state"))
        cls.syncd = Proc([SYNCD, "--source=dir:" + os.path.join(cls.tmp, "manifests"),
                          "--listen=127.0.0.1:0", "--admin=127.0.0.1:%d" % cls.admin,
                          "--insecure", "--state-dir=" + os.path.join(cls.tmp, "state"),
                          "--expiry-warning=14d"],
                         os.path.join(cls.tmp, "syncd.log"))
        cls.procs.append(cls.syncd)
        port = poll(lambda: cls._grpc_port(), what="syncd listening")
        cls.target = "127.0.0.1:%d" % port
        poll(lambda: http_get("http://127.0.0.1:%d/readyz" % cls.admin)[0] == 200,
             what="syncd ready")

    @classmethod
    def _grpc_port(cls):
        for word in cls.syncd.text().split():
            if word.startswith("grpc_port="):
                return int(word.split("=")[1])
        return None

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            p.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def syncctl(self, *args, check=True):
        r = subprocess.run([SYNCCTL, "--syncd=" + self.target, "--insecure"] + list(args),
                           capture_output=True, text=True, timeout=30)
        if check:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def explain(self, url, *extra):
        return json.loads(self.syncctl("explain", url, "--json", *extra).stdout)

    # ---- the common failures -------------------------------------------------

    def test_wrong_ingressclass_is_reported_with_its_controller(self):
        r = self.explain("http://other.example.test/")
        self.assertFalse(r["matched"])
        ns = [o for o in r["not_served"] if o["name"] == "other-team"]
        self.assertEqual(len(ns), 1, r["not_served"])
        self.assertEqual(ns[0]["status"], "ignored")
        self.assertIn("IngressClass other is not ours", ns[0]["reason"])
        self.assertIn("example.com/other-controller", ns[0]["reason"])
        text = self.syncctl("explain", "http://other.example.test/").stdout
        self.assertIn("NOT SERVED", text)
        self.assertIn("IngressClass other is not ours", text)

    def test_missing_secret_serves_default_certificate_and_says_why(self):
        r = self.explain("https://secure.example.test/")
        self.assertTrue(r["matched"])
        self.assertTrue(r["host_entry"]["tls_fallback"])
        self.assertEqual(r["certificate"]["match"], "default")
        self.assertTrue(any("default certificate" in p for p in r["problems"]), r["problems"])
        reasons = [o["reason"] for o in r["not_served"] if o["status"] == "rejected"]
        self.assertTrue(any("secret nope" in x for x in reasons), r["not_served"])

    def test_host_typo_lists_the_intended_host_first(self):
        r = self.explain("https://shop.exmaple.test/api")
        self.assertFalse(r["matched"])
        first = r["candidates"][0]
        self.assertEqual(first["host"], "shop.example.test")
        self.assertEqual(first["verdict"], "host differs")
        self.assertIn("typo", first["hint"])

    def test_exact_rule_with_trailing_slash_is_explained(self):
        r = self.explain("https://shop.example.test/cart/")
        self.assertEqual(r["route"]["path"], "/")  # the catch-all Prefix serves it instead
        cart = [c for c in r["candidates"] if c["path"] == "/cart"]
        self.assertEqual(cart[0]["verdict"], "exact path differs by a trailing slash")
        r = self.explain("https://shop.example.test/aaaccc")
        aaa = [c for c in r["candidates"] if c["path"] == "/aaa"]
        self.assertEqual(aaa[0]["verdict"], "prefix ends inside a path element")

    def test_backend_without_ready_endpoints_is_a_problem(self):
        r = self.explain("https://shop.example.test/empty/x")
        self.assertEqual(r["cluster"]["name"], "default/empty:80")
        self.assertEqual(r["cluster"]["ready_endpoints"], 0)
        self.assertEqual(r["cluster"]["endpoints"][0]["address"], "127.0.9.3")
        self.assertFalse(r["cluster"]["endpoints"][0]["ready"])
        self.assertTrue(any("no ready endpoints" in p for p in r["problems"]))
        text = self.syncctl("explain", "https://shop.example.test/empty/x").stdout
        self.assertIn("default/empty:80: 0 of 1 endpoints ready", text)
        self.assertIn("127.0.9.3:18080 NOT READY", text)

    def test_rejected_ingress_is_shown_with_its_reason(self):
        r = self.explain("http://broken.example.test/")
        self.assertFalse(r["matched"])
        broken = [o for o in r["not_served"] if o["name"] == "broken"]
        self.assertEqual(len(broken), 1, r["not_served"])
        self.assertEqual(broken[0]["status"], "rejected")
        self.assertTrue(broken[0]["reason"])

    def test_match_names_ingress_cluster_certificate_and_redirect(self):
        r = self.explain("https://Shop.Example.test:443/api/v1?q=1")
        self.assertEqual(r["host_entry"]["host"], "shop.example.test")
        self.assertEqual(r["host_entry"]["host_match"], "EXACT")
        self.assertEqual(r["host_entry"]["ingresses"], ["default/shop"])
        self.assertEqual(r["route"]["path"], "/api")
        self.assertEqual(r["route"]["source"], "default/shop")
        self.assertEqual(r["cluster"]["endpoints"][0]["address"], "127.0.9.2")
        self.assertEqual(r["certificate"]["name"], "default/shop-tls")
        self.assertEqual(r["certificate"]["match"], "exact")
        self.assertIn("shop.example.test", r["certificate"]["issuer"])
        self.assertIsNone(r["redirect"])
        r = self.explain("http://shop.example.test/api/v1?q=1")
        self.assertEqual(r["redirect"]["status"], 308)
        self.assertEqual(r["redirect"]["location"], "https://shop.example.test/api/v1?q=1")
        r = self.explain("http://noredir.example.test/")
        self.assertIsNone(r["redirect"])
        r = self.explain("https://10.0.0.1/", "--sni", "a.wild.test",
                         "--header", "Host: plain.example.test")
        self.assertEqual(r["host_entry"]["host"], "plain.example.test")
        self.assertEqual(r["certificate"]["name"], "default/wild-tls")
        self.assertEqual(r["certificate"]["match"], "wildcard")

    def test_bad_url_is_a_clear_error(self):
        r = self.syncctl("explain", "ftp://x/", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot parse URL", r.stderr)
        r = self.syncctl("explain", check=False)
        self.assertEqual(r.returncode, 2)

    # ---- certificates and expiry ---------------------------------------------

    def test_certs_lists_every_certificate_and_flags_expiring(self):
        certs = json.loads(self.syncctl("certs", "--json").stdout)
        self.assertEqual(certs["expiry_warning_seconds"], 14 * 86400)
        by = {c["name"]: c for c in certs["certificates"]}
        self.assertIn("default/shop-tls", by)
        self.assertIn("shop.example.test", by["default/shop-tls"]["sni_names"])
        self.assertIn("noredir.example.test", by["default/shop-tls"]["hosts"])
        self.assertEqual(by["default/shop-tls"]["source"], "default/shop-tls")
        self.assertFalse(by["default/shop-tls"]["expiring"])
        self.assertTrue(by["default/soon-tls"]["expiring"])
        text = self.syncctl("certs").stdout
        line = [x for x in text.splitlines() if x.startswith("default/soon-tls")][0]
        self.assertIn("EXPIRING", line)
        status = self.syncctl("status").stdout
        self.assertIn("expiring within 14 days: 1", status)
        self.assertIn("default/soon-tls", status)

    def test_expiry_gauge_and_daily_warning_line(self):
        def gauge():
            code, body = http_get("http://127.0.0.1:%d/metrics" % self.admin)
            for line in body.splitlines():
                if line.startswith(
                        'edge_syncd_certificate_expiry_seconds{certificate="default/soon-tls"}'):
                    return float(line.split()[-1])
            return None
        v = poll(gauge, what="expiry gauge")
        self.assertGreater(v, 3 * 86400)
        self.assertLess(v, 6 * 86400)
        poll(lambda: "certificate_expiring" in self.syncd.text(), what="warn line")
        warn = [x for x in self.syncd.text().splitlines() if "certificate_expiring" in x]
        self.assertTrue(any("default/soon-tls" in x and "level=warn" in x for x in warn), warn)
        self.assertFalse(any("default/shop-tls" in x for x in warn), warn)

    # ---- syncd and a live proxy agree -------------------------------------------

    def start_proxy(self):
        """A real l7proxy connected to syncd, once it serves syncd's version."""
        if not getattr(ExplainTest, "proxy_admin", None):
            admin = free_port()
            proxy = Proc([L7PROXY, "--syncd=" + self.target, "--insecure",
                          "--node-id=explain-proxy", "--http=127.0.0.1:0",
                          "--admin=127.0.0.1:%d" % admin, "--workers=1"],
                         os.path.join(self.tmp, "l7proxy.log"))
            self.procs.append(proxy)
            ExplainTest.proxy_admin = admin
        admin = ExplainTest.proxy_admin
        version = json.loads(self.syncctl("status", "--json").stdout)["version"]

        def proxy_version():
            code, body = http_get("http://127.0.0.1:%d/config" % admin)
            return code == 200 and json.loads(body).get("version") == version
        poll(proxy_version, what="proxy applied syncd's version")
        return admin, version

    def test_syncd_and_proxy_explain_agree_on_many_cases(self):
        admin, syncd_version = self.start_proxy()

        hosts = ["shop.example.test", "SHOP.example.test:8443", "shop.exmaple.test",
                 "a.wild.test", "b.a.wild.test", "wild.test", "secure.example.test",
                 "plain.example.test", "noredir.example.test", "other.example.test",
                 "soon.example.test", "unknown.org", "[::1]", "127.0.0.1:80"]
        paths = ["/", "/api", "/api/", "/apix", "/cart", "/cart/", "/aaaccc", "/x", "/x/",
                 "/v1", "/v1/", "/empty/deep?q=1"]
        cases = []
        for i, h in enumerate(hosts):
            for j, p in enumerate(paths):
                if (i + j) % 3 == 0:
                    cases.append(("https" if (i + j) % 2 else "http", h, p, None))
        snis = [None, "shop.example.test", "x.wild.test", "nomatch.test", "soon.example.test"]
        for k, s in enumerate(snis):
            cases.append(("https", hosts[k], "/", s))
            cases.append(("https", "plain.example.test", "/v1", s))
        self.assertGreaterEqual(len(cases), 50)
        keys = ["matched", "host_entry", "route", "cluster", "certificate", "redirect",
                "candidates", "problems", "default_backend"]
        # One syncctl run per SNI, explaining all of its URLs at once.
        answers = {}
        for sni in set(c[3] for c in cases):
            urls = ["%s://%s%s" % (c[0], c[1], c[2]) for c in cases if c[3] == sni]
            args = ["--sni", sni] if sni else []
            docs = json.loads(self.syncctl("explain", *urls, "--json", *args).stdout)
            self.assertEqual(len(docs), len(urls))
            for url, doc in zip(urls, docs):
                answers[(url, sni)] = doc
        for scheme, h, p, s in cases:
            url = "%s://%s%s" % (scheme, h, p)
            mine = answers[(url, s)]
            q = "url=" + urllib.parse.quote(url, safe="")
            if s:
                q += "&sni=" + urllib.parse.quote(s)
            code, body = http_get("http://127.0.0.1:%d/explain?%s" % (admin, q))
            self.assertEqual(code, 200, body)
            theirs = json.loads(body)
            self.assertEqual(theirs["version"], mine["version"], url)
            for k in keys:
                self.assertEqual(mine.get(k), theirs.get(k), "%s sni=%s: %s differs" % (url, s, k))

    def test_a_proxy_behind_explains_its_last_good_state(self):
        """A proxy that does not serve syncd's newest version (here: restarted
        from its cache while syncd is out of reach) answers /explain from the
        state it actually serves. (This used to be set up with an endpoint
        address syncd passed through and the proxy NACKed; since issue 15
        syncd rejects such an EndpointSlice itself, with the reason.)"""
        self.start_proxy()
        cache = os.path.join(self.tmp, "behind-cache")
        admin = free_port()
        argv = [L7PROXY, "--insecure", "--node-id=behind", "--http=127.0.0.1:0",
                "--admin=127.0.0.1:%d" % admin, "--workers=1", "--cache-dir=" + cache]
        first = Proc(argv + ["--syncd=" + self.target], os.path.join(self.tmp, "behind.log"))
        self.procs.append(first)
        before = json.loads(self.syncctl("status", "--json").stdout)["version"]
        poll(lambda: http_get("http://127.0.0.1:%d/config" % admin)[0] == 200 and json.loads(
            http_get("http://127.0.0.1:%d/config" % admin)[1]).get("version") == before,
             what="the proxy applied syncd's version")
        first.stop()
        new = os.path.join(self.tmp, "manifests", "zz-behind.yaml")
        with open(new, "w") as f:
            f.write(service("behind") + service("bad", addr="backend.invalid") +
                    ingress("behind", "behind.example.test", [("/", "Prefix", "behind")],
                            created="2026-01-01T00:00:09Z"))
        poll(lambda: json.loads(self.syncctl("status", "--json").stdout)["version"] > before,
             what="syncd's next version")
        st = json.loads(self.syncctl("status", "--json").stdout)
        self.assertTrue(any("backend.invalid" in r["reason"] and "not an IP address" in r["reason"]
                            for r in st["rejected"]), st["rejected"])
        # restarted from its cache while syncd is out of reach
        second = Proc(argv + ["--syncd=127.0.0.1:1"], os.path.join(self.tmp, "behind-2.log"))
        self.procs.append(second)
        poll(lambda: http_get("http://127.0.0.1:%d/readyz" % admin)[0] == 200,
             what="the proxy serves its cached state")
        mine = self.explain("http://behind.example.test/")
        self.assertTrue(mine["matched"])
        code, body = http_get("http://127.0.0.1:%d/explain?url=%s" % (
            admin, urllib.parse.quote("http://behind.example.test/", safe="")))
        theirs = json.loads(body)
        self.assertFalse(theirs["matched"])
        self.assertEqual(theirs["version"], before)
        self.assertGreater(mine["version"], theirs["version"])
        second.stop()
        os.unlink(new)
        poll(lambda: json.loads(self.syncctl("status", "--json").stdout)["version"] >
             mine["version"], what="syncd drops the new objects")
        self.start_proxy()  # back to SYNCED for the tests after this one


if __name__ == "__main__":
    SYNCD, SYNCCTL, L7PROXY = sys.argv[1:4]
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:])
