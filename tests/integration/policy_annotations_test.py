#!/usr/bin/env python3
"""Issue 20 from Ingress annotations to behaviour: the real syncd (dir:
source) translates edge.dev/auth-tls-*, backend-protocol https with
proxy-ssl-secret, health-check-* and max-connections into edge.v1, the real
l7proxy applies them, curl (with and without a client certificate) sees the
result, and syncctl status names an Ingress whose annotation is refused.

Usage: policy_annotations_test.py SYNCD SYNCCTL L7PROXY POLICY_BACKEND [unittest args]

Every wait polls with a deadline; nothing asserts timing. Processes are
killed by PID in tearDown.
"""
import json
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
from upstream_policy_test import Backend  # noqa: E402
import upstream_policy_test  # noqa: E402

SYNCD = SYNCCTL = None


def indent(text, n=4):
    return "\n".join(" " * n + l for l in text.splitlines())


class Proc:
    def __init__(self, args, log):
        self.log = open(log, "a+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def service(name, ports_by_backend):
    """A Service plus one EndpointSlice: one endpoint per backend port."""
    eps = "".join('- {addresses: ["127.0.0.1"], conditions: {ready: true}}\n' for _ in ports_by_backend)
    docs = ["""apiVersion: v1
kind: Service
metadata: {name: %s, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
""" % name]
    for i, port in enumerate(ports_by_backend):  # one slice per endpoint port
        docs.append("""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %s-%d, namespace: shop, labels: {kubernetes.io/service-name: %s}}
ports: [{name: http, port: %d}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
""" % (name, i, name, port))
    return docs


def ingress(name, host, svc, annotations):
    ann = "".join("    %s: %s\n" % (k, json.dumps(v)) for k, v in annotations.items())
    return """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: shop
  annotations:
%sspec:
  tls: [{hosts: [%s], secretName: hosts}]
  rules:
  - host: %s
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: %s, port: {number: 80}}}}]
""" % (name, ann, host, host, svc)


class PolicyAnnotationsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="p20a-ann-")
        cls.procs = []
        pki = cls.pki = Pki(cls.tmp)
        pki.ca("server-ca")
        pki.leaf("hosts", "server-ca", dns=["a.test", "b.test", "c.test"])
        pki.ca("clients-ca")
        pki.leaf("alice", "clients-ca", client=True, server=False)
        pki.ca("upstream-ca")
        pki.leaf("web", "upstream-ca", dns=["web.shop.svc"])
        upstream_policy_test.BACKEND = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "policy_backend.py")
        cls.web = Backend(cls.tmp, "web", cert=pki.path("web", "chain"), key=pki.path("web", "key"))
        cls.p1, cls.p2 = Backend(cls.tmp, "p1"), Backend(cls.tmp, "p2")
        cls.procs += [cls.web, cls.p1, cls.p2]
        docs = ["""apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: edge
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: edge.dev/ingress-controller}
""", """apiVersion: v1
kind: Secret
metadata: {name: hosts, namespace: shop}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s
  tls.key: |
%s
""" % (indent(pki.pem("hosts", "chain")), indent(pki.pem("hosts", "key"))), """apiVersion: v1
kind: ConfigMap
metadata: {name: clients-ca, namespace: shop, labels: {edge.dev/ca-bundle: "true"}}
data:
  ca.crt: |
%s
""" % indent(pki.pem("clients-ca")), """apiVersion: v1
kind: Secret
metadata: {name: upstream, namespace: shop}
type: kubernetes.io/tls
stringData:
  ca.crt: |
%s
""" % indent(pki.pem("upstream-ca"))]
        docs += service("web", [cls.web.port]) + service("plain", [cls.p1.port, cls.p2.port])
        docs.append(ingress("secure", "a.test", "web", {
            "edge.dev/auth-tls-configmap": "clients-ca",
            "edge.dev/backend-protocol": "https",
            "edge.dev/proxy-ssl-secret": "upstream"}))
        docs.append(ingress("checked", "b.test", "plain", {
            "edge.dev/health-check-path": "/health",
            "edge.dev/health-check-interval": "200ms",
            "edge.dev/health-check-rise": "1",
            "edge.dev/health-check-fall": "1",
            "edge.dev/max-connections": "4"}))
        docs.append(ingress("sneaky", "c.test", "plain", {
            "edge.dev/auth-tls-secret": "kube-system/ca"}))
        src = os.path.join(cls.tmp, "manifests")
        os.makedirs(src)
        with open(os.path.join(src, "all.yaml"), "w") as f:
            f.write("---\n".join(docs))
        cls.syncd_port = free_port()
        cls.procs.append(Proc([SYNCD, "--source=dir:" + src,
                               "--listen=127.0.0.1:%d" % cls.syncd_port,
                               "--admin=127.0.0.1:%d" % free_port(), "--insecure"],
                              os.path.join(cls.tmp, "syncd.log")))
        cls.https = free_port()
        cls.proxy_admin = free_port()
        cls.procs.append(Proc([l7t.L7PROXY, "--http=127.0.0.1:%d" % free_port(),
                               "--admin=127.0.0.1:%d" % cls.proxy_admin,
                               "--https=127.0.0.1:%d" % cls.https, "--workers=2",
                               "--syncd=127.0.0.1:%d" % cls.syncd_port, "--insecure",
                               "--node-id=ann-test"], os.path.join(cls.tmp, "l7proxy.log")))
        poll(lambda: cls.curl("b.test", "/x")[0] == 200, what="the proxy serving syncd's state")

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            p.kill()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def curl(cls, host, path, cert=None, insecure=False):
        args = ["curl", "-s", "--max-time", "10", "--cacert", cls.pki.path("server-ca", "crt"),
                "--resolve", "%s:%d:127.0.0.1" % (host, cls.https), "-w", "\n%{http_code}"]
        if cert:
            args += ["--cert", cls.pki.path(cert, "chain"), "--key", cls.pki.path(cert, "key")]
        if insecure:  # a host that is not served gets the default certificate
            args.append("-k")
        out = subprocess.run(args + ["https://%s:%d%s" % (host, cls.https, path)],
                             capture_output=True, timeout=20).stdout.decode()
        body, _, code = out.rpartition("\n")
        return int(code or 0), body

    def test_client_certificates_and_upstream_tls_from_annotations(self):
        self.assertEqual(self.curl("a.test", "/whoami")[0], 400)
        st, body = self.curl("a.test", "/whoami", cert="alice")
        self.assertEqual(st, 200, body)
        info = json.loads(body)
        self.assertEqual(info["sni"], "web.shop.svc")  # the default name: SERVICE.NAMESPACE.svc
        self.assertEqual(info["headers"]["x-client-cert-subject"], "CN=alice")

    def test_health_checks_from_annotations_take_an_endpoint_out(self):
        self.p2.set_health(503)
        poll(lambda: {json.loads(self.curl("b.test", "/x")[1])["backend"] for _ in range(6)} ==
             {"p1"}, what="p2 taken out")
        self.p2.set_health(200)
        poll(lambda: {json.loads(self.curl("b.test", "/x")[1])["backend"] for _ in range(8)} ==
             {"p1", "p2"}, what="p2 back")

    def test_a_refused_annotation_is_reported_by_syncctl(self):
        def status():
            r = subprocess.run([SYNCCTL, "--syncd=127.0.0.1:%d" % self.syncd_port, "--insecure",
                                "status"], capture_output=True, text=True, timeout=30)
            return r.stdout
        out = poll(lambda: (lambda s: s if "shop/sneaky" in s else None)(status()),
                   what="the rejection in status")
        self.assertIn("edge.dev/auth-tls-secret names an object of another namespace", out)
        self.assertEqual(self.curl("c.test", "/x", insecure=True)[0], 404)  # not served at all


if __name__ == "__main__":
    SYNCD = os.path.abspath(sys.argv[1])
    SYNCCTL = os.path.abspath(sys.argv[2])
    l7t.L7PROXY = os.path.abspath(sys.argv[3])
    l7t.BACKEND = os.path.abspath(os.path.join(os.path.dirname(sys.argv[4]), "l7proxy_backend.py"))
    skip_policy.main([sys.argv[0]] + sys.argv[5:])
