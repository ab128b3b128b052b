#!/usr/bin/env python3
"""Explain and the data path agree (issue 16): one table of requests, each
sent through the real l7proxy (plain HTTP and HTTPS) and asked of the same
proxy's GET /explain. For every case the status and Location of a redirect,
or the target the backend received, must equal the table's expectation,
and /explain must report exactly the same (both call common/redirect and
common/rewrite; this test is what keeps it so).

Usage: semantics_test.py L7PROXY_BINARY BACKEND_SCRIPT [unittest args]
"""
import json
import os
import ssl
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import l7proxy_test as l7t  # noqa: E402
import l7proxy_tls_h2_test as tls  # noqa: E402
from l7proxy_test import cluster, free_port, route, vhost  # noqa: E402

# (scheme, Host header ("{port}" = the listener's port), target,
#  expected: ("upstream", target) or (status, Location with {https} = the
#  --https port))
CASES = [
    ("http", "a.test", "/v1/items?x=1", ("upstream", "/internal/items?x=1")),
    ("http", "a.test", "/v1", ("upstream", "/internal")),
    ("http", "a.test", "/root/z?q", ("upstream", "/z?q")),
    ("http", "a.test", "/exact", ("upstream", "/exact")),
    ("http", "a.test", "/plain/x", ("upstream", "/plain/x")),
    ("http", "a.test", "/old/page?q=1", (301, "http://a.test/new")),
    ("http", "a.test:{port}", "/old", (301, "http://a.test:{port}/new")),
    ("http", "a.test:80", "/old", (301, "http://a.test/new")),
    ("http", "a.test", "/moved?k=v", (308, "http://b.test:9000/moved?k=v")),
    ("http", "a.test", "/tls", (302, "https://a.test/tls")),
    ("http", "secure.test", "/p?q=1", (308, "https://secure.test:{https}/p?q=1")),
    ("http", "secure.test:{port}", "/p", (308, "https://secure.test:{https}/p")),
    ("http", "secure.test", "/open", ("upstream", "/open")),
    ("https", "a.test:{port}", "/old", (301, "https://a.test/new")),
    ("https", "a.test", "/v1/y", ("upstream", "/internal/y")),
    ("https", "secure.test", "/p", ("upstream", "/p")),
]


class ExplainAgreesWithTheDataPath(tls.TlsBase):
    def setUp(self):
        super().setUp()
        pem, key = tls.make_cert(self.tmp, "secure.test", ["secure.test"])
        sec = vhost("vs", "secure.test", [route("/", "ca"),
                                          route("/open", "ca", disable_ssl_redirect=True)])
        sec["virtual_host"]["certificate"] = "default/secure"
        self.start_tls([
            cluster("ca", [self.a.port]),
            vhost("va", "a.test", [
                route("/", "ca"),
                route("/v1", "ca", rewrite_prefix="/internal"),
                route("/root", "ca", rewrite_prefix="/"),
                route("/exact", "ca", "PATH_TYPE_EXACT", rewrite_prefix="/x"),
                route("/old", "ca", redirect={"path": "/new", "status": 301}),
                route("/moved", "ca", redirect={"host": "b.test", "port": 9000}),
                route("/tls", "ca", redirect={"scheme": "https", "status": 302}),
            ]),
            sec,
            tls.cert_resource("default/secure", pem, key, ["secure.test"]),
            tls.cert_resource("default/d", self.pem_d, self.key_d, default=True),
        ])

    def fill(self, s, scheme):
        port = self.https_port if scheme == "https" else self.proxy.port
        return s.replace("{port}", str(port)).replace("{https}", str(self.https_port))

    def data_path(self, scheme, host, target):
        if scheme == "https":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            st, h, body = tls.https_get(self.https_port, host, target, ctx)
        else:
            st, h, body = l7t.get(self.proxy.port, target, host)
        if st == 200:
            return ("upstream", json.loads(body)["path"])
        return (st, h.get("location"))

    def explain(self, scheme, host, target):
        url = "%s://%s%s" % (scheme, host, target)
        st, body = self.proxy.admin_get("/explain?url=" + urllib.parse.quote(url, safe=""))
        self.assertEqual(st, 200, body)
        j = json.loads(body)
        if j.get("redirect"):
            return (j["redirect"]["status"], j["redirect"]["location"])
        rw = j.get("rewrite")
        return ("upstream", rw["path"] if rw else j["request"]["path"])

    def test_every_case_agrees(self):
        for scheme, host, target, want in CASES:
            host = self.fill(host, scheme)
            want = (want[0], self.fill(want[1], scheme))
            with self.subTest(scheme=scheme, host=host, target=target):
                self.assertEqual(self.data_path(scheme, host, target), want, "data path")
                self.assertEqual(self.explain(scheme, host, target), want, "explain")


if __name__ == "__main__":
    l7t.L7PROXY, l7t.BACKEND = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    l7t.skip_policy.main([sys.argv[0]] + sys.argv[3:])
