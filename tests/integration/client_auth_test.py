#!/usr/bin/env python3
"""Issue 20: client certificate authentication per host, against the real
l7proxy (--https, --config=FILE), a backend that echoes the headers it
got, and real clients: curl with client certificates (HTTP/1.1 and
HTTP/2) and openssl s_client (session resumption across hosts).

Usage: client_auth_test.py L7PROXY BACKEND [unittest args]

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
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import l7proxy_test as l7t  # noqa: E402
import skip_policy  # noqa: E402
from l7proxy_test import cluster, free_port, route  # noqa: E402
from pki import Pki  # noqa: E402


def vhost(name, host, routes, cert="", client_auth=None, match="HOST_MATCH_EXACT"):
    v = {"name": name, "host": host, "host_match": match, "routes": routes, "certificate": cert}
    if client_auth:
        v["client_auth"] = client_auth
    return {"virtual_host": v}


def metric(proxy, series):
    _, text = proxy.admin_get("/metrics")
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0


class ClientAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="p20a-ca-")
        pki = cls.pki = Pki(cls.tmp)
        pki.ca("server-ca")
        pki.leaf("hosts", "server-ca", dns=["a.test", "b.test", "c.test", "o.test", "d.test",
                                            "x.w.test", "deep.w.test"])
        pki.ca("clients-ca")
        pki.leaf("alice", "clients-ca", client=True, server=False)
        pki.ca("other-ca")
        pki.leaf("mallory", "other-ca", client=True, server=False)
        pki.ca("root-ca")
        pki.ca("issuing-ca", issuer="root-ca")
        pki.ca("issuing-ca-2", issuer="issuing-ca")
        pki.leaf("bob", "issuing-ca-2", client=True, server=False)
        with open(pki.path("bob", "chain"), "w") as f:  # two intermediates below root-ca
            f.write(pki.pem("bob") + pki.pem("issuing-ca-2") + pki.pem("issuing-ca"))
        cls.backend = l7t.Backend("b", cls.tmp)
        cert = {"certificate": {"name": "ns/hosts", "cert_pem": pki.pem("hosts", "chain"),
                                "key_pem": pki.pem("hosts", "key"), "is_default": True}}
        req = {"mode": "CLIENT_AUTH_MODE_REQUIRED", "ca_pem": pki.pem("clients-ca")}
        opt = {"mode": "CLIENT_AUTH_MODE_OPTIONAL", "ca_pem": pki.pem("clients-ca")}
        other = {"mode": "CLIENT_AUTH_MODE_REQUIRED", "ca_pem": pki.pem("other-ca")}
        chain = dict(req, pass_certificate=True)
        deep1 = {"mode": "CLIENT_AUTH_MODE_REQUIRED", "ca_pem": pki.pem("root-ca")}
        deep2 = dict(deep1, verify_depth=2)
        no_redirect = {"disable_ssl_redirect": True}
        r = [route("/", "c", **no_redirect)]
        cls.https_port = free_port()
        cls.proxy = l7t.Proxy(cls.tmp, [
            cert, cluster("c", [cls.backend.port]),
            vhost("vh:a", "a.test", r, "ns/hosts", req),
            vhost("vh:b", "b.test", r, "ns/hosts"),
            vhost("vh:c", "c.test", r, "ns/hosts", other),
            vhost("vh:o", "o.test", r, "ns/hosts", opt),
            vhost("vh:d", "d.test", r, "ns/hosts", chain),
            vhost("vh:w", "*.w.test", r, "ns/hosts", deep1, match="HOST_MATCH_WILDCARD"),
            vhost("vh:w2", "deep.w.test", r, "ns/hosts", deep2),
        ], ["--https=127.0.0.1:%d" % cls.https_port, "--workers=2"])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.backend.kill()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def curl(self, host, path="/echo", cert=None, extra=(), sni_host=None):
        """curl over HTTPS: (status, body). sni_host: connect with that name
        (SNI) and send Host: host."""
        name = sni_host or host
        args = ["curl", "-s", "--max-time", "10", "--cacert", self.pki.path("server-ca", "crt"),
                "--resolve", "%s:%d:127.0.0.1" % (name, self.https_port),
                "-w", "\n%{http_code}"]
        if cert:
            args += ["--cert", self.pki.path(cert, "chain"), "--key", self.pki.path(cert, "key")]
        if sni_host:
            args += ["-H", "Host: " + host]
        args += list(extra) + ["https://%s:%d%s" % (name, self.https_port, path)]
        out = subprocess.run(args, capture_output=True, timeout=20).stdout.decode()
        body, _, code = out.rpartition("\n")
        return int(code or 0), body

    def seen(self, body):
        return json.loads(body)["headers"]

    def test_config_shows_each_hosts_policy_without_the_ca(self):
        _, cfg = self.proxy.admin_get("/config")
        routes = {r["host"]: r.get("client_auth") for r in json.loads(cfg)["routes"]}
        self.assertEqual(routes["a.test"], "required")
        self.assertEqual(routes["o.test"], "optional")
        self.assertIsNone(routes["b.test"])

    def test_required_without_a_certificate_is_400_and_counted(self):
        before = metric(self.proxy, 'edge_l7_client_cert_failures_total{reason="missing"}')
        st, body = self.curl("a.test")
        self.assertEqual(st, 400)
        self.assertIn("client certificate required", body)
        self.assertEqual(metric(self.proxy, 'edge_l7_client_cert_failures_total{reason="missing"}'),
                         before + 1)

    def test_required_with_a_trusted_certificate_passes_subject_and_fingerprint(self):
        st, body = self.curl("a.test", cert="alice")
        self.assertEqual(st, 200, body)
        h = self.seen(body)
        self.assertEqual(h["x-client-cert-verify"], "SUCCESS")
        self.assertEqual(h["x-client-cert-subject"], "CN=alice")
        self.assertEqual(h["x-client-cert-issuer"], "CN=clients-ca")
        fp = subprocess.run(["openssl", "x509", "-in", self.pki.path("alice", "crt"), "-noout",
                             "-fingerprint", "-sha256"], capture_output=True).stdout.decode()
        self.assertEqual(h["x-client-cert-fingerprint"],
                         fp.split("=", 1)[1].strip().replace(":", "").lower())
        self.assertNotIn("x-client-cert-chain", h)

    def test_forged_identity_headers_never_reach_the_backend(self):
        forged = ["-H", "X-Client-Cert-Subject: CN=admin", "-H", "x-client-cert-verify: SUCCESS",
                  "-H", "X-Forwarded-Client-Cert: Subject=\"CN=admin\""]
        st, body = self.curl("a.test", cert="alice", extra=forged)
        self.assertEqual(st, 200, body)
        h = self.seen(body)
        self.assertEqual(h["x-client-cert-subject"], "CN=alice")  # one value: the real one
        self.assertNotIn("x-forwarded-client-cert", h)
        st, body = self.curl("b.test", extra=forged)  # a host without client auth
        self.assertEqual(st, 200, body)
        h = self.seen(body)
        for name in ("x-client-cert-subject", "x-client-cert-verify", "x-forwarded-client-cert"):
            self.assertNotIn(name, h)

    def test_a_certificate_from_another_ca_is_400_with_the_reason(self):
        before = metric(self.proxy, 'edge_l7_client_cert_failures_total{reason="invalid"}')
        st, body = self.curl("a.test", cert="mallory")
        self.assertEqual(st, 400)
        self.assertIn("client certificate verification failed", body)
        # mallory sends its own root along: "self-signed certificate in certificate chain"
        self.assertRegex(body, "failed: (self-signed certificate|unable to get local issuer)")
        self.assertEqual(metric(self.proxy, 'edge_l7_client_cert_failures_total{reason="invalid"}'),
                         before + 1)
        # the same certificate is fine where its CA is the trusted one
        self.assertEqual(self.curl("c.test", cert="mallory")[0], 200)

    def test_optional_passes_without_a_certificate_but_not_with_a_bad_one(self):
        st, body = self.curl("o.test")
        self.assertEqual(st, 200, body)
        h = self.seen(body)
        self.assertEqual(h["x-client-cert-verify"], "NONE")
        self.assertNotIn("x-client-cert-subject", h)
        self.assertEqual(self.curl("o.test", cert="alice")[0], 200)
        self.assertEqual(self.curl("o.test", cert="mallory")[0], 400)

    def test_another_hosts_sni_is_misdirected_421(self):
        before = metric(self.proxy, 'edge_l7_client_cert_failures_total{reason="misdirected"}')
        # connection made for b.test (no client auth), request for a.test
        st, body = self.curl("a.test", sni_host="b.test")
        self.assertEqual(st, 421, body)
        # connection made for c.test's policy with a certificate c trusts: a.test must not
        # accept what c.test's CA verified
        st, _ = self.curl("a.test", cert="mallory", sni_host="c.test")
        self.assertEqual(st, 421)
        self.assertEqual(
            metric(self.proxy, 'edge_l7_client_cert_failures_total{reason="misdirected"}'),
            before + 2)

    def test_http2_streams_are_checked_like_http1(self):
        st, body = self.curl("a.test", cert="alice", extra=["--http2"])
        self.assertEqual(st, 200, body)
        self.assertEqual(self.seen(body)["x-client-cert-subject"], "CN=alice")
        self.assertEqual(self.curl("a.test", extra=["--http2"])[0], 400)
        self.assertEqual(self.curl("a.test", extra=["--http2"], sni_host="b.test")[0], 421)

    def test_the_chain_is_passed_url_encoded_when_asked(self):
        st, body = self.curl("d.test", cert="alice")
        self.assertEqual(st, 200, body)
        pem = urllib.parse.unquote(self.seen(body)["x-client-cert-chain"])
        self.assertEqual(pem.strip(), self.pki.pem("alice", "chain").strip())

    def test_verify_depth_bounds_the_chain(self):
        # bob's chain has two intermediates under root-ca; depth 1 (the default) allows one
        st, body = self.curl("x.w.test", cert="bob")
        self.assertEqual(st, 400, body)
        self.assertIn("verification failed", body)
        st, body = self.curl("deep.w.test", cert="bob")
        self.assertEqual(st, 200, body)
        self.assertEqual(self.seen(body)["x-client-cert-issuer"], "CN=issuing-ca-2")

    def s_client(self, sni, sess_arg, sess_file, cert=None):
        args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.https_port,
                "-servername", sni, "-tls1_3", sess_arg, sess_file, "-ign_eof"]
        if cert:
            args += ["-cert", self.pki.path(cert, "crt"), "-key", self.pki.path(cert, "key")]
        req = ("GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % sni).encode()
        r = subprocess.run(args, input=req, capture_output=True, timeout=20)
        return r.stdout.decode("latin-1")

    def test_a_session_resumes_only_under_the_policy_that_verified_it(self):
        sess = os.path.join(self.tmp, "alice.sess")
        out = self.s_client("a.test", "-sess_out", sess, cert="alice")
        self.assertIn("HTTP/1.1 200", out)
        # same host: resumed, and the verdict (and identity) comes with the session
        out = self.s_client("a.test", "-sess_in", sess)
        self.assertIn("Reused, TLSv1.3", out)
        self.assertIn('"x-client-cert-subject": "CN=alice"', out)
        # another host with another policy: never resumed, so no certificate, 400
        out = self.s_client("o.test", "-sess_in", sess)
        self.assertNotIn("Reused,", out)
        out = self.s_client("c.test", "-sess_in", sess)
        self.assertNotIn("Reused,", out)
        self.assertIn("HTTP/1.1 400", out)


if __name__ == "__main__":
    l7t.L7PROXY, l7t.BACKEND = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    skip_policy.main([sys.argv[0]] + sys.argv[3:])
