#!/usr/bin/env python3
"""l7proxy under attack (issue 15, points 1 and 5): each test names an
attack a hostile client can mount, runs it against the real l7proxy with
--config=FILE and the l7proxy_test.py backends on 127.0.0.1, and asserts
what the proxy must do instead of what it did before (every one of these
failed on 044acf3; the failure each printed is in the issue's closing note).

Usage: l7proxy_hostile_test.py L7PROXY_BINARY BACKEND_SCRIPT [unittest args]

Waits poll a condition with a deadline (DEADLINE_S, far above the 1 s
timeouts configured here); nothing asserts how fast anything happens.
Processes started here are killed by PID in tearDown.
"""
import json
import os
import resource
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import l7proxy_test as l7t  # noqa: E402
from l7proxy_test import cluster, free_port, route, status_of, vhost  # noqa: E402

DEADLINE_S = 15
# Short timeouts so an attack that is cut off is cut off well inside the
# deadline; the deadline only bounds how long a broken proxy is waited for.
SHORT = ("--header-timeout=1s", "--idle-timeout=1s", "--body-timeout=1s",
         "--tunnel-idle-timeout=1s", "--response-header-timeout=1s")


def read_head(s):
    buf = b""
    end = time.monotonic() + DEADLINE_S
    while b"\r\n\r\n" not in buf and time.monotonic() < end:
        try:
            c = s.recv(65536)
        except socket.timeout:
            continue
        if not c:
            break
        buf += c
    return buf


def closed_within_deadline(s):
    """Reads until EOF/RST; True if the proxy ended the connection before
    the deadline, False if it was still open at the deadline."""
    s.settimeout(0.5)
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        try:
            c = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return True
        if not c:
            return True
    return False


class Hostile(l7t.Base):
    EXTRA = SHORT

    def setUp(self):
        super().setUp()
        self.a = self.backend("a")
        dead = free_port()
        self.start([
            cluster("ca", [self.a.port]), cluster("cdead", [dead]), cluster("cempty", []),
            vhost("va", "a.test", [
                route("/", "ca"),
                route("/moved", "ca", redirect={"path": "/new", "status": 308}),
                route("/empty", "cempty"),
                route("/dead", "cdead"),
            ]),
        ])

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5)


class ConnectionsThatNeverEnd(Hostile):
    def test_unread_body_after_a_local_answer_does_not_hold_the_connection(self):
        # POST with Content-Length: 10 and no body, to requests the proxy
        # answers itself: 404 (no route), 308 (redirect), 503 (no
        # endpoints), 502 (connect refused).
        for host, path, want in (("nowhere.test", "/", 404), ("a.test", "/moved", 308),
                                 ("a.test", "/empty", 503), ("a.test", "/dead", 502)):
            with self.subTest(status=want):
                s = self.connect()
                s.sendall(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n\r\n" %
                          (path.encode(), host.encode()))
                self.assertEqual(status_of(read_head(s)), want)
                self.assertTrue(closed_within_deadline(s), "connection still open")
                s.close()

    def test_stalled_request_body_on_a_proxied_request_is_timed_out(self):
        s = self.connect()
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n" +
                  b"x" * 10)
        self.assertEqual(status_of(read_head(s)), 408)
        self.assertTrue(closed_within_deadline(s), "connection still open")
        s.close()

    def test_slow_clients_do_not_eject_a_healthy_endpoint(self):
        # Five stalled bodies were five 504s charged to the one endpoint:
        # it got ejected and every other client got 503.
        results = []

        def stall():
            s = self.connect()
            s.settimeout(DEADLINE_S)
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\nxx")
            results.append(status_of(read_head(s)))
            s.close()

        threads = [threading.Thread(target=stall) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE_S * 2)
        self.assertEqual(sorted(results), [408] * 6)
        st, _, body = l7t.get(self.proxy.port, "/ok", "a.test")
        self.assertEqual(st, 200, body)
        self.assertNotIn("upstream_ejected", self.proxy.logtext())

    def test_h2_stream_without_end_stream_does_not_hold_the_connection(self):
        s = self.connect()
        # POST / on a.test, END_HEADERS but no END_STREAM, and no DATA ever
        block = b"\x83\x86\x84\x01\x06a.test"
        s.sendall(H2_PREFACE + h2_frame(4, 0, 0) + h2_frame(1, 0x4, 1, block))
        got = h2_read_until(s, lambda t, fl, sid, pl: (t in (1, 3) and sid == 1) or t == 7)
        self.assertIsNotNone(got, "the stream was never answered or reset")
        self.assertTrue(closed_within_deadline(s), "h2 connection still open")
        s.close()


class ProtocolEdges(Hostile):
    def echo_headers(self, req):
        resp = l7t.raw(self.proxy.port, req)
        self.assertEqual(status_of(resp), 200, resp[:200])
        return json.loads(resp.partition(b"\r\n\r\n")[2])["headers"]

    def test_declined_h2c_upgrade_is_not_forwarded_upstream(self):
        # l7proxy declines h2c with a body; the Upgrade must not leak upstream
        hs = self.echo_headers(
            b"POST /x HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 5\r\n"
            b"Connection: close\r\n\r\nhello")
        self.assertNotIn("upgrade", hs)
        self.assertNotIn("http2-settings", hs)

    def test_upgrade_to_a_protocol_the_route_does_not_allow_is_not_forwarded(self):
        hs = self.echo_headers(b"GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\n"
                               b"Upgrade: rawtcp\r\nConnection: close\r\n\r\n")
        self.assertNotIn("upgrade", hs)

    def test_idle_websocket_tunnel_is_closed(self):
        s = self.connect()
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        self.assertEqual(status_of(read_head(s)), 101)
        s.sendall(b"ping")
        self.assertEqual(s.recv(16), b"ping")
        self.assertTrue(closed_within_deadline(s), "idle tunnel still open")
        s.close()

    def test_http_2_0_request_line_on_the_http1_listener_is_505(self):
        for version in (b"HTTP/2.0", b"HTTP/3.0"):
            with self.subTest(version=version):
                resp = l7t.raw(self.proxy.port, b"GET / " + version + b"\r\nHost: a.test\r\n\r\n")
                self.assertEqual(status_of(resp), 505, resp[:200])

    def test_204_and_304_never_carry_a_body_or_chunked_framing(self):
        for q in (b"status=204&te=chunked", b"status=304&te=chunked", b"status=204"):
            with self.subTest(q=q):
                resp = l7t.raw(self.proxy.port,
                               b"GET /nobody?" + q + b" HTTP/1.1\r\nHost: a.test\r\n\r\n"
                               b"GET /after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                first, _, rest = resp.partition(b"\r\n\r\n")
                self.assertIn(status_of(first), (204, 304))
                self.assertNotIn(b"transfer-encoding", first.lower())
                self.assertTrue(rest.startswith(b"HTTP/1.1 200"), rest[:80])

    def test_head_response_never_carries_a_body(self):
        resp = l7t.raw(self.proxy.port, b"HEAD /chunked HTTP/1.1\r\nHost: a.test\r\n\r\n"
                       b"GET /after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        first, _, rest = resp.partition(b"\r\n\r\n")
        self.assertEqual(status_of(first), 200)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200"), rest[:80])

    def test_request_transfer_codings_other_than_chunked(self):
        for te, want in ((b"gzip, chunked", 501), (b"gzip", 400), (b"chunked, gzip", 400),
                         (b"chunked, chunked", 400)):
            with self.subTest(te=te):
                resp = l7t.raw(self.proxy.port, b"POST /x HTTP/1.1\r\nHost: a.test\r\n"
                               b"Transfer-Encoding: " + te + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                self.assertEqual(status_of(resp), want, resp[:200])

    def test_response_transfer_codings_are_kept(self):
        resp = l7t.raw(self.proxy.port, b"GET /coded?coding=gzip HTTP/1.1\r\nHost: a.test\r\n"
                       b"Connection: close\r\n\r\n")
        head, _, body = resp.partition(b"\r\n\r\n")
        self.assertEqual(status_of(head), 200)
        self.assertIn(b"transfer-encoding: gzip, chunked", head.lower())
        self.assertEqual(dechunk(body), b"coded-body")


class H2Memory(Hostile):
    EXTRA = SHORT[:-1] + ("--response-header-timeout=10s",)
    BOUND_KB = 16 * 1024

    def test_zero_window_client_cannot_make_the_proxy_buffer_per_stream(self):
        # SETTINGS_INITIAL_WINDOW_SIZE = 0, then 100 streams of 4 MB each:
        # before, each stream buffered 256 KiB (25 MB for the connection).
        rss0 = l7t_rss(self.proxy.proc.pid)
        s = self.connect()
        s.sendall(H2_PREFACE + h2_frame(4, 0, 0, b"\x00\x04\x00\x00\x00\x00"))
        block = b"\x82\x86\x04\x0e/big?n=4000000\x01\x06a.test"
        s.sendall(b"".join(h2_frame(1, 0x5, sid, block) for sid in range(1, 200, 2)))
        heads = set()
        h2_read_until(s, lambda t, fl, sid, pl: (t == 1 and heads.add(sid)) or len(heads) == 100)
        self.assertEqual(len(heads), 100)
        peak = 0
        end = time.monotonic() + 3  # sample a while: buffering is what grows
        while time.monotonic() < end:
            peak = max(peak, l7t_rss(self.proxy.proc.pid) - rss0)
            time.sleep(0.1)
        s.close()
        self.assertLess(peak, self.BOUND_KB, "RSS grew by %d KiB" % peak)
        self.assertEqual(l7t.get(self.proxy.port, "/ok", "a.test")[0], 200)


# ---- helpers: a raw HTTP/2 client, chunked decoding, RSS ----

class RoomHelpers:
    def metric(self, name):
        _, text = self.proxy.admin_get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_open(self, n):
        l7t.poll(lambda: self.metric("edge_l7_active_connections") == n,
                 what="%d connections open in the proxy" % n)

    def idle(self, n):
        out = []
        for _ in range(n):
            out.append(self.connect())
        return out

    def good_request(self, keep=False):
        """A well-behaved client: one GET on a new connection; with keep
        the connection stays open (kept alive, idle) and is returned."""
        s = self.connect()
        s.sendall(b"GET /good HTTP/1.1\r\nHost: a.test\r\n%s\r\n" %
                  (b"" if keep else b"Connection: close\r\n"))
        head = read_head(s)
        if keep:
            return status_of(head), s
        s.close()
        return status_of(head), None

    def is_closed(self, s):
        s.setblocking(False)
        try:
            return s.recv(65536) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            s.settimeout(5)



class DescriptorExhaustion(RoomHelpers, Hostile):
    """Idle connections hold every slot of --max-connections (the
    fd-exhaustion attack of tests/load/run.sh hostile): a new visitor must
    get its answer all the same, by the oldest idle connection making
    room, and a connection with a request in progress is never the one
    closed. Timeouts are long here so only eviction can free a slot."""
    MAX = 20
    EXTRA = ("--max-connections=20", "--workers=1", "--header-timeout=60s",
             "--idle-timeout=60s", "--body-timeout=60s", "--response-header-timeout=30s")

    def test_idle_connections_make_room_for_a_new_client_oldest_first(self):
        held = self.idle(self.MAX)
        self.wait_open(self.MAX)
        for k in range(3):
            st, _ = self.good_request()
            self.assertEqual(st, 200, "new client refused while idle connections hold the slots")
            l7t.poll(lambda: self.is_closed(held[k]), what="the oldest idle connection closed")
            for s in held[k + 1:]:
                self.assertFalse(self.is_closed(s), "a newer idle connection was evicted")
            held.append(self.connect())  # the attacker takes the slot back
            self.wait_open(self.MAX)
        self.assertEqual(self.metric("edge_l7_connections_evicted_total"), 3)
        for s in held:
            s.close()

    def test_a_request_in_progress_is_never_evicted(self):
        # the oldest connections carry requests the backend answers slowly;
        # the newer ones are idle (no byte, or an h2c session with no stream)
        slow = []
        for i in range(self.MAX - 4):
            s = self.connect()
            s.sendall(b"GET /slow?ms=4000&i=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i)
            slow.append(s)
        h2 = self.connect()
        h2.sendall(H2_PREFACE + h2_frame(4, 0, 0))
        self.assertIsNotNone(h2_read_until(h2, lambda t, fl, sid, pl: t == 4),
                             "no SETTINGS from the proxy")
        idle = self.idle(3)
        self.wait_open(self.MAX)
        # eight new clients, each keeping its connection: four idle ones
        # make room first, then the new clients' own kept-alive connections
        kept = []
        for _ in range(8):
            st, s = self.good_request(keep=True)
            self.assertEqual(st, 200, "new client refused while idle connections hold slots")
            kept.append(s)
        got = h2_read_until(h2, lambda t, fl, sid, pl: t == 7)
        self.assertIsNotNone(got, "the evicted h2 connection got no GOAWAY")
        self.assertEqual(int.from_bytes(got[1][4:8], "big"), 0, "GOAWAY code not NO_ERROR")
        for s in idle:
            l7t.poll(lambda: self.is_closed(s), what="idle connection evicted")
        for i, s in enumerate(slow):
            s.settimeout(DEADLINE_S)
            head = read_head(s)
            self.assertEqual(status_of(head), 200, "slow request %d lost: %r" % (i, head[:80]))
        self.assertEqual(self.metric("edge_l7_connections_evicted_total"), 8)
        self.assertFalse(self.is_closed(kept[-1]), "the newest kept-alive client was evicted")
        for s in slow + kept + idle + [h2]:
            s.close()

    def test_no_room_when_every_connection_has_a_request_in_progress(self):
        slow = []
        for i in range(self.MAX):
            s = self.connect()
            s.sendall(b"GET /slow?ms=3000&i=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i)
            slow.append(s)
        self.wait_open(self.MAX)
        extra = self.connect()
        extra.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertTrue(closed_within_deadline(extra), "served beyond --max-connections")
        extra.close()
        for s in slow:
            s.settimeout(DEADLINE_S)
            self.assertEqual(status_of(read_head(s)), 200)
        self.assertEqual(self.metric("edge_l7_connections_evicted_total"), 0)
        for s in slow:
            s.close()


class OutOfDescriptors(RoomHelpers, Hostile):
    """The same attack against the descriptor limit instead of
    --max-connections (default, far above it): accept fails with EMFILE.
    libuv's own answer accepted and closed every waiting client; the
    worker evicts an idle connection and accepts instead (and evicts
    another when the proxied request's upstream socket finds none)."""
    NOFILE = 64
    EXTRA = ("--workers=1", "--header-timeout=60s", "--idle-timeout=60s", "--body-timeout=60s")

    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.NOFILE, hard))  # inherited
        try:
            super().setUp()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def test_out_of_descriptors_an_idle_connection_makes_room(self):
        held = [self.connect() for _ in range(self.NOFILE + 20)]
        fds = "/proc/%d/fd" % self.proxy.proc.pid
        try:
            # every descriptor taken (the proxied request below then finds
            # none for its upstream socket either)
            l7t.poll(lambda: len(os.listdir(fds)) >= self.NOFILE or held.append(self.connect()),
                     what="the proxy out of descriptors")
            # the admin endpoint has no descriptor either while this lasts:
            # the proxy is judged by the new client and the oldest idle one
            st, _ = self.good_request()
            self.assertEqual(st, 200, "new client lost while the descriptors are held")
            l7t.poll(lambda: self.is_closed(held[0]), what="the oldest idle connection closed")
        finally:
            for s in held:
                s.close()
        l7t.poll(lambda: self.metric(
            'edge_l7_connections_evicted_total{reason="file_descriptors"}') >= 1,
            what="evictions for descriptors counted")


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + \
        payload


def h2_read_until(sock, until, timeout=DEADLINE_S):
    buf = b""
    end = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < end:
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            t, fl = buf[3], buf[4]
            sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
            pl = buf[9:9 + n]
            buf = buf[9 + n:]
            if until(t, fl, sid, pl):
                return t, pl
        try:
            c = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return None
        if not c:
            return None
        buf += c
    return None


def dechunk(body):
    out = b""
    while body:
        line, _, body = body.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            break
        out += body[:n]
        body = body[n + 2:]
    return out


def l7t_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    l7t.L7PROXY, l7t.BACKEND = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    l7t.skip_policy.main([sys.argv[0]] + sys.argv[3:])
