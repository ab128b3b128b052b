#!/usr/bin/env python3
"""Issue 20 upstream policies against real processes: TLS to the backends
(https and grpcs clusters: verification against a CA, SNI, a client
certificate), active health checks, circuit breakers.

Usage: upstream_policy_test.py L7PROXY POLICY_BACKEND GRPC_SERVER GRPC_CLIENT
       [unittest args]

The real l7proxy runs with --config=FILE (the JSON form of edge.v1); the
backends are policy_backend.py (HTTP/1.1, optionally TLS) and the gRPC C
core test server (with TLS); certificates come from the openssl command
line (pki.py). Every wait polls with a deadline; nothing asserts timing.
Processes are killed by PID in tearDown.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import l7proxy_test as l7t  # noqa: E402
import skip_policy  # noqa: E402
from l7proxy_test import get, poll, route, vhost  # noqa: E402
from pki import Pki  # noqa: E402

BACKEND = GRPC_SERVER = GRPC_CLIENT = None


class Backend:
    """policy_backend.py: HTTP/1.1, TLS with --cert/--key."""

    def __init__(self, tmp, name, **opts):
        self.portfile = os.path.join(tmp, "port-" + name)
        args = [sys.executable, BACKEND, name, self.portfile]
        args += ["--%s=%s" % (k.replace("_", "-"), v) for k, v in opts.items()]
        self.log = open(os.path.join(tmp, "backend-%s.log" % name), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        poll(lambda: os.path.exists(self.portfile), what="backend " + name)
        with open(self.portfile) as f:
            self.port = int(f.read())

    def set_health(self, status):
        with open(self.portfile + ".health.tmp", "w") as f:
            f.write(str(status))
        os.rename(self.portfile + ".health.tmp", self.portfile + ".health")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Silent:
    """A listener that accepts and never says anything (a TLS handshake or
    a response that never comes)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
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
        self.t.join()
        for c in self.conns:
            c.close()
        self.sock.close()


def slow_get(port, path, host="a.test"):
    """get() that waits up to 30 s for the answer (get() gives up after 5 s)."""
    req = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)
    resp = l7t.raw(port, req.encode(), timeout=30)
    head = resp.partition(b"\r\n\r\n")[0]
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return l7t.status_of(resp), hdrs, resp


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens: connects are refused
    return port


def cluster(name, ports, protocol=None, tls=None, health_check=None, breakers=None, **extra):
    c = {"name": name,
         "endpoints": [{"address": "127.0.0.1", "port": p, "ready": True} for p in ports]}
    if protocol:
        c["protocol"] = protocol
    if tls is not None:
        c["tls"] = tls
    if health_check:
        c["health_check"] = health_check
    if breakers:
        c["circuit_breakers"] = breakers
    c.update(extra)
    return {"cluster": c}


def metric(proxy, series):
    _, text = proxy.admin_get("/metrics")
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="p20a-up-")
        self.pki = Pki(self.tmp)
        self.procs = []
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.proxy.stop()
        for p in self.procs:
            p.kill() if not isinstance(p, Silent) else p.close()
        if hasattr(self, "_outcome") and not any(
                e for _, e in getattr(self._outcome, "errors", []) if e):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def backend(self, name, **opts):
        b = Backend(self.tmp, name, **opts)
        self.procs.append(b)
        return b

    def start(self, resources, extra=("--workers=2",)):
        self.proxy = l7t.Proxy(self.tmp, resources, list(extra))
        return self.proxy


class UpstreamTlsTest(Base):
    def setUp(self):
        super().setUp()
        self.pki.ca("upstream-ca")
        self.pki.leaf("svc", "upstream-ca", dns=["web.shop.svc"])
        self.pki.ca("other-ca")
        self.tls_backend = self.backend("tls", cert=self.pki.path("svc", "chain"),
                                        key=self.pki.path("svc", "key"))

    def tls(self, ca="upstream-ca", name="web.shop.svc", **extra):
        t = {"ca_pem": self.pki.pem(ca), "server_name": name}
        t.update(extra)
        return t

    def test_https_cluster_verifies_the_endpoint_and_sends_sni(self):
        p = self.start([cluster("c", [self.tls_backend.port], tls=self.tls()),
                        vhost("vh", "a.test", [route("/", "c")])])
        st, _, body = get(p.port, "/whoami")
        self.assertEqual(st, 200, body)
        info = json.loads(body)
        self.assertEqual(info["sni"], "web.shop.svc")
        self.assertEqual(info["backend"], "tls")

    def test_an_endpoint_signed_by_another_ca_gets_502(self):
        p = self.start([cluster("c", [self.tls_backend.port], tls=self.tls(ca="other-ca")),
                        vhost("vh", "a.test", [route("/", "c")])])
        st, _, body = get(p.port, "/whoami")
        self.assertEqual(st, 502, body)
        poll(lambda: "certificate verify failed" in p.logtext(), what="the reason in the log")

    def test_a_certificate_for_another_name_gets_502(self):
        p = self.start([cluster("c", [self.tls_backend.port], tls=self.tls(name="db.shop.svc")),
                        vhost("vh", "a.test", [route("/", "c")])])
        st, _, body = get(p.port, "/whoami")
        self.assertEqual(st, 502, body)

    def test_insecure_skip_verify_accepts_any_certificate(self):
        p = self.start([cluster("c", [self.tls_backend.port],
                                tls=self.tls(ca="other-ca", insecure_skip_verify=True)),
                        vhost("vh", "a.test", [route("/", "c")])])
        st, _, body = get(p.port, "/whoami")
        self.assertEqual(st, 200, body)

    def test_plain_http_to_a_tls_endpoint_fails_and_tls_to_it_keeps_alive(self):
        p = self.start([cluster("plain", [self.tls_backend.port]),
                        cluster("c", [self.tls_backend.port], tls=self.tls()),
                        vhost("vh", "a.test", [route("/plain", "plain"), route("/", "c")])])
        self.assertEqual(get(p.port, "/plain")[0], 502)
        # several requests on one client connection reuse one upstream TLS connection
        req = b"".join(b"GET /echo%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i for i in range(4))
        out = l7t.raw(p.port, req + b"GET /last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        peers = set()
        for head, body in l7t.split_responses(out):
            self.assertIn(b" 200 ", head.split(b"\r\n")[0])
            peers.add(json.loads(body)["peer"])
        self.assertEqual(len(peers), 1, "one pooled upstream TLS connection: %s" % peers)

    def test_client_certificate_is_presented_when_the_endpoint_requires_one(self):
        self.pki.ca("client-ca")
        self.pki.leaf("edge-proxy", "client-ca", client=True, server=False)
        strict = self.backend("strict", cert=self.pki.path("svc", "chain"),
                              key=self.pki.path("svc", "key"),
                              client_ca=self.pki.path("client-ca", "crt"))
        with_cert = self.tls(cert_pem=self.pki.pem("edge-proxy", "chain"),
                             key_pem=self.pki.pem("edge-proxy", "key"))
        p = self.start([cluster("anon", [strict.port], tls=self.tls()),
                        cluster("mtls", [strict.port], tls=with_cert),
                        vhost("vh", "a.test", [route("/anon", "anon"), route("/", "mtls")])])
        self.assertEqual(get(p.port, "/anon")[0], 502)
        st, _, body = get(p.port, "/whoami")
        self.assertEqual(st, 200, body)
        self.assertIn("CN=edge-proxy", json.loads(body)["client_subject"].replace("commonName", "CN"))

    def test_a_client_key_that_does_not_match_costs_only_its_cluster(self):
        self.pki.ca("client-ca")
        self.pki.leaf("edge-proxy", "client-ca", client=True, server=False)
        self.pki.leaf("someone-else", "client-ca", client=True, server=False)
        bad = self.tls(cert_pem=self.pki.pem("edge-proxy", "chain"),
                       key_pem=self.pki.pem("someone-else", "key"))
        p = self.start([cluster("bad", [self.tls_backend.port], tls=bad),
                        cluster("good", [self.tls_backend.port], tls=self.tls()),
                        vhost("vh", "a.test", [route("/bad", "bad"), route("/", "good")])])
        st, _, body = get(p.port, "/bad")
        self.assertEqual(st, 502)
        self.assertIn(b"tls configuration refused", body)
        self.assertEqual(get(p.port, "/whoami")[0], 200)
        _, cfg = p.admin_get("/config")
        self.assertNotIn("PRIVATE KEY", cfg)
        self.assertIn("key_pem does not match cert_pem", cfg)


class GrpcsTest(Base):
    def grpc_server(self, **tls):
        portfile = os.path.join(self.tmp, "grpc-port-%d" % len(self.procs))
        args = [GRPC_SERVER, "--port-file=" + portfile]
        args += ["--%s=%s" % (k.replace("_", "-"), v) for k, v in tls.items()]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        class P:
            def kill(self):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        self.procs.append(P())
        poll(lambda: os.path.exists(portfile), what="grpc server")
        with open(portfile) as f:
            return int(f.read())

    def client(self, port, *cases):
        r = subprocess.run([GRPC_CLIENT, "--target=127.0.0.1:%d" % port, "--authority=g.test"] +
                           list(cases), capture_output=True, timeout=60)
        return r.returncode, r.stdout.decode() + r.stderr.decode()

    def test_grpcs_cluster_carries_unary_and_streaming_calls_with_mutual_tls(self):
        self.pki.ca("upstream-ca")
        self.pki.leaf("grpc-svc", "upstream-ca", dns=["grpc.shop.svc"])
        self.pki.ca("client-ca")
        self.pki.leaf("edge-proxy", "client-ca", client=True, server=False)
        port = self.grpc_server(tls_cert=self.pki.path("grpc-svc", "chain"),
                                tls_key=self.pki.path("grpc-svc", "key"),
                                client_ca=self.pki.path("client-ca", "crt"))
        tls = {"ca_pem": self.pki.pem("upstream-ca"), "server_name": "grpc.shop.svc",
               "cert_pem": self.pki.pem("edge-proxy", "chain"),
               "key_pem": self.pki.pem("edge-proxy", "key")}
        no_cert = {"ca_pem": self.pki.pem("upstream-ca"), "server_name": "grpc.shop.svc"}
        p = self.start([cluster("g", [port], protocol="UPSTREAM_PROTOCOL_GRPC", tls=tls),
                        vhost("vh", "g.test", [route("/", "g")])])
        rc, out = self.client(p.port, "unary", "stream", "status:7:nope")
        self.assertEqual(rc, 0, out)
        # the same endpoint without the client certificate: the server refuses, the
        # proxy answers UNAVAILABLE (its own 502 → grpc-status 14)
        p.reload([cluster("g", [port], protocol="UPSTREAM_PROTOCOL_GRPC", tls=no_cert),
                  vhost("vh", "g.test", [route("/", "g")])])
        poll(lambda: self.client(p.port, "expect:14")[0] == 0, what="grpc-status 14 without a cert")


class HealthCheckTest(Base):
    def test_a_failing_endpoint_is_taken_out_and_put_back(self):
        a, b = self.backend("a"), self.backend("b")
        hc = {"path": "/health", "interval_ms": 100, "timeout_ms": 1000, "rise": 2, "fall": 2}
        p = self.start([cluster("c", [a.port, b.port], health_check=hc),
                        vhost("vh", "a.test", [route("/", "c")])])

        def served():
            return {json.loads(get(p.port, "/x")[2])["backend"] for _ in range(8)}
        poll(lambda: served() == {"a", "b"}, what="both endpoints serve")
        b.set_health(503)
        poll(lambda: metric(p, 'edge_l7_health_check_transitions_total{cluster="c",to="down"}') >= 1,
             what="b taken out")
        # every worker sees the verdict: new connections never reach b
        self.assertEqual({json.loads(get(p.port, "/x")[2])["backend"] for _ in range(20)}, {"a"})
        up = 'edge_l7_health_check_up{cluster="c",endpoint="127.0.0.1:%d"}'
        self.assertEqual(metric(p, up % b.port), 0)
        self.assertEqual(metric(p, up % a.port), 1)
        b.set_health(200)
        poll(lambda: served() == {"a", "b"}, what="b put back")
        self.assertIn('state=up', p.logtext())
        self.assertEqual(metric(p, up % b.port), 1)

    def test_expected_status_range_decides_and_all_down_is_503(self):
        a = self.backend("a")
        a.set_health(204)
        hc = {"path": "/health", "interval_ms": 100, "rise": 1, "fall": 1,
              "expected_status_min": 200, "expected_status_max": 200}
        p = self.start([cluster("c", [a.port], health_check=hc),
                        vhost("vh", "a.test", [route("/", "c")])])
        poll(lambda: get(p.port, "/x")[0] == 503, what="204 is not the expected 200")
        p.reload([cluster("c", [a.port], health_check=dict(hc, expected_status_max=204)),
                  vhost("vh", "a.test", [route("/", "c")])])
        poll(lambda: get(p.port, "/x")[0] == 200, what="200..204 accepts 204")

    def test_checks_stop_with_the_setting_and_the_endpoint_serves_again(self):
        a = self.backend("a")
        a.set_health(500)
        hc = {"path": "/health", "interval_ms": 100, "rise": 1, "fall": 1}
        p = self.start([cluster("c", [a.port], health_check=hc),
                        vhost("vh", "a.test", [route("/", "c")])])
        poll(lambda: get(p.port, "/x")[0] == 503, what="a down")
        p.reload([cluster("c", [a.port]), vhost("vh", "a.test", [route("/", "c")])])
        poll(lambda: get(p.port, "/x")[0] == 200, what="no checks: a serves")

    def test_a_health_port_is_checked_instead_of_the_serving_port(self):
        a, health = self.backend("a"), self.backend("health")
        health.set_health(503)  # a's own /health says 200: only the health port decides
        hc = {"path": "/health", "interval_ms": 100, "rise": 1, "fall": 1, "port": health.port}
        p = self.start([cluster("c", [a.port], health_check=hc),
                        vhost("vh", "a.test", [route("/", "c")])])
        poll(lambda: get(p.port, "/x")[0] == 503, what="a taken out by its health port")
        health.set_health(200)
        poll(lambda: get(p.port, "/x")[0] == 200, what="a back")

    def test_tls_cluster_is_checked_over_tls(self):
        self.pki.ca("upstream-ca")
        self.pki.leaf("svc", "upstream-ca", dns=["web.shop.svc"])
        a = self.backend("a", cert=self.pki.path("svc", "chain"), key=self.pki.path("svc", "key"))
        hc = {"path": "/health", "interval_ms": 100, "rise": 1, "fall": 1}
        tls = {"ca_pem": self.pki.pem("upstream-ca"), "server_name": "web.shop.svc"}
        p = self.start([cluster("c", [a.port], tls=tls, health_check=hc),
                        vhost("vh", "a.test", [route("/", "c")])])
        poll(lambda: metric(p, 'edge_l7_health_checks_total{cluster="c",result="ok"}') >= 2,
             what="checks pass over TLS")
        self.assertEqual(get(p.port, "/x")[0], 200)
        a.set_health(503)
        poll(lambda: get(p.port, "/x")[0] == 503, what="taken out over TLS")


class CircuitBreakerTest(Base):
    def test_max_connections_answers_503_with_the_reason(self):
        a = self.backend("a")
        p = self.start([cluster("c", [a.port], breakers={"max_connections": 1}),
                        vhost("vh", "a.test", [route("/", "c")])], extra=("--workers=1",))
        slow = threading.Thread(target=slow_get, args=(p.port, "/slow?ms=8000"))
        slow.start()
        poll(lambda: metric(p, "edge_l7_upstream_connections{state=\"active\"}") >= 1,
             what="the slow request holds the only connection")
        st, hdrs, _ = get(p.port, "/second")
        self.assertEqual(st, 503)
        self.assertEqual(hdrs.get("x-edge-circuit-breaker"), "max_connections")
        self.assertEqual(metric(p, 'edge_l7_circuit_breaker_overflows_total{cluster="c",'
                                   'limit="max_connections"}'), 1)
        slow.join()
        self.assertEqual(get(p.port, "/third")[0], 200)  # the connection is free again

    def test_the_limit_holds_across_workers(self):
        a = self.backend("a")
        p = self.start([cluster("c", [a.port], breakers={"max_connections": 2}),
                        vhost("vh", "a.test", [route("/", "c")])], extra=("--workers=4",))
        results = []
        threads = [threading.Thread(target=lambda: results.append(slow_get(p.port, "/slow?ms=6000")))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = sum(1 for st, _, _ in results if st == 200)
        refused = sum(1 for st, h, _ in results
                      if st == 503 and h.get("x-edge-circuit-breaker") == "max_connections")
        self.assertEqual(ok + refused, 8)
        self.assertLessEqual(ok, 2 + 2)  # two at a time; a slot freed late may serve again
        self.assertGreaterEqual(refused, 4)

    def test_max_pending_requests_counts_requests_waiting_for_a_connection(self):
        silent = Silent()  # accepts TCP, never answers the TLS handshake
        self.procs.append(silent)
        self.pki.ca("upstream-ca")
        tls = {"ca_pem": self.pki.pem("upstream-ca"), "server_name": "x.svc"}
        p = self.start([cluster("c", [silent.port], tls=tls, connect_timeout_ms=10000,
                                breakers={"max_pending_requests": 1}),
                        vhost("vh", "a.test", [route("/", "c")])], extra=("--workers=1",))
        waiting = threading.Thread(target=slow_get, args=(p.port, "/first"))
        waiting.start()
        poll(lambda: silent.conns, what="the first request's connection")
        st, hdrs, _ = get(p.port, "/second")
        self.assertEqual(st, 503)
        self.assertEqual(hdrs.get("x-edge-circuit-breaker"), "max_pending_requests")
        waiting.join()

    def test_max_retries_bounds_retries_in_flight(self):
        silent = Silent()  # the retry's endpoint: the response never comes
        self.procs.append(silent)
        dead = dead_port()
        p = self.start([cluster("c", [dead, silent.port], breakers={"max_retries": 1}),
                        vhost("vh", "a.test", [route("/", "c", retries=1,
                                                     response_header_timeout_ms=10000)])],
                       extra=("--workers=1",))
        first = threading.Thread(target=slow_get, args=(p.port, "/first"))
        first.start()  # dead endpoint, then a retry that hangs on the silent one
        poll(lambda: silent.conns, what="the first request's retry")
        st, hdrs, _ = get(p.port, "/second")  # dead endpoint again: its retry is refused
        self.assertEqual(st, 503)
        self.assertEqual(hdrs.get("x-edge-circuit-breaker"), "max_retries")
        first.join()


if __name__ == "__main__":
    l7t.L7PROXY = os.path.abspath(sys.argv[1])
    BACKEND = os.path.abspath(sys.argv[2])
    GRPC_SERVER = os.path.abspath(sys.argv[3])
    GRPC_CLIENT = os.path.abspath(sys.argv[4])
    skip_policy.main([sys.argv[0]] + sys.argv[5:])
