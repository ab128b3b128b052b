#!/usr/bin/env python3
"""l7proxy HTTP/2 and gRPC upstream tests: the real l7proxy binary with a
--config=FILE whose clusters have protocol UPSTREAM_PROTOCOL_H2C / _GRPC,
the nghttp2 test backend (tests/grpc/h2c_test_server), the gRPC C core test
server and client (tests/grpc/grpc_test_server, grpc_test_client), raw
HTTP/1.1 sockets on 127.0.0.1.

Usage: l7proxy_grpc_test.py L7PROXY GRPC_SERVER GRPC_CLIENT H2C_SERVER [unittest args]

GrpcEndToEndTest is the real thing: the gRPC C core client speaks h2c
(prior knowledge) to the proxy, which relays to the gRPC server over an
upstream_h2 stream and back, trailers (grpc-status) included.
GrpcOverHttp1Test checks the same upstream path from HTTP/1.1 clients,
where trailers travel as chunked trailers.

Every wait polls with a deadline; all processes are started here and
killed by PID in tearDown.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import skip_policy  # noqa: E402

L7PROXY = GRPC_SERVER = GRPC_CLIENT = H2C_SERVER = None
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


class Daemon:
    """A test backend that writes its port to --port-file."""

    def __init__(self, binary, tmp, name):
        portfile = os.path.join(tmp, "port-" + name)
        self.log = open(os.path.join(tmp, name + ".log"), "w")
        self.proc = subprocess.Popen([binary, "--port-file=" + portfile],
                                     stdout=self.log, stderr=self.log)
        poll(lambda: os.path.exists(portfile), what=name + " port")
        with open(portfile) as f:
            self.port = int(f.read())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Silent:
    """Accepts TCP connections and never answers (for timeouts)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


def cluster(name, ports, protocol):
    return {"cluster": {"name": name, "protocol": protocol,
                        "endpoints": [{"address": "127.0.0.1", "port": p, "ready": True}
                                      for p in ports]}}


def vhost(host, cluster_name, **options):
    r = {"path": "/", "path_type": "PATH_TYPE_PREFIX", "cluster": cluster_name}
    if options:
        r["options"] = options
    return {"virtual_host": {"name": host, "host": host, "host_match": "HOST_MATCH_EXACT",
                             "routes": [r]}}


class Proxy:
    def __init__(self, tmp, resources):
        self.cfg = os.path.join(tmp, "config.json")
        with open(self.cfg + ".tmp", "w") as f:
            json.dump({"version": 1, "resources": resources}, f)
        os.rename(self.cfg + ".tmp", self.cfg)
        self.port = free_port()
        self.admin = free_port()
        self.log = open(os.path.join(tmp, "l7proxy.log"), "a+")
        self.proc = subprocess.Popen(
            [L7PROXY, "--http=127.0.0.1:%d" % self.port, "--admin=127.0.0.1:%d" % self.admin,
             "--workers=2", "--config=" + self.cfg], stdout=self.log, stderr=self.log)
        poll(self.ready, what="l7proxy ready")

    def ready(self):
        if self.proc.poll() is not None:
            self.log.flush()
            with open(self.log.name) as f:
                raise AssertionError("l7proxy exited: " + f.read())
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.admin,
                                        timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Response:
    def __init__(self, status, headers, body, trailers):
        self.status, self.headers, self.body, self.trailers = status, headers, body, trailers


def read_response(f):
    """Parses one HTTP/1.1 response (Content-Length or chunked with trailers)."""
    line = f.readline()
    if not line:
        raise AssertionError("connection closed before a response")
    status = int(line.split()[1])
    headers = {}
    while True:
        line = f.readline().rstrip(b"\r\n")
        if not line:
            break
        k, v = line.split(b":", 1)
        headers[k.decode().lower()] = v.strip().decode()
    body, trailers = b"", {}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().strip().split(b";")[0], 16)
            if size == 0:
                break
            body += f.read(size)
            f.readline()
        while True:
            line = f.readline().rstrip(b"\r\n")
            if not line:
                break
            k, v = line.split(b":", 1)
            trailers[k.decode().lower()] = v.strip().decode()
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    else:
        body = f.read()
    return Response(status, headers, body, trailers)


def http1(port, host, path, method="GET", body=b"", headers=None, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        req = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host)
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        if body or method == "POST":
            req += "Content-Length: %d\r\n" % len(body)
        req += "\r\n"
        s.sendall(req.encode() + body)
        return read_response(s.makefile("rb"))
    finally:
        s.close()


def grpc_frame(payload):
    return struct.pack(">BI", 0, len(payload)) + payload


def grpc_http1(port, host, method, payload):
    """A unary gRPC call over HTTP/1.1 (chunked trailers carry the status)."""
    return http1(port, host, method, "POST", grpc_frame(payload),
                 {"Content-Type": "application/grpc", "TE": "trailers"})


def grpc_status(r):
    """grpc-status from the trailers, or from the head (trailers-only)."""
    return int(r.trailers.get("grpc-status", r.headers.get("grpc-status", "-1")))


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="l7grpc-")
        self.grpc = Daemon(GRPC_SERVER, self.tmp, "grpc")
        self.h2c = Daemon(H2C_SERVER, self.tmp, "h2c")
        self.silent = Silent()
        closed = free_port()  # nothing listens there
        self.proxy = Proxy(self.tmp, [
            cluster("h2c", [self.h2c.port], "UPSTREAM_PROTOCOL_H2C"),
            cluster("grpc", [self.grpc.port], "UPSTREAM_PROTOCOL_GRPC"),
            cluster("empty", [], "UPSTREAM_PROTOCOL_GRPC"),
            cluster("refused", [closed], "UPSTREAM_PROTOCOL_GRPC"),
            cluster("silent", [self.silent.port], "UPSTREAM_PROTOCOL_GRPC"),
            vhost("h2c.test", "h2c"),
            vhost("grpc.test", "grpc"),
            vhost("empty.test", "empty"),
            vhost("refused.test", "refused"),
            vhost("silent.test", "silent", response_header_timeout_ms=300),
        ])

    def tearDown(self):
        self.proxy.stop()
        self.grpc.kill()
        self.h2c.kill()
        self.silent.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class H2cUpstreamTest(Base):
    def test_plain_get_goes_to_the_h2c_backend_with_authority(self):
        r = http1(self.proxy.port, "h2c.test", "/hello?x=1")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("x-h2c"), "1")
        self.assertEqual(r.headers.get("x-authority"), "h2c.test")
        self.assertEqual(r.headers.get("x-path"), "/hello?x=1")
        self.assertEqual(r.body, b"h2c GET /hello?x=1\n")

    def test_hop_by_hop_request_headers_are_not_forwarded(self):
        r = http1(self.proxy.port, "h2c.test", "/x",
                  headers={"Connection": "keep-alive, X-Drop", "X-Drop": "1", "TE": "gzip"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("x-te"), "-")

    def test_large_request_and_response_bodies_stream_intact(self):
        body = bytes((i * 7 + i // 4096) & 0xff for i in range(2 * 1024 * 1024 + 3))
        r = http1(self.proxy.port, "h2c.test", "/echo", "POST", body, timeout=30)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), len(body))
        self.assertTrue(r.body == body)
        r = http1(self.proxy.port, "h2c.test", "/big/3000000", timeout=30)
        self.assertEqual(len(r.body), 3000000)
        self.assertTrue(r.body == (b"0123456789" * 300000))

    def test_h2_client_to_h2c_backend(self):
        p = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-D", "-", "-H",
                            "Host: h2c.test", "http://127.0.0.1:%d/via-h2" % self.proxy.port],
                           capture_output=True, timeout=30)
        out = p.stdout.decode()
        self.assertTrue(out.startswith("HTTP/2 200"), out)
        self.assertIn("x-h2c: 1", out)
        self.assertTrue(out.endswith("h2c GET /via-h2\n"), out)

    def test_concurrent_requests_all_succeed(self):
        results = [None] * 24

        def one(i):
            try:
                results[i] = http1(self.proxy.port, "h2c.test", "/echo", "POST",
                                   b"req-%d" % i).body
            except Exception as e:  # reported below
                results[i] = repr(e).encode()

        ts = [threading.Thread(target=one, args=(i,)) for i in range(len(results))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.assertEqual(results, [b"req-%d" % i for i in range(len(results))])


class GrpcOverHttp1Test(Base):
    def test_unary_call_relays_message_and_trailers(self):
        r = grpc_http1(self.proxy.port, "grpc.test", "/edge.test.Echo/Unary", b"hello")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("content-type"), "application/grpc")
        self.assertEqual(r.body, grpc_frame(b"hello"))
        self.assertEqual(r.trailers.get("grpc-status"), "0")
        self.assertEqual(r.trailers.get("x-echo-trailer"), "unary")

    def test_upstream_error_status_is_relayed(self):
        r = grpc_http1(self.proxy.port, "grpc.test", "/edge.test.Echo/Unary", b"status:9:nope")
        self.assertEqual(r.status, 200)
        self.assertEqual(grpc_status(r), 9)
        self.assertEqual(r.trailers.get("grpc-message"), "nope")

    def test_no_endpoints_is_unavailable(self):
        r = grpc_http1(self.proxy.port, "empty.test", "/edge.test.Echo/Unary", b"x")
        self.assertEqual(r.status, 200)
        self.assertEqual(grpc_status(r), 14)
        self.assertTrue(r.headers.get("grpc-message"))

    def test_no_route_is_unimplemented(self):
        r = grpc_http1(self.proxy.port, "nowhere.test", "/edge.test.Echo/Unary", b"x")
        self.assertEqual(r.status, 200)
        self.assertEqual(grpc_status(r), 12)

    def test_connect_failure_is_unavailable(self):
        r = grpc_http1(self.proxy.port, "refused.test", "/edge.test.Echo/Unary", b"x")
        self.assertEqual(r.status, 200)
        self.assertEqual(grpc_status(r), 14)

    def test_upstream_timeout_is_deadline_exceeded(self):
        r = grpc_http1(self.proxy.port, "silent.test", "/edge.test.Echo/Unary", b"x")
        self.assertEqual(r.status, 200)
        self.assertEqual(grpc_status(r), 4)

    def test_plain_http_errors_stay_http(self):
        r = http1(self.proxy.port, "empty.test", "/x")
        self.assertEqual(r.status, 503)


class GrpcEndToEndTest(Base):
    def client(self, authority, *cases):
        p = subprocess.run([GRPC_CLIENT, "--target=127.0.0.1:%d" % self.proxy.port,
                            "--authority=" + authority] + list(cases),
                           capture_output=True, timeout=60)
        return p.returncode, p.stdout.decode() + p.stderr.decode()

    def test_unary_and_streaming_calls_through_the_proxy(self):
        rc, out = self.client("grpc.test", "unary", "stream")
        self.assertEqual(rc, 0, out)

    def test_upstream_error_status_is_relayed(self):
        rc, out = self.client("grpc.test", "status:9:nope")
        self.assertEqual(rc, 0, out)

    def test_proxy_errors_arrive_as_grpc_status(self):
        for authority, want in (("empty.test", 14), ("nowhere.test", 12), ("refused.test", 14),
                                ("silent.test", 4)):
            rc, out = self.client(authority, "expect:%d" % want)
            self.assertEqual(rc, 0, authority + ": " + out)


class GrpcDirectTest(unittest.TestCase):
    """The test client and server agree without the proxy (a broken proxy
    test must not hide a broken test tool)."""

    def test_client_and_server_agree_directly(self):
        tmp = tempfile.mkdtemp(prefix="l7grpc-")
        srv = Daemon(GRPC_SERVER, tmp, "grpc")
        try:
            p = subprocess.run([GRPC_CLIENT, "--target=127.0.0.1:%d" % srv.port, "unary",
                                "stream", "status:9:nope"], capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        finally:
            srv.kill()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit("usage: l7proxy_grpc_test.py L7PROXY GRPC_SERVER GRPC_CLIENT H2C_SERVER")
    L7PROXY, GRPC_SERVER, GRPC_CLIENT, H2C_SERVER = [os.path.abspath(a) for a in sys.argv[1:5]]
    skip_policy.main([sys.argv[0]] + sys.argv[5:])
