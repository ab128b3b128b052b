#!/usr/bin/env python3
"""The exchange is the same on every codec pairing (issue 16): one set of
exchange cases — routing, rewrite, redirect, retry, 413/414/431, trailers,
WebSocket, gRPC status on proxy errors — run across the four
downstream × upstream pairings (h1→h1, h1→h2c, h2→h1, h2→h2c) of the real
l7proxy, with the real h1 test backend (l7proxy_backend.py) and the real
nghttp2 h2c backend (tests/grpc/h2c_test_server), raw HTTP/1.1 sockets and
the nghttp client for HTTP/2.

Usage: pairings_test.py L7PROXY BACKEND_SCRIPT H2C_SERVER [unittest args]

Each case reduces the answer to what must not depend on the codecs (status,
Location, the target the upstream saw, which backend answered, trailers,
grpc-status) and asserts it for every pairing; where a feature cannot exist
on a pairing (WebSocket over HTTP/2) the test asserts what happens instead.
"""
import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import l7proxy_test as l7t  # noqa: E402
from l7proxy_test import free_port, poll, route, vhost  # noqa: E402

H2C_SERVER = None
PAIRINGS = [("h1", "h1"), ("h1", "h2c"), ("h2", "h1"), ("h2", "h2c")]


def cluster(name, ports, protocol="UPSTREAM_PROTOCOL_HTTP1"):
    c = l7t.cluster(name, ports)
    c["cluster"]["protocol"] = protocol
    return c


class Answer:
    def __init__(self, status, headers, body=b"", trailers=None):
        self.status, self.headers, self.body = status, headers, body
        self.trailers = trailers or {}


def h1_request(port, host, method, path, headers=(), body=None):
    hs = "".join("%s: %s\r\n" % kv for kv in headers)
    if body is not None:
        hs += "Content-Length: %d\r\n" % len(body)
    raw = ("%s %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n" %
           (method, path, host, hs)).encode() + (body or b"")
    data = l7t.raw(port, raw, timeout=10)
    head, _, rest = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    trailers = {}
    if headers.get("transfer-encoding", "").endswith("chunked"):
        out = b""
        while rest:
            line, _, rest = rest.partition(b"\r\n")
            n = int(line.split(b";")[0] or b"0", 16)
            if n == 0:
                for t in rest.split(b"\r\n"):
                    if b":" in t:
                        k, _, v = t.decode("latin-1").partition(":")
                        trailers[k.strip().lower()] = v.strip()
                break
            out += rest[:n]
            rest = rest[n + 2:]
        rest = out
    return Answer(l7t.status_of(data), headers, rest, trailers)


def h2_request(port, host, method, path, headers=(), body=None, tmp=None):
    args = ["nghttp", "-v", "--no-dep", "-H", ":authority: " + host, "-H", ":method: " + method]
    for k, v in headers:
        args += ["-H", "%s: %s" % (k.lower(), v)]
    if body is not None:
        f = os.path.join(tmp, "body")
        with open(f, "wb") as fh:
            fh.write(body)
        args += ["-d", f]
    r = subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)], capture_output=True,
                       timeout=30)
    out = r.stdout.decode("latin-1")
    headers, trailers, status, seen_data = {}, {}, 0, False
    for line in out.splitlines():
        if "recv DATA frame" in line:
            seen_data = True
        m = re.search(r"recv \(stream_id=\d+\) ([^:\s][^:]*|:status): (.*)$", line)
        if not m:
            continue
        k, v = m.group(1).strip(), m.group(2).strip()
        if k == ":status":
            status = int(v)
        elif seen_data or k in trailers or (k in headers and k.startswith("x-trailer")):
            trailers[k] = v
        else:
            headers[k] = v
    return Answer(status, headers, out.encode("latin-1"), trailers)


class Pairings(l7t.Base):
    EXTRA = ("--max-uri-bytes=200", "--max-header-bytes=2048")

    def setUp(self):
        super().setUp()
        self.h1 = self.backend("up-h1")
        portfile = os.path.join(self.tmp, "port-h2c")
        self.h2c = subprocess.Popen([H2C_SERVER, "--port-file=" + portfile, "--name=up-h2c"],
                                    stdout=subprocess.DEVNULL)
        poll(lambda: os.path.exists(portfile), what="h2c backend")
        with open(portfile) as f:
            h2c_port = int(f.read())
        dead = free_port()
        res = []
        for up, port, proto in (("h1", self.h1.port, "UPSTREAM_PROTOCOL_HTTP1"),
                                ("h2c", h2c_port, "UPSTREAM_PROTOCOL_H2C")):
            res += [cluster("c-" + up, [port], proto),
                    cluster("c-%s-retry" % up, [dead, port], proto),
                    cluster("c-%s-empty" % up, [], proto),
                    vhost("v-" + up, up + ".test", [
                        route("/", "c-" + up),
                        route("/rw", "c-" + up, rewrite_prefix="/internal"),
                        route("/old", "c-" + up, redirect={"path": "/new", "status": 301}),
                        route("/retry", "c-%s-retry" % up),
                        route("/small", "c-" + up, max_body_bytes=10),
                        route("/empty", "c-%s-empty" % up),
                    ])]
        self.start(res)

    def tearDown(self):
        if self.h2c.poll() is None:
            self.h2c.kill()
            self.h2c.wait()
        super().tearDown()

    def ask(self, down, up, method, path, headers=(), body=None):
        host = up + ".test"
        if down == "h1":
            return h1_request(self.proxy.port, host, method, path, headers, body)
        return h2_request(self.proxy.port, host, method, path, headers, body, self.tmp)

    def each(self, fn):
        for down, up in PAIRINGS:
            with self.subTest(pairing="%s->%s" % (down, up)):
                fn(down, up)

    def test_routing_reaches_the_clusters_backend(self):
        def case(down, up):
            a = self.ask(down, up, "GET", "/x?q=1")
            self.assertEqual(a.status, 200)
            self.assertEqual(a.headers.get("x-backend"), "up-" + up)
            self.assertEqual(a.headers.get("x-path"), "/x?q=1")
            self.assertEqual(a.headers.get("server"), "edge")
        self.each(case)

    def test_rewrite_changes_the_upstream_target(self):
        def case(down, up):
            a = self.ask(down, up, "GET", "/rw/items?q=1")
            self.assertEqual((a.status, a.headers.get("x-path")), (200, "/internal/items?q=1"))
        self.each(case)

    def test_redirect_is_answered_with_its_location(self):
        def case(down, up):
            a = self.ask(down, up, "GET", "/old/p")
            self.assertEqual((a.status, a.headers.get("location")),
                             (301, "http://%s.test/new" % up))
        self.each(case)

    def test_connect_failures_are_retried_on_another_endpoint(self):
        def case(down, up):
            for i in range(4):
                a = self.ask(down, up, "GET", "/retry/%d" % i)
                self.assertEqual((a.status, a.headers.get("x-backend")), (200, "up-" + up))
        self.each(case)

    def test_limits_answer_413_414_431(self):
        def case(down, up):
            self.assertEqual(self.ask(down, up, "POST", "/small", body=b"x" * 11).status, 413)
            self.assertEqual(self.ask(down, up, "GET", "/" + "a" * 300).status, 414)
            self.assertEqual(self.ask(down, up, "GET", "/", [("X-Big", "v" * 3000)]).status,
                             431)
        self.each(case)

    def test_trailers_reach_the_client(self):
        def case(down, up):
            a = self.ask(down, up, "GET", "/trailers")
            self.assertEqual(a.status, 200)
            self.assertEqual(a.trailers.get("x-trailer"), "yes", vars(a))
        self.each(case)

    def test_grpc_requests_get_grpc_status_for_proxy_errors(self):
        def case(down, up):
            a = self.ask(down, up, "POST", "/empty", [("Content-Type", "application/grpc"),
                                                      ("TE", "trailers")], body=b"")
            self.assertEqual(a.status, 200)
            self.assertEqual(a.headers.get("grpc-status") or a.trailers.get("grpc-status"), "14")
        self.each(case)

    def test_websocket_tunnels_on_h1_to_h1_only(self):
        req = (b"GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        with self.subTest(pairing="h1->h1"):
            s = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10)
            s.sendall(req % b"h1.test")
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            self.assertEqual(l7t.status_of(head), 101)
            s.sendall(b"ping")
            self.assertEqual(s.recv(16), b"ping")
            s.close()
        with self.subTest(pairing="h1->h2c"):
            # HTTP/2 upstreams have no Upgrade: the request is proxied as a
            # plain GET and the connection closes after it
            a = l7t.raw(self.proxy.port, req % b"h2c.test", timeout=10)
            self.assertEqual(l7t.status_of(a), 200)
            self.assertNotIn(b"upgrade", a.partition(b"\r\n\r\n")[0].lower())
        # h2->*: an HTTP/2 client cannot ask for an Upgrade at all (RFC 9113
        # §8.6; extended CONNECT, RFC 8441, is not offered): nothing to test.


if __name__ == "__main__":
    l7t.L7PROXY, l7t.BACKEND = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    H2C_SERVER = os.path.abspath(sys.argv[3])
    l7t.skip_policy.main([sys.argv[0]] + sys.argv[4:])
