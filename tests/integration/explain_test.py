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
- syncd's Explain and the proxy's GET /explain both give the answers written
  by hand from the Ingress rules (DESIGN §7) for 30+ cases, and agree with
  each other on 50+ URL/SNI cases (every key present on both sides).

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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import skip_policy  # noqa: E402

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
        ingress("plain", "plain.example.test", [("/", "Prefix", "api"), ("/v1", "Exact", "web"),
                                                ("/v1", "Prefix", "api")],
                created="2026-01-01T00:00:03Z"),
        ingress("noredirect", "noredir.example.test", [("/", "Prefix", "web")],
                tls_secret="shop-tls", created="2026-01-01T00:00:04Z",
                annotations={"edge.dev/ssl-redirect": "false"}),
        ingress("soon", "soon.example.test", [("/", "Prefix", "web")], tls_secret="soon-tls",
                created="2026-01-01T00:00:05Z"),
        ingress("other-team", "other.example.test", [("/", "Prefix", "web")], cls="other"),
        ingress("broken", "broken.example.test", [("relative", "Prefix", "web")],
                created="2026-01-01T00:00:06Z"),
        # two Ingresses for one host: merged; /same is a true conflict that
        # the older one wins
        ingress("merge-new", "merge.example.test",
                [("/b", "Prefix", "api"), ("/same", "Prefix", "api")],
                created="2026-01-01T00:00:08Z"),
        ingress("merge-old", "merge.example.test",
                [("/a", "Prefix", "web"), ("/same", "Prefix", "web")],
                created="2026-01-01T00:00:07Z"),
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

    # ---- answers written by hand from the rules (DESIGN §7) ----------------------

    # (url, sni, expected). Expected fields: matched; host and host_match of
    # the host entry; route (path, path_type) and its source Ingress; cluster;
    # certificate (name, match) for https, None for http; redirect Location
    # or None. Each answer is worked out from the Ingress v1 rules and the
    # manifests in world(), not from what either program prints.
    WEB, API, EMPTY = "default/web:80", "default/api:80", "default/empty:80"
    SHOP_CERT, WILD_CERT = ("default/shop-tls", "exact"), ("default/wild-tls", "wildcard")
    NO_MATCH = {"matched": False}
    HAND_CASES = [
        # exact host, Prefix on whole path elements, trailing slash ignored
        ("https://shop.example.test/", None, dict(
            host="shop.example.test", match="EXACT", route=("/", "Prefix"), source="default/shop",
            cluster=WEB, cert=SHOP_CERT)),
        ("https://shop.example.test/api", None, dict(
            host="shop.example.test", match="EXACT", route=("/api", "Prefix"), cluster=API,
            cert=SHOP_CERT)),
        ("https://shop.example.test/api/", None, dict(route=("/api", "Prefix"), cluster=API)),
        ("https://shop.example.test/api/v1/x", None, dict(route=("/api", "Prefix"), cluster=API)),
        ("https://shop.example.test/apix", None, dict(route=("/", "Prefix"), cluster=WEB)),
        ("https://shop.example.test/aaa/bbb", None, dict(route=("/aaa", "Prefix"), cluster=API)),
        ("https://shop.example.test/aaaccc", None, dict(route=("/", "Prefix"), cluster=WEB)),
        # paths are case-sensitive
        ("https://shop.example.test/API", None, dict(route=("/", "Prefix"), cluster=WEB)),
        # Exact is a full match: not with a trailing slash
        ("https://shop.example.test/cart", None, dict(route=("/cart", "Exact"), cluster=WEB)),
        ("https://shop.example.test/cart/", None, dict(route=("/", "Prefix"), cluster=WEB)),
        # hosts: case-insensitive, port stripped
        ("https://SHOP.Example.TEST:8443/api", None, dict(
            host="shop.example.test", match="EXACT", route=("/api", "Prefix"), cluster=API,
            cert=SHOP_CERT)),
        # a Service without ready endpoints is still the route's cluster
        ("https://shop.example.test/empty/x", None, dict(route=("/empty", "Prefix"),
                                                         cluster=EMPTY)),
        # a TLS host over http is redirected to https (308), path and query kept
        ("http://shop.example.test/api?q=1", None, dict(
            route=("/api", "Prefix"), cluster=API, cert=None,
            redirect="https://shop.example.test/api?q=1")),
        # ... unless edge.dev/ssl-redirect is "false"
        ("http://noredir.example.test/x", None, dict(
            host="noredir.example.test", route=("/", "Prefix"), cluster=WEB, cert=None,
            redirect=None)),
        # a wildcard covers exactly one label
        ("https://a.wild.test/x", None, dict(
            host="*.wild.test", match="WILDCARD", route=("/x", "Exact"), source="default/wild",
            cluster=API, cert=WILD_CERT)),
        ("https://a.wild.test/x/", None, dict(route=("/", "Prefix"), cluster=WEB,
                                              cert=WILD_CERT)),
        ("https://b.a.wild.test/", None, NO_MATCH),
        ("https://wild.test/", None, NO_MATCH),
        # Exact beats Prefix at equal paths; the longest match wins
        ("http://plain.example.test/v1", None, dict(
            host="plain.example.test", route=("/v1", "Exact"), cluster=WEB, cert=None,
            redirect=None)),
        ("http://plain.example.test/v1/", None, dict(route=("/v1", "Prefix"), cluster=API)),
        ("http://plain.example.test/v1/deep", None, dict(route=("/v1", "Prefix"), cluster=API)),
        ("http://plain.example.test/v10", None, dict(route=("/", "Prefix"), cluster=API)),
        # merged Ingresses: each one's rules; the older wins a true conflict
        ("http://merge.example.test/a", None, dict(
            host="merge.example.test", route=("/a", "Prefix"), source="default/merge-old",
            cluster=WEB)),
        ("http://merge.example.test/b", None, dict(
            route=("/b", "Prefix"), source="default/merge-new", cluster=API)),
        ("http://merge.example.test/same/x", None, dict(
            route=("/same", "Prefix"), source="default/merge-old", cluster=WEB)),
        # a missing Secret: the host is served with the default certificate
        ("https://secure.example.test/", None, dict(
            host="secure.example.test", route=("/", "Prefix"), cluster=WEB,
            cert=(None, "default"), tls_fallback=True)),
        # SNI chooses the certificate, Host the route
        ("https://plain.example.test/", "a.wild.test", dict(
            host="plain.example.test", route=("/", "Prefix"), cluster=API, cert=WILD_CERT)),
        ("https://plain.example.test/", "shop.example.test", dict(cert=SHOP_CERT)),
        ("https://plain.example.test/", "nomatch.test", dict(cert=(None, "default"))),
        # another controller's class and unknown hosts: not served
        ("http://other.example.test/", None, NO_MATCH),
        ("http://unknown.org/", None, NO_MATCH),
        ("http://broken.example.test/", None, NO_MATCH),
    ]

    def check_hand_answer(self, who, url, sni, doc, want):
        where = "%s: %s sni=%s" % (who, url, sni)
        matched = want.get("matched", True)
        self.assertEqual(doc["matched"], matched, where)
        if not matched:
            self.assertIsNone(doc["route"], where)
            return
        he, route = doc["host_entry"], doc["route"]
        if "host" in want:
            self.assertEqual(he["host"], want["host"], where)
        if "match" in want:
            self.assertEqual(he["host_match"], want["match"], where)
        if "tls_fallback" in want:
            self.assertEqual(he["tls_fallback"], want["tls_fallback"], where)
        if "route" in want:
            self.assertEqual((route["path"], route["path_type"]), want["route"], where)
        if "source" in want:
            self.assertEqual(route["source"], want["source"], where)
        if "cluster" in want:
            self.assertEqual(route["cluster"], want["cluster"], where)
            self.assertEqual(doc["cluster"]["name"], want["cluster"], where)
        if "cert" in want:
            if want["cert"] is None:
                self.assertIsNone(doc["certificate"], where)
            else:
                name, match = want["cert"]
                self.assertEqual(doc["certificate"]["match"], match, where)
                if name:
                    self.assertEqual(doc["certificate"]["name"], name, where)
                else:
                    self.assertTrue(doc["certificate"]["is_default"], where)
        if "redirect" in want:
            if want["redirect"] is None:
                self.assertIsNone(doc["redirect"], where)
            else:
                self.assertEqual(doc["redirect"]["status"], 308, where)
                self.assertEqual(doc["redirect"]["location"], want["redirect"], where)

    def test_syncd_and_proxy_give_the_hand_written_answers(self):
        admin, _ = self.start_proxy()
        for sni in set(c[1] for c in self.HAND_CASES):
            cases = [c for c in self.HAND_CASES if c[1] == sni]
            args = ["--sni", sni] if sni else []
            docs = json.loads(self.syncctl("explain", *[c[0] for c in cases], "--json",
                                           *args).stdout)
            if len(cases) == 1 and isinstance(docs, dict):
                docs = [docs]
            self.assertEqual(len(docs), len(cases))
            for (url, _, want), doc in zip(cases, docs):
                self.check_hand_answer("syncd", url, sni, doc, want)
                q = "url=" + urllib.parse.quote(url, safe="")
                if sni:
                    q += "&sni=" + urllib.parse.quote(sni)
                code, body = http_get("http://127.0.0.1:%d/explain?%s" % (admin, q))
                self.assertEqual(code, 200, body)
                self.check_hand_answer("proxy", url, sni, json.loads(body), want)

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
                "candidates", "problems"]
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
            for k in keys:  # present on both sides (null is a value), and equal
                self.assertIn(k, mine, "syncd's answer has no %s" % k)
                self.assertIn(k, theirs, "the proxy's answer has no %s" % k)
                self.assertEqual(mine[k], theirs[k], "%s sni=%s: %s differs" % (url, s, k))
            # present only when a default backend serves the request: on both or neither
            self.assertEqual(mine.get("default_backend", "absent"),
                             theirs.get("default_backend", "absent"), url)

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
        poll(lambda: json.loads(self.syncctl("status", "--json").stdout)["version"] != before,
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
        self.assertNotEqual(mine["version"], theirs["version"])
        second.stop()
        os.unlink(new)
        # versions name content: the source as it was is the version it was
        poll(lambda: json.loads(self.syncctl("status", "--json").stdout)["version"] == before,
             what="syncd drops the new objects")
        self.start_proxy()  # back to SYNCED for the tests after this one


if __name__ == "__main__":
    SYNCD, SYNCCTL, L7PROXY = sys.argv[1:4]
    skip_policy.main([sys.argv[0]] + sys.argv[4:])
