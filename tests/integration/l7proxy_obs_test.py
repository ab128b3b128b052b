#!/usr/bin/env python3
"""Tracing and access logs through real l7proxy processes.

Usage: l7proxy_obs_test.py L7PROXY BACKEND_SCRIPT OTLP_RECEIVER [unittest args]

The chain: client (curl / raw sockets) -> l7proxy A -> l7proxy B -> backend
(l7proxy_backend.py, which echoes the headers it got). Both proxies export
spans to the in-tree OTLP receiver (tests/otlp/otlp_receiver.py), which
decodes the protobuf with its own field table; the tests check trace ids,
parent/child span ids across the hops and against what the backend saw, the
attributes and retry events, the JSON access log schema, SIGUSR1 reopen,
and that a stuck collector costs dropped (counted) spans, never a stalled
request. Every wait polls with a deadline; nothing asserts timing.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import skip_policy  # noqa: E402

L7PROXY = BACKEND = RECEIVER = None
DEADLINE_S = 20
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
JSON_KEYS = {"time", "client_address", "client_port", "protocol", "method", "authority", "path",
             "status", "bytes_in", "bytes_out", "route", "cluster", "upstream_address",
             "upstream_connect_ms", "upstream_first_byte_ms", "duration_ms", "retries",
             "tls_version", "sni", "alpn", "request_id", "trace_id"}


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
    p = s.getsockname()[1]
    s.close()
    return p


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except OSError:
        return 0, ""


def spawn_with_portfile(argv, tmp, name):
    """Starts a helper that writes its port to a file: the OTLP receiver
    (RECEIVER PORTFILE [flags]) or the backend (BACKEND NAME PORTFILE)."""
    portfile = os.path.join(tmp, name + ".port")
    if name == "backend":
        p = subprocess.Popen(argv[:2] + [name, portfile])
    else:
        p = subprocess.Popen(argv[:2] + [portfile] + argv[2:])
    poll(lambda: os.path.exists(portfile), what=name)
    with open(portfile) as f:
        return p, int(f.read())


class Proxy:
    def __init__(self, tmp, name, resources, extra):
        self.cfg = os.path.join(tmp, name + ".json")
        with open(self.cfg, "w") as f:
            json.dump({"version": 1, "resources": resources}, f)
        self.port, self.admin = free_port(), free_port()
        self.logpath = os.path.join(tmp, name + ".stderr")
        self.log = open(self.logpath, "a+")
        self.proc = subprocess.Popen(
            [L7PROXY, "--http=127.0.0.1:%d" % self.port, "--admin=127.0.0.1:%d" % self.admin,
             "--workers=1", "--config=" + self.cfg, "--node-id=" + name] + list(extra),
            stdout=self.log, stderr=self.log)
        poll(self.ready, what="l7proxy " + name)

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("l7proxy exited: " + open(self.logpath).read())
        return http_get("http://127.0.0.1:%d/readyz" % self.admin)[0] == 200

    def metric(self, name):
        _, text = http_get("http://127.0.0.1:%d/metrics" % self.admin)
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def cluster(name, ports):
    return {"cluster": {"name": name, "endpoints": [
        {"address": "127.0.0.1", "port": p, "ready": True} for p in ports]}}


def vhost(host, routes):
    return {"virtual_host": {"name": host, "host": host, "host_match": "HOST_MATCH_EXACT",
                             "routes": routes}}


def route(path, c, **opts):
    r = {"path": path, "path_type": "PATH_TYPE_PREFIX", "cluster": c}
    if opts:
        r["options"] = opts
    return r


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args), capture_output=True)
    return r.stdout.decode("utf-8", "replace")


class ObsChain(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="l7obs")
        cls.procs = []
        cls.receiver, rport = spawn_with_portfile([sys.executable, RECEIVER], cls.tmp, "otlp")
        cls.procs.append(cls.receiver)
        cls.rport = rport
        cls.backend, bport = spawn_with_portfile([sys.executable, BACKEND], cls.tmp, "backend")
        cls.procs.append(cls.backend)
        dead = free_port()  # nothing listens: connect refused, then a retry
        otlp = "--trace-otlp=http://127.0.0.1:%d/v1/traces" % rport
        cls.blog = os.path.join(cls.tmp, "b-access.json")
        cls.b = Proxy(cls.tmp, "B", [cluster("be", [bport]), vhost("b.test", [route("/", "be")])],
                      [otlp, "--trace-flush=50ms", "--access-log-format=json",
                       "--access-log-path=" + cls.blog])
        cls.alog = os.path.join(cls.tmp, "a-access.log")
        cls.a = Proxy(cls.tmp, "A", [
            cluster("toB", [cls.b.port]), cluster("flaky", [dead, bport]),
            vhost("b.test", [route("/flaky", "flaky", retries=2), route("/", "toB")])],
            [otlp, "--trace-flush=50ms", "--access-log-path=" + cls.alog])

    @classmethod
    def tearDownClass(cls):
        for p in (cls.a, cls.b):
            p.stop()
        for p in cls.procs:
            p.kill()
            p.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def spans(self):
        _, body = http_get("http://127.0.0.1:%d/spans" % self.rport)
        data = json.loads(body)
        self.assertEqual(data["errors"], [], "the receiver could not decode what arrived")
        return data["spans"]

    def spans_of(self, trace_id, n):
        return poll(lambda: [s for s in self.spans() if s["trace_id"] == trace_id]
                    if len([s for s in self.spans() if s["trace_id"] == trace_id]) >= n else None,
                    what="%d spans of trace %s" % (n, trace_id))

    def get(self, path, *headers, port=None):
        args = ["-H", "Host: b.test"]
        for h in headers:
            args += ["-H", h]
        out = curl(*args, "http://127.0.0.1:%d%s" % (port or self.a.port, path))
        return json.loads(out)

    def log_lines(self, path, pred, n=1):
        def read():
            if not os.path.exists(path):
                return None
            with open(path) as f:
                got = [l for l in f.read().splitlines() if pred(l)]
            return got if len(got) >= n else None
        return poll(read, what="%d access log lines in %s" % (n, path))

    def test_parent_and_child_ids_across_two_hops(self):
        seen = self.get("/hello?token=secret", "traceparent: " + TP,
                        "tracestate: congo=t61rcWkgMzE")
        got_tp = seen["headers"]["traceparent"]
        self.assertRegex(got_tp, r"^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$")
        self.assertEqual(seen["headers"]["tracestate"], "congo=t61rcWkgMzE")
        spans = self.spans_of("0af7651916cd43dd8448eb211c80319c", 2)
        a = [s for s in spans if s["resource"]["service.instance.id"] == "A"]
        b = [s for s in spans if s["resource"]["service.instance.id"] == "B"]
        self.assertEqual((len(a), len(b)), (1, 1))
        a, b = a[0], b[0]
        self.assertEqual(a["parent_span_id"], "b7ad6b7169203331")  # the client's span
        self.assertEqual(b["parent_span_id"], a["span_id"])       # A -> B
        self.assertEqual(got_tp.split("-")[2], b["span_id"])       # B -> backend
        self.assertEqual(a["kind"], 2)  # SERVER
        self.assertEqual(a["trace_state"], "congo=t61rcWkgMzE")
        self.assertEqual(a["attributes"]["edge.cluster"], "toB")
        self.assertEqual(a["attributes"]["edge.upstream.address"], "127.0.0.1:%d" % self.b.port)
        self.assertEqual(a["attributes"]["http.route"], "b.test/")
        self.assertEqual(a["attributes"]["http.response.status_code"], 200)
        self.assertEqual(a["attributes"]["url.path"], "/hello")  # no query string
        self.assertEqual(b["attributes"]["edge.cluster"], "be")
        self.assertEqual(a["flags"] & 0xff, 1)

    def test_new_root_trace_when_the_client_sends_none(self):
        seen = self.get("/root")
        tid = seen["headers"]["traceparent"].split("-")[1]
        spans = self.spans_of(tid, 2)
        a = [s for s in spans if s["resource"]["service.instance.id"] == "A"][0]
        b = [s for s in spans if s["resource"]["service.instance.id"] == "B"][0]
        self.assertEqual(a["parent_span_id"], "")  # a root span
        self.assertEqual(b["parent_span_id"], a["span_id"])

    def test_invalid_traceparent_restarts_and_drops_tracestate(self):
        bad = "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"
        seen = self.get("/bad", "traceparent: " + bad, "tracestate: evil=1")
        tp = seen["headers"]["traceparent"]
        self.assertNotIn("0af7651916cd43dd", tp.lower())
        self.assertNotIn("tracestate", seen["headers"])
        spans = self.spans_of(tp.split("-")[1], 2)
        self.assertTrue(all(s["trace_state"] == "" for s in spans))

    def test_unsampled_parent_is_propagated_not_exported(self):
        tid = "11111111111111111111111111111111"
        seen = self.get("/unsampled", "traceparent: 00-%s-2222222222222222-00" % tid)
        self.assertRegex(seen["headers"]["traceparent"], r"^00-%s-[0-9a-f]{16}-00$" % tid)
        # a sampled request after it: once its spans are in, the earlier ones
        # would be too (one queue, in order)
        marker = self.get("/marker")["headers"]["traceparent"].split("-")[1]
        self.spans_of(marker, 2)
        self.assertEqual([s for s in self.spans() if s["trace_id"] == tid], [])

    def test_retry_is_a_span_event_and_counted_in_the_log(self):
        evs = []
        for i in range(4):  # round robin over [dead, backend]: some start at the dead one
            tid = "%032x" % (0xabc000 + i)
            self.get("/flaky/%d" % i, "traceparent: 00-%s-3333333333333333-01" % tid)
            span = [s for s in self.spans_of(tid, 1)
                    if s["resource"]["service.instance.id"] == "A"][0]
            self.assertEqual(span["attributes"]["http.response.status_code"], 200)
            evs += [(span, e) for e in span["events"]]
        self.assertTrue(evs, "no request was retried")
        span, ev = evs[0]
        self.assertEqual(ev["name"], "retry")
        self.assertIn("edge.upstream.address", ev["attributes"])
        self.assertNotEqual(ev["attributes"]["edge.upstream.address"],
                            span["attributes"]["edge.upstream.address"])
        self.assertGreaterEqual(span["attributes"]["http.request.resend_count"], 1)
        lines = self.log_lines(self.alog, lambda l: "path=/flaky/" in l and " retries=1 " in l)
        self.assertIn("cluster=flaky", lines[0])

    def test_json_access_log_schema_and_values(self):
        seen = self.get("/json-check?q=hidden", "X-Request-Id: req-json-1")
        tid = seen["headers"]["traceparent"].split("-")[1]
        line = self.log_lines(self.blog, lambda l: '"/json-check"' in l)[0]
        rec = json.loads(line)
        self.assertEqual(set(rec), JSON_KEYS)
        self.assertRegex(rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(rec["client_address"], "127.0.0.1")
        self.assertIsInstance(rec["client_port"], int)
        self.assertGreater(rec["client_port"], 0)
        self.assertEqual((rec["method"], rec["authority"], rec["path"], rec["status"]),
                         ("GET", "b.test", "/json-check", 200))
        self.assertEqual(rec["protocol"], "HTTP/1.1")
        self.assertEqual(rec["route"], "b.test/")
        self.assertEqual(rec["cluster"], "be")
        self.assertRegex(rec["upstream_address"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(rec["request_id"], "req-json-1")
        self.assertEqual(rec["request_id"], seen["headers"]["x-request-id"])
        self.assertEqual(rec["trace_id"], tid)
        self.assertEqual(rec["retries"], 0)
        self.assertGreater(rec["bytes_out"], 0)
        for k in ("upstream_first_byte_ms", "duration_ms"):
            self.assertIsInstance(rec[k], (int, float))
            self.assertGreaterEqual(rec[k], 0)
        self.assertIsNone(rec["tls_version"])
        self.assertIsNone(rec["sni"])

    def test_h2c_request_is_logged_and_traced_as_http2(self):
        out = curl("--http2-prior-knowledge", "-H", "traceparent: 00-%s-4444444444444444-01"
                   % ("5" * 32), "http://b.test:%d/h2check" % self.a.port,
                   "--resolve", "b.test:%d:127.0.0.1" % self.a.port)
        self.assertIn('"backend"', out)
        span = [s for s in self.spans_of("5" * 32, 2)
                if s["resource"]["service.instance.id"] == "A"][0]
        self.assertEqual(span["attributes"]["network.protocol.version"], "2")
        line = self.log_lines(self.alog, lambda l: "path=/h2check" in l)[0]
        self.assertIn("protocol=HTTP/2", line)

    def test_sigusr1_reopens_the_access_log(self):
        self.get("/before-rotate")
        self.log_lines(self.blog, lambda l: '"/before-rotate"' in l)
        rotated = self.blog + ".1"
        os.rename(self.blog, rotated)
        self.b.proc.send_signal(signal.SIGUSR1)
        poll(lambda: os.path.exists(self.blog), what="the reopened access log")
        self.get("/after-rotate")
        self.log_lines(self.blog, lambda l: '"/after-rotate"' in l)
        with open(rotated) as f:
            self.assertNotIn("/after-rotate", f.read())
        self.assertGreaterEqual(self.b.metric("edge_l7_access_log_reopens_total"), 1)


class StuckCollector(unittest.TestCase):
    """A collector that never answers: spans beyond the queue are dropped and
    counted, every request is still served."""

    def test_full_queue_drops_spans_never_requests(self):
        tmp = tempfile.mkdtemp(prefix="l7obs-stuck")
        recv, rport = spawn_with_portfile([sys.executable, RECEIVER, "--hang"], tmp, "otlp")
        be, bport = spawn_with_portfile([sys.executable, BACKEND], tmp, "backend")
        p = Proxy(tmp, "S", [cluster("be", [bport]), vhost("b.test", [route("/", "be")])],
                  ["--trace-otlp=http://127.0.0.1:%d/v1/traces" % rport, "--trace-queue=16",
                   "--trace-batch=16", "--trace-flush=10ms"])
        try:
            ok = 0
            for i in range(60):
                s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
                s.sendall(b"GET /s%d HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n" % i)
                data = b""
                while True:
                    c = s.recv(65536)
                    if not c:
                        break
                    data += c
                s.close()
                ok += data.startswith(b"HTTP/1.1 200")
            self.assertEqual(ok, 60)
            dropped = poll(lambda: p.metric('edge_l7_trace_spans_dropped_total'),
                           what="dropped spans counted")
            self.assertGreaterEqual(dropped, 60 - 2 * 16)
        finally:
            p.stop()
            for x in (recv, be):
                x.kill()
                x.wait()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    L7PROXY, BACKEND, RECEIVER = (os.path.abspath(a) for a in sys.argv[1:4])
    skip_policy.main([sys.argv[0]] + sys.argv[4:])
