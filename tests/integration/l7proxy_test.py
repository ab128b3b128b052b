#!/usr/bin/env python3
"""l7proxy integration tests: the real l7proxy binary with --config=FILE
(a state file written here), test backends (l7proxy_backend.py) and raw
sockets / curl on 127.0.0.1.

Usage: l7proxy_test.py L7PROXY_BINARY BACKEND_SCRIPT [unittest args]

Every wait polls a condition with a deadline; nothing asserts on timing.
All processes are started here and killed by PID in tearDown.
(Tests against the real syncd — kill syncd, restart from cache — live with
the config client's tests; this file covers the data path.)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import skip_policy  # noqa: E402

L7PROXY = None
BACKEND = None
SYNCD = None
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


class Backend:
    def __init__(self, name, tmp):
        self.name = name
        portfile = os.path.join(tmp, "port-" + name)
        self.proc = subprocess.Popen([sys.executable, BACKEND, name, portfile])
        poll(lambda: os.path.exists(portfile), what="backend " + name)
        with open(portfile) as f:
            self.port = int(f.read())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cluster(name, ports, lb=None):
    c = {"name": name,
         "endpoints": [{"address": "127.0.0.1", "port": p, "ready": True} for p in ports]}
    if lb:
        c["lb_policy"] = lb
    return {"cluster": c}


def vhost(name, host, routes, match="HOST_MATCH_EXACT"):
    return {"virtual_host": {"name": name, "host": host, "host_match": match, "routes": routes}}


def route(path, cluster_name, ptype="PATH_TYPE_PREFIX", **options):
    r = {"path": path, "path_type": ptype, "cluster": cluster_name}
    if options:
        r["options"] = options
    return r


class Proxy:
    def __init__(self, tmp, config, extra=()):
        self.tmp = tmp
        self.cfg = os.path.join(tmp, "config.json")
        self.version = 0
        self.write_config(config)
        self.port = free_port()
        self.admin = free_port()
        self.log = open(os.path.join(tmp, "l7proxy.log"), "a+")
        self.proc = subprocess.Popen(
            [L7PROXY, "--http=127.0.0.1:%d" % self.port, "--admin=127.0.0.1:%d" % self.admin,
             "--workers=2", "--config=" + self.cfg] + list(extra),
            stdout=self.log, stderr=self.log)
        poll(lambda: self.ready(), what="l7proxy ready")

    def write_config(self, resources):
        self.version += 1
        tmp = self.cfg + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"version": self.version, "resources": resources}, f)
        os.rename(tmp, self.cfg)

    def reload(self, resources):
        self.write_config(resources)
        self.proc.send_signal(signal.SIGHUP)

    def admin_get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("l7proxy exited: " + self.logtext())
        return self.admin_get("/readyz")[0] == 200

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def raw(port, data, timeout=5, until_close=True, half_close=False):
    """Sends data, returns everything received until close (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    out = b""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if not until_close and b"\r\n\r\n" in out:
                break
    except socket.timeout:
        pass
    s.close()
    return out


def status_of(resp):
    line = resp.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def split_responses(data):
    """Splits Content-Length framed responses: [(head, body)]."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        out.append((head, rest[:n]))
        data = rest[n:]
    return out


def curl(*args):
    r = subprocess.run(["curl", "-s", "--max-time", "10"] + list(args), capture_output=True)
    return r.stdout


def get(port, path, host="a.test", headers=None):
    """One request on a new connection: (status, headers dict, body)."""
    h = {"Host": host, "Connection": "close"}
    h.update(headers or {})
    req = "GET %s HTTP/1.1\r\n%s\r\n" % (path, "".join("%s: %s\r\n" % kv for kv in h.items()))
    resp = raw(port, req.encode())
    head, _, body = resp.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status_of(resp), hdrs, body


class Base(unittest.TestCase):
    EXTRA = ()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="l7test-")
        self.backends = []
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.proxy.stop()
        for b in self.backends:
            b.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def backend(self, name):
        b = Backend(name, self.tmp)
        self.backends.append(b)
        return b

    def start(self, resources, extra=()):
        self.proxy = Proxy(self.tmp, resources, list(self.EXTRA) + list(extra))
        return self.proxy


class Routing(Base):
    def setUp(self):
        super().setUp()
        self.a, self.b, self.d = self.backend("a"), self.backend("b"), self.backend("dflt")
        self.start([
            cluster("ca", [self.a.port]), cluster("cb", [self.b.port]),
            cluster("cd", [self.d.port]),
            vhost("va", "a.test", [route("/", "ca"), route("/api", "cb"),
                                   route("/old", "ca", redirect={"path": "/new", "status": 301}),
                                   route("/v1", "cb", rewrite_prefix="/internal")]),
            vhost("vw", "*.wild.test", [route("/", "cb")], "HOST_MATCH_WILDCARD"),
        ])

    def backend_of(self, path, host="a.test"):
        st, _, body = get(self.proxy.port, path, host)
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def test_routes_by_host_and_longest_prefix(self):
        self.assertEqual(self.backend_of("/x")["backend"], "a")
        self.assertEqual(self.backend_of("/api/users")["backend"], "b")
        self.assertEqual(self.backend_of("/apix")["backend"], "a")
        self.assertEqual(self.backend_of("/", "x.wild.test")["backend"], "b")

    def test_host_port_and_case_are_ignored_for_routing(self):
        self.assertEqual(self.backend_of("/api", "A.Test:%d" % self.proxy.port)["backend"], "b")

    def test_unmatched_host_gets_local_404_with_short_body(self):
        st, h, body = get(self.proxy.port, "/", "nowhere.test")
        self.assertEqual(st, 404)
        self.assertEqual(h.get("server"), "edge")
        self.assertLess(len(body), 200)

    def test_default_backend_catches_unmatched_requests(self):
        res = self.proxy.logtext()  # noqa: keep the log for failures
        self.proxy.reload(self.current() + [{"default_backend": {"name": "d", "cluster": "cd"}}])
        poll(lambda: get(self.proxy.port, "/", "nowhere.test")[0] == 200, what="default backend")
        self.assertEqual(json.loads(get(self.proxy.port, "/", "nowhere.test")[2])["backend"],
                         "dflt")
        del res

    def current(self):
        with open(self.proxy.cfg) as f:
            return json.load(f)["resources"]

    def test_absolute_form_target_routes_by_its_host(self):
        resp = raw(self.proxy.port,
                   b"GET http://a.test/api/z?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 200)
        info = json.loads(resp.partition(b"\r\n\r\n")[2])
        self.assertEqual(info["backend"], "b")
        self.assertEqual(info["path"], "/api/z?q=1")
        self.assertEqual(info["headers"]["host"], "a.test")

    def test_route_redirect_answers_location(self):
        st, h, _ = get(self.proxy.port, "/old/page")
        self.assertEqual(st, 301)
        self.assertEqual(h["location"], "http://a.test/new")

    def test_rewrite_prefix_replaces_matched_prefix(self):
        self.assertEqual(self.backend_of("/v1/items?x=1")["path"], "/internal/items?x=1")

    def test_http10_keep_alive_client_is_told_keep_alive(self):
        resp = raw(self.proxy.port, b"GET /x HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive"
                   b"\r\n\r\nGET /y HTTP/1.0\r\nHost: a.test\r\n\r\n")
        parts = split_responses(resp)
        self.assertEqual(len(parts), 2)
        self.assertIn(b"connection: keep-alive", parts[0][0].lower())
        self.assertIn(b"connection: close", parts[1][0].lower())

    def test_http10_client_gets_response(self):
        resp = raw(self.proxy.port, b"GET /chunked?n=2 HTTP/1.0\r\nHost: a.test\r\n\r\n")
        self.assertEqual(status_of(resp), 200)
        head, _, body = resp.partition(b"\r\n\r\n")
        self.assertNotIn(b"chunked", head.lower())
        self.assertEqual(body.count(b'"backend"'), 2)


class HttpsRedirect(Base):
    def test_plain_request_to_tls_host_is_redirected_with_308(self):
        key, crt = os.path.join(self.tmp, "k.pem"), os.path.join(self.tmp, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                        "/CN=secure.test", "-addext", "subjectAltName=DNS:secure.test",
                        "-keyout", key, "-out", crt, "-days", "2"],
                       check=True, capture_output=True)
        a = self.backend("a")
        vh = vhost("vs", "secure.test", [route("/", "ca"),
                                         route("/plain", "ca", disable_ssl_redirect=True)])
        vh["virtual_host"]["certificate"] = "default/secure"
        self.start([cluster("ca", [a.port]), vh, {"certificate": {
            "name": "default/secure", "sni_names": ["secure.test"],
            "cert_pem": open(crt).read(), "key_pem": open(key).read()}}])
        st, h, _ = get(self.proxy.port, "/shop?x=1", "secure.test:%d" % self.proxy.port)
        self.assertEqual(st, 308)
        self.assertEqual(h["location"], "https://secure.test/shop?x=1")
        self.assertEqual(get(self.proxy.port, "/plain", "secure.test")[0], 200)


class Headers(Base):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.start([cluster("ca", [self.a.port]), vhost("va", "a.test", [route("/", "ca")])])

    def test_forwarded_headers_and_request_id_are_added(self):
        st, h, body = get(self.proxy.port, "/h", headers={"X-Forwarded-For": "203.0.113.9"})
        info = json.loads(body)["headers"]
        self.assertEqual(info["x-forwarded-for"], "203.0.113.9, 127.0.0.1")
        self.assertEqual(info["x-forwarded-proto"], "http")
        self.assertEqual(info["x-forwarded-host"], "a.test")
        self.assertRegex(info["x-request-id"], r"^[0-9a-f]{32}$")
        self.assertNotIn("via", info)

    def test_client_request_id_is_preserved(self):
        info = json.loads(get(self.proxy.port, "/h", headers={"X-Request-Id": "abc-123"})[2])
        self.assertEqual(info["headers"]["x-request-id"], "abc-123")

    def test_hop_by_hop_headers_are_removed(self):
        info = json.loads(get(self.proxy.port, "/h", headers={
            "Connection": "close, X-Secret", "X-Secret": "1", "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "x", "TE": "trailers, deflate", "X-Kept": "yes"})[2])
        hs = info["headers"]
        for name in ("x-secret", "keep-alive", "proxy-authorization", "connection"):
            self.assertNotIn(name, hs)
        self.assertEqual(hs["te"], "trailers")
        self.assertEqual(hs["x-kept"], "yes")

    def test_response_says_server_edge_and_drops_upstream_hop_headers(self):
        st, h, _ = get(self.proxy.port, "/h")
        self.assertEqual(h["server"], "edge")
        self.assertNotIn("keep-alive", h)


class Http1(Base):
    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.start([cluster("ca", [self.a.port]), vhost("va", "a.test", [route("/", "ca")])])

    def test_keep_alive_reuses_both_connections(self):
        out = curl("-H", "Host: a.test", "http://127.0.0.1:%d/1" % self.proxy.port,
                   "http://127.0.0.1:%d/2" % self.proxy.port, "-w", "\n%{num_connects}\n")
        lines = out.split(b"\n")
        infos = [json.loads(x) for x in lines if x.startswith(b"{")]
        self.assertEqual(len(infos), 2)
        self.assertEqual([x for x in lines if x.isdigit()], [b"1", b"0"])  # one client conn
        self.assertEqual(infos[0]["peer"], infos[1]["peer"])  # one upstream connection

    def test_pipelined_requests_are_answered_in_order(self):
        req = b"".join(b"GET /p%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i for i in range(5))
        req += b"GET /last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        resp = raw(self.proxy.port, req)
        paths = [json.loads(body)["path"] for _, body in split_responses(resp)]
        self.assertEqual(paths, ["/p0", "/p1", "/p2", "/p3", "/p4", "/last"])

    def test_half_closed_client_still_gets_every_pipelined_answer(self):
        req = b"".join(b"GET /h%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i for i in range(4))
        resp = raw(self.proxy.port, req, half_close=True)
        paths = [json.loads(body)["path"] for _, body in split_responses(resp)]
        self.assertEqual(paths, ["/h0", "/h1", "/h2", "/h3"])

    def test_chunked_request_body_is_streamed_upstream(self):
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"hello ", b"chunked ", b"world"))
        resp = raw(self.proxy.port, b"POST /c HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n")
        self.assertEqual(status_of(resp), 200)
        info = json.loads(resp.partition(b"\r\n\r\n")[2])
        self.assertEqual(info["body_len"], 19)
        self.assertEqual(info["body_head"], "hello chunked world")

    def test_chunked_response_is_relayed_chunked(self):
        resp = raw(self.proxy.port,
                   b"GET /chunked?n=3 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        head, _, body = resp.partition(b"\r\n\r\n")
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        self.assertTrue(body.endswith(b"0\r\n\r\n"))

    def test_large_body_streams_both_ways(self):
        n = 5 * 1024 * 1024
        out = curl("-H", "Host: a.test", "http://127.0.0.1:%d/big?n=%d" % (self.proxy.port, n),
                   "-o", "/dev/null", "-w", "%{size_download}")
        self.assertEqual(int(out), n)
        path = os.path.join(self.tmp, "up.bin")
        with open(path, "wb") as f:
            f.write(b"y" * n)
        info = json.loads(curl("-H", "Host: a.test", "--data-binary", "@" + path,
                               "http://127.0.0.1:%d/up" % self.proxy.port))
        self.assertEqual(info["body_len"], n)

    def test_expect_100_continue_gets_interim_response(self):
        s = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5)
        s.sendall(b"POST /e HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        first = s.recv(1024)
        self.assertTrue(first.startswith(b"HTTP/1.1 100 Continue\r\n"), first)
        s.sendall(b"abcde")
        rest = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            rest += c
        s.close()
        final = (first + rest).split(b"\r\n\r\n", 1)[1]
        self.assertEqual(status_of(final), 200)
        self.assertEqual(json.loads(final.partition(b"\r\n\r\n")[2])["body_len"], 5)

    def test_websocket_upgrade_tunnels_bytes_both_ways(self):
        s = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        self.assertEqual(status_of(head), 101)
        self.assertIn(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head)
        for msg in (b"\x81\x05hello", b"ping-pong" * 1000):
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(65536)
            self.assertEqual(got, msg)
        s.close()

    def test_empty_response_keeps_its_content_length(self):
        resp = raw(self.proxy.port, b"GET /empty HTTP/1.1\r\nHost: a.test\r\n\r\n"
                   b"GET /after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        parts = split_responses(resp)
        self.assertEqual(len(parts), 2)
        self.assertIn(b"content-length: 0", parts[0][0].lower())
        self.assertEqual(json.loads(parts[1][1])["path"], "/after")

    def test_head_response_has_no_body(self):
        resp = raw(self.proxy.port, b"HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
                   b"GET /after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        first, _, rest = resp.partition(b"\r\n\r\n")
        self.assertEqual(status_of(first), 200)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200"), rest[:80])


class BadInput(Base):
    EXTRA = ("--max-uri-bytes=200", "--max-header-bytes=2048", "--max-headers=20",
             "--max-body=1000", "--header-timeout=1s")

    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.start([cluster("ca", [self.a.port]), vhost("va", "a.test", [
            route("/", "ca"), route("/small", "ca", max_body_bytes=10)])])

    def send(self, data):
        return status_of(raw(self.proxy.port, data))

    def test_conflicting_content_length_and_transfer_encoding_is_400(self):
        self.assertEqual(self.send(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400)

    def test_duplicate_content_length_is_400(self):
        self.assertEqual(self.send(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n"
                                   b"Content-Length: 4\r\n\r\nabcd"), 400)

    def test_obs_fold_is_400(self):
        self.assertEqual(self.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nX: a\r\n b\r\n\r\n"), 400)

    def test_bare_lf_is_400(self):
        self.assertEqual(self.send(b"GET / HTTP/1.1\r\nHost: a.test\nX: b\r\n\r\n"), 400)

    def test_space_before_colon_is_400(self):
        self.assertEqual(self.send(b"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n"), 400)

    def test_missing_host_is_400(self):
        self.assertEqual(self.send(b"GET / HTTP/1.1\r\n\r\n"), 400)

    def test_garbage_request_line_is_400(self):
        self.assertEqual(self.send(b"HELLO\r\n\r\n"), 400)

    def test_long_uri_is_414(self):
        self.assertEqual(self.send(b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n"),
                         414)

    def test_too_many_headers_is_431(self):
        hs = b"".join(b"X-%d: v\r\n" % i for i in range(30))
        self.assertEqual(self.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n" + hs + b"\r\n"), 431)

    def test_too_many_header_bytes_is_431(self):
        self.assertEqual(self.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nX: " + b"v" * 3000 +
                                   b"\r\n\r\n"), 431)

    def test_body_over_route_limit_is_413(self):
        self.assertEqual(self.send(b"POST /small HTTP/1.1\r\nHost: a.test\r\nContent-Length: 11"
                                   b"\r\n\r\nhello world"), 413)

    def test_413_reaches_a_client_still_sending_its_body(self):
        s = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5)
        s.sendall(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10000000\r\n\r\n")
        try:
            for _ in range(20):
                s.sendall(b"b" * 16384)
        except OSError:
            pass  # the proxy may stop reading; the answer must still be there
        data = s.recv(65536)
        s.close()
        self.assertEqual(status_of(data), 413)

    def test_chunked_body_over_limit_is_413(self):
        chunk = b"%x\r\n%s\r\n" % (600, b"z" * 600)
        self.assertEqual(self.send(b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: "
                                   b"chunked\r\n\r\n" + chunk + chunk + b"0\r\n\r\n"), 413)

    def test_slow_header_is_408(self):
        self.assertEqual(self.send(b"GET / HTTP/1.1\r\nHost: a.te"), 408)

    def test_proxy_survives_bad_input(self):
        self.send(b"\x00\xff" * 100 + b"\r\n\r\n")
        st, _, _ = get(self.proxy.port, "/fine")
        self.assertEqual(st, 200)


class ConnectionLimits(Base):
    EXTRA = ("--max-connections=2", "--idle-timeout=300ms", "--workers=1")

    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.start([cluster("ca", [self.a.port]), vhost("va", "a.test", [route("/", "ca")])])

    def test_connections_beyond_the_limit_are_closed_when_none_is_idle(self):
        # both slots carry a request in progress (an idle connection would
        # be evicted to make room: l7proxy_hostile_test DescriptorExhaustion)
        held = [socket.create_connection(("127.0.0.1", self.proxy.port)) for _ in range(2)]
        for h in held:
            h.sendall(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        poll(lambda: "edge_l7_active_connections 2" in self.proxy.admin_get("/metrics")[1],
             what="two connections open")
        extra = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5)
        extra.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        try:
            data = extra.recv(65536)
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"")
        for h in held:
            h.settimeout(5)
            self.assertTrue(h.recv(65536).startswith(b"HTTP/1.1 200"))
        for h in held + [extra]:
            h.close()

    def test_idle_keep_alive_connection_is_closed_after_idle_timeout(self):
        s = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
        self.assertEqual(s.recv(65536), b"")  # closed by the proxy, no 408 for idle
        s.close()


class Upstreams(Base):
    def test_connect_failure_is_retried_on_another_endpoint(self):
        a = self.backend("a")
        dead = free_port()
        self.start([cluster("ca", [dead, a.port]), vhost("va", "a.test", [route("/", "ca")])])
        for i in range(10):
            st, _, body = get(self.proxy.port, "/r%d" % i)
            self.assertEqual(st, 200, body)
            self.assertEqual(json.loads(body)["backend"], "a")

    def test_no_live_endpoint_is_502_and_empty_cluster_is_503(self):
        dead = free_port()
        self.start([cluster("cx", [dead]), cluster("ce", []),
                    vhost("va", "a.test", [route("/", "cx"), route("/empty", "ce")])])
        self.assertEqual(get(self.proxy.port, "/x")[0], 502)
        self.assertEqual(get(self.proxy.port, "/empty")[0], 503)

    def test_response_header_timeout_is_504(self):
        a = self.backend("a")
        self.start([cluster("ca", [a.port]), vhost("va", "a.test", [
            route("/", "ca", response_header_timeout_ms=300)])])
        self.assertEqual(get(self.proxy.port, "/slow?ms=3000")[0], 504)

    def test_route_request_timeout_is_504(self):
        a = self.backend("a")
        self.start([cluster("ca", [a.port]), vhost("va", "a.test", [
            route("/", "ca", request_timeout_ms=300)])])
        self.assertEqual(get(self.proxy.port, "/slow?ms=3000")[0], 504)
        self.assertEqual(get(self.proxy.port, "/fast")[0], 200)

    def test_killed_backend_is_ejected_and_traffic_moves(self):
        a, b = self.backend("a"), self.backend("b")
        self.start([cluster("ca", [a.port, b.port]), vhost("va", "a.test", [route("/", "ca")])])
        seen = {json.loads(get(self.proxy.port, "/s%d" % i)[2])["backend"] for i in range(6)}
        self.assertEqual(seen, {"a", "b"})
        b.kill()
        for i in range(30):
            st, _, body = get(self.proxy.port, "/k%d" % i)
            self.assertEqual(st, 200, body)
            self.assertEqual(json.loads(body)["backend"], "a")
        poll(lambda: "edge_l7_upstream_ejections_total{cluster=\"ca\"}" in
             self.proxy.admin_get("/metrics")[1], what="ejection metric")

    def test_5xx_answers_eject_an_endpoint(self):
        a, b = self.backend("a"), self.backend("b")
        self.start([cluster("ca", [a.port, b.port]), vhost("va", "a.test", [route("/", "ca")])])
        for i in range(40):
            get(self.proxy.port, "/status/500")
        self.assertIn("upstream_ejected", self.proxy.logtext())

    def test_least_request_policy_serves_requests(self):
        a, b = self.backend("a"), self.backend("b")
        self.start([cluster("ca", [a.port, b.port], "LB_POLICY_LEAST_REQUEST"),
                    vhost("va", "a.test", [route("/", "ca")])])
        seen = {json.loads(get(self.proxy.port, "/l%d" % i)[2])["backend"] for i in range(30)}
        self.assertEqual(seen, {"a", "b"})


class Operations(Base):
    def setUp(self):
        super().setUp()
        self.a, self.b = self.backend("a"), self.backend("b")

    def resources(self, i):
        target = "ca" if i % 2 == 0 else "cb"
        return [cluster("ca", [self.a.port]), cluster("cb", [self.b.port]),
                vhost("va", "a.test", [route("/", target), route("/r%d" % i, "ca")])]

    def test_route_changes_under_load_fail_no_request(self):
        self.start(self.resources(0))
        failures, count = [], [0]
        stop = threading.Event()

        def load():
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
            while not stop.is_set():
                try:
                    conn.request("GET", "/x", headers={"Host": "a.test"})
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        failures.append(r.status)
                    count[0] += 1
                except Exception as e:  # noqa: a failed request is the failure we count
                    failures.append(repr(e))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
            conn.close()

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        for i in range(1, 101):
            before = self.proxy.logtext().count("config_applied")
            self.proxy.reload(self.resources(i))
            poll(lambda: self.proxy.logtext().count("config_applied") > before, what="reload")
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        self.assertGreater(count[0], 100)
        self.assertIn("version=101", self.proxy.logtext())

    def test_bad_config_reload_keeps_serving_last_good_state(self):
        self.start(self.resources(0))
        with open(self.proxy.cfg, "w") as f:
            f.write("{not json")
        self.proxy.proc.send_signal(signal.SIGHUP)
        poll(lambda: "config_rejected" in self.proxy.logtext(), what="rejection")
        self.assertEqual(get(self.proxy.port, "/x")[0], 200)

    def test_admin_endpoints_answer(self):
        self.start(self.resources(0))
        get(self.proxy.port, "/x")
        self.assertEqual(self.proxy.admin_get("/healthz")[0], 200)
        st, cfg = self.proxy.admin_get("/config")
        self.assertEqual(st, 200)
        json.loads(cfg)
        m = self.proxy.admin_get("/metrics")[1]
        self.assertIn('edge_l7_requests_total{route="a.test/",cluster="ca",code_class="2xx"}', m)
        self.assertIn("edge_l7_request_duration_seconds_bucket", m)
        self.assertIn("edge_l7_active_connections", m)
        self.assertIn('edge_l7_upstream_connections{state="idle"}', m)

    def test_sigterm_drains_in_flight_requests_then_exits_0(self):
        self.start(self.resources(0))
        result = {}

        def slow():
            result["r"] = get(self.proxy.port, "/slow?ms=1500")

        t = threading.Thread(target=slow)
        t.start()
        poll(lambda: "edge_l7_upstream_connections{state=\"active\"} 1" in
             self.proxy.admin_get("/metrics")[1], what="request in flight")
        self.proxy.proc.send_signal(signal.SIGTERM)
        poll(lambda: self.proxy.proc.poll() is not None or
             self.proxy.admin_get("/readyz")[0] == 503, what="readyz 503 while draining")
        t.join(DEADLINE_S)
        self.assertEqual(result["r"][0], 200)
        self.assertEqual(self.proxy.proc.wait(DEADLINE_S), 0)

    def test_proxy_protocol_header_sets_client_address(self):
        self.start(self.resources(0), ["--proxy-protocol", "--proxy-protocol-trusted=127.0.0.0/8"])
        resp = raw(self.proxy.port, b"PROXY TCP4 198.51.100.7 10.0.0.1 5555 80\r\n"
                   b"GET /pp HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 200)
        info = json.loads(resp.partition(b"\r\n\r\n")[2])
        self.assertEqual(info["headers"]["x-forwarded-for"], "198.51.100.7")

    def test_bad_flag_exits_with_one_line_reason(self):
        r = subprocess.run([L7PROXY, "--workers=abc"], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = subprocess.run([L7PROXY, "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--max-body", r.stdout)


MANIFESTS = """apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: edge
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: edge.dev/ingress-controller
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: %(port)d, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: %(port)d, protocol: TCP}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {ready: true}
"""

INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  rules:
    - host: a.test
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
          - {path: /r%(i)d, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


class WithSyncd(Base):
    """The real syncd: live route pushes, syncd loss, restart from cache."""

    def setUp(self):
        if not SYNCD:
            self.fail("needs the syncd binary: --syncd=PATH")
        super().setUp()
        self.a = self.backend("a")
        self.src = os.path.join(self.tmp, "manifests")
        os.makedirs(self.src)
        with open(os.path.join(self.src, "00-base.yaml"), "w") as f:
            f.write(MANIFESTS % {"port": self.a.port})
        self.write_ingress(0)
        self.syncd_port, self.syncd_admin = free_port(), free_port()
        self.syncd = None
        self.start_syncd()
        self.cache = os.path.join(self.tmp, "cache")
        os.makedirs(self.cache)
        self.proxies = []

    def tearDown(self):
        for p in self.proxies:
            p.stop()
        if self.syncd and self.syncd.poll() is None:
            self.syncd.kill()
            self.syncd.wait()
        super().tearDown()

    def write_ingress(self, i):
        path = os.path.join(self.src, "20-web.yaml")
        with open(path + ".tmp", "w") as f:
            f.write(INGRESS % {"i": i})
        os.rename(path + ".tmp", path)

    def start_syncd(self):
        log = open(os.path.join(self.tmp, "syncd.log"), "a")
        self.addCleanup(log.close)
        self.syncd = subprocess.Popen(
            [SYNCD, "--source=dir:" + self.src, "--listen=127.0.0.1:%d" % self.syncd_port,
             "--admin=127.0.0.1:%d" % self.syncd_admin, "--insecure",
             "--state-dir=" + os.path.join(self.tmp, "syncd-state"), "--debounce=20ms",
             "--max-delay=100ms"], stdout=log, stderr=log)

    def start_proxy(self):
        p = Proxy.__new__(Proxy)
        p.tmp = self.tmp
        p.port, p.admin = free_port(), free_port()
        p.log = open(os.path.join(self.tmp, "l7proxy-%d.log" % len(self.proxies)), "a+")
        p.proc = subprocess.Popen(
            [L7PROXY, "--http=127.0.0.1:%d" % p.port, "--admin=127.0.0.1:%d" % p.admin,
             "--workers=2", "--syncd=127.0.0.1:%d" % self.syncd_port, "--insecure",
             "--node-id=test-%d" % len(self.proxies), "--cache-dir=" + self.cache],
            stdout=p.log, stderr=p.log)
        self.proxies.append(p)
        poll(lambda: p.ready(), what="l7proxy ready from syncd")
        return p

    def served_paths(self, p):
        st, cfg = p.admin_get("/config")
        return cfg if st == 200 else ""

    def test_route_pushes_under_load_fail_no_request_and_syncd_loss_changes_nothing(self):
        p = self.start_proxy()
        poll(lambda: get(p.port, "/x")[0] == 200, what="first route")
        failures, count = [], [0]
        stop = threading.Event()

        def load():
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
            while not stop.is_set():
                try:
                    conn.request("GET", "/x", headers={"Host": "a.test"})
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        failures.append(r.status)
                    count[0] += 1
                except Exception as e:  # noqa: a failed request is what we count
                    failures.append(repr(e))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
            conn.close()

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(1, 101):
            self.write_ingress(i)
            poll(lambda: '"/r%d"' % i in self.served_paths(p), what="push %d applied" % i)
        self.syncd.kill()
        self.syncd.wait()
        time.sleep(0.5)  # load keeps running while syncd is gone
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        self.assertGreater(count[0], 100)
        self.assertEqual(get(p.port, "/r100")[0], 200)

    def test_restart_while_syncd_is_down_serves_from_cache(self):
        p = self.start_proxy()
        poll(lambda: get(p.port, "/x")[0] == 200, what="first route")
        self.syncd.kill()
        self.syncd.wait()
        p.stop()
        q = self.start_proxy()
        self.assertEqual(get(q.port, "/x")[0], 200)


if __name__ == "__main__":
    L7PROXY, BACKEND = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    args = sys.argv[3:]
    if args and args[0].startswith("--syncd="):
        SYNCD = os.path.abspath(args.pop(0)[len("--syncd="):])
    skip_policy.main([sys.argv[0]] + args)
