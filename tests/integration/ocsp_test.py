#!/usr/bin/env python3
"""Issue 20: OCSP stapling end to end. The real syncd (dir: source) reads a
TLS Secret whose certificate names an OCSP responder (AIA), fetches the
answer from the in-tree responder stand-in (tests/ocsp/ocsp_responder.py,
which signs with the real `openssl ocsp`) over HTTP with libcurl, pushes it
with the certificate, and the real l7proxy staples it: checked with
`openssl s_client -status`. A revocation in the responder's index reaches
clients on the next refresh, before the answer's nextUpdate; an answer
signed by a stranger is never stapled.

Usage: ocsp_test.py SYNCD L7PROXY BACKEND RESPONDER [unittest args]

Every wait polls with a deadline; nothing asserts timing. Processes are
killed by PID in tearDown.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import l7proxy_test as l7t  # noqa: E402
import skip_policy  # noqa: E402
from l7proxy_test import free_port, poll  # noqa: E402
from pki import Pki  # noqa: E402

SYNCD = RESPONDER = None


def indent(text, n=4):
    return "\n".join(" " * n + l for l in text.splitlines())


class Proc:
    def __init__(self, args, log):
        self.log = open(log, "a+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)

    def text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class OcspTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="p20a-ocsp-")
        self.pki = Pki(self.tmp)
        self.procs = []
        self.pki.ca("root")
        self.pki.ca("issuing", issuer="root")
        self.pki.ocsp_signer("responder", "issuing")
        self.pki.ca("stranger")
        self.pki.ocsp_signer("stranger-responder", "stranger")

    def tearDown(self):
        for p in reversed(self.procs):
            p.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def responder(self, name, signer, nmin=None):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        args = [sys.executable, RESPONDER, "serve", "--dir=" + d,
                "--ca=" + self.pki.path("issuing", "crt"),
                "--signer=" + self.pki.path(signer, "crt"),
                "--signer-key=" + self.pki.path(signer, "key"),
                "--port-file=" + os.path.join(d, "port")]
        if nmin:
            args.append("--nmin=%d" % nmin)
        self.procs.append(Proc(args, os.path.join(d, "log")))
        poll(lambda: os.path.exists(os.path.join(d, "port")), what="responder " + name)
        with open(os.path.join(d, "port")) as f:
            return d, "http://127.0.0.1:%s/" % f.read()

    def index(self, cmd, d, cert):
        subprocess.run([sys.executable, RESPONDER, cmd, "--dir=" + d, self.pki.path(cert, "crt")],
                       check=True)

    def manifests(self, hosts, backend_port):
        src = os.path.join(self.tmp, "manifests")
        os.makedirs(src, exist_ok=True)
        docs = ["""apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: edge
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: edge.dev/ingress-controller
""", """apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
""", """apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
ports: [{name: http, port: %d}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
""" % backend_port]
        for host, cert in hosts:
            docs.append("""apiVersion: v1
kind: Secret
metadata: {name: %s, namespace: shop}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s
  tls.key: |
%s
""" % (cert, indent(self.pki.pem(cert, "chain")), indent(self.pki.pem(cert, "key"))))
            docs.append("""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: %s, namespace: shop}
spec:
  tls: [{hosts: [%s], secretName: %s}]
  rules:
  - host: %s
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
""" % (cert, host, cert, host))
        with open(os.path.join(src, "all.yaml"), "w") as f:
            f.write("---\n".join(docs))
        return src

    def start(self, hosts, *syncd_flags):
        backend = l7t.Backend("b", self.tmp)
        self.procs.append(backend)
        src = self.manifests(hosts, backend.port)
        self.syncd_port, self.syncd_admin = free_port(), free_port()
        self.syncd = Proc([SYNCD, "--source=dir:" + src, "--listen=127.0.0.1:%d" % self.syncd_port,
                           "--admin=127.0.0.1:%d" % self.syncd_admin, "--insecure",
                           "--debounce=20ms", "--max-delay=100ms"] + list(syncd_flags),
                          os.path.join(self.tmp, "syncd.log"))
        self.procs.append(self.syncd)
        self.https = free_port()
        self.proxy = Proc([l7t.L7PROXY, "--http=127.0.0.1:%d" % free_port(),
                           "--admin=127.0.0.1:%d" % free_port(), "--https=127.0.0.1:%d" % self.https,
                           "--workers=2", "--syncd=127.0.0.1:%d" % self.syncd_port, "--insecure",
                           "--node-id=ocsp-test"], os.path.join(self.tmp, "l7proxy.log"))
        self.procs.append(self.proxy)

    @staticmethod
    def served(out):
        """s_client's output shows a certificate that verified (s_client also
        says "Verify return code: 0 (ok)" when the handshake never got one)."""
        return "Verify return code: 0 (ok)" in out and "no peer certificate available" not in out

    def s_client(self, host):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.https,
                            "-servername", host, "-status", "-CAfile",
                            self.pki.path("root", "crt"), "-verify_return_error"],
                           input=b"", capture_output=True, timeout=20)
        return r.stdout.decode("latin-1")

    def test_syncd_fetches_and_the_proxy_staples_then_a_revocation_arrives_on_refresh(self):
        d, url = self.responder("ca-responder", "responder", nmin=1)  # nextUpdate: 1 minute
        self.pki.leaf("shop", "issuing", dns=["shop.example.test"], ocsp_url=url)
        self.index("add", d, "shop")
        self.start([("shop.example.test", "shop")], "--ocsp-min-refresh=5s")
        out = poll(lambda: (lambda o: o if "Cert Status: good" in o else None)(
            self.s_client("shop.example.test")), timeout=60, what="a good staple")
        self.assertIn("OCSP Response Status: successful", out)
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("Next Update:", out)
        # the answer is refetched half-way to its nextUpdate: a revocation shows
        # before the stapled answer expires
        self.index("revoke", d, "shop")
        out = poll(lambda: (lambda o: o if "Cert Status: revoked" in o else None)(
            self.s_client("shop.example.test")), timeout=90, what="the revocation stapled")
        self.assertIn("Revocation Reason: keyCompromise", out)
        self.assertIn("ocsp_stapled", self.syncd.text())

    def test_an_answer_not_signed_for_the_issuer_is_never_stapled(self):
        d, url = self.responder("stranger-responder", "stranger-responder")
        self.pki.leaf("evil", "issuing", dns=["evil.example.test"], ocsp_url=url)
        self.index("add", d, "evil")
        d2, url2 = self.responder("ca-responder", "responder")
        self.pki.leaf("shop", "issuing", dns=["shop.example.test"], ocsp_url=url2)
        self.index("add", d2, "shop")
        self.start([("evil.example.test", "evil"), ("shop.example.test", "shop")])
        poll(lambda: "Cert Status: good" in self.s_client("shop.example.test"), timeout=60,
             what="the honest responder's staple")
        poll(lambda: "signature does not verify" in self.syncd.text(), timeout=60,
             what="the stranger's answer refused")
        out = self.s_client("evil.example.test")
        self.assertIn("OCSP response: no response sent", out)
        self.assertTrue(self.served(out), out)  # the certificate itself is served

    def test_a_responder_that_is_down_leaves_no_staple_and_is_retried(self):
        d, url = self.responder("ca-responder", "responder")
        open(os.path.join(d, "down"), "w").close()
        self.pki.leaf("shop", "issuing", dns=["shop.example.test"], ocsp_url=url)
        self.index("add", d, "shop")
        self.start([("shop.example.test", "shop")])
        poll(lambda: "responder answered HTTP 503" in self.syncd.text(), timeout=60,
             what="the failure logged")
        out = poll(lambda: (lambda o: o if self.served(o) else None)(
            self.s_client("shop.example.test")), what="the certificate served")
        self.assertIn("OCSP response: no response sent", out)
        os.remove(os.path.join(d, "down"))
        poll(lambda: "Cert Status: good" in self.s_client("shop.example.test"), timeout=90,
             what="the retry's staple")

    def test_ocsp_off_never_fetches(self):
        d, url = self.responder("ca-responder", "responder")
        self.pki.leaf("shop", "issuing", dns=["shop.example.test"], ocsp_url=url)
        self.index("add", d, "shop")
        self.start([("shop.example.test", "shop")], "--ocsp=off")
        poll(lambda: self.served(self.s_client("shop.example.test")),
             what="the certificate served")
        self.assertIn("OCSP response: no response sent", self.s_client("shop.example.test"))
        _, metrics = l7t.Proxy.admin_get(type("A", (), {"admin": self.syncd_admin})(), "/metrics")
        self.assertIn("edge_syncd_version", metrics)
        self.assertNotIn("edge_syncd_ocsp", metrics)  # no stapler at all


if __name__ == "__main__":
    SYNCD = os.path.abspath(sys.argv[1])
    l7t.L7PROXY = os.path.abspath(sys.argv[2])
    l7t.BACKEND = os.path.abspath(sys.argv[3])
    RESPONDER = os.path.abspath(sys.argv[4])
    skip_policy.main([sys.argv[0]] + sys.argv[5:])
