#!/usr/bin/env python3
"""l7proxy HTTPS (and HTTP/2 downstream) integration tests: the real
l7proxy with --https and --config=FILE, the l7proxy_test.py backends, and
real clients on 127.0.0.1 (openssl s_client, curl, Python ssl).

Usage: l7proxy_tls_h2_test.py L7PROXY_BINARY BACKEND_SCRIPT [unittest args]

Reuses the helpers of l7proxy_test.py (Proxy, Backend, poll, ...). Every
wait polls with a deadline; nothing asserts on timing. Processes started
here are killed by PID in tearDown.
"""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import l7proxy_test as l7t  # noqa: E402
import skip_policy  # noqa: E402
from l7proxy_test import cluster, free_port, poll, route, vhost  # noqa: E402


def make_cert(tmp, cn, names, tag=""):
    """A self-signed EC certificate for names: (cert_pem, key_pem) strings."""
    key = os.path.join(tmp, "%s%s.key" % (cn, tag))
    crt = os.path.join(tmp, "%s%s.crt" % (cn, tag))
    san = ",".join("DNS:" + n for n in names)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn + tag,
                    "-addext", "subjectAltName=" + san, "-keyout", key, "-out", crt,
                    "-days", "2"], check=True, capture_output=True)
    with open(crt) as c, open(key) as k:
        return c.read(), k.read()


def cert_resource(name, pem, key, sni=(), default=False):
    c = {"name": name, "cert_pem": pem, "key_pem": key}
    if sni:
        c["sni_names"] = list(sni)
    if default:
        c["is_default"] = True
    return {"certificate": c}


def s_client(port, sni=None, alpn=None):
    """openssl s_client: (subject line, ALPN line) of the handshake."""
    args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
    args += ["-servername", sni] if sni else ["-noservername"]
    if alpn:
        args += ["-alpn", alpn]
    r = subprocess.run(args, input=b"", capture_output=True, timeout=10)
    out = r.stdout.decode("latin-1")
    subject = next((l for l in out.splitlines() if l.startswith("subject=")), "")
    alpn_line = next((l for l in out.splitlines() if "ALPN" in l), "")
    return subject, alpn_line


def peer_cert_der(port, sni):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            return t.getpeercert(binary_form=True)


def pem_to_der(pem):
    return ssl.PEM_cert_to_DER_cert(pem)


def https_get(port, host, path, ctx=None, headers=None):
    """One request on a new TLS connection: (status, headers, body)."""
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    h = {"Host": host, "Connection": "close"}
    h.update(headers or {})
    req = "GET %s HTTP/1.1\r\n%s\r\n" % (path, "".join("%s: %s\r\n" % kv for kv in h.items()))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=host.split(":")[0]) as t:
            t.sendall(req.encode())
            out = b""
            while True:
                try:
                    chunk = t.recv(65536)
                except (ssl.SSLEOFError, ConnectionResetError):
                    break
                if not chunk:
                    break
                out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return l7t.status_of(out), hdrs, body


def metric(proxy, series):
    """The value of one exact series (name{labels}) on the proxy's /metrics;
    0 when absent."""
    _, text = proxy.admin_get("/metrics")
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0


def read_until_closed(sock, deadline_s):
    """Reads and discards until the peer closes (EOF or reset). Returns
    (closed, bytes received); closed is False when the deadline passed
    with the connection still open."""
    got = b""
    end = time.monotonic() + deadline_s
    sock.settimeout(1)
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


class TlsBase(l7t.Base):
    def start_tls(self, resources, extra=()):
        self.https_port = free_port()
        return self.start(resources, ["--https=127.0.0.1:%d" % self.https_port] + list(extra))

    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        self.pem_a, self.key_a = make_cert(self.tmp, "a.test", ["a.test"])
        self.pem_w, self.key_w = make_cert(self.tmp, "wild", ["*.w.test"])
        self.pem_d, self.key_d = make_cert(self.tmp, "default", ["default.test"])

    def resources(self, pem_a=None, key_a=None):
        va = vhost("va", "a.test", [route("/", "ca")])
        va["virtual_host"]["certificate"] = "default/a"
        return [cluster("ca", [self.a.port]), va,
                vhost("vw", "*.w.test", [route("/", "ca")], "HOST_MATCH_WILDCARD"),
                cert_resource("default/a", pem_a or self.pem_a, key_a or self.key_a,
                              ["a.test"]),
                cert_resource("default/w", self.pem_w, self.key_w, ["*.w.test"]),
                cert_resource("default/d", self.pem_d, self.key_d, default=True)]


class Https(TlsBase):
    def setUp(self):
        super().setUp()
        self.start_tls(self.resources())

    def test_sni_selects_exact_then_wildcard_then_default_certificate(self):
        self.assertIn("CN = a.test", s_client(self.https_port, "a.test")[0])
        self.assertIn("CN = wild", s_client(self.https_port, "x.w.test")[0])
        self.assertIn("CN = default", s_client(self.https_port, "other.test")[0])

    def test_no_sni_gets_the_default_certificate(self):
        self.assertIn("CN = default", s_client(self.https_port)[0])

    def test_alpn_http11_is_negotiated_when_asked(self):
        self.assertIn("http/1.1", s_client(self.https_port, "a.test", "http/1.1")[1])

    def test_https_request_is_proxied_with_forwarded_proto_https(self):
        st, _, body = https_get(self.https_port, "a.test", "/x")
        self.assertEqual(st, 200)
        j = json.loads(body)
        self.assertEqual(j["backend"], "a")
        self.assertEqual(j["headers"]["x-forwarded-proto"], "https")

    def test_curl_https_with_ca_and_resolve_gets_200(self):
        ca = os.path.join(self.tmp, "a.test.crt")
        out = l7t.curl("--cacert", ca, "--resolve", "a.test:%d:127.0.0.1" % self.https_port,
                       "-o", "/dev/null", "-w", "%{http_code}",
                       "https://a.test:%d/ok" % self.https_port)
        self.assertEqual(out, b"200")

    def test_keep_alive_requests_over_one_tls_connection(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="a.test") as t:
                for i in range(5):
                    t.sendall(b"GET /k%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i)
                    buf = b""
                    while b"\r\n\r\n" not in buf:
                        buf += t.recv(65536)
                    head, _, body = buf.partition(b"\r\n\r\n")
                    n = int([l for l in head.split(b"\r\n")
                             if l.lower().startswith(b"content-length")][0].split(b":")[1])
                    while len(body) < n:
                        body += t.recv(65536)
                    self.assertEqual(json.loads(body[:n])["path"], "/k%d" % i)

    def test_plain_request_for_tls_host_redirects_to_the_https_port(self):
        st, h, _ = l7t.get(self.proxy.port, "/p?q=1", "a.test")
        self.assertEqual(st, 308)
        self.assertEqual(h["location"], "https://a.test:%d/p?q=1" % self.https_port)

    def test_session_ticket_resumes(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="a.test") as t:
                sess = t.session
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="a.test", session=sess) as t:
                self.assertTrue(t.session_reused)


class GarbageHandshake(TlsBase):
    # A handshake timeout far beyond the read deadline below: a connection
    # closed before the deadline was closed because of the garbage.
    def setUp(self):
        super().setUp()
        self.start_tls(self.resources(), ["--tls-handshake-timeout=300s"])

    def test_garbage_instead_of_client_hello_is_closed_and_counted(self):
        series = 'edge_l7_tls_handshakes_total{result="failed"}'
        before = metric(self.proxy, series)
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            closed, got = read_until_closed(s, 20)
        self.assertTrue(closed, "the proxy kept a non-TLS connection open")
        self.assertFalse(got.startswith(b"HTTP/"), got[:80])  # not served as HTTP
        poll(lambda: metric(self.proxy, series) >= before + 1, what="failed handshake counted")
        self.assertEqual(metric(self.proxy, series), before + 1)
        self.assertEqual(https_get(self.https_port, "a.test", "/after")[0], 200)


class TlsFlags(TlsBase):
    def test_tls_min_version_13_refuses_tls12_clients(self):
        self.start_tls(self.resources(), ["--tls-min-version=1.3"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.assertRaises(ssl.SSLError):
            with socket.create_connection(("127.0.0.1", self.https_port), timeout=5) as s:
                with ctx.wrap_socket(s, server_hostname="a.test"):
                    pass
        self.assertEqual(https_get(self.https_port, "a.test", "/x")[0], 200)

    def test_bad_tls_min_version_is_refused_at_start(self):
        r = subprocess.run([l7t.L7PROXY, "--https=127.0.0.1:%d" % free_port(),
                            "--http=127.0.0.1:%d" % free_port(), "--tls-min-version=1.1"],
                           capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--tls-min-version", r.stderr)


class ProxyProtocol(TlsBase):
    def setUp(self):
        super().setUp()
        self.start_tls(self.resources(),
                       ["--proxy-protocol", "--proxy-protocol-trusted=127.0.0.0/8"])

    def test_proxy_header_before_tls_sets_the_client_address(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=10) as s:
            s.sendall(b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n")
            with ctx.wrap_socket(s, server_hostname="a.test") as t:
                t.sendall(b"GET /pp HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                out = b""
                while True:
                    try:
                        chunk = t.recv(65536)
                    except (ssl.SSLEOFError, ConnectionResetError):
                        break
                    if not chunk:
                        break
                    out += chunk
        body = out.partition(b"\r\n\r\n")[2]
        self.assertEqual(json.loads(body)["headers"]["x-forwarded-for"], "198.51.100.7")

    def test_proxy_header_then_h2c_prior_knowledge(self):
        s = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10)
        s.sendall(b"PROXY TCP4 198.51.100.8 127.0.0.1 40000 80\r\n" + PREFACE +
                  frame(4, 0, 0) + frame(1, 0x5, 1, b"\x82\x86\x84\x01\x08x.w.test"))
        got = read_frames(s, lambda t, fl, sid, pl: t == 1 and sid == 1)
        s.close()
        self.assertIsNotNone(got)
        self.assertEqual(got[1][:1], b"\x88")  # :status 200 (static index 8)


class CertificateRotation(TlsBase):
    def test_certificate_changes_50_times_under_load_without_failed_requests(self):
        p = self.start_tls(self.resources())
        certs = [make_cert(self.tmp, "a.test", ["a.test"], "-%d" % i) for i in range(50)]
        stop = threading.Event()
        failures, count = [], [0]

        def load():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            while not stop.is_set():
                try:
                    st = https_get(self.https_port, "a.test", "/load", ctx)[0]
                    if st != 200:
                        failures.append(st)
                except OSError as e:
                    failures.append(repr(e))
                count[0] += 1

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        # a keep-alive connection opened before the rotations keeps working
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        old = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.https_port), timeout=10),
                              server_hostname="a.test")
        old_der = old.getpeercert(binary_form=True)
        try:
            for pem, key in certs:
                p.reload(self.resources(pem, key))
                want = pem_to_der(pem)
                poll(lambda: peer_cert_der(self.https_port, "a.test") == want,
                     what="new certificate served")
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(failures, [])
        self.assertGreater(count[0], 50)
        old.sendall(b"GET /old HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertTrue(old.recv(65536).startswith(b"HTTP/1.1 200"))
        self.assertEqual(old.getpeercert(binary_form=True), old_der)
        old.close()
        self.assertEqual(peer_cert_der(self.https_port, "a.test"), pem_to_der(certs[-1][0]))
        self.assertIn("CN = a.test-49", s_client(self.https_port, "a.test")[0])



class H2(TlsBase):
    def setUp(self):
        super().setUp()
        self.start_tls(self.resources())
        self.resolve = "a.test:%d:127.0.0.1" % self.https_port
        self.ca = os.path.join(self.tmp, "a.test.crt")

    def curl_h2(self, url, *args):
        out = l7t.curl("--cacert", self.ca, "--resolve", self.resolve, "-w",
                       "\n%{http_code} %{http_version}", *args, url)
        body, _, tail = out.rpartition(b"\n")
        return tail.decode(), body

    def test_alpn_h2_is_negotiated_when_offered(self):
        self.assertIn("h2", s_client(self.https_port, "a.test", "h2,http/1.1")[1])

    def test_curl_http2_over_tls_uses_h2_and_reaches_the_backend(self):
        st, body = self.curl_h2("https://a.test:%d/h2" % self.https_port, "--http2")
        self.assertEqual(st, "200 2")
        j = json.loads(body)
        self.assertEqual(j["path"], "/h2")
        self.assertEqual(j["headers"]["host"], "a.test:%d" % self.https_port)
        self.assertEqual(j["headers"]["x-forwarded-proto"], "https")
        self.assertIn("x-request-id", j["headers"])

    def test_curl_prior_knowledge_on_plain_port_uses_h2c(self):
        out = l7t.curl("--http2-prior-knowledge", "-H", "Host: x.w.test", "-w",
                       "\n%{http_code} %{http_version}", "http://127.0.0.1:%d/pk" % self.proxy.port)
        body, _, tail = out.rpartition(b"\n")
        self.assertEqual(tail, b"200 2")
        self.assertEqual(json.loads(body)["headers"]["x-forwarded-proto"], "http")

    def test_curl_upgrade_h2c_on_plain_port_switches_to_h2(self):
        out = l7t.curl("--http2", "-H", "Host: x.w.test", "-w", "\n%{http_code} %{http_version}",
                       "http://127.0.0.1:%d/up" % self.proxy.port)
        body, _, tail = out.rpartition(b"\n")
        self.assertEqual(tail, b"200 2")
        self.assertEqual(json.loads(body)["path"], "/up")

    def test_unknown_host_gets_local_404_as_h2_response(self):
        out = l7t.curl("--http2-prior-knowledge", "-H", "Host: nope.test", "-w",
                       "\n%{http_code} %{http_version}", "http://127.0.0.1:%d/x" % self.proxy.port)
        self.assertTrue(out.endswith(b"404 2"), out)

    def test_unreachable_backend_gets_502_or_503_as_h2_response(self):
        dead = free_port()
        self.proxy.reload(self.resources() + [
            cluster("cx", [dead]), vhost("vx", "dead.test", [route("/", "cx")])])
        poll(lambda: l7t.get(self.proxy.port, "/", "dead.test")[0] in (502, 503),
             what="reload")
        out = l7t.curl("--http2-prior-knowledge", "-H", "Host: dead.test", "-w",
                       "\n%{http_code} %{http_version}", "http://127.0.0.1:%d/x" % self.proxy.port)
        self.assertTrue(out.endswith(b"502 2") or out.endswith(b"503 2"), out)

    def test_nghttp_streams_are_all_answered(self):
        urls = ["https://a.test:%d/s%d" % (self.https_port, i) for i in range(5)]
        r = subprocess.run(["nghttp", "-nv", "-H", ":authority: a.test"] +
                           [u.replace("a.test", "127.0.0.1") for u in urls],
                           capture_output=True, timeout=30)
        out = r.stdout.decode("latin-1")
        self.assertEqual(r.returncode, 0, out[-2000:])
        # five distinct streams, each answered 200 and ended by the proxy
        answered = set(re.findall(r"recv \(stream_id=(\d+)\) :status: 200", out))
        ended = set(re.findall(r"recv (?:DATA|HEADERS) frame <length=\d+, flags=0x[0-9a-f]+, "
                               r"stream_id=(\d+)>\n\s+; END_STREAM", out))
        self.assertEqual(len(answered), 5, out[-3000:])
        self.assertEqual(ended, answered, out[-3000:])
        self.assertNotIn("RST_STREAM", out)

    def h2load(self, url, authority):
        r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", "-H",
                            ":authority: " + authority, url], capture_output=True, timeout=120)
        out = r.stdout.decode("latin-1")
        self.assertIn("2000 succeeded, 0 failed, 0 errored, 0 timeout", out, out[-2000:])
        self.assertIn("2000 2xx", out)

    def test_h2load_over_h2c_has_no_errors(self):
        self.h2load("http://127.0.0.1:%d/load" % self.proxy.port, "x.w.test")

    def test_h2load_over_tls_h2_has_no_errors(self):
        self.h2load("https://127.0.0.1:%d/load" % self.https_port, "a.test")

    def test_large_bodies_stream_both_ways_over_h2(self):
        data = os.urandom(3 * 1024 * 1024)
        path = os.path.join(self.tmp, "up.bin")
        with open(path, "wb") as f:
            f.write(data)
        st, body = self.curl_h2("https://a.test:%d/upload" % self.https_port, "--http2",
                                "--data-binary", "@" + path)
        self.assertEqual(st, "200 2")
        self.assertEqual(json.loads(body)["body_len"], len(data))
        st, body = self.curl_h2("https://a.test:%d/big?n=8000000" % self.https_port, "--http2")
        self.assertEqual(st, "200 2")
        self.assertEqual(len(body), 8000000)

    def test_tls_no_h2_offers_only_http11(self):
        self.proxy.stop()
        self.proxy = None
        self.start_tls(self.resources(), ["--tls-no-h2"])
        self.resolve = "a.test:%d:127.0.0.1" % self.https_port
        self.assertNotIn(" h2", s_client(self.https_port, "a.test", "h2")[1])
        st, _ = self.curl_h2("https://a.test:%d/x" % self.https_port, "--http2", "-o",
                             "/dev/null")
        self.assertEqual(st, "200 1.1")

    def test_sigterm_lets_an_inflight_h2_stream_finish(self):
        c = subprocess.Popen(["curl", "-s", "--max-time", "20", "--http2-prior-knowledge", "-H",
                              "Host: x.w.test", "-o", "/dev/null", "-w", "%{http_code}",
                              "http://127.0.0.1:%d/slow?ms=1500" % self.proxy.port],
                             stdout=subprocess.PIPE)
        poll(lambda: 'edge_l7_upstream_connections{state="active"} 1' in
             self.proxy.admin_get("/metrics")[1], what="request in flight")
        self.proxy.proc.send_signal(signal.SIGTERM)
        out, _ = c.communicate(timeout=30)
        self.assertEqual(out, b"200")
        self.assertEqual(self.proxy.proc.wait(timeout=30), 0)

    def test_requests_are_counted_by_protocol(self):
        st, _ = self.curl_h2("https://a.test:%d/m" % self.https_port, "--http2", "-o",
                             "/dev/null")
        self.assertEqual(st, "200 2")
        _, m = self.proxy.admin_get("/metrics")
        self.assertIn('edge_l7_requests_by_protocol_total{proto="h2"} 1', m)


# ---- a raw HTTP/2 client (stdlib) for the flood tests ----

def frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + \
        payload


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GET_BLOCK = b"\x82\x86\x84\x01\x06a.test"  # GET, http, /, literal :authority


def read_frames(sock, until, timeout=20):
    """Reads frames until until(type, flags, sid, payload) is true or EOF.
    Returns the matching (type, payload) or None on EOF/timeout."""
    buf = b""
    end = time.monotonic() + timeout
    sock.settimeout(1)
    while time.monotonic() < end:
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            t, fl, sid, pl = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, \
                buf[9:9 + n]
            buf = buf[9 + n:]
            if until(t, fl, sid, pl):
                return t, pl
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return None


def frames_in(data):
    """[(type, payload)] of the complete frames in data (server bytes
    after the preface exchange)."""
    out = []
    while len(data) >= 9:
        n = int.from_bytes(data[:3], "big")
        if len(data) < 9 + n:
            break
        out.append((data[3], data[9:9 + n]))
        data = data[9 + n:]
    return out


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class H2Floods(TlsBase):
    # After any flood: the proxy still serves and has not grown by more than
    # this (a coarse leak check; each flood test bounds its own growth far
    # tighter, below what the flood would take if it were kept).
    MEMORY_BOUND_KB = 64 * 1024

    def setUp(self):
        super().setUp()
        self.start_tls(self.resources(), ["--h2-max-resets-per-sec=100"])
        self.rss0 = vm_rss_kb(self.proxy.proc.pid)

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10)
        s.sendall(PREFACE + frame(4, 0, 0))
        return s

    def assert_still_serving(self):
        self.assertEqual(l7t.get(self.proxy.port, "/ok", "x.w.test")[0], 200)
        out = l7t.curl("--http2-prior-knowledge", "-H", "Host: x.w.test", "-o", "/dev/null", "-w",
                       "%{http_code}", "http://127.0.0.1:%d/ok" % self.proxy.port)
        self.assertEqual(out, b"200")
        self.assertLess(vm_rss_kb(self.proxy.proc.pid) - self.rss0, self.MEMORY_BOUND_KB)

    def goaway_code(self, s):
        f = read_frames(s, lambda t, fl, sid, pl: t == 7)
        return int.from_bytes(f[1][4:8], "big") if f else None

    def test_rapid_reset_gets_goaway_enhance_your_calm(self):
        s = self.connect()
        sid = 1
        try:
            for _ in range(20):  # bounded: at most 20 x 100 streams
                batch = b""
                for _ in range(100):
                    batch += frame(1, 0x5, sid, GET_BLOCK) + frame(3, 0, sid, b"\0\0\0\x08")
                    sid += 2
                s.sendall(batch)
        except OSError:
            pass  # the proxy may close while we still send
        self.assertEqual(self.goaway_code(s), 11)  # ENHANCE_YOUR_CALM
        s.close()
        self.assert_still_serving()
        _, m = self.proxy.admin_get("/metrics")
        self.assertIn('edge_l7_h2_goaway_total{reason="reset_flood"}', m)

    def test_header_flood_resets_the_stream_and_bounds_memory(self):
        pid = self.proxy.proc.pid
        s = self.connect()
        rss0 = vm_rss_kb(pid)
        big = b"\x00\x07x-flood" + b"\x7f\x81\x3f" + b"v" * 8190  # literal, 8190-byte value
        sent = 0
        try:
            s.sendall(frame(1, 0x1, 1, big))  # HEADERS, END_STREAM, no END_HEADERS
            for i in range(2000):  # at most 2000 x 8 KiB (16 MiB) of CONTINUATION
                s.sendall(frame(9, 0x4 if i == 1999 else 0, 1, big))
                sent += len(big)
        except OSError:
            pass  # closed: the flood was cut off
        grown_kb = vm_rss_kb(pid) - rss0
        # a 431 answer (HEADERS on stream 1: the limit HTTP/1.1 has), or
        # RST_STREAM / GOAWAY; never a proxied response
        got = read_frames(s, lambda t, fl, sid, pl: t in (3, 7) or (t == 1 and sid == 1))
        s.close()
        self.assertIsNotNone(got)
        # Keeping the header block would take every byte sent.
        self.assertLess(grown_kb * 1024, max(sent // 4, 2 << 20),
                        "RSS grew %d KiB over %d header bytes" % (grown_kb, sent))
        self.assert_still_serving()

    def test_ping_flood_gets_goaway_and_does_not_queue_every_ack(self):
        """PINGs sent faster than the client reads the acks: the proxy must
        not queue an ack per PING in memory; it answers GOAWAY
        ENHANCE_YOUR_CALM and closes the connection."""
        series = 'edge_l7_h2_goaway_total{reason="flood"}'
        before = metric(self.proxy, series)
        pid = self.proxy.proc.pid
        s = socket.socket()
        # A small receive window, never read: acks back up in the proxy
        # instead of in this socket's buffer.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", self.proxy.port))
        s.sendall(PREFACE + frame(4, 0, 0))
        rss0 = vm_rss_kb(pid)
        batch = frame(6, 0, 0, b"12345678") * 2000
        sent = 0
        try:
            for _ in range(200):  # bounded: at most 400,000 PINGs
                s.sendall(batch)
                sent += 2000
        except OSError:
            pass  # closed: the flood was detected
        grown_kb = vm_rss_kb(pid) - rss0
        closed, got = read_until_closed(s, 20)
        s.close()
        self.assertTrue(closed, "connection still open after %d PINGs (RSS +%d KiB)" %
                        (sent, grown_kb))
        poll(lambda: metric(self.proxy, series) >= before + 1, what="flood GOAWAY counted")
        self.assertEqual(metric(self.proxy, series), before + 1)
        goaways = [pl for t, pl in frames_in(got) if t == 7]
        for pl in goaways:  # when the GOAWAY got through before the close
            self.assertEqual(int.from_bytes(pl[4:8], "big"), 11)  # ENHANCE_YOUR_CALM
        # Queuing an ack per PING would hold at least 17 bytes each.
        self.assertLess(grown_kb * 1024, max(17 * sent // 4, 2 << 20),
                        "RSS grew %d KiB over %d PINGs" % (grown_kb, sent))
        self.assert_still_serving()

    def test_streams_beyond_max_concurrent_streams_are_refused(self):
        self.proxy.stop()
        self.proxy = None
        self.start_tls(self.resources(), ["--h2-max-streams=2"])
        self.rss0 = vm_rss_kb(self.proxy.proc.pid)
        s = self.connect()
        s.sendall(frame(4, 1, 0))  # ACK the proxy's SETTINGS
        slow = b"\x82\x86\x04\x0d/slow?ms=1500\x01\x08x.w.test"
        s.sendall(b"".join(frame(1, 0x5, sid, slow) for sid in (1, 3, 5)))
        # nghttp2 answers the third stream with RST_STREAM, or (once the
        # SETTINGS were acknowledged) with GOAWAY PROTOCOL_ERROR
        got = read_frames(s, lambda t, fl, sid, pl: (t == 3 and sid == 5) or t == 7)
        self.assertIsNotNone(got)
        code = got[1][4:8] if got[0] == 7 else got[1][:4]
        self.assertIn(int.from_bytes(code, "big"), (1, 7))  # PROTOCOL_ERROR / REFUSED_STREAM
        s.close()
        self.assert_still_serving()

    def test_settings_with_too_many_entries_gets_goaway(self):
        s = self.connect()
        s.sendall(frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x64" * 100))
        self.assertIn(self.goaway_code(s), (11, 1))
        s.close()
        self.assert_still_serving()

if __name__ == "__main__":
    l7t.L7PROXY, l7t.BACKEND = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    skip_policy.main([sys.argv[0]] + sys.argv[3:])
